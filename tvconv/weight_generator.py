r"""The weight-generating block :math:`\mathcal{B}` of TVConv (Eq. 4, Fig. 3).

.. math::
    \mathbf{W} = \mathcal{B}(\mathbf{A}), \qquad (4)

with affinity maps :math:`\mathbf{A} \in \mathbb{R}^{c_A \times h \times w}`.
:math:`\mathcal{B}` is ``hidden_layers + 1`` hidden blocks
``[3x3 conv (no bias) -> LayerNorm over (C_hidden, h, w) -> ReLU]`` (the first
maps :math:`c_A \to` ``hidden_channels``, the others keep ``hidden_channels``)
followed by an output 3x3 conv (no bias) to ``out_channels``. The count
``hidden_layers + 1`` is the official code's (``TVConv_inter_layers = 3``
builds 4 hidden blocks); with the defaults MobileNetV2 x0.1 has the 16.4 M
training-time parameters of the official code (``tvconv.count_params``,
checked in the tests).

The LayerNorm runs over the whole ``(C_hidden, h, w)`` block with
*per-pixel* affine maps (``nn.LayerNorm([C, h, w])``), as in the official
code: the "batch" of the affinity maps is 1 (Sec. 3.2).

The 3x3 convs pad with ``padding_mode`` (default ``"replicate"``). With
replicate padding a spatially constant :math:`\mathbf{A}` (and the
initial, constant LayerNorm affine maps) gives the same kernel at *every*
pixel, borders included, so TVConv starts exactly as a depthwise conv
(Sec. 3.3 and 4.3 of the paper). ``"zeros"`` reproduces the official code,
whose border kernels differ from the interior ones even for a constant
:math:`\mathbf{A}`.

**Other sizes.** The block is built for one spatial size ``(h, w)``. Run on
maps of another size ``(h', w')`` (see :func:`resample_maps`) it resamples
its LayerNorm affine maps bilinearly (``align_corners=False``) to
``(h', w')``; the convolutions are size-agnostic. At the native size
nothing is resampled.
"""
from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import check_choice, check_int, check_pair

PADDING_MODES = ("replicate", "zeros")


def replicate_pad(maps: Tensor, pad: int = 1) -> Tensor:
    """Pad ``[..., h, w]`` by repeating the border ``pad`` times on every side.

    Same values as ``F.pad(maps, (pad,) * 4, mode="replicate")``, built from
    slices and ``torch.cat`` so that its backward is plain slicing (inductor
    miscompiles ``replication_pad2d_backward`` for channels-last gradients).
    """
    rows = [maps[..., :1, :]] * pad + [maps] + [maps[..., -1:, :]] * pad
    maps = torch.cat(rows, dim=-2)
    cols = [maps[..., :1]] * pad + [maps] + [maps[..., -1:]] * pad
    return torch.cat(cols, dim=-1)


def resample_maps(maps: Tensor, size: tuple[int, int]) -> Tensor:
    """Bilinearly resample ``[..., h, w]`` maps to ``size`` (``align_corners=False``).

    Returns ``maps`` itself when it already has that size, so the native-size
    path is bit-identical to the plain one.
    """
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    lead = maps.shape[:-2]
    flat = maps.reshape(1, -1, *maps.shape[-2:])
    out = F.interpolate(flat, size=tuple(size), mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size)


class WeightGenerator(nn.Module):
    r"""Weight-generating block :math:`\mathcal{B}` (Eq. 4), see the module docstring.

    Args:
        in_channels (int): channels :math:`c_A` of the affinity maps.
        hidden_channels (int): width of the hidden blocks.
        out_channels (int): generated channels (:math:`k^2 c` for kernels,
            :math:`c` for a bias).
        size (int or tuple): native spatial size ``(h, w)`` of the maps.
        hidden_layers (int): hidden blocks *after the first*; the block has
            ``hidden_layers + 1`` hidden blocks (official convention).
        padding_mode (str): padding of the 3x3 convs, ``"replicate"`` (default)
            or ``"zeros"`` (official code).
        eps (float): LayerNorm epsilon.

    Shapes:
        - **input:** maps ``[N, in_channels, h', w']`` (usually ``N = 1``)
        - **output:** ``[N, out_channels, h', w']``
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 size: int | tuple[int, int], hidden_layers: int = 3,
                 padding_mode: str = "replicate", eps: float = 1e-5):
        super().__init__()
        self.in_channels = check_int(in_channels, "in_channels", minimum=1)
        self.hidden_channels = check_int(hidden_channels, "hidden_channels", minimum=1)
        self.out_channels = check_int(out_channels, "out_channels", minimum=1)
        self.size = check_pair(size, "size")
        self.hidden_layers = check_int(hidden_layers, "hidden_layers", minimum=0)
        self.padding_mode = check_choice(padding_mode, "padding_mode", PADDING_MODES)
        self.eps = eps
        widths = [self.in_channels] + [self.hidden_channels] * (self.hidden_layers + 1)
        conv_padding = 1 if padding_mode == "zeros" else 0  # replicate: see _pad
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, padding=conv_padding, bias=False)
            for c_in, c_out in itertools.pairwise(widths))
        self.norms = nn.ModuleList(
            nn.LayerNorm([self.hidden_channels, *self.size], eps=eps)
            for _ in range(self.hidden_layers + 1))
        self.output = nn.Conv2d(self.hidden_channels, self.out_channels, 3,
                                padding=conv_padding, bias=False)

    def reset_parameters(self) -> None:
        for module in (*self.convs, *self.norms, self.output):
            module.reset_parameters()

    def _pad(self, maps: Tensor) -> Tensor:
        return replicate_pad(maps) if self.padding_mode == "replicate" else maps

    def hidden(self, maps: Tensor) -> Tensor:
        """The hidden blocks: ``[N, in_channels, h', w']`` -> ``[N, hidden_channels, h', w']``."""
        size = tuple(maps.shape[-2:])
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = conv(self._pad(maps))
            weight, bias = resample_maps(norm.weight, size), resample_maps(norm.bias, size)
            maps = F.relu(F.layer_norm(h, h.shape[1:], weight, bias, self.eps))
        return maps

    def forward(self, maps: Tensor) -> Tensor:
        return self.output(self._pad(self.hidden(maps)))

    def forward_channels_innermost(self, maps: Tensor, channels: int) -> Tensor:
        r"""The same values as ``forward(maps).view(N, channels, taps, h', w')``
        (``taps = out_channels / channels``), stored pixel-major with the channels
        innermost, ``(N, h', w', taps, channels)`` in memory.

        The output conv runs channels-last with its output channels reordered
        from ``(channel, tap)`` to ``(tap, channel)``; the parameters stay as they
        are. This is the layout the fused channels-last kernel of TVConv reads in
        place (and writes its kernel gradient in), so training on channels-last
        inputs moves no per-pixel kernel through a transposing copy.

        Shapes: ``[N, in_channels, h', w']`` -> ``[N, channels, taps, h', w']``.
        """
        if self.out_channels % channels:
            raise ValueError(f"'channels' ({channels}) must divide out_channels "
                             f"({self.out_channels})")
        taps = self.out_channels // channels
        hidden = self._pad(self.hidden(maps)).contiguous(memory_format=torch.channels_last)
        w = self.output.weight
        weight = w.view(channels, taps, *w.shape[1:]).transpose(0, 1).reshape(w.shape)
        out = F.conv2d(hidden, weight, padding=self.output.padding).contiguous(
            memory_format=torch.channels_last)  # a no-op where the conv kept the format
        n, _, height, width = out.shape
        return out.view(n, taps, channels, height, width).transpose(1, 2)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, "
                f"hidden_channels={self.hidden_channels}, hidden_layers={self.hidden_layers}, "
                f"size={self.size})")
