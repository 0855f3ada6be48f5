r"""The nine message-passing directions of a 3x3 convolution.

A 3x3 convolution passes messages along nine displacements
:math:`\delta = (d_y, d_x) \in \{-1, 0, 1\}^2` (paper, Eq. 1):

.. math::
    \mathbf{z}_p = \sum_{\delta \in \Delta} \mathbf{x}_{p+\delta} W_\delta.

Directions are encoded row-major, exactly like the taps of a 3x3 kernel:
``type = (dy + 1) * 3 + (dx + 1)``, so type ``t`` uses the kernel tap
``weight[:, :, t // 3, t % 3]`` of an :class:`torch.nn.Conv2d`. Type 4 is the
centre (self loop); the opposite of type ``t`` is ``8 - t``.

An edge ``source -> target`` of type ``t`` means that the source lies at
displacement ``OFFSETS[t]`` from the target (``pos_source = pos_target + delta``).
"""
from __future__ import annotations

import torch
from torch import Tensor

#: number of direction types of a 3x3 neighbourhood
NUM_DIRECTIONS = 9
#: the centre direction (self loop)
SELF_LOOP = 4

#: ``OFFSETS[t] = (dy, dx)`` of direction type ``t`` (row-major)
OFFSETS: tuple[tuple[int, int], ...] = tuple(
    (dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)
)

#: the four direction types from which the other four follow by transposition
#: (``A^(-delta) = (A^delta)^T``): right, down-left, down, down-right
HALF_DIRECTIONS: tuple[int, ...] = (5, 6, 7, 8)


def direction_type(dy: int, dx: int) -> int:
    """Return the type of displacement ``(dy, dx)``, both in ``{-1, 0, 1}``."""
    if dy not in (-1, 0, 1) or dx not in (-1, 0, 1):
        raise ValueError(f"'(dy, dx)' must lie in {{-1, 0, 1}}^2 (got {(dy, dx)})")
    return (dy + 1) * 3 + (dx + 1)


def opposite(edge_type: Tensor | int) -> Tensor | int:
    """Return the opposite direction type, ``8 - t``."""
    return NUM_DIRECTIONS - 1 - edge_type


def offsets_tensor(device: torch.device | None = None) -> Tensor:
    """Return the ``[9, 2]`` tensor of ``(dy, dx)`` displacements."""
    return torch.tensor(OFFSETS, dtype=torch.long, device=device)
