"""The grid convolutions the benchmarks compare the graph convs with, registered
in the conv registry (:mod:`pyg_hgconv.nn.conv.registry`) as ``kind='grid'``.

Importing this module registers them once:

=============  ===============================================================
name           layer
=============  ===============================================================
``conv2d``     dense 3x3 :class:`~torch.nn.Conv2d` (the conv HG-Conv replaces)
``depthwise``  depthwise 3x3 :class:`~torch.nn.Conv2d` (``groups=C``)
``tvconv``     :class:`tvconv.TVConv`, cached at inference (needs ``size=(H, W)``)
=============  ===============================================================

Every factory takes ``size=(H, W)`` (the output map size; only TVConv uses it).
Their FLOP rules are the leaf rules of :mod:`pyg_hgconv.profile.modules`
(TVConv's registered by :mod:`tvconv.macs`).
"""
from __future__ import annotations

from torch import nn

from pyg_hgconv.nn.conv.registry import CONVS, GRID, ConvSpec, register_conv
from tvconv import TVConv

__all__ = ["GRID_CONVS"]


def _conv2d(in_channels: int, out_channels: int, size: tuple[int, int] | None = None,
            bias: bool = True, **kwargs) -> nn.Module:
    return nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=bias, **kwargs)


def _depthwise(in_channels: int, out_channels: int, size: tuple[int, int] | None = None,
               bias: bool = True, **kwargs) -> nn.Module:
    if in_channels != out_channels:
        raise ValueError("'depthwise' needs in_channels == out_channels "
                         f"(got {in_channels} and {out_channels})")
    return nn.Conv2d(in_channels, in_channels, 3, padding=1, groups=in_channels, bias=bias,
                     **kwargs)


def _tvconv(in_channels: int, out_channels: int, size: tuple[int, int] | None = None,
            **kwargs) -> nn.Module:
    if in_channels != out_channels:
        raise ValueError("'tvconv' is depthwise: it needs in_channels == out_channels "
                         f"(got {in_channels} and {out_channels})")
    if size is None:
        raise ValueError("'tvconv' needs the output size: pass size=(H, W)")
    return TVConv(in_channels, size=size, **kwargs)


_SPECS = (
    ConvSpec("conv2d", GRID, _conv2d, "dense 3x3 nn.Conv2d", layer_type=nn.Conv2d,
             settings=lambda layer: "3x3, C x C dense"),
    ConvSpec("depthwise", GRID, _depthwise, "depthwise 3x3 nn.Conv2d (groups=C)",
             layer_type=nn.Conv2d, settings=lambda layer: "3x3, one filter per channel"),
    ConvSpec("tvconv", GRID, _tvconv,
             "TVConv: translation-variant depthwise 3x3, cached at inference", layer_type=TVConv,
             settings=lambda layer: ("3x3 per pixel and channel, generated from affinity maps, "
                                     "cached")),
)
for _spec in _SPECS:
    if _spec.name not in CONVS:
        register_conv(_spec)

#: the registered grid convs, in table order
GRID_CONVS: tuple[str, ...] = tuple(spec.name for spec in _SPECS)
