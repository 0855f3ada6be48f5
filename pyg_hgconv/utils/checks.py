"""Argument checks shared by the public entry points (clear errors, one place)."""
from __future__ import annotations

import numbers

import torch
from torch import Tensor


def check_positive_int(value, name: str) -> int:
    """Raise unless ``value`` is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"'{name}' must be an int (got {type(value).__name__})")
    if value < 1:
        raise ValueError(f"'{name}' must be >= 1 (got {value})")
    return int(value)


def check_float_tensor(x, name: str, ndim: int | None = None, shape_hint: str = "") -> Tensor:
    """Raise unless ``x`` is a floating-point tensor (of rank ``ndim``)."""
    if not isinstance(x, Tensor):
        raise TypeError(f"'{name}' must be a torch.Tensor (got {type(x).__name__})")
    if not torch.is_floating_point(x):
        raise TypeError(f"'{name}' must be a floating-point tensor (got dtype {x.dtype})")
    if ndim is not None and x.dim() != ndim:
        hint = f" {shape_hint}" if shape_hint else ""
        raise ValueError(
            f"'{name}' must have {ndim} dimensions{hint} (got shape {tuple(x.shape)})"
        )
    return x


def check_image_features(x, name: str = "x") -> Tensor:
    """Raise unless ``x`` is a float feature map ``[B, C, H, W]`` with C, H, W >= 1
    (an empty batch, ``B = 0``, is allowed)."""
    check_float_tensor(x, name, ndim=4, shape_hint="[B, C, H, W]")
    if min(x.shape[1:]) == 0:
        raise ValueError(f"'{name}' must have C, H, W >= 1 (got shape {tuple(x.shape)})")
    return x


def all_finite(x: Tensor) -> bool:
    """Whether every element of ``x`` is finite: one float64 sum (finite unless an
    element is NaN or infinite, or, for float64 elements near the dtype's
    largest value, the sum overflows: then the elementwise check decides)."""
    if bool(torch.isfinite(x.sum(dtype=torch.float64))):
        return True
    return bool(torch.isfinite(x).all())
