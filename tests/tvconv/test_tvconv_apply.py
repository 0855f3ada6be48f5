"""The shifted-slice application (Eq. 2) against an ``unfold`` reference."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _tvconv_reference import per_pixel_case, per_pixel_shapes, unfold_reference
from hypothesis import given, settings

from tvconv.apply import (
    conv_output_size,
    from_tap_major,
    tap_geometry,
    tap_planes,
    to_tap_major,
    translation_variant_conv,
    translation_variant_conv_cached,
)

shapes = per_pixel_shapes()


@settings(max_examples=40, deadline=None)
@given(shapes)
def test_both_paths_equal_unfold_reference(case):
    x, w, b = per_pixel_case(**case)
    stride = case["stride"]
    expected = unfold_reference(x, w, b, stride)
    assert torch.allclose(translation_variant_conv(x, w, b, stride=stride), expected)
    b_last = None if b is None else b.permute(1, 2, 0).contiguous()
    fast = translation_variant_conv_cached(x, to_tap_major(w), b_last, stride=stride)
    assert torch.allclose(fast, expected)
    # the fast path keeps the memory format of its input
    fmt = torch.channels_last if case["channels_last"] else torch.contiguous_format
    assert fast.is_contiguous(memory_format=fmt)


def test_output_size_matches_nn_conv2d():
    for n in range(1, 12):
        for k in (1, 3, 5, 7):
            for s in (1, 2, 3):
                conv = torch.nn.Conv2d(1, 1, k, s, k // 2)
                expected = tuple(conv(torch.zeros(1, 1, n, n + 1)).shape[-2:])
                assert conv_output_size((n, n + 1), k, s) == expected


def test_fast_path_chunks_a_large_batch(monkeypatch):
    # force one image per chunk: chunking must not change the result
    import tvconv.apply as apply

    monkeypatch.setattr(apply, "CHUNK_BYTES", 1)
    x, w, b = per_pixel_case(5, 3, 6, 7, 3, 2, True, False, 0)
    fast = translation_variant_conv_cached(x, to_tap_major(w), b.permute(1, 2, 0), stride=2)
    assert torch.allclose(fast, unfold_reference(x, w, b, 2))


def test_fast_path_with_precomputed_planes_and_empty_batch():
    x, w, _ = per_pixel_case(2, 4, 5, 5, 3, 1, False, True, 1)
    weight = to_tap_major(w)
    planes = tap_planes(weight, (5, 5), 1)
    assert torch.allclose(translation_variant_conv_cached(x, weight, planes=planes),
                          unfold_reference(x, w, None, 1))
    empty = translation_variant_conv_cached(x[:0], weight)
    assert empty.shape == (0, 4, 5, 5)


def test_tap_geometry_centre_first_and_drops_unreachable_taps():
    taps = tap_geometry((6, 6), 3, 1)
    assert taps[0].index == 4 and sorted(t.index for t in taps) == list(range(9))
    centre = taps[0]
    assert (centre.out_rows, centre.out_cols) == (slice(0, 6), slice(0, 6))
    # on a 1x1 image only the centre tap sees a real pixel
    assert [t.index for t in tap_geometry((1, 1), 3, 1)] == [4]


def test_layout_round_trip():
    w = torch.randn(3, 9, 4, 5)
    tap_major = to_tap_major(w)
    assert tap_major.shape == (9, 4, 5, 3) and tap_major.is_contiguous()
    assert torch.equal(from_tap_major(tap_major), w)


def test_gradients_of_differentiable_path():
    x, w, b = per_pixel_case(2, 2, 4, 5, 3, 2, True, False, 3)
    inputs = tuple(t.requires_grad_() for t in (x, w, b))
    assert torch.autograd.gradcheck(
        lambda x, w, b: translation_variant_conv(x, w, b, stride=2), inputs)


def test_constant_kernels_equal_depthwise_conv():
    x = torch.randn(2, 3, 7, 6, dtype=torch.float64)
    kernel = torch.randn(3, 1, 3, 3, dtype=torch.float64)
    for stride in (1, 2):
        out_size = conv_output_size((7, 6), 3, stride)
        w = kernel.view(3, 9, 1, 1).expand(3, 9, *out_size)
        expected = F.conv2d(x, kernel, stride=stride, padding=1, groups=3)
        assert torch.allclose(translation_variant_conv(x, w, stride=stride), expected)
        assert torch.allclose(translation_variant_conv_cached(x, to_tap_major(w), stride=stride),
                              expected)


def test_shape_errors_name_the_argument():
    x = torch.randn(1, 3, 5, 5)
    with pytest.raises(ValueError, match="weight"):
        translation_variant_conv(x, torch.randn(3, 9, 4, 4))
    with pytest.raises(ValueError, match="weight"):
        translation_variant_conv(x, torch.randn(3, 4, 5, 5))  # k*k = 4: even k
    with pytest.raises(ValueError, match="bias"):
        translation_variant_conv(x, torch.randn(3, 9, 5, 5), torch.randn(3, 4, 4))
    with pytest.raises(ValueError, match="weight"):
        translation_variant_conv_cached(x, torch.randn(9, 5, 5, 2))
    for conv, weight in ((translation_variant_conv, torch.randn(3, 9, 5, 5)),
                         (translation_variant_conv_cached, torch.randn(9, 5, 5, 3))):
        with pytest.raises(ValueError, match="'stride' must be >= 1"):
            conv(x, weight, stride=0)
        with pytest.raises(TypeError, match="'stride' must be an int"):
            conv(x, weight, stride=1.5)
        with pytest.raises(ValueError, match="'x' must have shape"):
            conv(x[0], weight)
        with pytest.raises(TypeError, match="'x' must be a floating-point"):
            conv(x.long(), weight)
