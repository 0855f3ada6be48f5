"""Argument validation shared by the TVConv layer, its helpers and the models.

Every check raises a :class:`TypeError` (wrong type) or :class:`ValueError`
(right type, bad value) whose message names the argument and what was
expected, so that a bad configuration fails at construction time instead of
deep inside a forward pass.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def check_int(value: object, name: str, *, minimum: int | None = None) -> int:
    """Return ``value`` if it is an ``int`` (not a ``bool``) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"'{name}' must be an int, got {type(value).__name__} ({value!r})")
    if minimum is not None and value < minimum:
        raise ValueError(f"'{name}' must be >= {minimum}, got {value}")
    return value


def check_pair(value: object, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Return ``(a, b)`` from an int or a length-2 sequence of ints ``>= minimum``."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2:
            raise ValueError(f"'{name}' must be an int or a pair (h, w), got {value!r}")
        return (check_int(value[0], f"{name}[0]", minimum=minimum),
                check_int(value[1], f"{name}[1]", minimum=minimum))
    v = check_int(value, name, minimum=minimum)
    return (v, v)


def check_odd_kernel_size(value: object, name: str = "kernel_size") -> int:
    """Return a positive odd kernel size (even kernels have no centre tap)."""
    k = check_int(value, name)
    if k < 1 or k % 2 == 0:
        raise ValueError(f"'{name}' must be a positive odd int (1, 3, 5, ...), got {k}")
    return k


def check_image_batch(x: object, name: str = "x", *, channels: int | None = None) -> Tensor:
    """Return ``x`` if it is a floating-point ``[B, C, H, W]`` tensor with ``C == channels``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"'{name}' must be a floating-point tensor, got dtype {x.dtype}")
    if x.dim() != 4:
        raise ValueError(f"'{name}' must have shape [B, C, H, W] (4 dims), "
                         f"got {x.dim()} dims with shape {tuple(x.shape)}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"'{name}' must have {channels} channels (dim 1) for this layer, "
                         f"got shape {tuple(x.shape)}")
    if x.shape[2] < 1 or x.shape[3] < 1:
        raise ValueError(f"'{name}' must have a non-empty spatial size, got {tuple(x.shape)}")
    return x


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    if not isinstance(value, str):
        raise TypeError(f"'{name}' must be a str, one of {list(choices)}, got {value!r}")
    if value not in choices:
        raise ValueError(f"'{name}' must be one of {list(choices)}, got {value!r}")
    return value
