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

import math

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


#: :math:`\tan(22.5°)`: the sector boundary between an axis and a diagonal direction
TAN_SECTOR = math.tan(math.pi / 8)


def displacement_direction(delta: Tensor) -> Tensor:
    r"""The direction type of displacements ``delta`` ``[..., 2]`` given as
    ``(dx, dy)`` (the ``pos`` convention of PyG: ``x`` first): the nearest of
    the eight directions of a 3x3 kernel, i.e. the 45° sector the displacement
    lies in, centred on the direction; ``SELF_LOOP`` (4) for a zero displacement.

    A component counts when it exceeds :math:`\tan(22.5°)` times the other
    one, so the rule is symmetric (the opposite displacement gets the
    opposite type, ``8 - t``) and the pixel offsets of a 3x3 neighbourhood get
    their own types exactly. On a sector boundary the axis direction wins.

    Returns:
        LongTensor ``[...]`` of types in ``0..8``.
    """
    dx, dy = delta[..., 0], delta[..., 1]
    sx = torch.where(dx.abs() > TAN_SECTOR * dy.abs(), torch.sign(dx), torch.zeros_like(dx))
    sy = torch.where(dy.abs() > TAN_SECTOR * dx.abs(), torch.sign(dy), torch.zeros_like(dy))
    return ((sy + 1) * 3 + (sx + 1)).long()


def direction_vectors(dtype: torch.dtype = torch.float32,
                      device: torch.device | None = None) -> Tensor:
    """``[9, 2]`` unit vectors ``(dx, dy)`` of the direction types (zero for the centre)."""
    offsets = offsets_tensor(device).to(dtype).flip(1)  # (dy, dx) -> (dx, dy)
    return offsets / offsets.norm(dim=1, keepdim=True).clamp_min(1e-12)


def direction_lengths(dtype: torch.dtype = torch.float32,
                      device: torch.device | None = None) -> Tensor:
    r"""``[9]`` lengths :math:`|\delta|` of the pixel offsets (1 axis, :math:`\sqrt 2`
    diagonal, 0 centre)."""
    return offsets_tensor(device).to(dtype).norm(dim=1)
