"""MAC and parameter counts against the paper's figures and hand computations."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import tvconv
from tvconv import TVConv, count_macs, count_params
from tvconv.models import mobilenet_v2, shufflenet_v2


def tiny_model(spatial: nn.Module) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), spatial,
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16, 3))


def test_hand_computed_macs_of_a_tiny_model():
    layer = TVConv(4, size=(5, 5), hidden_channels=6, hidden_layers=1)
    model = tiny_model(layer)
    # conv 100 outputs x (2*9 + 1 bias) = 1900; BN 100 x 2 = 200; ReLU 100;
    # TVConv 100 x 9 = 900; max pool 100 inputs; linear 16*3 + 3 = 51
    assert count_macs(model, (2, 5, 5)) == 1900 + 200 + 100 + 900 + 100 + 51
    assert count_macs(model, (3, 2, 5, 5)) == 3 * 3251
    assert count_macs(model, (2, 5, 5), elementwise=False) == 1900 + 900 + 51
    # generating the kernels once: 3x3 convs 4->6, 6->6, 6->36 at 5x5, and
    # 2 LayerNorms (x2) + 2 ReLUs over 6x5x5 elements
    generator = 9 * 25 * (4 * 6 + 6 * 6 + 6 * 36) + 3 * 2 * 150
    assert count_macs(model, (2, 5, 5), include_generator=True) == 3251 + generator
    depthwise = tiny_model(nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False))
    assert count_macs(depthwise, (2, 5, 5)) == 3251  # a TVConv counts as a depthwise conv
    # a bias adds one MAC per output element, as for a conv
    assert count_macs(TVConv(4, size=(5, 5), bias=True), (1, 4, 5, 5)) == 100 * 10


def test_count_macs_restores_the_mode_and_validates():
    model = tiny_model(TVConv(4, size=(5, 5), hidden_channels=6, hidden_layers=1)).train()
    count_macs(model, (2, 5, 5))
    assert model.training and model[3].cached_size is None
    with pytest.raises(ValueError, match="input_shape"):
        count_macs(model, (5, 5))
    with pytest.raises(TypeError, match="input_shape"):
        count_macs(model, (2, 5, 5.0))
    with pytest.raises(TypeError, match="model"):
        count_macs("model", (2, 5, 5))


def test_unknown_modules_with_parameters_warn():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(1))

        def forward(self, x):
            return x * self.scale

    with pytest.warns(UserWarning, match="Scale"):
        assert count_macs(nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), Scale()),
                          (1, 2, 2)) == 4


def test_mobilenet_v2_x0_1_matches_the_paper(mbv2_depthwise, mbv2_tvconv):
    for model in (mbv2_depthwise, mbv2_tvconv):
        macs = count_macs(model, (3, 96, 96))
        assert abs(macs - 22.47e6) < 0.05e6  # Fig. 5: 22.47 M for both operators
        assert macs == 22_474_240
        assert count_macs(model, (3, 96, 96), elementwise=False) == 18_024_192
    # what caching saves: generating the 17 layers' kernels costs ~4.3 GMAC
    uncached = count_macs(mbv2_tvconv, (3, 96, 96), include_generator=True)
    assert 4.2e9 < uncached - 22_474_240 < 4.4e9


def test_paper_mac_table_for_other_widths():
    # Fig. 5 (depthwise; TVConv is identical by construction, checked above)
    for width, paper in [(0.2, 28.00e6), (0.5, 74.03e6)]:
        assert abs(count_macs(mobilenet_v2(width), (3, 96, 96)) - paper) < 0.005e6
    assert abs(count_macs(shufflenet_v2(0.5), (3, 96, 96)) - 31.95e6) < 0.005e6


def test_mobilenet_v2_x0_1_parameter_anchors(mbv2_depthwise, mbv2_tvconv):
    depthwise, tv = mbv2_depthwise, mbv2_tvconv
    assert count_params(depthwise) == count_params(depthwise, cached=True) == 324_672
    train_time, cached = count_params(tv), count_params(tv, cached=True)
    assert abs(train_time - 16.4e6) < 0.05e6  # the official code: 16.4 M at training time
    assert abs(cached - 4.4e6) < 0.05e6  # the official code: ~4.4 M after caching
    # the difference is exactly generators + affinity maps -> cached kernels
    layers = [m for m in tv.modules() if isinstance(m, TVConv)]
    kernels = sum(m.channels * 9 * m.size[0] * m.size[1] for m in layers)
    depthwise_weights = sum(m.weight.numel() for m in depthwise.modules()
                            if isinstance(m, nn.Conv2d) and m.groups > 1)
    assert cached == count_params(depthwise) - depthwise_weights + kernels


def test_count_params_of_a_stripped_model_equals_cached_count():
    model = tiny_model(TVConv(4, size=(5, 5), hidden_channels=6, hidden_layers=1, bias=True))
    tvconv.freeze(model)
    stripped = tvconv.strip_generators(model)
    assert count_params(stripped) == count_params(stripped, cached=True) \
        == count_params(model, cached=True)
    assert count_macs(stripped, (2, 5, 5)) == count_macs(model, (2, 5, 5))
