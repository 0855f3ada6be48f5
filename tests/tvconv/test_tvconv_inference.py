"""Freezing, stripping, torch.export and torch.compile of TVConv layers and models."""
from __future__ import annotations

import pytest
import torch
from _tvconv_reference import uncached_output
from torch import nn

import tvconv
from tvconv import FrozenTVConv, TVConv
from tvconv.models import mobilenet_v2


def small_layer(**kwargs) -> TVConv:
    torch.manual_seed(0)
    layer = TVConv(4, hidden_channels=8, hidden_layers=1, **{"size": (3, 3), **kwargs})
    with torch.no_grad():
        layer.affinity_maps.normal_()
    return layer


def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return mobilenet_v2(0.1, "tvconv", input_size=16,
                        tvconv_kwargs={"hidden_channels": 8, "hidden_layers": 1})


def test_freeze_and_cached_weights():
    model = tiny_model()
    assert model.training
    tvconv.freeze(model)
    assert not model.training
    weights = tvconv.cached_weights(model)
    layers = dict(tvconv.tvconv_layers(model))
    assert list(weights) == list(layers) and len(weights) == 17
    for name, (weight, bias) in weights.items():
        layer = layers[name]
        assert weight.shape == (layer.channels, 9, *layer.size) and bias is None
        assert not weight.requires_grad
        assert torch.allclose(weight, layer.generate()[0], atol=1e-6)
    tvconv.clear_caches(model)
    assert all(layer.cached_size is None for layer in layers.values())
    # freezing on an example input of another size caches that size
    tvconv.freeze(model, torch.randn(1, 3, 24, 24))
    assert layers["features.1.block.0"].cached_size == (24, 24)


def test_strip_generators_keeps_outputs_and_drops_generators():
    model = tiny_model().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        expected = model(x)
    stripped = tvconv.strip_generators(model)
    assert not tvconv.tvconv_layers(stripped) and len(tvconv.tvconv_layers(model)) == 17
    assert sum(isinstance(m, FrozenTVConv) for m in stripped.modules()) == 17
    with torch.no_grad():
        assert torch.allclose(stripped(x), expected, atol=1e-5)
    assert not any("generator" in key or "affinity" in key for key in stripped.state_dict())
    with pytest.raises(ValueError, match="output size"):
        stripped(torch.randn(1, 3, 20, 20))


def test_frozen_layer_with_bias_and_stride():
    layer = small_layer(stride=2, bias=True).eval()
    x = torch.randn(2, 4, 6, 5, requires_grad=True)
    frozen = tvconv.strip_generators(layer)
    assert isinstance(frozen, FrozenTVConv)
    assert repr(frozen) == "FrozenTVConv(4, kernel_size=3, stride=2, size=(3, 3), bias=True)"
    expected = uncached_output(layer, x.detach())
    with torch.no_grad():
        assert torch.allclose(frozen(x), expected, atol=1e-5)
    frozen(x).sum().backward()  # differentiable w.r.t. the input
    assert x.grad is not None


def test_export_for_inference_holds_only_cached_kernels():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 1), small_layer(size=(6, 5)), nn.ReLU(),
                          small_layer(stride=2, bias=True), nn.BatchNorm2d(4))
    x = torch.randn(2, 3, 6, 5)
    program = tvconv.export_for_inference(model, (x,))
    names = list(program.state_dict) + list(program.constants)
    assert not any("generator" in n or "affinity" in n for n in names)
    with torch.no_grad():
        assert torch.allclose(program.module()(x), model(x), atol=1e-5)


@pytest.mark.parametrize("mode", ["train", "eval-frozen", "eval-uncached"])
def test_torch_export_of_the_layer(mode):
    layer = small_layer(stride=2, bias=True)
    x = torch.randn(2, 4, 6, 5)
    if mode == "train":
        layer.train()
    elif mode == "eval-frozen":
        tvconv.freeze(layer)
    else:
        layer.eval()
    program = torch.export.export(layer, (x,))
    graph = program.graph_module.code
    if mode == "eval-frozen":  # the cached kernels, not the generator, are in the graph
        assert "conv2d" not in graph and "_cached_weight" in graph
    else:
        assert "conv2d" in graph and "layer_norm" in graph
    assert torch.allclose(program.module()(x), uncached_output(layer, x), atol=1e-5)


def test_torch_compile_traces_train_and_cached_eval():
    layer = small_layer(stride=2)
    calls = []
    layer.weight_generator.register_forward_hook(lambda *args: calls.append(1))
    compiled = torch.compile(layer, backend="eager")
    x = torch.randn(2, 4, 6, 5)
    assert torch.allclose(compiled(x), uncached_output(layer, x), atol=1e-5)
    layer.eval()
    calls.clear()
    with torch.no_grad():
        for _ in range(3):
            out = compiled(x)
    assert len(calls) == 1  # generated once, then served from the cache
    assert torch.allclose(out, uncached_output(layer, x), atol=1e-5)
    with torch.no_grad():  # a parameter update is still seen under compile
        layer.affinity_maps.mul_(-1.0)
        assert torch.allclose(compiled(x), uncached_output(layer, x), atol=1e-5)


@pytest.mark.slow
def test_torch_compile_with_inductor():
    layer = small_layer(stride=2, bias=True)
    compiled = torch.compile(layer)
    x = torch.randn(2, 4, 6, 5)
    out = compiled(x)
    out.sum().backward()
    assert torch.allclose(out, uncached_output(layer, x), atol=1e-5)
    assert layer.affinity_maps.grad is not None
    layer.eval()
    with torch.no_grad():
        assert torch.allclose(compiled(x), uncached_output(layer, x), atol=1e-5)
