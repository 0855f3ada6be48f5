r"""Applying per-pixel depthwise kernels by shifted slices (TVConv, Eq. 2).

The translation-variant depthwise convolution of the TVConv paper computes

.. math::
    \mathbf{O}_{i,j} = \mathbf{W}_{i,j} \otimes \mathbf{P}_{i,j}, \qquad (2)

i.e. output pixel :math:`(i, j)` of channel :math:`c` is the dot product of
the :math:`k \times k` patch :math:`\mathbf{P}_{i,j}` of channel :math:`c`
(zero padded by :math:`p = (k - 1) / 2`) with its *own* kernel
:math:`\mathbf{W}_{i,j}`. Writing the kernel taps as :math:`t = (a, b)`,
:math:`0 \le a, b < k`, row-major,

.. math::
    O[n, c, i, j] = \sum_{t} W[c, t, i, j] \; X_{\mathrm{pad}}[n, c,
    s i + a, s j + b]

so the whole layer is :math:`k^2` multiply-accumulates of *shifted slices*
of the input with the matching weight planes -- no ``unfold`` copy of the
input (which is :math:`k^2` times its size).

Conventions (identical to ``nn.Conv2d(c, c, k, stride=s, padding=k // 2,
groups=c)`` for odd :math:`k`):

* weight layout ``(C, k*k, H_out, W_out)``, taps row-major; bias ``(C, H_out, W_out)``;
* zero padding :math:`p = (k - 1) // 2` on every side;
* output size :math:`\lfloor (n + 2p - k) / s \rfloor + 1 = \lceil n / s \rceil`.

Two implementations of the same function live here:

* :func:`translation_variant_conv` -- the differentiable reference path used
  for training (``k*k`` out-of-place ``addcmul`` on slices of the padded input);
* :func:`translation_variant_conv_cached` -- the inference fast path for fixed
  (cached) weights stored tap-major channels-last ``(k*k, H_out, W_out, C)``:
  it never pads, accumulates in place with ``addcmul_`` on contiguous
  channel-last rows, and walks the batch in chunks that stay in the L2 cache.
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import check_image_batch, check_int

#: Bytes of input + output per batch chunk of the fast path (L2-sized).
CHUNK_BYTES = 1 << 20


def conv_output_size(in_size: tuple[int, int], kernel_size: int,
                     stride: int) -> tuple[int, int]:
    """Output ``(H_out, W_out)`` of a conv with padding ``(k - 1) // 2``.

    For odd ``k`` this is ``ceil(n / stride)`` per axis, the size that
    ``nn.Conv2d(stride=stride, padding=k // 2)`` produces.
    """
    pad = (kernel_size - 1) // 2
    return tuple((n + 2 * pad - kernel_size) // stride + 1 for n in in_size)  # type: ignore


class Tap(NamedTuple):
    """One kernel tap restricted to the outputs whose input pixel is inside the image.

    ``index`` is the row-major tap index ``a * k + b``; ``out_rows``/``out_cols``
    select the outputs that tap reaches, ``in_rows``/``in_cols`` the matching
    (strided) input pixels. Outputs outside the slices read the zero padding.
    """

    index: int
    out_rows: slice
    out_cols: slice
    in_rows: slice
    in_cols: slice


def _tap_axis(n_in: int, n_out: int, offset: int, stride: int) -> tuple[slice, slice] | None:
    # output o reads input stride * o + offset; keep the o with 0 <= that < n_in
    lo = max(0, -(offset // stride))
    hi = min(n_out - 1, (n_in - 1 - offset) // stride)
    if hi < lo:
        return None
    start = stride * lo + offset
    return slice(lo, hi + 1), slice(start, start + stride * (hi - lo) + 1, stride)


@functools.lru_cache(maxsize=512)
def tap_geometry(in_size: tuple[int, int], kernel_size: int, stride: int) -> tuple[Tap, ...]:
    """The taps of a ``k x k`` kernel as slice pairs, centre tap first.

    The centre tap reaches every output (``stride * o <= n_in - 1``), so the
    fast path initialises the output with it; taps that reach no output
    (e.g. the off-centre taps of a 1x1 image) are dropped.
    """
    pad = (kernel_size - 1) // 2
    out_h, out_w = conv_output_size(in_size, kernel_size, stride)
    centre = (kernel_size * kernel_size) // 2
    taps = []
    for index in range(kernel_size * kernel_size):
        a, b = divmod(index, kernel_size)
        rows = _tap_axis(in_size[0], out_h, a - pad, stride)
        cols = _tap_axis(in_size[1], out_w, b - pad, stride)
        if rows is None or cols is None:
            continue
        taps.append(Tap(index, rows[0], cols[0], rows[1], cols[1]))
    taps.sort(key=lambda tap: tap.index != centre)
    return tuple(taps)


def _check_weight(x: Tensor, weight: Tensor, bias: Tensor | None, stride: int,
                  tap_major: bool) -> tuple[int, tuple[int, int]]:
    check_image_batch(x, "x")
    check_int(stride, "stride", minimum=1)
    if not isinstance(weight, Tensor) or weight.dim() != 4:
        raise ValueError(f"'weight' must be a 4-dim tensor, got "
                         f"{tuple(getattr(weight, 'shape', ())) or type(weight).__name__}")
    taps = weight.shape[0] if tap_major else weight.shape[1]
    kernel_size = math.isqrt(taps)
    if kernel_size * kernel_size != taps or kernel_size % 2 == 0:
        raise ValueError(f"'weight' must hold k*k taps for an odd k, got {taps} taps")
    out_size = conv_output_size((x.shape[2], x.shape[3]), kernel_size, stride)
    channels = weight.shape[3] if tap_major else weight.shape[0]
    w_size = tuple(weight.shape[1:3] if tap_major else weight.shape[2:4])
    if channels != x.shape[1] or w_size != out_size:
        layout = "(k*k, H_out, W_out, C)" if tap_major else "(C, k*k, H_out, W_out)"
        raise ValueError(f"'weight' of shape {tuple(weight.shape)} ({layout}) does not fit an "
                         f"input of shape {tuple(x.shape)} with stride {stride}: expected "
                         f"C={x.shape[1]} and (H_out, W_out)={out_size}")
    if bias is not None:
        expected = (*out_size, channels) if tap_major else (channels, *out_size)
        if tuple(bias.shape) != expected:
            raise ValueError(f"'bias' must have shape {expected}, got {tuple(bias.shape)}")
    return kernel_size, out_size


def translation_variant_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, *,
                             stride: int = 1) -> Tensor:
    r"""Differentiable per-pixel depthwise convolution, Eq. (2).

    Args:
        x: input ``[B, C, H, W]``.
        weight: per-pixel kernels ``[C, k*k, H_out, W_out]`` (taps row-major).
        bias: optional per-pixel bias ``[C, H_out, W_out]``.
        stride: the stride ``s``; ``(H_out, W_out) = (ceil(H / s), ceil(W / s))``.

    Returns:
        ``[B, C, H_out, W_out]``. Gradients flow to ``x``, ``weight`` and ``bias``.
    """
    kernel_size, (out_h, out_w) = _check_weight(x, weight, bias, stride, tap_major=False)
    pad = (kernel_size - 1) // 2
    padded = F.pad(x, (pad, pad, pad, pad)) if pad else x
    out = bias
    for index in range(kernel_size * kernel_size):
        a, b = divmod(index, kernel_size)
        patch = padded[:, :, a:a + stride * (out_h - 1) + 1:stride,
                       b:b + stride * (out_w - 1) + 1:stride]
        plane = weight[:, index]
        out = patch * plane if out is None else torch.addcmul(out, patch, plane)
    return out


def to_tap_major(weight: Tensor) -> Tensor:
    """``(C, k*k, H, W)`` kernels -> contiguous tap-major channels-last ``(k*k, H, W, C)``."""
    return weight.permute(1, 2, 3, 0).contiguous()


def from_tap_major(weight: Tensor) -> Tensor:
    """``(k*k, H, W, C)`` -> a ``(C, k*k, H, W)`` view (no copy)."""
    return weight.permute(3, 0, 1, 2)


def batch_chunk(x: Tensor, out_size: tuple[int, int]) -> int:
    """Images per chunk so that a chunk's input and output fit in ~``CHUNK_BYTES``."""
    per_image = x.shape[1] * (x.shape[2] * x.shape[3] + out_size[0] * out_size[1])
    return max(1, CHUNK_BYTES // max(1, per_image * x.element_size()))


class StridedView(NamedTuple):
    """``(size, stride, storage offset)`` of a view of a contiguous ``[H, W, C]`` plane."""

    size: tuple[int, int, int]
    stride: tuple[int, int, int]
    offset: int


def _plane_view(rows: slice, cols: slice, width: int, channels: int) -> StridedView:
    step_r, step_c = rows.step or 1, cols.step or 1
    size = (len(range(rows.start, rows.stop, step_r)), len(range(cols.start, cols.stop, step_c)),
            channels)
    stride = (step_r * width * channels, step_c * channels, 1)
    return StridedView(size, stride, (rows.start * width + cols.start) * channels)


@functools.lru_cache(maxsize=512)
def channels_last_tap_views(in_size: tuple[int, int], kernel_size: int, stride: int,
                            channels: int) -> tuple[tuple[int, StridedView, StridedView], ...]:
    """Per tap of :func:`tap_geometry`: ``(index, input view, output view)`` as strided
    views of contiguous channels-last ``[H, W, C]`` / ``[H_out, W_out, C]`` planes."""
    out_w = conv_output_size(in_size, kernel_size, stride)[1]
    return tuple((tap.index, _plane_view(tap.in_rows, tap.in_cols, in_size[1], channels),
                  _plane_view(tap.out_rows, tap.out_cols, out_w, channels))
                 for tap in tap_geometry(in_size, kernel_size, stride))


def _view(t: Tensor, view: StridedView) -> Tensor:
    # view of every image of a contiguous channels-last batch t [n, H, W, C]
    return t.as_strided((t.shape[0], *view.size), (t.stride(0), *view.stride),
                        t.storage_offset() + view.offset)


def tap_planes(weight: Tensor, in_size: tuple[int, int], stride: int) -> list[Tensor]:
    """The weight plane of each tap of :func:`channels_last_tap_views`, restricted to the
    outputs it reaches (views of the tap-major ``[k*k, H_out, W_out, C]`` weight)."""
    kernel_size = math.isqrt(weight.shape[0])
    views = channels_last_tap_views(tuple(in_size), kernel_size, stride, weight.shape[3])
    return [_view(weight[index:index + 1], out_view)[0] for index, _, out_view in views]


@torch.no_grad()
def translation_variant_conv_cached(x: Tensor, weight: Tensor, bias: Tensor | None = None, *,
                                    stride: int = 1, planes: list[Tensor] | None = None
                                    ) -> Tensor:
    r"""Inference fast path of :func:`translation_variant_conv` for fixed kernels.

    Args:
        x: input ``[B, C, H, W]`` in any memory format.
        weight: kernels in tap-major channels-last layout ``[k*k, H_out, W_out, C]``
            (:func:`to_tap_major` of the ``(C, k*k, H_out, W_out)`` kernels).
        bias: optional per-pixel bias ``[H_out, W_out, C]``.
        stride: the stride ``s``.
        planes: optional precomputed :func:`tap_planes` of ``weight`` for this
            input size (saves a few microseconds per call).

    Returns:
        ``[B, C, H_out, W_out]`` in the memory format of ``x`` (channels-last
        input gives a channels-last output). No autograd graph is recorded.

    The output of a chunk of images is initialised with the centre tap (which
    reaches every output pixel) and the other taps are accumulated in place,
    each on the rectangle of outputs whose input pixel lies inside the image,
    so the zero padding is never materialised. All operands are channels-last,
    so every ``addcmul_`` runs over contiguous rows of ``W_out * C`` values,
    and a chunk's input and output stay in the L2 cache across the taps.
    """
    kernel_size, (out_h, out_w) = _check_weight(x, weight, bias, stride, tap_major=True)
    weight = weight.contiguous()
    batch, channels, height, width = x.shape
    views = channels_last_tap_views((height, width), kernel_size, stride, channels)
    if planes is None:
        planes = tap_planes(weight, (height, width), stride)
    x_last = x.permute(0, 2, 3, 1)
    channels_last = x_last.is_contiguous()
    chunk = batch_chunk(x, (out_h, out_w))
    options = {"dtype": x.dtype, "device": x.device}
    if channels_last:  # accumulate straight into the output
        out_last = torch.empty((batch, out_h, out_w, channels), **options)
        out = out_last.permute(0, 3, 1, 2)
    else:  # accumulate in a channels-last scratch chunk, then transpose it out
        out_last = torch.empty((min(chunk, batch), out_h, out_w, channels), **options)
        out = torch.empty((batch, channels, out_h, out_w), **options)
    (_, centre_in, _), rest = views[0], tuple(zip(views[1:], planes[1:], strict=True))
    for start in range(0, batch, chunk):
        stop = min(start + chunk, batch)
        if channels_last:
            xs, acc = x_last[start:stop], out_last[start:stop]
        else:
            xs, acc = x_last[start:stop].contiguous(), out_last[:stop - start]
        if bias is None:
            torch.mul(_view(xs, centre_in), planes[0], out=acc)
        else:
            torch.addcmul(bias, _view(xs, centre_in), planes[0], out=acc)
        for (_, in_view, out_view), plane in rest:
            _view(acc, out_view).addcmul_(_view(xs, in_view), plane)
        if not channels_last:
            out[start:stop].copy_(acc.permute(0, 3, 1, 2))
    return out
