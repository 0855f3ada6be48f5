"""Affinity-map plots (paper Fig. 6) and the layer listing."""
from __future__ import annotations

import matplotlib.image
import pytest
import torch
from torch import nn

from tvconv import TVConv, tvconv_layers
from tvconv.viz import plot_affinity_maps


def model() -> nn.Sequential:
    torch.manual_seed(0)
    first = TVConv(2, size=(8, 8), hidden_channels=4, hidden_layers=0)
    second = TVConv(2, stride=2, size=(4, 4), affinity_channels=2, hidden_channels=4,
                    hidden_layers=0)
    with torch.no_grad():
        second.affinity_maps.normal_()
    return nn.Sequential(first, nn.ReLU(), nn.Sequential(second))


def test_tvconv_layers_lists_names_in_order():
    net = model()
    assert [name for name, _ in tvconv_layers(net)] == ["0", "2.0"]
    assert tvconv_layers(net[0]) == [("", net[0])]
    assert tvconv_layers(nn.Linear(2, 2)) == []
    with pytest.raises(TypeError, match="model"):
        tvconv_layers([net[0]])


def test_plot_writes_a_png_grid(tmp_path):
    net = model()
    path = plot_affinity_maps(net, tmp_path / "figs" / "affinity.png", title="test")
    assert path == tmp_path / "figs" / "affinity.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    # 2 layers -> 2 columns, max(4, 2) affinity channels -> 4 rows: taller than wide
    assert image.shape[0] > image.shape[1] > 100
    assert not list(path.parent.glob("*.png.*")) and len(list(path.parent.iterdir())) == 1
    # layers or (name, layer) pairs work too; max_layers subsamples
    pairs = plot_affinity_maps(tvconv_layers(net), tmp_path / "pairs.png", max_layers=1)
    single = plot_affinity_maps([net[0]], tmp_path / "single.png")
    assert pairs.exists() and single.exists()


def test_plot_errors(tmp_path):
    with pytest.raises(ValueError, match="no TVConv"):
        plot_affinity_maps(nn.Linear(2, 2), tmp_path / "x.png")
    with pytest.raises(TypeError, match="TVConv"):
        plot_affinity_maps([nn.Linear(2, 2)], tmp_path / "x.png")
    with pytest.raises(ValueError, match="png"):
        plot_affinity_maps(model(), tmp_path / "x.jpg")
    with pytest.raises(ValueError, match="max_layers"):
        plot_affinity_maps(model(), tmp_path / "x.png", max_layers=0)
    assert not list(tmp_path.iterdir())
