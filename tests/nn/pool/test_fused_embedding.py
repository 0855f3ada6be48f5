"""The fused clustering-embedding kernel (``pyg_hgconv::pixel_embedding``) against
an independent sum over the channels; its batch and thread independence (bit for
bit), the memory format it keeps, the module's use of it; its registration."""
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pyg_hgconv import ImageToGroupGraph
from pyg_hgconv.nn.pool import fused_embedding
from tests.helpers.backends import kernels_backend, needs_kernels


def channel_sum(x, weight, bias):
    """``bias + W x`` of every pixel, in float64, by one loop over the channels."""
    out = torch.zeros(x.size(0), weight.size(0), *x.shape[2:], dtype=torch.float64)
    for c in range(x.size(1)):
        out += weight[:, c].double().view(1, -1, 1, 1) * x[:, c:c + 1].double()
    if bias is not None:
        out += bias.double().view(1, -1, 1, 1)
    return out


def inputs(b, c, h, w, d, channels_last, dtype, seed, bias=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, c, h, w, generator=g, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    weight = torch.randn(d, c, generator=g, dtype=dtype)
    return x, weight, torch.randn(d, generator=g, dtype=dtype) if bias else None


@needs_kernels
@settings(max_examples=80, deadline=None)
@given(b=st.integers(1, 3), c=st.integers(1, 40), h=st.integers(1, 9), w=st.integers(1, 40),
       d=st.integers(1, 70), channels_last=st.booleans(), bias=st.booleans(),
       dtype=st.sampled_from([torch.float32, torch.float64]), seed=st.integers(0, 2**16))
def test_the_embedding_is_the_sum_over_the_channels(b, c, h, w, d, channels_last, bias, dtype,
                                                    seed):
    x, weight, b_ = inputs(b, c, h, w, d, channels_last, dtype, seed, bias)
    assert fused_embedding.fused_embedding_applies(x, weight, b_)
    out = fused_embedding.fused_pixel_embedding(x, weight, b_)
    assert out.shape == (b, d, h, w) and out.dtype == dtype
    # the memory format of the input (a channels-last map stays channels-last)
    strided = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    assert out.is_contiguous(memory_format=torch.channels_last if strided
                             else torch.contiguous_format)
    tol = dict(rtol=1e-5, atol=1e-5 * c) if dtype == torch.float32 else {}
    torch.testing.assert_close(out.double(), channel_sum(x, weight, b_), **tol)


@needs_kernels
@settings(max_examples=25, deadline=None)
@given(b=st.integers(2, 5), c=st.integers(1, 64), h=st.integers(1, 20), w=st.integers(1, 40),
       d=st.sampled_from([4, 8, 16, 19]), channels_last=st.booleans(),
       seed=st.integers(0, 2**16))
def test_an_image_has_the_same_bits_alone_in_a_batch_and_in_either_layout(b, c, h, w, d,
                                                                          channels_last, seed):
    x, weight, bias = inputs(b, c, h, w, d, channels_last, torch.float32, seed)
    batch = fused_embedding.fused_pixel_embedding(x, weight, bias)
    for i in range(b):
        alone = fused_embedding.fused_pixel_embedding(x[i:i + 1], weight, bias)
        assert torch.equal(batch[i:i + 1], alone)
    other = x.contiguous() if channels_last else x.contiguous(memory_format=torch.channels_last)
    assert torch.equal(fused_embedding.fused_pixel_embedding(other, weight, bias), batch)


@needs_kernels
@pytest.mark.parametrize("channels_last", [False, True])
def test_the_result_does_not_depend_on_the_threads(channels_last):
    x, weight, bias = inputs(3, 96, 30, 41, 16, channels_last, torch.float32, 0)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = fused_embedding.fused_pixel_embedding(x, weight, bias)
        torch.set_num_threads(max(2, threads))
        assert torch.equal(fused_embedding.fused_pixel_embedding(x, weight, bias), one)
    finally:
        torch.set_num_threads(threads)


@needs_kernels
def test_the_module_takes_the_op_only_without_a_gradient():
    x = torch.randn(2, 12, 16, 16, generator=torch.Generator().manual_seed(0))
    module = ImageToGroupGraph(in_channels=12, num_groups=8, embed_channels=6).eval()
    with torch.no_grad():
        fused = module._embed(x)
        with kernels_backend("pytorch"):
            reference = module._embed(x)
    torch.testing.assert_close(fused, reference)
    # with a gradient the differentiable product runs and reaches the weight
    module._embed(x).sum().backward()
    assert module.embed.weight.grad is not None and bool(module.embed.weight.grad.abs().sum() > 0)


@needs_kernels
def test_the_op_passes_opcheck():
    for channels_last in (False, True):
        for bias in (True, False):
            x, weight, b = inputs(2, 5, 3, 7, 6, channels_last, torch.float32, 0, bias)
            torch.library.opcheck(torch.ops.pyg_hgconv.pixel_embedding.default, (x, weight, b))


@needs_kernels
def test_bad_arguments_are_named():
    x, weight, bias = inputs(1, 3, 4, 4, 2, False, torch.float32, 0)
    op = fused_embedding.fused_pixel_embedding
    with pytest.raises(RuntimeError, match="'x' must be"):
        op(x[0], weight, bias)
    with pytest.raises(RuntimeError, match="'x' must be float32 or float64"):
        op(x.half(), weight.half(), bias.half())
    with pytest.raises(RuntimeError, match="'weight' must be"):
        op(x, weight[:, :2], bias)
    with pytest.raises(RuntimeError, match="'bias' must be"):
        op(x, weight, bias[:1])
