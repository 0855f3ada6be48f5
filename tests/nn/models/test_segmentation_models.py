"""Forward/backward and the output contract of ResNetSeg, HGResNetSeg, ResUNet, HGResUNet."""
import pytest
import torch
import torch.nn.functional as F

from pyg_hgconv import conv_names
from pyg_hgconv.nn.models import (
    FCNHead,
    HGResNetSeg,
    HGResUNet,
    ResNetSeg,
    SegmentationOutput,
    resnet18,
    segmentation_loss,
)
from tests.helpers.models import build, structured_batch

FAMILIES = ["resnet_seg", "resunet"]


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@pytest.mark.parametrize("hg", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward_shapes(family, hg, backbone):
    model = build(family, hg, backbone).train()
    x = structured_batch(2, height=45, width=61)  # not multiples of the stride
    out = model(x)
    assert isinstance(out, SegmentationOutput)
    assert out.out.shape == (2, 3, 45, 61) and torch.isfinite(out.out).all()
    assert len(out.graphs) == int(hg)
    target = torch.randint(0, 3, (2, 45, 61))
    loss, logs = out.loss(target)
    loss.backward()
    assert set(logs) >= {"loss", "main"}
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"no gradient for {missing}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize(("stem", "dilated"), [("plus", False), ("standard", True),
                                               ("plus", (False, True))])
@pytest.mark.parametrize("hg", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_variants_binary_output(family, hg, stem, dilated):
    model = build(family, hg, num_classes=1, stem=stem, dilated=dilated).eval()
    x = structured_batch(1, height=33, width=30)
    out = model(x)
    assert out.out.shape == (1, 1, 33, 30)
    assert out.aux is None and out.attention is None  # no auxiliary head at inference


def test_output_contract_in_training_and_evaluation():
    grid = build("resnet_seg", hg=False).train()
    out = grid(structured_batch(2))
    assert out.aux.shape == out.out.shape and out.aux_weight == 0.4
    assert grid.eval()(structured_batch(2)).aux is None
    hg = build("resnet_seg", hg=True, attention="uncertainty").eval()
    out = hg(structured_batch(2, height=64, width=64))
    # active focus needs the coarse prediction at inference too
    assert out.aux.shape == out.out.shape
    assert out.attention.shape == (2, 1, 8, 8)  # stage 3 of a dilated ResNet: stride 8
    assert 0 <= float(out.attention.min()) and float(out.attention.max()) <= 1
    assert build("resunet", hg=False).train()(structured_batch(1)).aux is None
    assert build("resunet", hg=False, aux=True).train()(structured_batch(1)).aux is not None


@pytest.mark.parametrize("conv", conv_names("graph"))
def test_every_registry_graph_conv_fills_the_stage4_slot(conv):
    model = build("resnet_seg", hg=True, conv=conv).train()
    assert model.conv_name == conv
    x = structured_batch(2, height=48, width=48)
    out = model(x)
    assert out.out.shape == (2, 3, 48, 48) and torch.isfinite(out.out).all()
    out.loss(torch.randint(0, 3, (2, 48, 48)))[0].backward()
    graph_params = [p for m in model.stage4.modules() if hasattr(m, "spec")
                    for p in m.parameters()]
    assert graph_params and all(p.grad is not None and p.grad.abs().sum() > 0
                                for p in graph_params)
    # BatchNorm follows every graph conv: its additive bias is removed
    assert all(getattr(m.layer, "bias", None) is None for m in model.stage4.modules()
               if hasattr(m, "spec"))


def test_hgconv_stage_has_the_grid_stage_parameter_count():
    grid = build("resnet_seg", hg=False)
    hg = build("resnet_seg", hg=True)
    grid_stage4 = sum(p.numel() for p in grid.backbone.layer4.parameters())
    hg_blocks = sum(p.numel() for p in hg.stage4.stage.blocks.parameters())
    assert grid_stage4 == hg_blocks


def test_loss_matches_the_definition_and_ignores_pixels():
    torch.manual_seed(0)
    out = SegmentationOutput(torch.randn(2, 4, 5, 6), torch.randn(2, 4, 5, 6), aux_weight=0.4)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, :2] = 255
    loss, logs = out.loss(target)
    expected = (F.cross_entropy(out.out, target, ignore_index=255)
                + 0.4 * F.cross_entropy(out.aux, target, ignore_index=255))
    torch.testing.assert_close(loss, expected)
    assert logs["loss"] == pytest.approx(float(expected))
    # binary: one logit, BCE over the labelled pixels only
    logits = torch.randn(1, 1, 3, 3)
    mask = torch.tensor([[[1, 0, 255], [0, 1, 1], [255, 255, 0]]])
    valid = mask != 255
    expected = F.binary_cross_entropy_with_logits(logits[0, 0][valid[0]], mask[valid].float())
    torch.testing.assert_close(segmentation_loss(logits, mask), expected)
    torch.testing.assert_close(segmentation_loss(logits, mask.unsqueeze(1)), expected)
    # nothing labelled: zero, never NaN, and still differentiable
    empty = torch.full((1, 3, 3), 255)
    logits.requires_grad_()
    value = segmentation_loss(logits, empty)
    value.backward()
    assert float(value.detach()) == 0.0 and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="target"):
        segmentation_loss(logits, torch.zeros(1, 4, 4))


def test_fcn_head_and_model_errors():
    assert FCNHead(32, 5)(torch.randn(1, 32, 4, 4)).shape == (1, 5, 4, 4)
    with pytest.raises(ValueError, match="focus_class"):
        HGResNetSeg("resnet18", 3, width=0.125, attention="object")
    with pytest.raises(ValueError, match="aux=True"):
        HGResNetSeg("resnet18", 1, width=0.125, attention="object", aux=False)
    with pytest.raises(ValueError, match="attention"):
        HGResUNet("resnet18", 1, width=0.125, attention="saliency")
    with pytest.raises(ValueError, match="instance"):
        ResNetSeg(resnet18(width=0.125), 3, width=0.5)
    with pytest.raises(ValueError, match="conv"):
        HGResNetSeg("resnet18", 3, width=0.125, conv="gat")
    with pytest.raises(ValueError, match="channels"):
        build("resunet", hg=True)(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="num_classes"):
        ResNetSeg("resnet18", 0, width=0.125)
