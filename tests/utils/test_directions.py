"""Direction types of displacements: exact on the 3x3 offsets, symmetric,
within half a sector of the displacement's angle."""
import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import OFFSETS, SELF_LOOP
from pyg_hgconv.utils.directions import (
    direction_lengths,
    direction_vectors,
    displacement_direction,
)


def test_the_nine_offsets_get_their_own_types():
    delta = torch.tensor([[dx, dy] for dy, dx in OFFSETS], dtype=torch.float32)
    assert displacement_direction(delta).tolist() == list(range(9))
    assert displacement_direction(3.7 * delta).tolist() == list(range(9))
    torch.testing.assert_close(direction_lengths(), delta.norm(dim=1))


@settings(max_examples=200, deadline=None)
@given(dx=st.floats(-50, 50), dy=st.floats(-50, 50))
def test_type_is_the_nearest_sector_and_symmetric(dx, dy):
    delta = torch.tensor([[dx, dy]], dtype=torch.float64)
    t = int(displacement_direction(delta))
    assert int(displacement_direction(-delta)) == 8 - t
    if math.hypot(dx, dy) == 0:
        assert t == SELF_LOOP
        return
    assert t != SELF_LOOP
    vector = direction_vectors(torch.float64)[t]
    cosine = float((vector * delta[0]).sum() / delta[0].norm())
    angle = math.degrees(math.acos(max(-1.0, min(1.0, cosine))))
    assert angle <= 22.5 + 1e-6
