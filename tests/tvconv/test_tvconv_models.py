"""Face backbones (MobileNetV2, ShuffleNetV2) and the AM-Softmax loss."""
from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tvconv import TVConv, tvconv_layers
from tvconv.models import AMSoftmax, am_softmax_logits, mobilenet_v2, shufflenet_v2


def test_mobilenet_v2_replaces_every_depthwise_conv(mbv2_depthwise, mbv2_tvconv):
    depthwise, tv = mbv2_depthwise, mbv2_tvconv
    dw_convs = [m for m in depthwise.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    layers = [layer for _, layer in tvconv_layers(tv)]
    assert len(dw_convs) == len(layers) == 17
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in tv.modules())
    for conv, layer in zip(dw_convs, layers, strict=True):
        assert (conv.in_channels, conv.stride[0]) == (layer.channels, layer.stride)
    # stride-1 stem on 96x96: the first depthwise works at 96x96, the last at 6x6
    assert layers[0].size == (96, 96) and layers[-1].size == (6, 6)
    assert [layer.stride for layer in layers].count(2) == 4


def test_shufflenet_v2_replaces_both_branches():
    model = shufflenet_v2(0.5, "tvconv")
    layers = [layer for _, layer in tvconv_layers(model)]
    assert len(layers) == (4 + 1) + (8 + 1) + (4 + 1)  # stride-2 units have two
    assert layers[0].size == (24, 24) and layers[-1].size == (6, 6)
    assert not any(isinstance(m, nn.Conv2d) and m.groups > 1 for m in model.modules())


@pytest.mark.parametrize("build", [
    lambda conv: mobilenet_v2(0.1, conv, input_size=32),
    lambda conv: shufflenet_v2(0.5, conv, input_size=32),
], ids=["mobilenet_v2", "shufflenet_v2"])
@pytest.mark.parametrize("conv", ["depthwise", "tvconv"])
def test_forward_gives_512_d_embeddings(build, conv):
    torch.manual_seed(0)
    model = build(conv)
    x = torch.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 512) and torch.isfinite(out).all()
    unit = model.eval()(x, normalize=True)
    assert torch.allclose(unit.norm(dim=1), torch.ones(2), atol=1e-5)
    with torch.no_grad():
        assert torch.allclose(F.normalize(model(x), dim=1), unit, atol=1e-5)
    # other input sizes work (TVConv resamples its affinity maps)
    assert model(torch.randn(1, 3, 40, 36)).shape == (1, 512)


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_bfloat16_tvconv_network_follows_float32(memory_format):
    """A whole MobileNetV2-TVConv in bfloat16 (eval: every TVConv's cache generated in
    bfloat16 and applied by the fused kernel where it is built) stays within bfloat16
    precision of the float32 network, in either memory format."""
    torch.manual_seed(0)
    model = mobilenet_v2(0.5, "tvconv", input_size=32).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        low = copy.deepcopy(model).bfloat16().to(memory_format=memory_format)
        out = low(x.bfloat16().contiguous(memory_format=memory_format))
    assert out.dtype == torch.bfloat16
    assert float((out.float() - reference).abs().max()) < 0.02 * float(reference.abs().max())


def test_tvconv_model_trains_its_affinity_maps():
    torch.manual_seed(0)
    model = mobilenet_v2(0.1, "tvconv", input_size=16,
                         tvconv_kwargs={"hidden_channels": 8, "hidden_layers": 1})
    head = AMSoftmax(512, num_classes=3)
    loss = head(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    maps = [layer.affinity_maps.grad for _, layer in tvconv_layers(model)]
    assert all(g is not None and torch.isfinite(g).all() for g in maps)
    assert isinstance(model.features[1].block[0], TVConv)
    assert model.features[1].block[0].hidden_channels == 8


def test_model_argument_errors():
    with pytest.raises(ValueError, match="conv"):
        mobilenet_v2(0.5, "dense")
    with pytest.raises(ValueError, match="width_mult"):
        mobilenet_v2(0.0)
    with pytest.raises(TypeError, match="width_mult"):
        mobilenet_v2("1.0")
    with pytest.raises(ValueError, match="width_mult"):
        shufflenet_v2(0.75)
    with pytest.raises(ValueError, match="input_size"):
        shufflenet_v2(1.0, input_size=0)
    with pytest.raises(ValueError, match="channels"):
        mobilenet_v2(0.1)(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="tvconv_kwargs"):
        mobilenet_v2(0.1, "tvconv", tvconv_kwargs={"stride": 2})


def test_am_softmax_matches_a_hand_computation():
    embeddings = torch.tensor([[2.0, 0.0], [0.6, 0.8]])  # row 0 is not unit length
    weight = torch.tensor([[1.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1])
    m, s = 0.35, 32.0
    # cosines: row 0 -> (1, 0, -1), row 1 -> (0.6, 0.8, -0.6)
    loss0 = -(s * (1 - m)) + math.log(math.exp(s * (1 - m)) + math.exp(0.0) + math.exp(-s))
    loss1 = -(s * (0.8 - m)) + math.log(math.exp(s * 0.6) + math.exp(s * (0.8 - m))
                                        + math.exp(-s * 0.6))
    head = AMSoftmax(2, 3)
    with torch.no_grad():
        head.weight.copy_(weight)
    assert head(embeddings, labels).item() == pytest.approx((loss0 + loss1) / 2, rel=1e-5)
    logits = am_softmax_logits(embeddings, weight)  # prediction: no margin
    assert torch.allclose(logits, s * torch.tensor([[1.0, 0.0, -1.0], [0.6, 0.8, -0.6]]))
    assert repr(head) == "AMSoftmax(2, 3, margin=0.35, scale=32.0)"


def test_am_softmax_degenerate_and_bad_input():
    head = AMSoftmax(4, 3)
    loss = head(torch.zeros(2, 4), torch.tensor([0, 2]))  # zero embeddings stay finite
    assert torch.isfinite(loss)
    with pytest.raises(ValueError, match="labels"):
        head(torch.randn(2, 4), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="labels"):
        head(torch.randn(2, 4), torch.tensor([0]))
    with pytest.raises(TypeError, match="labels"):
        head(torch.randn(2, 4), torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match="embeddings"):
        head(torch.randn(2, 5), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="margin"):
        AMSoftmax(4, 3, margin=-0.1)
