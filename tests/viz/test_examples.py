"""The examples run (small sizes), write real figures and report true facts."""
from __future__ import annotations

import os
import runpy
import subprocess
import sys

import pytest
import torch
from _viz_helpers import EXAMPLES, REPO_ROOT, assert_real_png
from torch_geometric.loader import DataLoader

from pyg_hgconv import viz
from pyg_hgconv.datasets import has_dataset
from pyg_hgconv.transforms import ToGroupGraph

NAMES = ("hgconv_layer", "group_graph_networkx", "active_focus_roads", "tvconv_face",
         "mnist_group_graphs")


def example_main(name: str):
    return runpy.run_path(str(EXAMPLES / f"{name}.py"))["main"]


@pytest.fixture(autouse=True)
def headless(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.mark.parametrize("name", NAMES)
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example_main(name)(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert f"examples/{name}.py" in text and "--out" in text and "--data-root" in text


def test_hgconv_layer(tmp_path):
    result = example_main("hgconv_layer")(
        ["--size", "40,56", "--dpi", "60", "--out", str(tmp_path)])
    assert result["grid_error"] < 1e-5  # HGConv on the grid graph == Conv2d
    graph = result["graph"]
    assert 0 < graph.num_nodes <= round(40 * 56 / 64)
    assert [p.name for p in result["files"]] == ["hgconv_layer.png", "hgconv_layer_graph.png"]
    for path in result["files"]:
        assert_real_png(path, (300, 150))


def test_hgconv_layer_falls_back_to_generated_data(tmp_path, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    result = example_main("hgconv_layer")(["--size", "32,32", "--data-root", str(empty),
                                           "--dpi", "40", "--out", str(tmp_path / "out")])
    assert result["source"].startswith("generated")
    assert "CamVid not found" in capsys.readouterr().out
    assert_real_png(result["files"][0], (300, 80))


def test_group_graph_networkx(tmp_path):
    result = example_main("group_graph_networkx")(
        ["--size", "40,56", "--ratio", "0.03", "--dpi", "60", "--out", str(tmp_path)])
    graph, nx_graph, facts = result["graph"], result["networkx"], result["facts"]
    assert nx_graph.number_of_nodes() == facts["groups"] == graph.num_nodes
    assert facts["directed edges (no self loops)"] + facts["self loops"] == graph.num_edges
    assert facts["self loops"] == graph.num_nodes
    counts = torch.bincount(graph.edge_type, minlength=9)
    for t, name in enumerate(viz.DIRECTION_NAMES):
        if t != 4:
            assert facts["per_direction"].get(name, 0) == counts[t]
    # every edge u -> v of type t has its reverse v -> u of type 8 - t (Eq. 7 and the
    # strongest-direction rule commute with transposition), so both counts are symmetric
    assert facts["edges with the opposite reverse edge"] == 1.0
    assert torch.equal(counts, counts.flip(0))
    assert facts["neighbour pairs"] * 2 == facts["directed edges (no self loops)"]
    assert sum(facts["degrees"]) == facts["directed edges (no self loops)"]
    names = [p.name for p in result["files"]]
    assert names == ["group_graph_networkx.png", "group_graph_networkx_panels.png",
                     "group_graph_networkx_adjacency.png"]
    for path in result["files"]:
        assert_real_png(path, (300, 100))


def test_active_focus_roads(tmp_path, capsys):
    result = example_main("active_focus_roads")(
        ["--size", "64", "--train-tiles", "3", "--dpi", "60", "--out", str(tmp_path)])
    fractions = result["fractions"]
    road_share = float(result["road"].float().mean())
    # attention from the road mask moves the centres onto the roads
    assert fractions["focus: road mask"] > max(fractions["no focus"], road_share) + 0.2
    assert "centres on road" in capsys.readouterr().out
    assert result["graph"].num_graphs == 3
    assert_real_png(result["files"][0], (400, 300))


def test_tvconv_face(tmp_path):
    result = example_main("tvconv_face")(
        ["--size", "32", "--steps", "1", "--batch-size", "4", "--max-layers", "3",
         "--dpi", "60", "--out", str(tmp_path)])
    assert result["moved"] > 0  # one SGD step moves the affinity maps away from 1
    assert result["files"][0].name == "tvconv_face_affinity.png"
    assert_real_png(result["files"][0], (200, 200))


@pytest.mark.skipif(not has_dataset("mnist"), reason="MNIST IDX files not in the data root")
def test_mnist_group_graphs(tmp_path):
    result = example_main("mnist_group_graphs")(
        ["--limit", "120", "--epochs", "1", "--dpi", "60", "--out", str(tmp_path)])
    train, test, model = result["train"], result["test"], result["model"]
    assert len(train) == len(test) == 120
    # the cached graphs are the transform's graphs of the stored digits
    digit = test[3]
    fresh = ToGroupGraph(num_groups=75)(digit.img[0])
    assert torch.equal(fresh.edge_index, digit.edge_index)
    assert torch.equal(fresh.edge_type, digit.edge_type)
    torch.testing.assert_close(fresh.x, digit.x)
    # the accuracy of the collated batches is the accuracy of the digits one by one
    model.eval()
    with torch.no_grad():
        one_by_one = [int(model(batch).argmax()) for batch in DataLoader(test, batch_size=1)]
    labels = [int(test[i].y) for i in range(len(test))]
    correct = sum(p == y for p, y in zip(one_by_one, labels, strict=True))
    assert result["accuracy"] == pytest.approx(correct / len(test))
    graph_nx = result["networkx"]
    assert graph_nx.number_of_nodes() == test[0].num_nodes == 75
    assert graph_nx.number_of_edges() == test[0].num_edges
    assert result["files"][0].name == "mnist_group_graphs.png"
    assert_real_png(result["files"][0], (200, 200))


def test_runs_as_a_script_from_another_folder(tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # the script finds the repository by itself
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "hgconv_layer.py"), "--size", "24,32", "--dpi", "40",
         "--out", "figures"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120)
    assert done.returncode == 0, done.stderr
    assert "max |HGConv - Conv2d|" in done.stdout
    assert_real_png(tmp_path / "figures" / "hgconv_layer.png", (300, 80))
    assert not (REPO_ROOT / "figures").exists()
