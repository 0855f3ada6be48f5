"""The TVConv benchmark command: --help, complete --quick outputs, resume, its pieces."""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from benchmarks.common.summary import mean_std, seed_summary
from benchmarks.common.timing import interleaved_times
from benchmarks.tvconv import command, drive, efficiency, faces
from benchmarks.tvconv.segmentation_net import SegmentationNet
from pyg_hgconv.datasets import has_dataset

needs_data = pytest.mark.skipif(not (has_dataset("orl_faces") and has_dataset("drive")),
                                reason="ORL faces / DRIVE not found under the data root")


def _run(study: str, out: Path) -> None:
    assert command.main(["--study", study, "--quick", "--out", str(out), "--no-progress"]) == 0


def _records(out: Path, study: str) -> list[dict]:
    data = json.loads((out / study / "results.json").read_text())
    assert data["config"]["study"] == study and data["config"]["schedule"] == "quick"
    return data["records"]


def _finite(value) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


@pytest.fixture(scope="module")
def quick_runs(tmp_path_factory):
    """One --quick run of every study into one output directory (shared by the tests)."""
    out = tmp_path_factory.mktemp("tvconv_quick")
    if has_dataset("orl_faces") and has_dataset("drive"):
        for study in command.STUDIES:
            _run(study, out)
    return out


# ----------------------------------------------------------------------------- command
def test_help_lists_studies_and_schedules(capsys):
    with pytest.raises(SystemExit) as exc:
        command.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in ("--study", "faces", "drive", "efficiency", "--quick", "--full", "--out",
                 "--data-root", "--no-progress", "python -m benchmarks.tvconv"):
        assert word in text


def test_study_is_required_and_checked(capsys):
    for argv in ([], ["--study", "nope"]):
        with pytest.raises(SystemExit) as exc:
            command.build_parser().parse_args(argv)
        assert exc.value.code == 2
    assert "--study" in capsys.readouterr().err


def test_schedules_are_ordered_and_complete():
    for module in (faces, drive, efficiency):
        assert set(module.SCHEDULES) == {"quick", "default", "full"}
    assert faces.SCHEDULES["default"].seeds >= 3
    assert set(faces.GOAL_WIDTHS) <= set(faces.SCHEDULES["default"].widths)
    assert 1.0 in faces.SCHEDULES["full"].widths and faces.SCHEDULES["full"].stem_stride == 1
    assert faces.SCHEDULES["default"].input_size == faces.SCHEDULES["full"].input_size == 96
    assert efficiency.REFERENCE_SHAPE in efficiency.SCHEDULES["default"].layer_shapes
    assert efficiency.SCHEDULES["default"].network_batches == (1, 2, 4, 8, 16)
    assert efficiency.SCHEDULES["default"].network_threads == (1, 2)
    assert efficiency.SCHEDULES["default"].layer_threads == (1, 2)


def test_efficiency_goal_rows_apply_every_threshold():
    def layer(ratio, fmt, threads):
        return {"part": "layer", "shape": [8, 12, 12, 2, 1], "format": fmt, "threads": threads,
                "cached_ratio": ratio}

    def network(fmt, threads, tv, dw1, dw05):
        return {"part": "network", "batch": efficiency.GOAL_BATCH, "format": fmt,
                "threads": threads, "tv_x0.5_fps": tv, "dw_x1.0_fps": dw1,
                "dw_x0.5_fps": dw05, "speedup": tv / dw1}

    records = [layer(1.4, "channels_last", 1), layer(1.45, "channels_last", 2),
               layer(1.2, "contiguous", 1), layer(1.6, "contiguous", 2),
               network("channels_last", 1, 240.0, 100.0, 250.0),
               network("contiguous", 2, 190.0, 100.0, 250.0)]
    rows = efficiency.goal_summary(records)
    layer_rows = {r["goal"]: r["holds"] for r in rows if r["goal"].startswith("cached")}
    assert layer_rows == {
        "cached TVConv <= 1.5x native depthwise (eager, channels_last, 1 layer, threads 1/2)": True,
        "cached TVConv <= 1.5x native depthwise (eager, contiguous, 1 layer, threads 1/2)": False}
    network_rows = [r["holds"] for r in rows if r["goal"].startswith("MobileNetV2")]
    assert network_rows == [True, False]  # 2.4x and 1.9x over x1.0-depthwise
    same_width = [r["holds"] for r in rows if r["goal"].startswith("x0.5-TVConv within")]
    assert same_width == [True, False]  # 250/240 = 1.04x and 250/190 = 1.32x slower
    best = next(r for r in rows if r["goal"].startswith("paper-style"))
    assert best["holds"]  # best x0.5-TVConv 240 img/s over best x1.0-depthwise 100: 2.4x
    records[4]["tv_x0.5_fps"] = 220.0  # 2.2x: below the paper's 2.3x
    best = next(r for r in efficiency.goal_summary(records) if r["goal"].startswith("paper"))
    assert not best["holds"]


def test_generator_flops_count_every_conv_three_times():
    from tvconv import TVConv

    layer = TVConv(8, 3, size=(5, 7), affinity_channels=2, hidden_channels=6, hidden_layers=1)
    # convs 2->6, 6->6 and 6->72 (8 channels x 9 taps), 3x3 each, at 5x7 output pixels
    macs = (2 * 6 + 6 * 6 + 6 * 72) * 9 * 5 * 7
    assert efficiency.generator_flops(layer, (5, 7)) == 3 * 2 * macs
    # at another size the convolutions scale with the pixels
    assert efficiency.generator_flops(layer, (10, 7)) == 2 * 3 * 2 * macs


def test_training_goal_row_is_called_on_the_operator_cell_only():
    def training(shape, ratio):
        return {"part": "training", "shape": list(shape), "format": "channels_last",
                "threads": 2, "tvconv_ratio": ratio, "generator_ratio": ratio * 0.9,
                "generator_share": 0.9, "generator_gflop_per_s": 300.0,
                "dense_gflop_per_s": 320.0, "apply_ratio": 3.0, "generator_gflops": 24.0,
                "native_ms": 0.5}

    records = [training(efficiency.TRAINING_SHAPE, 60.0),
               training(efficiency.REFERENCE_SHAPE, 10.0)]
    rows = [r for r in efficiency.goal_summary(records) if r["goal"].startswith("TVConv forward")]
    assert len(rows) == 1 and not rows[0]["holds"]  # 60x > the goal; the other shape has none
    assert "generator alone 54.00x (90% of the step, 300 GFLOP/s" in rows[0]["measured"]
    # 24 GFLOP at 320 GFLOP/s is 75 ms, 150 times native's 0.5 ms
    assert "its FLOPs at that conv's rate: 150.00x" in rows[0]["measured"]
    records[0]["tvconv_ratio"] = efficiency.TRAINING_GOAL
    rows = [r for r in efficiency.goal_summary(records) if r["goal"].startswith("TVConv forward")]
    assert rows[0]["holds"]


# --------------------------------------------------------------------------- outputs
@needs_data
def test_faces_quick_output_is_complete(quick_runs):
    records = _records(quick_runs, "faces")
    schedule = faces.SCHEDULES["quick"]
    keys = {(r["conv"], r["width"], r["seed"]) for r in records}
    assert keys == {(c, w, s) for c in faces.CONVS for w in schedule.widths
                    for s in range(schedule.seeds)}
    for r in records:
        for field in (*faces.METRICS, "train_loss", "train_time_s", "macs_m", "params_m",
                      "params_cached_m"):
            assert _finite(r[field]), field
        for field in faces.METRICS:
            assert 0.0 <= r[field] <= 1.0
        assert r["verif_pairs"] == 240  # all 120 genuine + 120 impostor held-out pairs
        assert r["epochs"] == schedule.epochs
    by_conv = {r["conv"]: r for r in records}  # same MACs, more parameters while training
    assert by_conv["tvconv"]["macs_m"] == pytest.approx(by_conv["depthwise"]["macs_m"])
    assert by_conv["tvconv"]["params_m"] > by_conv["tvconv"]["params_cached_m"]
    report = (quick_runs / "faces" / "results.md").read_text()
    assert "ORL accuracy" in report and "TVConv minus depthwise" in report
    for png in ("faces_identification.png", "faces_verification.png",
                "faces_accuracy_macs.png", "affinity_maps_x0.1.png"):
        assert (quick_runs / "faces" / png).read_bytes()[:4] == b"\x89PNG"
        assert png in report


@needs_data
def test_drive_quick_output_is_complete(quick_runs):
    records = _records(quick_runs, "drive")
    assert {(r["conv"], r["seed"]) for r in records} == {(c, 0) for c in drive.CONVS}
    for r in records:
        for field in (*drive.METRICS, "macs_g", "params_m", "train_time_s"):
            assert _finite(r[field]), field
        assert 0.0 <= r["dice"] <= 1.0 and r["hd"] >= r["hd95"] >= 0.0
        assert r["test_images"] == drive.SCHEDULES["quick"].max_test_images
    report = (quick_runs / "drive" / "results.md").read_text()
    assert "Dice" in report and "HD95" in report
    for png in ("drive_dice.png", "drive_hd95.png", "drive_affinity_maps.png"):
        assert (quick_runs / "drive" / png).read_bytes()[:4] == b"\x89PNG"


@needs_data
def test_efficiency_quick_output_is_complete(quick_runs):
    records = _records(quick_runs, "efficiency")
    schedule = efficiency.SCHEDULES["quick"]
    parts = {}
    for r in records:
        parts.setdefault(r["part"], []).append(r)
    assert len(parts["layer"]) == (len(schedule.layer_shapes) * len(efficiency.FORMATS)
                                   * len(schedule.layer_threads))
    for r in parts["layer"]:
        for impl in efficiency.LAYER_IMPLS:
            assert r[f"{impl}_ms"] > 0 and _finite(r[f"{impl}_ratio"])
        assert r["native_ratio"] == 1.0
        assert r["max_abs_diff"] < 1e-4  # cached == uncached == unfold
        # bfloat16: the layer's own rounding (8-bit significands), not a wrong result
        assert 0.0 <= r["bf16_max_rel_diff"] < 0.1
        assert r["cached_bf16_vs_native_bf16"] == pytest.approx(
            r["cached_bf16_ms"] / r["native_bf16_ms"])
        assert r["meets_goal"] == (r["cached_ratio"] <= efficiency.LAYER_GOAL)
    assert len(parts["training"]) == (len(schedule.training_shapes) * len(efficiency.FORMATS)
                                      * len(schedule.layer_threads))
    for r in parts["training"]:
        for impl in efficiency.TRAINING_IMPLS:
            assert r[f"{impl}_ms"] > 0 and _finite(r[f"{impl}_ratio"])
        assert r["native_ratio"] == 1.0 and 0.0 < r["generator_share"]
        assert r["generator_gflop_per_s"] > 0 and r["dense_gflop_per_s"] > 0
        assert r["apply_bf16_vs_native_bf16"] == pytest.approx(
            r["apply_bf16_ms"] / r["native_bf16_ms"])
        assert r["apply_bf16_vs_apply"] == pytest.approx(r["apply_bf16_ms"] / r["apply_ms"])
        assert r["backend"] in ("fused", "pytorch")
        # the layout the layer generates for the fused kernel: channels innermost for
        # channels-last inputs and for the contiguous ones run channels-last (stride
        # above 2, or stride 2 with float32 rows of odd width under 32 pixels);
        # standard for the other contiguous ones (run on their flattened planes)
        _, _, width, _, stride = r["shape"]
        last = r["format"] == "channels_last" or stride > 2 or (
            stride == 2 and width % 2 == 1 and width < 32)
        assert r["kernel_layout"] == ("channels innermost" if r["backend"] == "fused" and last
                                      else "standard")
    assert len(parts["network"]) == len(schedule.network_batches) * len(efficiency.FORMATS)
    for r in parts["network"]:
        assert r["speedup"] == pytest.approx(r["tv_x0.5_fps"] / r["dw_x1.0_fps"])
        assert ("tv_x0.5_uncached_fps" in r) == (r["batch"] in schedule.uncached_batches)
    assert {r["model"] for r in parts["memory"]} == set(efficiency.NETWORK_MODELS)
    assert all(r["peak_mib"] > 0 and r["resident_mib"] > 0 for r in parts["memory"])
    complexity = {(r["arch"], r["conv"]): r for r in parts["complexity"]}
    for arch in ("mobilenet_v2", "shufflenet_v2"):  # TVConv = depthwise MACs when cached
        dw, tv = complexity[(arch, "depthwise")], complexity[(arch, "tvconv")]
        assert tv["macs_m"] == pytest.approx(dw["macs_m"])
        assert tv["macs_uncached_m"] > tv["macs_m"] and dw["macs_uncached_m"] == dw["macs_m"]
        assert tv["params_m"] > tv["params_cached_m"] > dw["params_m"]
    report = (quick_runs / "efficiency" / "results.md").read_text()
    assert "Performance goals" in report and "Per-layer forward time" in report
    assert "One training step of one layer" in report
    for png in ("efficiency_layers.png", "efficiency_throughput_channels_last.png",
                "efficiency_throughput_contiguous.png", "efficiency_memory.png",
                "efficiency_params.png"):
        assert (quick_runs / "efficiency" / png).read_bytes()[:4] == b"\x89PNG"


@needs_data
def test_rerun_skips_finished_cells_and_measures_only_missing_ones(quick_runs, tmp_path,
                                                                  monkeypatch):
    out = tmp_path / "resume"
    shutil.copytree(quick_runs / "faces", out / "faces")
    calls = []
    train_cell = faces.train_cell

    def counting(cell, *args, **kwargs):
        calls.append((cell["conv"], cell["seed"]))
        return train_cell(cell, *args, **kwargs)

    monkeypatch.setattr(faces, "train_cell", counting)
    before = _records(out, "faces")
    _run("faces", out)
    assert calls == []  # every cell reused
    assert _records(out, "faces") == before
    path = out / "faces" / "results.json"  # drop one record: only that cell is measured
    data = json.loads(path.read_text())
    dropped = data["records"].pop()
    path.write_text(json.dumps(data))
    _run("faces", out)
    assert calls == [(dropped["conv"], dropped["seed"])]
    after = {(r["conv"], r["seed"]): r for r in _records(out, "faces")}
    # the finished training checkpoint is reused, so the metrics are reproduced exactly
    for field in faces.METRICS:
        assert after[(dropped["conv"], dropped["seed"])][field] == dropped[field]


# ------------------------------------------------------------------------------ pieces
def test_segmentation_net_tvconv_size_is_the_aspp_feature_size():
    from tvconv import TVConv, tvconv_layers

    torch.manual_seed(0)
    tv = SegmentationNet("tvconv", (64, 48), aspp_channels=8, aspp_depths=(1, 2),
                         tvconv_kwargs={"hidden_channels": 4, "hidden_layers": 0})
    dw = SegmentationNet("depthwise", (64, 48), aspp_channels=8, aspp_depths=(1, 2))
    layers = [layer for _, layer in tvconv_layers(tv)]
    assert len(layers) == 3 and all(layer.size == (8, 6) for layer in layers)
    assert tv.aspp_size == (8, 6)
    # the same network but for the ASPP's 3x3 convs: a TVConv where dw has a depthwise conv
    names = [name for name, _ in tvconv_layers(tv)]
    tv_modules = {n: m for n, m in tv.named_modules()
                  if not any(n.startswith(f"{t}.") for t in names)}
    dw_modules = dict(dw.named_modules())
    assert list(tv_modules) == list(dw_modules)
    for name, module in dw_modules.items():
        if name in names:
            assert isinstance(tv_modules[name], TVConv) and module.groups == module.in_channels
            assert name.startswith("aspp.branches.")
        else:
            assert type(tv_modules[name]) is type(module)
    x = torch.randn(2, 3, 64, 48)
    assert tv.eval()(x).shape == dw.eval()(x).shape == (2, 1, 64, 48)
    with pytest.raises(ValueError, match="input_size"):
        SegmentationNet("depthwise", 60)
    with pytest.raises(ValueError, match="conv"):
        SegmentationNet("dense", 64)


def test_unfold_reference_equals_the_cached_tvconv():
    from tvconv import TVConv

    torch.manual_seed(0)
    for stride, in_size in ((1, (4, 5)), (2, (7, 9)), (2, (8, 10))):
        layer = TVConv(6, 3, stride, size=(4, 5), hidden_channels=4, hidden_layers=0).eval()
        with torch.no_grad():
            layer.affinity_maps.normal_()
            x = torch.randn(2, 6, *in_size)
            expected = layer(x)
            got = efficiency.unfold_translation_variant_conv(x, layer.cache_weights()[0],
                                                             stride)
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_interleaved_times_times_every_callable():
    stats = interleaved_times({"a": lambda: None, "b": lambda: sum(range(100))},
                                         rounds=3, round_s=1e-4)
    assert set(stats) == {"a", "b"}
    for s in stats.values():
        assert s["calls"] >= 3 and 0 <= s["min_ms"] <= s["ms"] and s["iqr_ms"] >= 0


def test_seed_summary_mean_and_sample_std():
    mean, std, n = mean_std([1.0, 2.0, None, float("nan"), 3.0])
    assert (mean, n) == (2.0, 3) and std == pytest.approx(1.0)
    assert mean_std([5.0]) == (5.0, 0.0, 1)
    assert math.isnan(mean_std([])[0])
    rows = seed_summary([{"conv": "a", "width": 1, "seed": 0, "acc": 0.5, "macs": 7},
                         {"conv": "a", "width": 1, "seed": 1, "acc": 0.7, "macs": 7},
                         {"conv": "b", "width": 1, "seed": 0, "acc": 0.9, "macs": 7}],
                        ("conv", "width"), ("acc",))
    assert [(r["conv"], r["seeds"], r["macs"]) for r in rows] == [("a", 2, 7), ("b", 1, 7)]
    assert rows[0]["acc_mean"] == pytest.approx(0.6)
    assert rows[0]["acc_std"] == pytest.approx(math.sqrt(0.02))
    assert rows[1]["acc_std"] == 0.0 and "seed" not in rows[0]


def test_face_goal_rows_compare_tvconv_with_depthwise():
    summary = [{"conv": "depthwise", "width": 0.1, "ident_acc_mean": 0.5, "verif_acc_mean": 0.7},
               {"conv": "tvconv", "width": 0.1, "ident_acc_mean": 0.6, "verif_acc_mean": 0.8},
               {"conv": "depthwise", "width": 0.5, "ident_acc_mean": 0.9, "verif_acc_mean": 0.9},
               {"conv": "tvconv", "width": 0.5, "ident_acc_mean": 0.8, "verif_acc_mean": 0.9}]
    rows = {r["width"]: r for r in faces.goal_rows(summary)}
    assert rows[0.1]["tvconv_better"] and rows[0.1]["goal"]
    assert rows[0.1]["ident_acc_gain"] == pytest.approx(0.1)
    assert not rows[0.5]["tvconv_better"] and not rows[0.5]["goal"]
