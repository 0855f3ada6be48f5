r"""The fused CPU kernel of the per-pixel depthwise convolution (TVConv, Eq. 2) as a custom op.

.. math::
    O[n, c, i, j] = \beta[c, i, j] + \sum_{a, b} W[c, a k + b, i, j] \;
    X_{\mathrm{pad}}[n, c, s i + a, s j + b] \qquad (2)

``tvconv/csrc/per_pixel_conv.cpp`` computes Eq. (2) in one pass over the input
per output row, threaded over batch and rows and vectorised over channels
(channels-last inputs) or width (contiguous inputs), for stride ``s >= 1``,
float32, float64 and bfloat16, with and without the per-pixel bias. bfloat16 is
widened to float32 exactly (by the channels-last kernel as it reads; for the
flattened planes task by task into float32 buffers), the sum of Eq. (2) is
accumulated in float32 and rounded to nearest even once per output, so the result
equals the float32 kernel's on the same inputs, rounded; its backward likewise
sums each gradient in float32 as it reads bfloat16 and rounds it once. ``make``
builds it (``tools/build_kernels.py``) into ``tvconv/_lib``; it is registered as
the PyTorch custom ops ``tvconv::per_pixel_conv`` / ``tvconv::per_pixel_conv_backward``,
and this module adds their fake (meta) kernels for ``torch.compile`` and
``torch.export`` and the autograd formula (gradients of the input, the kernels
and the bias; no double backward).

:func:`per_pixel_conv` is the one entry point of the layers: the fused op where
it applies (the library is loaded, CPU tensors, float32/float64/bfloat16), otherwise the
pure-PyTorch :func:`tvconv.apply.translation_variant_conv`, which stays the
reference the tests compare against. :data:`BACKEND` says which is in use
(``"fused"`` or ``"pytorch"``) and :data:`FALLBACK_REASON` why the fused one is
not; setting ``TVCONV_KERNELS=0`` in the environment forces the fallback.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from pyg_hgconv.utils.kernels import load_kernel_library, reads_channels_last

from .apply import _check_weight, translation_variant_conv

LIBRARY = Path(__file__).resolve().parent / "_lib" / "tvconv_kernels.so"
FUSED_DTYPES = (torch.float32, torch.float64, torch.bfloat16)
#: the backward of contiguous inputs whose output is narrower than this runs
#: channels-last (mirrors ``kMinContiguousWidth`` of the C++ source)
MIN_CONTIGUOUS_WIDTH = 32
#: contiguous inputs at stride 2 run forward on their flattened phase planes where their
#: rows span at least these bytes or have an even width, else channels-last
#: (``kFlatMinStridedRowBytes``)
FLAT_MIN_STRIDED_ROW_BYTES = 128


FALLBACK_REASON: str | None = load_kernel_library(LIBRARY, "TVCONV_KERNELS")
#: ``"fused"`` when the C++ kernels are loaded, else ``"pytorch"``.
BACKEND: str = "pytorch" if FALLBACK_REASON else "fused"


def backend_info() -> dict[str, str | None]:
    """What the benchmarks record: the backend in use and, for the fallback, why."""
    return {"tvconv_backend": BACKEND, "tvconv_fallback_reason": FALLBACK_REASON}


def kernel_runs_channels_last(x: Tensor, stride: int) -> bool:
    """Whether the fused forward computes ``x`` channels-last (reading tap-major
    ``(k*k, H_out, W_out, C)`` kernels without a copy): channels-last inputs, and
    contiguous ones at a stride above 2, or at stride 2 with input rows of odd width
    narrower than :data:`FLAT_MIN_STRIDED_ROW_BYTES`; the other contiguous inputs run
    on their flattened (phase) planes, reading ``[C, k*k, H_out, W_out]`` kernels
    (bfloat16 ones widened to float32 task by task)."""
    if reads_channels_last(x):
        return True
    width = x.shape[-1]
    return stride > 2 or (stride == 2 and width % 2 == 1
                          and width * x.element_size() < FLAT_MIN_STRIDED_ROW_BYTES)


def backward_runs_channels_last(x: Tensor, out_width: int) -> bool:
    """Whether the fused backward computes ``x`` channels-last: channels-last inputs,
    and contiguous ones whose output is narrower than :data:`MIN_CONTIGUOUS_WIDTH`
    (it then writes the kernels' gradient in their layout where their channels are
    innermost, else tap-major)."""
    return reads_channels_last(x) or out_width < MIN_CONTIGUOUS_WIDTH


def has_channels_innermost(weight: Tensor) -> bool:
    """Whether the channels-last kernel reads ``weight`` ``[C, k*k, H_out, W_out]`` in
    place (and writes its gradient in the same layout): channels innermost in memory
    (stride 1) in dense, non-overlapping storage, e.g. tap-major ``(k*k, H_out, W_out, C)``
    or pixel-major ``(H_out, W_out, k*k, C)``; mirrors ``has_channels_innermost`` of the
    C++ source."""
    return weight.stride(0) == 1 and is_dense(weight)


def is_dense(t: Tensor) -> bool:
    """Whether ``t``'s elements fill its storage span exactly once, in some order of
    its axes (ATen's ``is_non_overlapping_and_dense``): sorted by stride, the
    axes of size above one have strides 1, then the product of the sizes before."""
    axes = sorted((t.stride(d), t.shape[d]) for d in range(t.dim()) if t.shape[d] != 1)
    expected = 1
    for stride, size in axes:
        if stride != expected:
            return False
        expected *= size
    return True


if BACKEND == "fused":
    @torch.library.register_fake("tvconv::per_pixel_conv")
    def _per_pixel_conv_fake(x, weight, bias, stride):
        out_h, out_w = weight.shape[2], weight.shape[3]
        out = x.new_empty((x.shape[0], x.shape[1], out_h, out_w))
        if x.dim() == 4 and reads_channels_last(x):
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    @torch.library.register_fake("tvconv::per_pixel_conv_backward")
    def _per_pixel_conv_backward_fake(grad, x, weight, stride, input_grad, weight_grad):
        # the strides of the C++ results: the input gradient in the input's memory
        # format, the kernel gradient tap-major where the kernel runs channels-last
        gx = torch.empty_like(x) if input_grad else x.new_empty((0,))
        gw = x.new_empty((0,))
        if weight_grad:
            channels, taps, out_h, out_w = weight.shape
            if not backward_runs_channels_last(x, out_w):
                gw = x.new_empty((channels, taps, out_h, out_w))
            elif has_channels_innermost(weight):  # the kernels' own layout
                gw = x.new_empty_strided(weight.shape, weight.stride())
            else:
                gw = x.new_empty((taps, out_h, out_w, channels)).permute(3, 0, 1, 2)
        return gx, gw

    def _setup_context(ctx, inputs, output):
        x, weight, bias, stride = inputs
        ctx.stride = stride
        ctx.has_bias = bias is not None
        ctx.save_for_backward(x, weight)

    def _backward(ctx, grad):
        x, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_x = grad_w = grad_b = None
        if need_x or need_w:
            gx, gw = torch.ops.tvconv.per_pixel_conv_backward(grad, x, weight, ctx.stride,
                                                              need_x, need_w)
            grad_x = gx if need_x else None
            grad_w = gw if need_w else None
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum(0)
        return grad_x, grad_w, grad_b, None

    torch.library.register_autograd("tvconv::per_pixel_conv", _backward,
                                    setup_context=_setup_context)


def fused_applies(x: Tensor) -> bool:
    """Whether :func:`per_pixel_conv` runs the fused op on ``x``."""
    return BACKEND == "fused" and x.device.type == "cpu" and x.dtype in FUSED_DTYPES


def per_pixel_conv(x: Tensor, weight: Tensor, bias: Tensor | None = None, *,
                   stride: int = 1) -> Tensor:
    r"""Per-pixel depthwise convolution, Eq. (2): the fused op where it applies.

    Args:
        x: input ``[B, C, H, W]`` (contiguous or channels-last).
        weight: per-pixel kernels ``[C, k*k, H_out, W_out]``, taps row-major (any
            strides; for channels-last inputs kernels whose channels are innermost
            in memory, :func:`has_channels_innermost`, are read without a copy).
        bias: optional per-pixel bias ``[C, H_out, W_out]``.
        stride: the stride ``s``; ``(H_out, W_out) = (ceil(H / s), ceil(W / s))``.

    Returns:
        ``[B, C, H_out, W_out]``, channels-last for a channels-last input.
        Differentiable in ``x``, ``weight`` and ``bias`` on both paths.

    Raises:
        TypeError: ``x`` is not a floating-point tensor, ``stride`` not an int.
        ValueError: ``x`` is not ``[B, C, H, W]`` with ``H, W >= 1``, ``stride < 1``,
            or ``weight``/``bias`` do not fit ``x``.
    """
    _check_weight(x, weight, bias, stride, tap_major=False)  # names a bad x or stride too
    if not fused_applies(x) or weight.dtype != x.dtype or (
            bias is not None and bias.dtype != x.dtype):
        return translation_variant_conv(x, weight, bias, stride=stride)
    return torch.ops.tvconv.per_pixel_conv(x, weight, bias, stride)
