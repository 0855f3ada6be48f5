"""The TVConv layer: generation, caching and its invalidation, resampling, errors."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from _tvconv_reference import uncached_output, unfold_reference
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from tvconv import TVConv


def small_layer(channels=3, stride=1, size=(5, 4), bias=False, **kwargs) -> TVConv:
    kwargs = {"hidden_channels": 6, "hidden_layers": 1, **kwargs}
    return TVConv(channels, stride=stride, size=size, bias=bias, **kwargs)


def randomize(layer: TVConv, seed: int = 0) -> TVConv:
    """Non-trivial parameters: random affinity maps and LayerNorm affine maps."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in layer.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return layer


def test_initial_state_and_shapes():
    layer = TVConv(8, kernel_size=3, stride=2, size=(6, 5))
    assert torch.equal(layer.affinity_maps, torch.ones(4, 6, 5))
    # hidden_layers=3 -> 4 hidden blocks (+ the output conv), as in the official code
    assert len(layer.weight_generator.convs) == 4 and len(layer.weight_generator.norms) == 4
    assert layer.weight_generator.output.out_channels == 8 * 9
    weight, bias = layer.generate()
    assert weight.shape == (8, 9, 6, 5) and bias is None
    assert layer(torch.randn(2, 8, 11, 10)).shape == (2, 8, 6, 5)
    assert "bias" not in dict(layer.named_parameters())
    with_bias = TVConv(8, stride=2, size=(6, 5), bias=True)
    assert with_bias.generate()[1].shape == (8, 6, 5)
    assert repr(layer) == ("TVConv(8, kernel_size=3, stride=2, size=(6, 5), affinity_channels=4, "
                           "hidden_channels=64, hidden_layers=3, bias=False)")


@settings(max_examples=12, deadline=None)
@given(stride=st.sampled_from([1, 2]), bias=st.booleans(), batch=st.integers(1, 3),
       height=st.integers(1, 8), width=st.integers(1, 8), seed=st.integers(0, 1000))
def test_train_and_cached_eval_outputs_agree(stride, bias, batch, height, width, seed):
    size = (-(-height // stride), -(-width // stride))
    layer = randomize(small_layer(stride=stride, size=size, bias=bias), seed)
    x = torch.randn(batch, 3, height, width)
    expected = uncached_output(layer, x)
    train_out = layer.train()(x)
    assert torch.allclose(train_out, expected, atol=1e-5)
    layer.eval()
    with torch.no_grad():
        first = layer(x)
        assert layer.cached_size == size
        cached_weight = layer._cached_weight
        second = layer(x)
    assert layer._cached_weight is cached_weight  # reused, not regenerated
    assert torch.allclose(first, expected, atol=1e-5) and torch.equal(first, second)
    x_last = x.contiguous(memory_format=torch.channels_last)
    assert torch.allclose(layer(x_last), expected, atol=1e-5)


def test_gradients_in_train_and_eval_mode():
    layer = randomize(small_layer(stride=2, size=(3, 3), bias=True))
    x = torch.randn(2, 3, 6, 5, requires_grad=True)
    layer(x).square().sum().backward()
    grads = {name: p.grad for name, p in layer.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() for g in grads.values())
    assert grads["affinity_maps"].abs().sum() > 0
    # eval mode: cached kernels are detached, the input still gets its gradient
    layer.zero_grad(set_to_none=True)
    layer.eval()
    x.grad = None
    out = layer(x)
    out.sum().backward()
    assert x.grad is not None and all(p.grad is None for p in layer.parameters())
    assert torch.allclose(out, uncached_output(layer, x.detach()), atol=1e-5)


def test_cached_eval_is_one_generation_per_size():
    layer = small_layer().eval()
    calls = []
    layer.weight_generator.register_forward_hook(lambda *args: calls.append(1))
    x = torch.randn(2, 3, 5, 4)
    with torch.no_grad():
        for _ in range(3):
            layer(x)
    assert len(calls) == 1


# ------------------------------------------------------------ invalidation
def _cached(layer: TVConv, x: torch.Tensor) -> torch.Tensor:
    layer.eval()
    with torch.no_grad():
        out = layer(x)
    assert layer.cached_size is not None
    return out


def _assert_fresh(layer: TVConv, x: torch.Tensor, before: torch.Tensor) -> None:
    with torch.no_grad():
        after = layer(x)
    assert not torch.allclose(after, before), "parameters changed but the output did not"
    assert torch.allclose(after, uncached_output(layer, x), atol=1e-5)


@pytest.fixture
def cached_layer():
    layer = randomize(small_layer(bias=True))
    x = torch.randn(2, 3, 5, 4)
    return layer, x, _cached(layer, x)


def test_train_drops_the_cache(cached_layer):
    layer, x, before = cached_layer
    layer.train()
    assert layer.cached_size is None
    with torch.no_grad():
        layer.affinity_maps.add_(1.0)
    layer.eval()
    _assert_fresh(layer, x, before)


def test_load_state_dict_drops_the_cache(cached_layer):
    layer, x, before = cached_layer
    other = randomize(small_layer(bias=True), seed=7)
    state = other.state_dict()
    assert not any("cached" in key for key in state)  # the cache is not persistent
    layer.load_state_dict(state)
    assert layer.cached_size is None
    _assert_fresh(layer, x, before)
    assert torch.allclose(layer(x), _cached(other, x), atol=1e-6)


def test_to_dtype_drops_the_cache(cached_layer):
    layer, x, before = cached_layer
    layer.to(torch.float64)
    assert layer.cached_size is None
    with torch.no_grad():
        out = layer(x.double())
    assert out.dtype == torch.float64
    assert torch.allclose(out, uncached_output(layer, x.double()))
    assert torch.allclose(out.float(), before, atol=1e-5)


@pytest.mark.parametrize("make_optimizer", [
    lambda params: torch.optim.SGD(params, lr=0.5),
    lambda params: torch.optim.SGD(params, lr=0.5, momentum=0.9, foreach=True),
    lambda params: torch.optim.Adam(params, lr=0.1),
    lambda params: torch.optim.Adam(params, lr=0.1, foreach=True),
    lambda params: torch.optim.AdamW(params, lr=0.1, fused=True),
], ids=["sgd", "sgd-foreach", "adam", "adam-foreach", "adamw-fused"])
def test_optimizer_step_invalidates_the_cache(cached_layer, make_optimizer):
    layer, x, before = cached_layer
    optimizer = make_optimizer(layer.parameters())
    for p in layer.parameters():  # a step while the layer stays in eval mode
        p.grad = torch.randn_like(p)
    optimizer.step()
    _assert_fresh(layer, x, before)


@pytest.mark.parametrize("edit", ["inplace", "data", "replace", "reset"])
def test_any_parameter_update_invalidates_the_cache(cached_layer, edit):
    layer, x, before = cached_layer
    conv = layer.weight_generator.output
    if edit == "inplace":
        with torch.no_grad():
            conv.weight.mul_(-2.0)
    elif edit == "data":
        conv.weight.data = -2.0 * conv.weight.data
    elif edit == "replace":
        conv.weight = nn.Parameter(-2.0 * conv.weight.detach())
    else:
        layer.reset_parameters()
        assert layer.cached_size is None
        randomize(layer, seed=3)
    _assert_fresh(layer, x, before)


def test_deepcopy_rebuilds_its_own_cache(cached_layer):
    layer, x, before = cached_layer
    clone = copy.deepcopy(layer)
    with torch.no_grad():
        clone.affinity_maps.add_(torch.randn_like(clone.affinity_maps))
    _assert_fresh(clone, x, before)
    with torch.no_grad():
        assert torch.equal(layer(x), before)


# ------------------------------------------------------- static-conv limit
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("bias", [False, True])
def test_constant_affinity_maps_give_a_depthwise_conv(stride, bias):
    # Sec. 3.3: constant A -> the same kernel at every pixel (borders included)
    layer = small_layer(channels=4, stride=stride, size=(4, 3), bias=bias, hidden_layers=2)
    with torch.no_grad():
        layer.affinity_maps.fill_(0.7)
    weight, gen_bias = layer.generate()
    kernel = weight[:, :, :1, :1]
    assert torch.allclose(weight, kernel.expand_as(weight), atol=1e-5)
    assert weight.std() > 0  # the kernel itself is not trivial
    x = torch.randn(2, 4, 8, 5)
    expected = F.conv2d(x, kernel.reshape(4, 1, 3, 3), stride=stride, padding=1, groups=4,
                        bias=None if gen_bias is None else gen_bias[:, 0, 0])
    assert torch.allclose(layer(x), expected, atol=1e-5)
    assert torch.allclose(layer.eval()(x), expected, atol=1e-5)


def test_official_zero_padding_breaks_the_constant_kernel_at_borders():
    layer = small_layer(size=(5, 5), generator_padding_mode="zeros")
    weight, _ = layer.generate()
    assert not torch.allclose(weight, weight[:, :, 2:3, 2:3].expand_as(weight), atol=1e-4)


# -------------------------------------------------------------- resampling
def test_other_input_sizes_resample_the_maps():
    layer = randomize(small_layer(stride=2, size=(4, 3)))
    native = torch.randn(2, 3, 8, 6)
    with torch.no_grad():
        weight, _ = layer.generate()
        weight_native, _ = layer.generate((4, 3))
    assert torch.equal(weight, weight_native)  # the native size is the plain path
    assert torch.allclose(layer(native), unfold_reference(native, weight, None, 2), atol=1e-5)
    for shape in [(2, 3, 13, 9), (1, 3, 3, 3), (1, 3, 1, 1)]:
        x = torch.randn(shape)
        out = layer.train()(x)
        assert out.shape == (shape[0], 3, -(-shape[2] // 2), -(-shape[3] // 2))
        assert torch.isfinite(out).all()
        assert torch.allclose(out, uncached_output(layer, x), atol=1e-5)
        assert torch.allclose(layer.eval()(x), out, atol=1e-5)
        assert layer.cached_size == tuple(out.shape[-2:])


def test_resampling_a_constant_layout_keeps_it_constant():
    layer = small_layer(size=(4, 4))  # initial state: A = 1, LayerNorm maps constant
    weight, _ = layer.generate((9, 7))
    assert torch.allclose(weight, weight[:, :, :1, :1].expand_as(weight), atol=1e-5)


def test_resampling_is_bilinear_on_the_affinity_maps():
    layer = small_layer(size=(2, 2))
    with torch.no_grad():
        layer.affinity_maps.copy_(torch.arange(16.0).view(4, 2, 2))
    captured = []
    layer.weight_generator.register_forward_pre_hook(lambda m, args: captured.append(args[0]))
    layer.generate((4, 4))
    expected = F.interpolate(layer.affinity_maps[None], size=(4, 4), mode="bilinear",
                             align_corners=False)
    assert torch.allclose(captured[0], expected)


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize(("kwargs", "error", "name"), [
    ({"channels": 0}, ValueError, "channels"),
    ({"channels": 2.0}, TypeError, "channels"),
    ({"kernel_size": 4}, ValueError, "kernel_size"),
    ({"kernel_size": 0}, ValueError, "kernel_size"),
    ({"kernel_size": -3}, ValueError, "kernel_size"),
    ({"kernel_size": (3, 3)}, TypeError, "kernel_size"),
    ({"stride": 0}, ValueError, "stride"),
    ({"stride": 1.5}, TypeError, "stride"),
    ({"stride": True}, TypeError, "stride"),
    ({"size": None}, TypeError, "size"),
    ({"size": (4, 0)}, ValueError, "size"),
    ({"size": (4, 4, 4)}, ValueError, "size"),
    ({"affinity_channels": 0}, ValueError, "affinity_channels"),
    ({"hidden_channels": 0}, ValueError, "hidden_channels"),
    ({"hidden_layers": -1}, ValueError, "hidden_layers"),
    ({"bias": 1}, TypeError, "bias"),
    ({"generator_padding_mode": "same"}, ValueError, "generator_padding_mode"),
])
def test_constructor_errors_name_the_argument(kwargs, error, name):
    arguments = {"channels": 4, "size": (4, 4), **kwargs}
    with pytest.raises(error, match=name):
        TVConv(**arguments)


@pytest.mark.parametrize(("x", "error", "match"), [
    (torch.randn(2, 5, 4, 4), ValueError, "channels"),
    (torch.randn(4, 4, 4), ValueError, "4 dims"),
    (torch.randn(1, 2, 4, 4, 4), ValueError, "4 dims"),
    (torch.ones(2, 4, 4, 4, dtype=torch.int64), TypeError, "floating"),
    (torch.randn(2, 4, 4, 4, dtype=torch.float64), TypeError, "dtype"),
    (torch.randn(2, 4, 0, 4), ValueError, "spatial"),
    ([[1.0]], TypeError, "Tensor"),
])
def test_forward_errors(x, error, match):
    layer = TVConv(4, size=(4, 4))
    with pytest.raises(error, match=match):
        layer(x)
    with pytest.raises(error, match=match):
        layer.eval()(x)


def test_empty_batch_gives_empty_output():
    layer = small_layer()
    x = torch.randn(0, 3, 5, 4)
    assert layer(x).shape == (0, 3, 5, 4)
    assert layer.eval()(x).shape == (0, 3, 5, 4)


def test_replicate_pad_matches_torch():
    from tvconv.weight_generator import replicate_pad

    maps = torch.randn(1, 3, 4, 5)
    assert torch.equal(replicate_pad(maps), F.pad(maps, (1, 1, 1, 1), mode="replicate"))
    assert torch.equal(replicate_pad(maps, 2), F.pad(maps, (2, 2, 2, 2), mode="replicate"))
