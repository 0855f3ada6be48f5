"""ResNet backbones: shapes, strides, dilation, the "+" stem, parameter counts."""
import math

import pytest
import torch

from pyg_hgconv.nn.models import BACKBONES, ResNet, build_backbone, resnet18, resnet50, resnet_stage

# torchvision's ResNets without their 1000-class fc layer
TORCHVISION_PARAMS = {"resnet18": 11_689_512 - 513_000, "resnet34": 21_797_672 - 513_000,
                      "resnet50": 25_557_032 - 2_049_000}


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_parameter_count_matches_torchvision(name):
    net = BACKBONES[name]()
    assert sum(p.numel() for p in net.parameters()) == TORCHVISION_PARAMS[name]


def test_torchvision_parameter_names():
    keys = set(resnet18().state_dict())
    assert {"conv1.weight", "bn1.running_mean", "layer1.0.conv1.weight",
            "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
            "layer4.1.bn2.weight"} <= keys
    assert "layer1.0.conv3.weight" in resnet50(width=0.125).state_dict()


@pytest.mark.parametrize(("dilate", "stem", "strides"), [
    ((False, False), "standard", (2, 4, 8, 16, 32)),
    ((True, False), "standard", (2, 4, 8, 8, 16)),
    ((True, True), "standard", (2, 4, 8, 8, 8)),
    ((False, False), "plus", (1, 1, 2, 4, 8)),
    ((True, True), "plus", (1, 1, 2, 2, 2)),
])
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_stage_shapes_follow_the_output_strides(name, dilate, stem, strides):
    net = build_backbone(name, dilate=dilate, stem=stem, width=0.125)
    assert net.strides == strides
    h, w = 37, 50  # not multiples of any stride
    features = net(torch.randn(2, 3, h, w))
    for feature, stride, channels in zip(features, strides, net.channels, strict=True):
        assert feature.shape == (2, channels, math.ceil(h / stride), math.ceil(w / stride))


def test_dilation_replaces_the_stride_like_torchvision():
    net = resnet50(dilate=(True, True), width=0.125)
    # the first block of a dilated stage keeps the previous dilation
    assert net.layer3[0].conv2.dilation == (1, 1) and net.layer3[1].conv2.dilation == (2, 2)
    assert net.layer4[0].conv2.dilation == (2, 2) and net.layer4[2].conv2.dilation == (4, 4)
    assert all(m.stride == (1, 1) for m in net.layer4.modules() if isinstance(m, torch.nn.Conv2d))
    basic = resnet18(dilate=(False, True), width=0.125)
    assert basic.layer4[1].conv1.dilation == basic.layer4[1].conv2.dilation == (2, 2)


def test_width_in_channels_and_partial_forward():
    net = resnet18(in_channels=5, width=0.25)
    assert net.channels == (16, 16, 32, 64, 128)
    features = net(torch.randn(1, 5, 64, 64), num_stages=2)
    assert features.stage2 is not None and features.stage3 is None and features.stage4 is None
    net.layer4 = None  # a lifted stage is skipped
    assert net(torch.randn(1, 5, 64, 64)).stage4 is None


def test_resnet_stage_without_stride_keeps_the_size():
    stage = resnet_stage("bottleneck", 8, 4, 2)
    assert stage[0].downsample is not None and stage[1].downsample is None
    assert stage(torch.randn(1, 8, 5, 7)).shape == (1, 16, 5, 7)


def test_backbone_errors():
    with pytest.raises(ValueError, match="backbone"):
        build_backbone("resnet101")
    with pytest.raises(ValueError, match="stem"):
        resnet18(stem="deep")
    with pytest.raises(ValueError, match="width"):
        resnet18(width=0)
    with pytest.raises(ValueError, match="dilate"):
        resnet18(dilate=(True,))
    with pytest.raises(ValueError, match="channels"):
        resnet18(width=0.125)(torch.randn(1, 4, 8, 8))
    with pytest.raises(ValueError, match="layers"):
        ResNet("basic", (2, 2, 2))
    with pytest.raises(ValueError, match="instance"):
        build_backbone(resnet18(width=0.125), width=0.5)
