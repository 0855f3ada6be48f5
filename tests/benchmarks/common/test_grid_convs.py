"""The grid convs the benchmarks register: their FLOP rules against hand counts."""
import pytest
import torch

from benchmarks.common.grid_convs import GRID_CONVS
from pyg_hgconv import conv_names
from pyg_hgconv.nn.conv.registry import build_conv, get_conv
from pyg_hgconv.profile.counter import conv_flops, count_flops

# 4x5 output map, C_in = 2, C_out = 3 (conv2d) or C = 2
HAND_GRID = {"conv2d": 20 * 3 * (2 * 9 + 1), "depthwise": 20 * 2 * (9 + 1), "tvconv": 20 * 2 * 9}


def test_registered_as_grid_convs():
    assert list(GRID_CONVS) == conv_names("grid") == list(HAND_GRID)
    assert all(get_conv(name).kind == "grid" for name in GRID_CONVS)


@pytest.mark.parametrize("name", GRID_CONVS)
def test_grid_conv_rules_match_hand_counts(name):
    channels = (2, 3) if name == "conv2d" else 2
    assert conv_flops(name, channels, size=(4, 5)) == HAND_GRID[name]
    assert conv_flops(name, channels, size=(4, 5), batch_size=3) == 3 * HAND_GRID[name]
    layer = build_conv(name, *(channels if isinstance(channels, tuple) else (2, 2)), size=(4, 5))
    assert conv_flops(name, layer, size=(4, 5)) == HAND_GRID[name]
    count = count_flops(layer, torch.randn(1, 2, 4, 5))
    assert count.total == count.components["grid_conv"] == HAND_GRID[name]


def test_depthwise_needs_equal_channels():
    with pytest.raises(ValueError, match="in_channels == out_channels"):
        build_conv("depthwise", 4, 8)


def test_grid_conv_needs_its_size():
    with pytest.raises(ValueError, match="size"):
        conv_flops("conv2d", 4)
    with pytest.raises(ValueError, match="size"):
        build_conv("tvconv", 4, 4)
