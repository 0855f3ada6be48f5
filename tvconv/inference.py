"""Freezing TVConv models for inference: build, read, drop, strip and export kernel caches.

After training the affinity maps are fixed, so every TVConv's kernels can be
generated once and the generators are no longer needed (Sec. 3.2 of the
paper). :func:`freeze` switches a model to eval mode and builds all caches
eagerly; :func:`cached_weights` returns them; :func:`strip_generators` returns
a copy in which every TVConv is replaced by a :class:`FrozenTVConv` holding
only its kernels (the official code's one-way swap, here correct for stride
2 and with the bias kept); :func:`export_for_inference` exports that copy with
``torch.export``.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ._checks import check_image_batch
from .apply import (
    conv_output_size,
    from_tap_major,
    to_tap_major,
    translation_variant_conv_cached,
)
from .conv import TVConv, tvconv_layers
from .fused import fused_applies, per_pixel_conv


class FrozenTVConv(nn.Module):
    """A TVConv reduced to its generated kernels: no affinity maps, no generator.

    Args:
        weight: kernels ``[c, k*k, h, w]``.
        bias: optional per-pixel bias ``[c, h, w]``.
        stride: the stride of the original layer.

    The kernels are persistent buffers (saved in the ``state_dict``), stored
    tap-major channels-last ``(k*k, h, w, c)`` for the fast path. Only inputs
    whose output size is ``(h, w)`` are accepted.

    Shapes:
        - **input:** ``[B, c, H, W]`` with ``(ceil(H / s), ceil(W / s)) == (h, w)``
        - **output:** ``[B, c, h, w]``
    """

    def __init__(self, weight: Tensor, bias: Tensor | None = None, stride: int = 1):
        super().__init__()
        self.channels, taps, *size = weight.shape
        self.kernel_size = math.isqrt(taps)
        self.size = tuple(size)
        self.stride = stride
        self.register_buffer("weight", to_tap_major(weight.detach()))
        self.register_buffer("bias", None if bias is None
                             else bias.detach().permute(1, 2, 0).contiguous())

    @classmethod
    def from_tvconv(cls, layer: TVConv, size: tuple[int, int] | None = None) -> FrozenTVConv:
        """Freeze ``layer`` at output ``size`` (default: its cached or native size)."""
        weight, bias = layer.cache_weights(size or layer.cached_size)
        return cls(weight, bias, layer.stride)

    def forward(self, x: Tensor) -> Tensor:
        check_image_batch(x, "x", channels=self.channels)
        out_size = conv_output_size((x.shape[2], x.shape[3]), self.kernel_size, self.stride)
        if out_size != self.size:
            raise ValueError(f"FrozenTVConv holds kernels for output size {self.size}; 'x' of "
                             f"shape {tuple(x.shape)} gives {out_size} (freeze the TVConv at "
                             "that size, or keep the TVConv, which resamples)")
        if fused_applies(x) or torch.compiler.is_compiling() or (
                torch.is_grad_enabled() and x.requires_grad):
            bias = None if self.bias is None else self.bias.permute(2, 0, 1)
            return per_pixel_conv(x, from_tap_major(self.weight), bias, stride=self.stride)
        return translation_variant_conv_cached(x, self.weight, self.bias, stride=self.stride)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, size={self.size}, bias={self.bias is not None})")


def freeze(model: nn.Module, example_input: Tensor | None = None) -> nn.Module:
    """Put ``model`` in eval mode and build the kernel cache of every TVConv.

    Args:
        model: a model containing TVConv layers (or a TVConv).
        example_input: optional input; when given the model runs once on it
            (under ``torch.no_grad()``) so that layers seeing other sizes than
            their native ``size`` cache the resampled kernels of that size.
            Without it each layer caches its native size.

    Returns:
        ``model`` (in eval mode).
    """
    model.eval()
    if example_input is None:
        for _, layer in tvconv_layers(model):
            layer.cache_weights()
    else:
        with torch.no_grad():
            model(example_input)
    return model


def cached_weights(model: nn.Module) -> dict[str, tuple[Tensor, Tensor | None]]:
    """The cached ``(weight [c, k*k, h, w], bias [c, h, w] or None)`` of every TVConv.

    Layers without a cache get one for their native size. Keys are the
    qualified module names (``""`` for a bare TVConv).
    """
    return {name: layer.cache_weights(layer.cached_size)
            for name, layer in tvconv_layers(model)}


def clear_caches(model: nn.Module) -> None:
    """Drop the cached kernels of every TVConv of ``model``."""
    for _, layer in tvconv_layers(model):
        layer.clear_cache()


def strip_generators(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` (eval mode) with every TVConv replaced by a :class:`FrozenTVConv`.

    Each layer is frozen at the size of its current cache (run
    :func:`freeze` with an example input first to choose it), else at its
    native size. The copy needs no generator: its parameter count is
    :func:`tvconv.count_params` ``(model, cached=True)`` minus nothing but the
    kernels, which become buffers. ``model`` itself is unchanged.
    """
    if isinstance(model, TVConv):
        return FrozenTVConv.from_tvconv(model).eval()
    frozen = {name: FrozenTVConv.from_tvconv(layer) for name, layer in tvconv_layers(model)}
    stripped = copy.deepcopy(model).eval()
    for name, layer in frozen.items():
        parent_name, _, child = name.rpartition(".")
        setattr(stripped.get_submodule(parent_name), child, layer)
    return stripped


def export_for_inference(model: nn.Module, args: tuple, kwargs: Mapping | None = None,
                         **export_kwargs) -> torch.export.ExportedProgram:
    """Freeze ``model`` on ``args``, strip its generators and ``torch.export`` the result.

    The exported program holds the cached kernels of every TVConv (at the
    sizes ``args`` produce) and no affinity maps or weight-generating blocks.
    ``export_kwargs`` go to :func:`torch.export.export`.
    """
    if not isinstance(args, tuple):
        raise TypeError(f"'args' must be a tuple of example inputs, got {type(args).__name__}")
    model.eval()
    with torch.no_grad():
        model(*args, **dict(kwargs or {}))
    return torch.export.export(strip_generators(model), args, kwargs=kwargs, **export_kwargs)
