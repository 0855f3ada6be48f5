"""Grid -> HG conversion: the same parameters, the grid stage on the pixel grid."""
import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from pyg_hgconv import grid_graph
from pyg_hgconv.nn.models import (
    HGResidualStage,
    HGResNetSeg,
    HGResUNet,
    HGUpBlock,
    ResNetSeg,
    ResUNet,
    hg_from_grid,
    resnet_stage,
)
from tests.helpers.models import build, structured_batch

# where the blocks of grid stage 4 (and of the first decoder level) live in the HG model
GRID_TO_HG = {
    ResNetSeg: {"backbone.layer4.": "stage4.stage.blocks."},
    ResUNet: {"backbone.layer4.": "encoder_hg.stage.blocks.",
              "decoder.0.block.": "decoder.0.hg.stage.blocks.0."},
}
# what an HG model adds: fusion convs and the clustering embedding / scales
HG_ONLY = {ResNetSeg: ("stage4.fuse.", "stage4.stage.pool."),
           ResUNet: ("encoder_hg.fuse.", "encoder_hg.stage.pool.", "decoder.0.hg.fuse.")}


def _graph_block_entry(name, value):
    """Grid block entry ``name`` (e.g. ``bn1.weight``) -> (graph block entry, value)."""
    layer, leaf = name.rsplit(".", 1)
    if layer.startswith("bn") or layer == "downsample.1":  # BatchNorm2d -> PyG BatchNorm
        return f"{layer}.module.{leaf}", value
    if value.shape[-1] == 3:  # 3x3 conv -> HGConv weight [9, in, out]
        return f"{layer}.layer.weight", value.flatten(2).permute(2, 1, 0)
    return f"{layer}.weight", value.flatten(1)  # 1x1 conv -> Linear [out, in]


def _hg_entry(key, value, prefixes):
    """The HG state entry of grid entry ``key`` and the grid value transformed to it."""
    for grid_prefix, hg_prefix in prefixes.items():
        if key.startswith(grid_prefix):
            rest = key[len(grid_prefix):]
            if not hg_prefix.endswith(".0."):  # a stage: keep the block index
                index, rest = rest.split(".", 1)
                hg_prefix = f"{hg_prefix}{index}."
            name, value = _graph_block_entry(rest, value)
            return hg_prefix + name, value
    return key, value


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
@pytest.mark.parametrize("grid_cls", [ResNetSeg, ResUNet])
def test_hg_model_has_the_grid_parameters_plus_fusion_and_clustering(grid_cls, backbone):
    torch.manual_seed(0)
    grid = grid_cls(backbone, 4, width=0.125, aux=True)
    for m in grid.modules():  # non-trivial BN statistics must be carried over too
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
    before = copy.deepcopy(grid.state_dict())
    hg = hg_from_grid(grid)
    assert isinstance(hg, {ResNetSeg: HGResNetSeg, ResUNet: HGResUNet}[grid_cls])
    hg_state = hg.state_dict()
    used = set()
    for key, value in grid.state_dict().items():
        hg_key, expected = _hg_entry(key, value, GRID_TO_HG[grid_cls])
        assert hg_key in hg_state, f"{key} -> {hg_key} missing"
        torch.testing.assert_close(hg_state[hg_key], expected, rtol=0, atol=0, msg=key)
        used.add(hg_key)
    extra = sorted(set(hg_state) - used)
    assert extra and all(k.startswith(HG_ONLY[grid_cls]) for k in extra), extra
    # parameter sizes: the grid model's plus the fusion conv(s) and the clustering
    grid_params = sum(p.numel() for p in grid.parameters())
    extra_params = sum(p.numel() for n, p in hg.named_parameters()
                       if n.startswith(HG_ONLY[grid_cls]))
    assert sum(p.numel() for p in hg.parameters()) == grid_params + extra_params
    # the grid model is left untouched
    for key, value in grid.state_dict().items():
        torch.testing.assert_close(value, before[key], rtol=0, atol=0)


@settings(max_examples=12, deadline=None)
@given(block=st.sampled_from(["basic", "bottleneck"]), in_channels=st.integers(1, 6),
       planes=st.integers(1, 4), num_blocks=st.integers(1, 2), batch=st.integers(1, 2),
       height=st.integers(1, 6), width=st.integers(1, 6), train=st.booleans())
def test_converted_stage_is_the_grid_stage_on_the_pixel_grid(block, in_channels, planes,
                                                             num_blocks, batch, height, width,
                                                             train):
    torch.manual_seed(0)
    stage = resnet_stage(block, in_channels, planes, num_blocks).double()
    for m in stage.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    hg = HGResidualStage.from_grid(stage)
    assert next(hg.parameters()).dtype == torch.float64
    stage.train(train)
    hg.train(train)
    x = torch.randn(batch, in_channels, height, width, dtype=torch.float64)
    if train and batch * height * width == 1:
        return  # BatchNorm2d cannot train on a single value
    graph = grid_graph(height, width, batch_size=batch)
    torch.testing.assert_close(hg(x, graph=graph), stage(x), atol=1e-10, rtol=0)


def test_conversion_drops_stride_and_dilation():
    torch.manual_seed(0)
    strided = resnet_stage("basic", 4, 8, 2, stride=2, dilation=2, first_dilation=1).double()
    plain = resnet_stage("basic", 4, 8, 2).double()
    plain.load_state_dict(strided.state_dict())
    hg = HGResidualStage.from_grid(strided).eval()
    x = torch.randn(1, 4, 5, 6, dtype=torch.float64)
    torch.testing.assert_close(hg(x, graph=grid_graph(5, 6)), plain.eval()(x), atol=1e-10, rtol=0)


def test_converted_model_runs_the_grid_head_and_keeps_mode_dtype():
    grid = build("resnet_seg", hg=False).double().eval()
    hg = hg_from_grid(grid, ratio=1 / 4)
    assert not hg.training and next(hg.parameters()).dtype == torch.float64
    x = structured_batch(1, height=48, width=48).double()
    assert hg(x).out.dtype == torch.float64
    # the fusion conv starts as a pass-through of the HG output
    w = hg.stage4.fuse[0].weight[:, :, 0, 0]
    c3 = hg.backbone.channels[3]
    assert torch.equal(w[:, :c3], torch.zeros_like(w[:, :c3]))
    assert torch.equal(w[:, c3:], torch.eye(w.size(0), dtype=w.dtype))
    # another graph conv: BN and 1x1 layers transferred, the 3x3 slot keeps its own init
    gcn = hg_from_grid(grid, conv="gcn", ratio=1 / 4)
    assert gcn.conv_name == "gcn"
    torch.testing.assert_close(gcn.stage4.stage.blocks[0].bn1.module.running_var,
                               grid.backbone.layer4[0].bn1.running_var)
    with pytest.raises(TypeError, match="no HG counterpart"):
        hg_from_grid(nn.Conv2d(1, 1, 1))


def test_decoder_reuses_the_encoder_assignment():
    model = build("resunet", hg=True, num_classes=1, attention="object").eval()
    decoder_stage = model.decoder[0].hg.stage
    assert decoder_stage.pool is None  # no clustering of its own
    seen = {}

    def capture(module, args, kwargs, output):
        seen["graph_in"] = kwargs["graph"]
        seen["graph_out"] = output[1]

    handle = decoder_stage.register_forward_hook(capture, with_kwargs=True)
    x = structured_batch(2, height=64, width=64)
    out = model(x)
    handle.remove()
    encoder_graph = out.graphs[0]
    assert seen["graph_in"] is encoder_graph and seen["graph_out"] is encoder_graph
    assert seen["graph_in"].assign_index is encoder_graph.assign_index
    # the decoder's input map is pooled with the encoder's groups
    assert model.decoder[0].hg.stage.in_channels == (model.backbone.channels[4]
                                                     + model.backbone.channels[3])
    with pytest.raises(ValueError, match="cluster=False"):
        decoder_stage(torch.randn(1, decoder_stage.in_channels, 8, 8))
    with pytest.raises(ValueError, match="cluster=False"):
        HGUpBlock(model.encoder_hg)
