"""The superpixel benchmark: a quick run on two convs and two graph kinds gives
every record, the tables, the references (labelled) and the PNGs, and resumes."""
import json

import pytest

from benchmarks.superpixels import command
from benchmarks.superpixels.kept_memory import keeps_memory_here
from pyg_hgconv.datasets import data_root, has_dataset

pytestmark = pytest.mark.skipif(not has_dataset("mnist"),
                                reason=f"data set 'mnist' not found under {data_root()}")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("superpixels")
    argv = ["--quick", "--no-progress", "--threads", "1", "--out", str(out),
            "--convs", "hgconv", "gmm", "--kinds", "groups", "learned"]
    assert command.main(argv) == 0
    return out, argv, json.loads((out / "results.json").read_text())


@pytest.mark.slow
def test_quick_run_records_tables_and_plots(quick):
    out, _, data = quick
    train = [r for r in data["records"] if r["part"] == "train"]
    assert len(train) == 2 * 2 * command.SCHEDULES["quick"].seeds
    assert all(r["status"] == "ok" and 0 <= r["test_acc"] <= 1 for r in train)
    # the same model size on both kinds of graphs
    params = {(r["kind"], r["conv"]): r["conv_params"] for r in train}
    assert params[("groups", "hgconv")] == params[("learned", "hgconv")]
    building = [r for r in data["records"] if r["part"] == "building"]
    assert sorted(r["threads"] for r in building) == [1, 2]
    for key in ("pyg_slic_pipeline", "to_group_graph", "batched_module",
                "batched_module_as_batch", "batched_module_and_split"):
        assert all(r[f"{key}_ms_per_image"] > 0 for r in building), key
    # the batched module's cost per image at every (image size, batch size) of the schedule
    schedule = command.SCHEDULES["quick"]
    for r in building:
        cells = {(s["size"], s["batch"]): s for s in r["scaling"]}
        assert set(cells) == {(f"{h}x{w}", b) for h, w in schedule.scaling_sizes
                              for b in schedule.scaling_batches}
        assert all(s["ms_per_image"] > 0 for s in r["scaling"])
        assert {s["size"]: s["groups"] for s in r["scaling"]} == {"28x28": 75, "48x64": 294}
        small, large = min(schedule.scaling_batches), max(schedule.scaling_batches)
        growth = command.scaling_growth(r["scaling"])
        for size in ("28x28", "48x64"):  # two batch sizes: the larger's rise, if any
            assert growth[size] == pytest.approx(max(
                1.0, cells[size, large]["ms_per_image"] / cells[size, small]["ms_per_image"]))
        # the same cells again where the C library keeps freed memory (glibc only)
        if keeps_memory_here():
            kept = {(s["size"], s["batch"], s["groups"]) for s in r["scaling_kept_memory"]}
            assert kept == {(s["size"], s["batch"], s["groups"]) for s in r["scaling"]}
            assert all(s["ms_per_image"] > 0 for s in r["scaling_kept_memory"])
        else:
            assert r["scaling_kept_memory"] is None
    text = (out / "results.md").read_text()
    for needle in ("Test accuracy", "Published results", "not comparable", "SplineCNN",
                   "Graph building per image", "ms per image by batch size", "not resolved",
                   "keeps freed memory"):
        assert needle in text, needle
    for png in ("test_accuracy.png", "graph_building.png", "batch_scaling.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_rerun_resumes(quick, monkeypatch):
    out, argv, data = quick

    def refuse(*args, **kwargs):
        raise AssertionError("a finished cell was measured again")

    monkeypatch.setattr(command, "train_cell", refuse)
    monkeypatch.setattr(command, "measure_building_cell", refuse)
    assert command.main(argv) == 0
    assert json.loads((out / "results.json").read_text())["records"] == data["records"]

