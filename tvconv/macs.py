"""Multiply-accumulate (MAC) and parameter counts, the paper's way.

:func:`count_macs` runs one eval-mode forward pass and sums a per-module cost
with the convention of the ``ptflops`` counter, which the TVConv paper's
figures follow (they are reproduced exactly, e.g. 22.47 M for MobileNetV2
x0.1 at 96x96):

===========================================  ======================================
module                                       MACs per forward
===========================================  ======================================
``Conv{1,2,3}d``                             ``out.numel() * C_in / groups * prod(k)``
                                             (+ ``out.numel()`` with a bias)
``ConvTranspose{1,2,3}d``                    ``in.numel() * C_out / groups * prod(k)``
                                             (+ ``out.numel()`` with a bias)
``Linear``                                   ``in.numel() * out_features`` (+ bias)
:class:`~tvconv.TVConv` (cached)             ``out.numel() * k * k`` (+ ``out.numel()``
                                             with a bias) -- exactly a depthwise conv
norm layers (BatchNorm, LayerNorm, ...)      ``in.numel()``, x2 if affine      [*]
activations (ReLU, ReLU6, PReLU, ...)        ``out.numel()``                    [*]
pooling (max, average, adaptive)             ``in.numel()``                     [*]
``Upsample``                                 ``out.numel()``                    [*]
``Dropout``, ``Flatten``, ``Identity``, ...  0
===========================================  ======================================

A :class:`~tvconv.FrozenTVConv` counts like a cached TVConv. The counter is
:func:`pyg_hgconv.profile.count_flops`; importing this module registers the
TVConv rows of the table with it
(:func:`pyg_hgconv.profile.modules.register_module_rule`), the other rows are
its leaf rules (:mod:`pyg_hgconv.profile.modules`).
``elementwise=False`` drops the rows marked [*] and counts only true
multiply-accumulates. Functional calls inside ``forward`` (``x + y``,
``torch.cat``) are not counted, as in the paper. A TVConv in eval mode
reuses cached kernels, so its weight-generating block costs nothing per
forward; ``include_generator=True`` adds the cost of generating the kernels
once (the *uncached* cost, ~4.2 GMAC for MobileNetV2 x0.1).

:func:`count_params` counts parameters at training time, or after caching
(``cached=True``): each TVConv then contributes its cached kernels
``C * k * k * h * w`` (+ ``C * h * w`` bias) instead of its affinity maps and
generator, which inference no longer needs.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from pyg_hgconv.profile.counter import count_flops
from pyg_hgconv.profile.modules import leaf_flops, register_module_rule

from .conv import TVConv
from .inference import FrozenTVConv

__all__ = ["count_macs", "count_params", "generator_macs", "module_macs"]


def generator_macs(layer: TVConv, size: tuple[int, int] | None = None,
                   elementwise: bool = True) -> int:
    """MACs of generating ``layer``'s kernels (and bias) once at output ``size``.

    3x3 convs of the weight-generating block(s), plus LayerNorm (x2, affine)
    and ReLU per element when ``elementwise``. Resampling is not counted.
    """
    h, w = layer.size if size is None else size
    total = 0
    generators = [layer.weight_generator]
    if layer.bias_generator is not None:
        generators.append(layer.bias_generator)
    for gen in generators:
        for conv in (*gen.convs, gen.output):
            total += 9 * conv.in_channels * conv.out_channels * h * w
        total += elementwise * 3 * len(gen.norms) * gen.hidden_channels * h * w
    return total


def _tvconv_macs(module: TVConv, inp: Tensor, out: Tensor, *, elementwise: bool = True,
                 include_generator: bool = False) -> int:
    """A cached TVConv: ``k * k`` MACs per output element (+ 1 with a bias);
    ``include_generator`` adds generating the kernels once."""
    macs = out.numel() * (module.kernel_size ** 2 + int(module.has_bias))
    if include_generator:
        macs += generator_macs(module, tuple(out.shape[-2:]), elementwise)
    return macs


def _frozen_tvconv_macs(module: FrozenTVConv, inp: Tensor, out: Tensor, *,
                        elementwise: bool = True, include_generator: bool = False) -> int:
    return out.numel() * (module.kernel_size ** 2 + int(module.bias is not None))


register_module_rule(TVConv, _tvconv_macs, component="grid_conv")
register_module_rule(FrozenTVConv, _frozen_tvconv_macs, component="grid_conv")


def module_macs(module: nn.Module, inp: Tensor, out: Tensor, elementwise: bool = True) -> int:
    """MACs of one call of a leaf ``module`` (or a TVConv) with input ``inp`` and
    output ``out`` (the table above); ``-1`` for an unknown module type."""
    return leaf_flops(module, inp, out, elementwise)


def _input_shape(input_shape: Sequence[int]) -> tuple[int, ...]:
    if isinstance(input_shape, torch.Size):
        input_shape = tuple(input_shape)
    if not isinstance(input_shape, Sequence) or not all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in input_shape):
        raise TypeError(f"'input_shape' must be a sequence of positive ints, got {input_shape!r}")
    if len(input_shape) == 3:
        return (1, *input_shape)
    if len(input_shape) != 4:
        raise ValueError(f"'input_shape' must be (C, H, W) or (B, C, H, W), got {input_shape}")
    return tuple(input_shape)


def count_macs(model: nn.Module, input_shape: Sequence[int], *, elementwise: bool = True,
               include_generator: bool = False) -> int:
    """Count the MACs of one inference forward pass of ``model``.

    Args:
        model: any ``nn.Module`` taking one image batch.
        input_shape: ``(C, H, W)`` (batch 1) or ``(B, C, H, W)``; counts are for
            the whole batch.
        elementwise: include the per-element costs of norms, activations and
            pooling (the paper's/ptflops convention, default) or count only
            conv/linear/TVConv multiply-accumulates.
        include_generator: add the one-off cost of generating every TVConv's
            kernels (what an uncached forward would pay).

    Returns:
        The MAC count (an ``int``). See the module docstring for the rules.

    The model runs once in eval mode under ``torch.no_grad()`` on zeros
    (building the TVConv caches) and is put back in its previous mode; the
    hooks are those of :func:`pyg_hgconv.profile.count_flops`, which prices
    every leaf module with :func:`module_macs`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module, got {type(model).__name__}")
    shape = _input_shape(input_shape)
    reference = next(iter(model.parameters()), None)
    options = {} if reference is None else {"dtype": reference.dtype,
                                            "device": reference.device}
    return count_flops(model, torch.zeros(shape, **options), elementwise=elementwise,
                       include_generator=include_generator).total


def count_params(model: nn.Module, cached: bool = False) -> int:
    """Number of parameters of ``model``.

    Args:
        model: any ``nn.Module``.
        cached: ``False`` (default) counts every parameter (the training-time
            size). ``True`` counts what inference needs after caching: every
            TVConv contributes its cached kernels ``C * k * k * h * w``
            (+ ``C * h * w`` for a bias) at its native size instead of its
            affinity maps and weight-generating block(s).

    The kernels of a :class:`~tvconv.FrozenTVConv` (buffers) count as
    parameters in both modes, so ``count_params(strip_generators(m)) ==
    count_params(m, cached=True)``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module, got {type(model).__name__}")
    frozen = sum(m.weight.numel() + (0 if m.bias is None else m.bias.numel())
                 for m in model.modules() if isinstance(m, FrozenTVConv))
    if not cached:
        return frozen + sum(p.numel() for p in model.parameters())
    layers = [m for m in model.modules() if isinstance(m, TVConv)]
    generator_ids = {id(p) for layer in layers for p in layer.parameters()}
    kept = sum(p.numel() for p in model.parameters() if id(p) not in generator_ids)
    cached_sizes = sum(layer.channels * (layer.kernel_size ** 2 + int(layer.has_bias))
                       * layer.size[0] * layer.size[1] for layer in layers)
    return frozen + kept + cached_sizes
