"""The irregular-convolution benchmark (``python -m benchmarks.irregular_conv``):
a ``--quick`` run gives every row with every field, hand-checkable figures, the
Markdown report and the PNGs; re-runs resume; missing backends give error records."""
import contextlib
import io
import json
import shutil

import pytest
import torch

from benchmarks.irregular_conv import command, operator, task
from benchmarks.irregular_conv.command import main
from benchmarks.irregular_conv.features import FeatureExtractor, image_source, load_images
from benchmarks.irregular_conv.operator import (
    GRAPH_CONVS,
    GRID_CONVS,
    measure_operator,
    missing_backend,
    operator_cells,
)
from benchmarks.irregular_conv.schedules import SCHEDULES
from benchmarks.irregular_conv.task import task_cells
from pyg_hgconv.datasets import data_root, has_dataset
from pyg_hgconv.nn.pool.image_to_group_graph import EDGE_THRESHOLD

QUICK = SCHEDULES["quick"]
ALL_CONVS = (*GRAPH_CONVS, *GRID_CONVS)
TIMING = ("fwd_ms", "fwdbwd_ms", "fwd_peak_mib", "fwdbwd_peak_mib", "params", "flops", "mflops")
MODULE = ("module_fwd_ms", "module_fwdbwd_ms", "module_fwd_peak_mib", "module_fwdbwd_peak_mib",
          "module_params", "module_flops", "module_flops_components", "groups", "edges")
CLUSTERING = ("clustering_fwd_ms", "clustering_fwdbwd_ms", "clustering_fwdbwd_peak_mib",
              "clustering_flops", "clustering_flops_steps", "module_vs_dense_fwd")
TASK = ("miou", "pixel_accuracy", "gflops_per_image", "params", "train_time_s", "dataset")
PNGS = ("operator_fwd_time_vs_size.png", "operator_fwdbwd_time_vs_size.png",
        "operator_module_time_vs_size.png", "operator_time_vs_groups.png",
        "task_miou_vs_gflops.png", "task_miou_per_seed.png")


def _run(argv):
    """Run the command in-process; returns its stdout (torch's thread count is restored)."""
    threads = torch.get_num_threads()
    buffer = io.StringIO()
    try:
        with contextlib.redirect_stdout(buffer):
            assert main(argv) == 0
    finally:
        torch.set_num_threads(threads)
    return buffer.getvalue()


def _key(record):
    return tuple(record[k] for k in command.KEY_FIELDS)


def _args(*argv):
    return command.build_parser().parse_args(list(argv))


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("irregular_quick")
    stdout = _run(["--quick", "--threads", "1", "--no-progress", "--out", str(out)])
    data = json.loads((out / "results.json").read_text())
    return out, data, stdout


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--quick", "--full", "--data-root", "--out", "--part", "--edge-threshold",
                   "--direction-rule", "--spline-impl", "--threads", "--seed", "--fresh",
                   "--no-progress", "results.json"):
        assert option in text


def test_bad_edge_threshold_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--quick", "--edge-threshold", "-1"])
    assert exc.value.code == 2 and "--edge-threshold" in capsys.readouterr().err


def test_quick_run_has_every_row_and_field(quick_run):
    _, data, _ = quick_run
    records = data["records"]
    expected = ({_key(c) for c in operator_cells(QUICK)}
                | {_key(c) for c in task_cells(_args("--quick"))})
    assert {_key(r) for r in records} == expected and len(records) == len(expected)
    # 2 seeds x (w/o transfer: grid + 3 graph convs; w/ transfer: grid + 3 graph convs)
    assert len(records) == 3 * 3 + 3 * 3 * 5 + 2 * (4 + 4)
    for r in records:
        assert r["part"] in ("operator", "task") and r["conv"] in ALL_CONVS
        assert r["status"] in ("ok", "error")
        # a cell fails exactly when its conv's compiled backend is missing, and says so
        backend = missing_backend(r["conv"])
        assert (r["status"] == "error") == (backend is not None), r
        if r["status"] == "error":
            assert backend in r["error"]
            continue
        if r["part"] == "task":
            assert all(r[f] is not None for f in TASK), r
            assert 0 <= r["miou"] <= 1 and 0 <= r["pixel_accuracy"] <= 1
            assert r["gflops_per_image"] > 0
            continue
        assert all(r[f] is not None and r[f] >= 0 for f in TIMING), r
        assert r["fwd_ms"] > 0 and r["fwdbwd_ms"] > 0 and r["params"] > 0
        if r["kind"] == "graph":
            assert all(f in r for f in MODULE), r
            assert r["module_flops"] > r["flops"] and r["groups"] >= 1
            assert r["groups"] <= max(1, round(r["ratio"] * r["pixels"]))
            assert r["conv_edges"] >= r["groups"]  # every group has a self loop / itself
            assert all(f in r for f in CLUSTERING) == (r["conv"] == "hgconv"), r
            if r["conv"] == "hgconv":  # the module beside the dense conv, interleaved
                assert r["module_vs_dense_fwd"] == pytest.approx(
                    r["beside_module_fwd_ms"] / r["beside_dense_fwd_ms"])
                assert min(r["beside_calls"].values()) >= 1
    assert data["config"]["schedule"] == "quick"
    assert data["config"]["operator"]["channels"] == QUICK.channels


def test_configuration_and_environment_are_recorded(quick_run):
    _, data, _ = quick_run
    config, env = data["config"], data["environment"]
    assert (config["seed"], config["threads"]) == (0, 1)
    assert config["operator"]["images"]["dataset"] in ("camvid", "heterogeneous_scenes")
    assert config["operator"]["images"]["split"] in ("val", "generated")
    assert config["task"]["task"] == "segmentation" and "split" in config["task"]
    assert config["task"]["schedule"]["input_size"]
    # DynamicEdgeConv's k-NN needs torch_cluster; the fused SplineConv needs no compiled kernel
    assert config["backends"] == {"torch_cluster": True}
    assert config["edge_threshold"] == pytest.approx(EDGE_THRESHOLD)
    assert config["spline_impl"] == "fused" and config["direction_rule"] in ("paper", "length",
                                                                              "centroid")
    assert config["task"]["seeds"] == [0, 1]
    for package in ("torch", "torch_geometric", "python", "numpy"):
        assert env[package]
    assert env["threads"] == 1


def test_report_tables_and_plots_are_written(quick_run):
    out, _, stdout = quick_run
    text = (out / "results.md").read_text()
    for title in ("Convolutions compared: size settings", "Operator benchmark: every cell",
                  "Clustering alone", "Task: Table 3", "Task: every model",
                  "Task, w/ transfer: every pair of models", "Task: every training run"):
        assert f"## {title}" in text and f"## {title}" in stdout
    assert "## Configuration" in text and "## Environment" in text
    assert "comparable with the paper" in text and "ignore the adjacency weights" in text
    assert "'~' not resolved" in text
    assert "timed side by side, interleaved; target <= 0.5x" in text
    for png in PNGS:
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in text


def _records(data, part="operator"):
    return [r for r in data["records"] if r["part"] == part and r["status"] == "ok"]


def test_grid_figures_match_hand_counts(quick_run):
    _, data, _ = quick_run
    c = QUICK.channels
    for r in _records(data):
        hw = r["height"] * r["width"]
        if r["conv"] == "conv2d":  # 3x3 dense conv with bias: 9 C^2 + C weights, 1 MAC = 1 FLOP
            assert r["params"] == 9 * c * c + c
            assert r["flops"] == hw * c * (9 * c + 1)
        elif r["conv"] == "depthwise":
            assert r["params"] == 9 * c + c and r["flops"] == hw * c * (9 + 1)
        elif r["conv"] == "tvconv":  # cached: 9 MACs per output element, no bias
            assert r["flops"] == hw * c * 9 and r["params_inference"] == 9 * c * hw
            assert r["mflops_with_generator"] * 1e6 > r["flops"]


def test_graph_figures_match_hand_counts_on_the_same_graphs(quick_run):
    _, data, _ = quick_run
    c = QUICK.channels
    by_cell = {}
    for r in _records(data):
        if r["kind"] == "graph":
            by_cell.setdefault(r["cell"], {})[r["conv"]] = r
    assert len(by_cell) == len(QUICK.sizes) * len(QUICK.ratio_denominators)
    for convs in by_cell.values():
        # all graph convs of a size and ratio run on the very same group graphs
        assert len({(r["groups"], r["edges"]) for r in convs.values()}) == 1
        hg, gcn, gmm = convs["hgconv"], convs["gcn"], convs["gmm"]
        n, e = hg["groups"] * QUICK.batch, hg["edges"] * QUICK.batch  # quick: one image
        assert hg["params"] == 9 * c * c + c and gcn["params"] == c * c + c
        assert gmm["params"] == 8 * c * c + c * c + c + 2 * 8 * 2  # g, root, bias, mu, sigma
        assert hg["flops"] == n * c * 9 * c + e * c + e + n * c  # pyg_hgconv.profile.counter rules
        assert gcn["flops"] == n * c * c + (n + 2 * e) + e * c + n * c
        # the module counts the same conv on the same graph (+ GMM's pseudo-coordinates)
        assert hg["module_flops_components"]["graph_conv"] == hg["flops"]
        assert gmm["module_flops_components"]["graph_conv"] == gmm["flops"] + 2 * e
        assert hg["clustering_flops"] <= hg["module_flops_components"]["clustering"]


def test_rerun_resumes_every_cell(quick_run, tmp_path, monkeypatch):
    source, data, _ = quick_run
    out = tmp_path / "copy"
    shutil.copytree(source, out)

    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was measured again")

    monkeypatch.setattr(command, "measure_operator", refuse)
    monkeypatch.setattr(task, "measure_task", refuse)
    _run(["--quick", "--threads", "1", "--no-progress", "--out", str(out)])
    again = json.loads((out / "results.json").read_text())
    assert again["records"] == data["records"]


def test_interrupted_run_keeps_finished_cells_and_resumes(tmp_path, monkeypatch):
    calls = []

    def interrupt_at_fourth(cell, *args, **kwargs):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(cell["cell"])
        return measure_operator(cell, *args, **kwargs)

    argv = ["--quick", "--threads", "1", "--no-progress", "--part", "operator",
            "--out", str(tmp_path)]
    monkeypatch.setattr(command, "measure_operator", interrupt_at_fourth)
    with pytest.raises(KeyboardInterrupt):
        _run(argv)
    partial = json.loads((tmp_path / "results.json").read_text())  # complete, valid JSON
    assert len(partial["records"]) == 3
    assert not list(tmp_path.glob(".*.tmp"))
    monkeypatch.setattr(command, "measure_operator", measure_operator)
    _run(argv)
    done = json.loads((tmp_path / "results.json").read_text())
    assert len(done["records"]) == len(operator_cells(QUICK))
    assert done["records"][:3] == partial["records"]


def test_missing_backend_gives_an_error_record_not_a_crash(monkeypatch):
    monkeypatch.setattr(operator, "BACKENDS", {"gcn": "no_such_backend_xyz"})
    cell = next(c for c in operator_cells(QUICK) if c["conv"] == "gcn")
    record = measure_operator(cell, image_source(data_root()), QUICK, _args("--quick"))
    assert record["status"] == "error" and "no_such_backend_xyz" in record["error"]
    task_cell = next(c for c in task_cells(_args("--quick")) if c["conv"] == "gcn")
    record = task.measure_task(task_cell, None, None, None)  # never reaches training
    assert record["status"] == "error" and "no_such_backend_xyz" in record["error"]


def test_fallback_images_and_fixed_extractor(tmp_path):
    source = image_source(tmp_path)  # no camvid/ here
    assert source["fallback"] and source["dataset"] == "heterogeneous_scenes"
    assert "no CamVid" in source["note"]
    images = load_images(source, 2, (32, 40))
    assert images.shape == (2, 3, 32, 40)
    torch.testing.assert_close(images, load_images(source, 2, (32, 40)))
    extractor = FeatureExtractor(16, seed=0)
    features = extractor(images)
    assert features.shape == (2, 16, 4, 5) and torch.isfinite(features).all()
    torch.testing.assert_close(features, FeatureExtractor(16, seed=0)(images))  # fixed
    if has_dataset("camvid", data_root()):
        assert not image_source(data_root())["fallback"]


def test_task_cells_follow_table_3_and_every_model_trains_with_every_seed():
    cells = task_cells(_args())
    for protocol, convs in (("scratch", {"hgconv", "gcn", "dynamic_edge", "conv2d"}),
                            ("transfer", {"hgconv", "gmm", "spline", "conv2d"})):
        mine = [c for c in cells if c["protocol"] == protocol]
        assert {c["conv"] for c in mine} == convs
        for conv in convs:
            assert sorted(c["seed"] for c in mine if c["conv"] == conv) == [0, 1, 2, 3, 4]
    # the transfer block comes after the grid model it starts from
    first_transfer = next(i for i, c in enumerate(cells) if c["protocol"] == "transfer")
    assert all(c["protocol"] == "scratch" for c in cells[:first_transfer])
    full = task_cells(_args("--full"))
    assert {c["conv"] for c in full if c["protocol"] == "transfer"} == {*GRAPH_CONVS, "conv2d"}
    assert task_cells(_args("--seed", "5"))[0]["seed"] == 5


def test_transfer_models_start_from_the_grid_model_of_their_seed(quick_run):
    out, _data, _ = quick_run
    from benchmarks.common.dense_prediction import load_task_data

    args = _args("--quick", "--out", str(out))
    sched = task.task_schedule("quick")
    runs_dir = next((out / "runs").iterdir())  # runs/<fingerprint of the protocol>
    data_ = load_task_data(task.TASK, args.data_root, sched)
    cell = {"part": "task", "conv": "hgconv", "cell": "hg-resnet18", "kind": "graph",
            "protocol": "transfer", "seed": 1, "model": "HG-ResNet18 (hgconv)"}
    grid = task.pretrained_grid(1, args, sched, runs_dir, data_)
    hg = task.build_transfer_model(cell, args, sched, runs_dir, data_)
    # stages 1-3 and the heads are the trained grid model's
    for name, value in grid.backbone.state_dict().items():
        if not name.startswith("layer4"):
            assert torch.equal(hg.backbone.state_dict()[name], value), name
    assert torch.equal(hg.head.state_dict()["0.weight"], grid.head.state_dict()["0.weight"])
    # HG-Conv's layers hold the stage-4 kernels (HGConv.from_conv2d's layout)
    conv = grid.backbone.layer4[0].conv1.weight
    layer = hg.stage4.stage.blocks[0].conv1.layer.weight
    torch.testing.assert_close(layer, conv.flatten(2).permute(2, 1, 0))
    # the seed's grid model was trained: it differs from a fresh initialisation
    fresh = task.build_grid_model(cell, sched, 1)
    assert not torch.equal(fresh.backbone.conv1.weight, grid.backbone.conv1.weight)


def test_findings_call_only_resolved_differences():
    from benchmarks.irregular_conv.comparison import ranking, versus

    def rec(model, seed, miou, conv="hgconv", cell="hg-resnet18"):
        return {"part": "task", "protocol": "scratch", "model": model, "seed": seed,
                "miou": miou, "status": "ok", "conv": conv, "cell": cell, "kind": "graph"}

    hg = "HG-ResNet18 (hgconv)"
    records = [rec(hg, s, v) for s, v in enumerate((0.40, 0.42, 0.41))]
    records += [rec("HG-ResNet18 (gcn)", s, v, "gcn") for s, v in enumerate((0.30, 0.31, 0.30))]
    records += [rec("HG-ResNet18 (gmm)", s, v, "gmm") for s, v in enumerate((0.45, 0.30, 0.40))]
    clear = versus(records, "scratch", hg, "HG-ResNet18 (gcn)")
    assert clear["resolved"] and clear["sign"] == 1 and clear["n"] == 3
    assert clear["family_size"] == 3 and clear["p_adjusted"] > clear["p"]  # the block's 3 pairs
    mirrored = versus(records, "scratch", "HG-ResNet18 (gcn)", hg)
    assert mirrored["sign"] == -1 and mirrored["mean"] == pytest.approx(-clear["mean"])
    assert mirrored["diffs"] == pytest.approx([-d for d in clear["diffs"]])
    assert mirrored["p_adjusted"] == clear["p_adjusted"]
    with pytest.raises(ValueError, match="'a' and 'b'"):
        versus(records, "transfer", hg, "HG-ResNet18 (gcn)")
    mixed = versus(records, "scratch", hg, "HG-ResNet18 (gmm)")
    assert not mixed["resolved"] and mixed["sign"] == 0  # the seeds disagree
    two = [r for r in records if r["conv"] != "gmm"]
    assert ranking(two, "scratch") == f"{hg} 41.0 ± 1.0 > HG-ResNet18 (gcn) 30.3 ± 0.6"
    assert ranking(records, "scratch").split(" ~ ")[1].startswith("HG-ResNet18 (gmm)")


def test_more_seeds_reuse_the_finished_runs(quick_run, tmp_path):
    source, data, _ = quick_run
    out = tmp_path / "more_seeds"
    shutil.copytree(source, out)
    runs_before = sorted(p.name for p in (out / "runs").iterdir())
    _run(["--quick", "--part", "task", "--seeds", "3", "--threads", "1", "--no-progress",
          "--out", str(out)])
    again = json.loads((out / "results.json").read_text())
    assert again["config"]["task"]["seeds"] == [0, 1, 2]
    assert again["config"]["task"]["schedule"]["seeds"] == 3
    before = {(r["protocol"], r["model"], r["seed"]): r for r in data["records"]
              if r["part"] == "task"}
    after = {(r["protocol"], r["model"], r["seed"]): r for r in again["records"]
             if r["part"] == "task"}
    assert set(after) == set(before) | {(p, m, 2) for p, m, _ in before}
    for key, record in before.items():  # loaded from the finished runs, not trained again
        assert after[key]["miou"] == record["miou"]
        assert after[key]["train_time_s"] == record["train_time_s"]
    assert sorted(p.name for p in (out / "runs").iterdir()) == runs_before


def test_runs_fingerprint_ignores_seeds_only():
    def fingerprint(*argv):
        args = _args(*argv)
        return task.runs_fingerprint(command.run_config(args, image_source(args.data_root)))

    default = fingerprint()
    assert fingerprint("--seeds", "9") == default
    assert fingerprint("--seed", "100") == default
    assert fingerprint("--edge-threshold", "0.1") != default
    assert fingerprint("--quick") != default
    assert task.seeds_of(_args("--seeds", "3", "--seed", "7")) == [7, 8, 9]
    with pytest.raises(SystemExit):
        _args("--seeds", "0")
