"""Whole-model FLOP counts: consistency with the parts and with tvconv, HG savings."""

import pytest
import torch

from pyg_hgconv import conv_names
from pyg_hgconv.nn.conv.registry import GraphConvStep
from pyg_hgconv.nn.models import HGResNetSeg, ResNetSeg, coarse_attention, hg_from_grid
from pyg_hgconv.profile.counter import average_flops, conv_flops, count_flops
from tests.helpers.models import build, structured_batch
from tvconv import count_macs


@pytest.mark.parametrize("family", ["resnet_seg", "resunet"])
def test_grid_models_count_like_tvconv(family):
    model = build(family, hg=False, aux=True)
    x = torch.zeros(1, 3, 40, 52)
    count = count_flops(model, x)
    assert count.total == count_macs(model, tuple(x.shape))
    assert count.components["graph_conv"] == count.components["clustering"] == 0
    assert count.total == sum(count.components.values()) == sum(count.modules.values())


@pytest.mark.parametrize("family", ["resnet_seg", "resunet"])
def test_hg_model_count_is_the_sum_of_its_parts(family):
    model = build(family, hg=True, attention="uncertainty").eval()
    x = structured_batch(2, height=64, width=64)
    whole = count_flops(model, x)
    assert whole.total == sum(whole.components.values()) == sum(whole.modules.values())
    # run the parts one by one on the intermediate maps (eval sampling is seeded)
    with torch.no_grad():
        features = model.backbone(x)
        aux = model.aux_head(features.stage3)
        attention = coarse_attention(aux, "uncertainty")
        hg_module = model.stage4 if family == "resnet_seg" else model.encoder_hg
        fused, graph = hg_module(features.stage3, attention)
    parts = [count_flops(model.backbone, x), count_flops(model.aux_head, features.stage3),
             count_flops(hg_module, (features.stage3, attention))]
    if family == "resnet_seg":
        parts.append(count_flops(model.head, fused))
    else:
        skips = (features.stage3, features.stage2, features.stage1, features.stem)
        d = fused
        parts.append(count_flops(model.decoder[0], (d, skips[0], graph)))
        with torch.no_grad():
            d = model.decoder[0](d, skips[0], graph)
        for block, skip in zip(model.decoder[1:], skips[1:], strict=True):
            parts.append(count_flops(block, (d, skip)))
            with torch.no_grad():
                d = block(d, skip)
        parts.append(count_flops(model.classifier, d))
    assert whole.total == sum(p.total for p in parts)
    assert whole.components["clustering"] > 0 and whole.components["graph_conv"] > 0


def test_hg_stage4_costs_less_than_the_grid_stage4_at_1_64():
    torch.manual_seed(0)
    grid = ResNetSeg("resnet18", 5, width=0.25)
    hg = hg_from_grid(grid)  # default ratio 1/64
    x = structured_batch(1, height=128, width=128)
    grid_count, hg_count = count_flops(grid, x), count_flops(hg, x)
    grid_stage4 = grid_count.under("backbone.layer4")
    hg_stage4 = hg_count.under("stage4")  # clustering, graph blocks, unpooling and fusion
    assert 0 < hg_stage4 < grid_stage4 / 4
    assert hg_count.total < grid_count.total
    # everything else is the same network
    assert (grid_count.total - grid_stage4) == (hg_count.total - hg_stage4)
    assert hg_count.under("stage4.stage.pool") == hg_count.components["clustering"] - sum(
        v for k, v in hg_count.modules.items() if k.endswith("[unpool]"))


@pytest.mark.parametrize("conv", conv_names("graph"))
def test_graph_conv_component_reads_the_actual_graphs(conv):
    model = build("resnet_seg", hg=True, conv=conv).eval()
    x = structured_batch(2, height=48, width=48)
    count = count_flops(model, x)
    graph = model(x).graphs[0]
    steps = [m for m in model.modules() if isinstance(m, GraphConvStep)]
    expected = sum(conv_flops(conv, step, graph) for step in steps)
    if conv in ("gmm", "spline"):
        expected += 2 * graph.edge_index.size(1)  # pseudo-coordinates, once
    assert count.components["graph_conv"] == expected


def test_average_over_images_and_elementwise_switch():
    model = build("resnet_seg", hg=True).eval()
    batches = [structured_batch(2, height=48, width=48, seed=s) for s in range(2)]
    avg = average_flops(model, batches, progress=False)
    assert avg.num_images == 4 and len(avg.image_totals) == 4
    assert avg.total == sum(avg.image_totals)
    assert avg.per_image == pytest.approx(sum(avg.image_totals) / 4)
    assert avg.per_image_std >= 0
    plain = count_flops(model, batches[0], elementwise=False)
    assert plain.components["elementwise"] == 0
    assert plain.total < count_flops(model, batches[0]).total
    assert isinstance(model, HGResNetSeg) and model.training is False
