"""The fused per-pixel kernel (custom op) against the unfold reference and the PyTorch path."""
from __future__ import annotations

import os

import pytest
import torch
from _tvconv_reference import per_pixel_case, per_pixel_shapes, unfold_reference
from hypothesis import given, settings
from hypothesis import strategies as st

from tvconv import TVConv, fused, strip_generators
from tvconv.apply import translation_variant_conv

needs_kernels = pytest.mark.skipif(fused.BACKEND != "fused",
                                   reason=f"fused kernels not in use: {fused.FALLBACK_REASON}")

shapes = per_pixel_shapes(min_batch=0, max_channels=6)


def test_library_in_use_when_built():
    # make builds the library; where it is built and not disabled it must be in use
    if fused.LIBRARY.exists() and os.environ.get("TVCONV_KERNELS", "1") != "0":
        assert fused.BACKEND == "fused", fused.FALLBACK_REASON
    assert fused.backend_info()["tvconv_backend"] == fused.BACKEND


@needs_kernels
@settings(max_examples=60, deadline=None)
@given(shapes)
def test_fused_op_equals_unfold_reference_with_gradients(case):
    x, w, b = per_pixel_case(**case)
    stride = case["stride"]
    inputs = [t.requires_grad_() for t in (x, w, b) if t is not None]
    out = torch.ops.tvconv.per_pixel_conv(x, w, b, stride)
    expected = unfold_reference(x, w, b, stride)
    torch.testing.assert_close(out, expected)
    # the output keeps the memory format of the input (where the input's is unambiguous)
    fmt = torch.contiguous_format if x.is_contiguous() else torch.channels_last
    assert out.is_contiguous(memory_format=fmt)
    if out.numel():
        grad = torch.randn_like(expected)
        got = torch.autograd.grad(out, inputs, grad)
        want = torch.autograd.grad(expected, inputs, grad)
        for g_got, g_want in zip(got, want, strict=True):
            torch.testing.assert_close(g_got, g_want)


@needs_kernels
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_fused_op_gradcheck_and_opcheck(stride, channels_last):
    x, w, b = per_pixel_case(2, 3, 6, 5, 3, stride, True, channels_last, seed=stride)
    args = (x.requires_grad_(), w.requires_grad_(), b.requires_grad_(), stride)
    assert torch.autograd.gradcheck(lambda *a: torch.ops.tvconv.per_pixel_conv(*a, stride),
                                    args[:3])
    torch.library.opcheck(torch.ops.tvconv.per_pixel_conv.default, args)


@needs_kernels
@pytest.mark.parametrize("channels_last", [False, True])
def test_float32_matches_pytorch_path(channels_last):
    x, w, b = per_pixel_case(4, 16, 13, 11, 3, 1, True, channels_last, seed=3, dtype=torch.float32)
    torch.testing.assert_close(fused.per_pixel_conv(x, w, b),
                               translation_variant_conv(x, w, b), rtol=1e-5, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize("size", [(24, 24), (12, 12), (6, 6), (7, 31), (30, 3), (9, 40),
                                  (7, 12), (13, 2), (5, 30)])
@pytest.mark.parametrize("kernel_size", [3, 5])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_contiguous_planes_run_flattened(size, kernel_size, stride):
    """Contiguous maps run on their flattened phase planes (at stride 2 where their
    rows span two vectors or have an even width; the others through the channels-last
    kernel): one shift per tap, the inputs that wrap to the next row masked. A
    non-finite input may sit just across a row's end: the reference's zero padding
    keeps it out of the outputs that do not read it, and so must the masks (the NaN
    pattern must match exactly); narrow even rows split into phases by whole vectors
    must leave no input of a later row where a phase plane ends."""
    height, width = size
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        for column, value in ((-1, float("inf")), (0, float("nan")), (1, float("inf"))):
            x, w, b = per_pixel_case(3, 5, height, width, kernel_size, stride, True, False,
                                     seed=width, dtype=dtype)
            x[:, :, :, column % width] = value  # what a wrapped read would meet
            out = torch.ops.tvconv.per_pixel_conv(x, w, b, stride)
            if dtype == torch.bfloat16:  # widened per task: the float32 result, rounded
                wide = torch.ops.tvconv.per_pixel_conv(x.float(), w.float(), b.float(), stride)
                torch.testing.assert_close(out, wide.bfloat16(), rtol=0, atol=0,
                                           equal_nan=True)
                x, w, b = x.double(), w.double(), b.double()
                out = out.double()
            expected = unfold_reference(x, w, b, stride)
            torch.testing.assert_close(out, expected, equal_nan=True,
                                       **({"rtol": 2 ** -7, "atol": 1e-2}
                                          if dtype == torch.bfloat16 else {}))
            assert out.is_contiguous()


def test_fallback_for_other_dtypes_is_the_pytorch_path():
    x, w, b = per_pixel_case(2, 3, 5, 5, 3, 2, True, False, seed=1, dtype=torch.float16)
    assert not fused.fused_applies(x)
    torch.testing.assert_close(fused.per_pixel_conv(x, w, b, stride=2),
                               translation_variant_conv(x, w, b, stride=2))


def assert_rounded_once(got: torch.Tensor, expected: torch.Tensor, scale: torch.Tensor) -> None:
    """``got`` (bfloat16) is ``expected`` (the exact sum, float64) summed in float32 and
    rounded to nearest once: within half a bfloat16 ulp (at most 2^-8 relative) plus the
    float32 accumulation error, bounded by ``scale`` (the sum of the terms' magnitudes).
    Truncation, or a second rounding, misses the bound."""
    assert got.dtype == torch.bfloat16
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isnan(got), torch.isnan(expected))
    assert torch.equal(got.double()[~finite & ~torch.isnan(expected)],
                       expected[~finite & ~torch.isnan(expected)])  # the infinities
    err = (got.double() - expected).abs()[finite]
    assert bool((err <= 2.0 ** -8 * expected.abs()[finite] + 1e-5 * scale[finite]).all()), \
        float((err / expected.abs()[finite].clamp_min(1e-30)).max())


def exact_sum_and_scale(x, w, b, stride):
    """Eq. (2) in float64 on the (bfloat16) inputs, and the sum of its terms' magnitudes."""
    wide = [None if t is None else t.double() for t in (x, w, b)]
    magnitudes = [None if t is None else t.abs() for t in wide]
    return unfold_reference(*wide, stride), unfold_reference(*magnitudes, stride)


@needs_kernels
@settings(max_examples=60, deadline=None)
@given(per_pixel_shapes(min_batch=0, max_channels=40))
def test_bfloat16_is_the_float32_sum_rounded_once(case):
    """bfloat16: its inputs widened exactly, Eq. (2) summed in float32, each output
    rounded to nearest even (the channels-last kernel, or the flattened planes)."""
    x, w, b = per_pixel_case(**case, dtype=torch.bfloat16)
    stride = case["stride"]
    assert fused.fused_applies(x)
    out = torch.ops.tvconv.per_pixel_conv(x, w, b, stride)
    fmt = torch.contiguous_format if x.is_contiguous() else torch.channels_last
    assert out.dtype == torch.bfloat16 and out.is_contiguous(memory_format=fmt)
    assert_rounded_once(out, *exact_sum_and_scale(x, w, b, stride))
    # the float32 kernel's result on the same (widened) inputs, rounded
    widened = torch.ops.tvconv.per_pixel_conv(x.float(), w.float(), None if b is None
                                              else b.float(), stride)
    assert torch.equal(out, widened.bfloat16())


@needs_kernels
@pytest.mark.parametrize("channels_last", [False, True])
def test_bfloat16_keeps_nan_and_inf_and_rounds_to_inf(channels_last):
    x, w, b = per_pixel_case(2, 37, 6, 7, 3, 1, True, channels_last, seed=5,
                             dtype=torch.bfloat16)
    x[0, 3, 2, 2] = -float("nan")
    x[1, 30, 4, 5] = float("inf")
    # channel 20: the centre tap alone, plus half an ulp of the largest bfloat16 as bias;
    # at (3, 3) of image 0 the sum is that largest value plus the half ulp: finite in
    # float32 and halfway to 2^128, so rounding to nearest even gives inf
    big = torch.finfo(torch.bfloat16).max
    x[0, 20], w[20], b[20] = 0.0, 0.0, 2.0 ** 119
    x[0, 20, 3, 3], w[20, 4] = big, 1.0
    out = torch.ops.tvconv.per_pixel_conv(x, w, b, 1)
    wide = torch.ops.tvconv.per_pixel_conv(x.float(), w.float(), b.float(), 1)
    assert float(wide[0, 20, 3, 3]) == float(big) + 2.0 ** 119  # finite, exact
    expected, scale = exact_sum_and_scale(x, w, b, 1)
    expected[0, 20, 3, 3] = float("inf")
    assert_rounded_once(out, expected, scale)
    assert torch.isnan(out[0, 3, 1:4, 1:4]).all() and torch.isinf(out[1, 30, 3:6, 4:7]).all()
    assert torch.isinf(out[0, 20, 3, 3]) and torch.isfinite(out[0, 20, 4:]).all()


@needs_kernels
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("channels_last", [False, True])
def test_bfloat16_backward_is_float32_rounded_once(stride, channels_last):
    x, w, b = per_pixel_case(3, 21, 9, 40, 3, stride, True, channels_last, seed=7,
                             dtype=torch.bfloat16)
    inputs = [t.requires_grad_() for t in (x, w, b)]
    out = torch.ops.tvconv.per_pixel_conv(x, w, b, stride)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).bfloat16()
    got = torch.autograd.grad(out, inputs, grad)
    wide = [t.detach().float().requires_grad_() for t in inputs]
    out32 = torch.ops.tvconv.per_pixel_conv(*wide, stride)
    want32 = torch.autograd.grad(out32, wide, grad.float())
    for g_got, g_want, t in zip(got, want32, inputs, strict=True):
        assert g_got.dtype == torch.bfloat16 and g_got.shape == t.shape
        assert torch.equal(g_got, g_want.bfloat16())
    # and against the float64 reference
    wide64 = [t.detach().double().requires_grad_() for t in inputs]
    want64 = torch.autograd.grad(unfold_reference(*wide64, stride), wide64, grad.double())
    for g_got, g_want in zip(got, want64, strict=True):
        torch.testing.assert_close(g_got.double(), g_want, rtol=2 ** -7, atol=1e-4)
    torch.library.opcheck(torch.ops.tvconv.per_pixel_conv.default, (*inputs, stride))


@needs_kernels
@pytest.mark.parametrize("channels_last", [False, True])
def test_bfloat16_layer_runs_the_fused_op(channels_last):
    torch.manual_seed(2)
    layer = TVConv(24, size=(6, 5), hidden_channels=8, hidden_layers=1, bias=True)
    with torch.no_grad():
        layer.affinity_maps.normal_()
    layer = layer.bfloat16()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 24, 6, 5).bfloat16().contiguous(memory_format=fmt).requires_grad_()
    out = layer(x)  # training: generated channels-innermost, through the fused op
    weight, bias = layer.generate()
    expected = unfold_reference(x.double(), weight.double(), bias.double(), 1)
    torch.testing.assert_close(out.double(), expected, rtol=2 ** -7, atol=1e-3)
    out.float().square().sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)
    layer.eval()
    with torch.no_grad():
        cached = layer(x.detach())
        torch.testing.assert_close(cached.double(), expected, rtol=2 ** -7, atol=1e-3)
        frozen = strip_generators(layer)(x.detach())
    assert torch.equal(frozen, cached) and cached.dtype == torch.bfloat16


def test_bad_input_is_named():
    x = torch.randn(1, 3, 8, 8)
    with pytest.raises(ValueError, match="'weight'"):
        fused.per_pixel_conv(x, torch.randn(3, 9, 7, 8))
    with pytest.raises(ValueError, match="'stride'"):
        fused.per_pixel_conv(x, torch.randn(3, 9, 8, 8), stride=0)
    with pytest.raises(ValueError, match="'x'"):
        fused.per_pixel_conv(x[0], torch.randn(3, 9, 8, 8))
    with pytest.raises(TypeError, match="'x'"):
        fused.per_pixel_conv(x.long(), torch.randn(3, 9, 8, 8))


@needs_kernels
@pytest.mark.parametrize("bias", [False, True])
def test_layer_trains_and_caches_through_the_fused_op(bias):
    torch.manual_seed(0)
    layer = TVConv(4, stride=2, size=(5, 4), hidden_channels=8, hidden_layers=1,
                   bias=bias).double()
    with torch.no_grad():  # non-constant kernels
        layer.affinity_maps.normal_()
    x = torch.randn(2, 4, 10, 8, dtype=torch.float64, requires_grad=True)
    out = layer(x)
    weight, b = layer.generate()
    torch.testing.assert_close(out, unfold_reference(x, weight, b, 2))
    # gradients reach the generator through the fused backward
    out.square().sum().backward()
    grads = {name: p.grad.clone() for name, p in layer.named_parameters()}
    layer.zero_grad()
    unfold_reference(x, *layer.generate(), 2).square().sum().backward()
    for name, p in layer.named_parameters():
        torch.testing.assert_close(grads[name], p.grad)
    layer.eval()
    for fmt in (torch.contiguous_format, torch.channels_last):
        xe = x.detach().contiguous(memory_format=fmt)
        with torch.no_grad():
            torch.testing.assert_close(layer(xe), unfold_reference(xe, weight, b, 2))
            torch.testing.assert_close(strip_generators(layer)(xe),
                                       unfold_reference(xe, weight, b, 2))


@needs_kernels
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compile_and_export_keep_the_fused_op(dtype):
    torch.manual_seed(0)
    layer = TVConv(4, size=(6, 6), hidden_channels=8, hidden_layers=1).eval().to(dtype)
    x = torch.randn(2, 4, 6, 6).to(dtype)
    with torch.no_grad():
        expected = layer(x)
        # the layer breaks the graph once to refresh its cache; the frozen one does not
        torch.testing.assert_close(torch.compile(layer, backend="eager")(x), expected)
        frozen = torch.compile(strip_generators(layer), backend="eager", fullgraph=True)
        torch.testing.assert_close(frozen(x), expected)
    exported = torch.export.export(strip_generators(layer), (x,))
    targets = {str(node.target) for node in exported.graph.nodes}
    assert "tvconv.per_pixel_conv.default" in targets
    torch.testing.assert_close(exported.module()(x), expected)


#: memory orders of per-pixel kernels [C, k*k, H_out, W_out]: axis order in memory, outer first
KERNEL_LAYOUTS = {"standard": (0, 1, 2, 3), "tap-major": (1, 2, 3, 0),
                  "pixel-major": (2, 3, 1, 0), "channel-tap-interleaved": (2, 3, 0, 1)}


def in_layout(w: torch.Tensor, order: tuple[int, ...]) -> torch.Tensor:
    """``w`` (same values) stored with its axes in memory order ``order``."""
    inverse = [order.index(d) for d in range(w.dim())]
    return w.permute(order).contiguous().permute(inverse)


@needs_kernels
@settings(max_examples=80, deadline=None)
@given(per_pixel_shapes(min_batch=0, max_channels=40),
       st.one_of(st.integers(1, 9), st.integers(30, 70)),
       st.sampled_from(list(KERNEL_LAYOUTS)), st.sampled_from([(True, True), (True, False),
                                                             (False, True)]))
def test_bfloat16_backward_sums_in_float32_wherever_it_runs(case, width, layout, wanted):
    """Every backward path (channels-last inputs; contiguous ones with outputs narrower
    or wider than the contiguous kernels take; every kernel layout; either gradient
    alone) sums bfloat16 in float32 and rounds once: the float32 op's gradients on the
    widened inputs, rounded, in the same memory layout."""
    case["width"] = width
    x, w, _ = per_pixel_case(**case, dtype=torch.bfloat16)
    w = in_layout(w, KERNEL_LAYOUTS[layout])
    stride = case["stride"]
    out_shape = (x.shape[0], x.shape[1], *w.shape[2:])
    grad = torch.randn(out_shape, generator=torch.Generator().manual_seed(case["seed"]))
    grad = grad.bfloat16().contiguous(memory_format=torch.channels_last
                                      if case["channels_last"] else torch.contiguous_format)
    got = torch.ops.tvconv.per_pixel_conv_backward(grad, x, w, stride, *wanted)
    want = torch.ops.tvconv.per_pixel_conv_backward(grad.float(), x.float(), w.float(),
                                                    stride, *wanted)
    for g_got, g_want, needed in zip(got, want, wanted, strict=True):
        assert g_got.dtype == torch.bfloat16
        if not needed:
            assert g_got.numel() == 0
            continue
        assert g_got.shape == g_want.shape and g_got.stride() == g_want.stride()
        assert torch.equal(g_got, g_want.bfloat16())


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=1, max_size=4), st.randoms(use_true_random=False),
       st.integers(0, 2))
def test_is_dense_matches_the_prims_reference(sizes, rnd, kind):
    from torch._prims_common import is_non_overlapping_and_dense_or_false

    t = torch.empty(sizes)
    order = list(range(len(sizes)))
    rnd.shuffle(order)
    t = t.permute(order)
    if kind == 1 and t.shape[0] > 1:
        t = t[::2]  # gaps
    if kind == 2:
        t = t.unsqueeze(0).expand(2, *t.shape)  # overlap
    assert fused.is_dense(t) == is_non_overlapping_and_dense_or_false(t)


@needs_kernels
@pytest.mark.parametrize("layout", list(KERNEL_LAYOUTS))
@pytest.mark.parametrize("stride", [1, 2])
def test_channels_last_kernel_reads_any_channels_innermost_layout(layout, stride):
    x, w, b = per_pixel_case(2, 5, 9, 7, 3, stride, True, True, seed=4)
    w = in_layout(w, KERNEL_LAYOUTS[layout])
    inner = fused.has_channels_innermost(w)
    assert inner == (layout in ("tap-major", "pixel-major"))
    inputs = [t.requires_grad_() for t in (x, w, b)]
    out = torch.ops.tvconv.per_pixel_conv(x, w, b, stride)
    expected = unfold_reference(x, w, b, stride)
    torch.testing.assert_close(out, expected)
    grad = torch.randn_like(expected)
    got = torch.autograd.grad(out, inputs, grad)
    for g_got, g_want in zip(got, torch.autograd.grad(expected, inputs, grad), strict=True):
        torch.testing.assert_close(g_got, g_want)
    # a channels-innermost kernel gets its gradient in its own layout: no copy either way
    assert (got[1].stride() == w.stride()) == inner
    torch.library.opcheck(torch.ops.tvconv.per_pixel_conv.default,
                          (x, w, b, stride))  # the fake kernel's strides match


@needs_kernels
@pytest.mark.parametrize("stride", [1, 2])
def test_training_on_channels_last_generates_kernels_channels_innermost(stride):
    torch.manual_seed(1)
    layer = TVConv(6, stride=stride, size=(5, 4), hidden_channels=8, hidden_layers=1).double()
    with torch.no_grad():
        layer.affinity_maps.normal_()
    standard, _ = layer.generate()
    inner, _ = layer.generate(channels_innermost=True)
    torch.testing.assert_close(inner, standard)  # the same kernels, another memory order
    assert fused.has_channels_innermost(inner) and inner.stride(1) == 6  # (h, w, k*k, c)
    grad = torch.randn_like(standard)
    params = list(layer.parameters())
    for got, want in zip(torch.autograd.grad(inner, params, grad),
                         torch.autograd.grad(standard, params, grad), strict=True):
        torch.testing.assert_close(got, want)
    # the layer trains channels-last inputs with them: the pure-PyTorch path's gradients
    x = torch.randn(2, 6, 5 * stride, 4 * stride, dtype=torch.float64)
    x = x.contiguous(memory_format=torch.channels_last).requires_grad_()
    out = layer(x)
    expected = translation_variant_conv(x, *layer.generate(), stride=stride)
    torch.testing.assert_close(out, expected)
    got = torch.autograd.grad(out.square().sum(), [x, *params])
    want = torch.autograd.grad(expected.square().sum(), [x, *params])
    for g_got, g_want in zip(got, want, strict=True):
        torch.testing.assert_close(g_got, g_want)
    with pytest.raises(ValueError, match="'channels'"):
        layer.weight_generator.forward_channels_innermost(layer.affinity_maps[None], 7)
