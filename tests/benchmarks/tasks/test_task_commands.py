"""``python -m benchmarks.tasks`` and ``python -m benchmarks.ablations``: --help, --quick
results (every record and field), resume at both levels, the CamVid fallback."""
import json
import math
from pathlib import Path

import pytest

from benchmarks import ablations, tasks
from benchmarks.common import model_runs
from benchmarks.common.dense_prediction import TASKS, load_task_data, model_name, resolve_schedule
from pyg_hgconv.nn.pool.adjacency import DIRECTION_RULES

pytestmark = pytest.mark.data

COMMON = ["--quick", "--no-progress", "--threads", "1"]
FIELDS = ("model", "variant", "attention", "dataset", "split", "input_size", "gflops_per_image",
          "gflops_std", "flops_components", "stage_gflops", "stage_modules", "params",
          "train_time_s", "epochs", "steps", "model_class", "primary_metric", "seeds", "per_seed")


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def task_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("tasks")
    assert tasks.main(["--task", "all", "--out", str(out), "--data-root", str(data_root),
                       *COMMON]) == 0
    return out


@pytest.fixture(scope="module")
def ablation_run(tmp_path_factory, data_root):
    out = tmp_path_factory.mktemp("ablations")
    assert ablations.main(["--study", "all", "--out", str(out), "--data-root", str(data_root),
                           *COMMON]) == 0
    return out / "segmentation"  # <out>/<task>/<study>/ and <out>/<task>/runs/


@pytest.mark.parametrize("module, option", [(tasks, "--task"), (ablations, "--study")])
def test_help(module, option, capsys):
    with pytest.raises(SystemExit) as exc:
        module.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for word in (option, "--quick", "--full", "--data-root", "--out", "--fresh", "--seed"):
        assert word in text


@pytest.mark.parametrize("task", list(TASKS))
def test_task_quick_writes_every_record(task_run, task, data_root):
    spec = TASKS[task]
    results = load(task_run / task / "results.json")
    records = {r["model"]: r for r in results["records"]}
    expected = {model_name(task, c.variant, c.attention) for c in tasks.TASK_MODELS[task]}
    assert set(records) == expected
    grid = next(r for r in records.values() if r["variant"] == "grid")
    for rec in records.values():
        assert all(f in rec for f in FIELDS), [f for f in FIELDS if f not in rec]
        for metric in spec.metrics:
            assert math.isfinite(rec[metric]) and 0 <= rec[metric] <= 1
        assert rec["dataset"] == spec.dataset and rec["primary_metric"] == spec.primary_metric
        assert rec["gflops_per_image"] > 0 and rec["stage_gflops"] > 0
        assert rec["epochs"] == 1 and rec["params"] > 0
        assert sum(rec["flops_components"].values()) == pytest.approx(rec["gflops_per_image"])
        run = Path(rec["per_seed"][0]["run_dir"])
        assert (run / "checkpoint.pt").exists() and (run / "train_result.json").exists()
        if rec["variant"] == "hg":
            assert rec["groups_per_image"] >= 1 and rec["model_class"].startswith("HG")
            assert rec["stage_gflops"] < grid["stage_gflops"]  # the HG stage is cheaper
            assert rec["images_counted"] == rec["split"]["val"]  # averaged over val images
        else:
            assert rec["attention"] is None and rec["images_counted"] == 1
    attentions = {r["attention"] for r in records.values() if r["variant"] == "hg"}
    assert attentions == {c.attention for c in tasks.TASK_MODELS[task] if c.variant == "hg"}
    # the fixed seeded split is recorded in the config, file by file
    data = load_task_data(task, data_root, "quick")
    split = results["config"]["split"]
    assert split["train_files"] == data.split["train_files"] and len(split["val_files"]) == 2
    folder = Path(data_root) / spec.dataset_dir
    assert all((folder / f).is_file() for f in split["train_files"] + split["val_files"])
    assert results["config"]["task_schedule"] == resolve_schedule(task, "quick").to_dict()
    report = (task_run / task / "results.md").read_text(encoding="utf-8")
    assert "Goal" in report and "paper" in report and "not comparable" in report
    assert (task_run / task / "metric_vs_gflops.png").stat().st_size > 1000
    assert (task_run / task / "stage_gflops.png").stat().st_size > 1000


def test_rerun_skips_and_resumes(task_run, data_root, capsys):
    out = task_run / "segmentation"
    before = load(out / "seeds.json")["records"]  # per model and seed: what reruns resume
    summary = load(out / "results.json")["records"]  # per model
    assert len(summary) == len({r["model"] for r in before}) == len(before)  # quick: 1 seed
    assert all(s["per_seed"][0]["run_dir"] for s in summary)
    checkpoints = {r["run"]: (Path(r["run_dir"]) / "checkpoint.pt").stat().st_mtime_ns
                   for r in before}
    # 1) a finished command re-measures nothing
    tasks.main(["--task", "segmentation", "--out", str(task_run), "--data-root",
                str(data_root), *COMMON])
    assert load(out / "seeds.json")["records"] == before
    assert load(out / "results.json")["records"] == summary
    # 2) a record lost in an interruption: the cell is redone, its finished training
    #    is only loaded (resumed_from_epoch == epochs), giving the same numbers
    results = load(out / "seeds.json")
    results["records"] = [r for r in results["records"] if r["variant"] != "hg"]
    (out / "seeds.json").write_text(json.dumps(results), encoding="utf-8")
    tasks.main(["--task", "segmentation", "--out", str(task_run), "--data-root",
                str(data_root), *COMMON])
    after = {r["model"]: r for r in load(out / "seeds.json")["records"]}
    hg_before = next(r for r in before if r["variant"] == "hg")
    hg_after = after[hg_before["model"]]
    assert hg_after["resumed_from_epoch"] == hg_after["epochs"] == 1
    assert hg_after["miou"] == hg_before["miou"]
    assert hg_after["gflops_per_image"] == hg_before["gflops_per_image"]
    for r in before:
        assert (Path(r["run_dir"]) / "checkpoint.pt").stat().st_mtime_ns == checkpoints[r["run"]]
    summary_after = {r["model"]: r for r in load(out / "results.json")["records"]}
    assert summary_after[hg_before["model"]]["miou"] == hg_before["miou"]
    printed = capsys.readouterr().out
    assert "Goal" in printed and "HG-ResNet18-Dilation" in printed


def test_segmentation_falls_back_to_generated_scenes(tmp_path, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    tasks.main(["--task", "segmentation", "--out", str(tmp_path / "out"), "--data-root",
                str(empty), *COMMON])
    results = load(tmp_path / "out" / "segmentation" / "results.json")
    assert {r["dataset"] for r in results["records"]} == {"HeterogeneousScenes"}
    assert all("CamVid was not found" in r["data_note"] for r in results["records"])
    assert "CamVid was not found" in capsys.readouterr().out
    report = (tmp_path / "out" / "segmentation" / "results.md").read_text(encoding="utf-8")
    assert "HeterogeneousScenes" in report


def test_ablations_quick_write_every_setting(ablation_run):
    sched = ablations.ablation_schedule(TASKS["segmentation"], "quick")
    expected = {study: [s.label for s in ablations.SETTINGS[study](sched)]
                for study in ablations.STUDIES}
    runs = set()
    for study, labels in expected.items():
        results = load(ablation_run / study / "results.json")
        records = {r["setting"]: r for r in results["records"]}
        assert sorted(records) == sorted(labels)
        for rec in records.values():
            assert rec["study"] == study and math.isfinite(rec["miou"])
            assert rec["gflops_per_image"] > 0 and rec["variant"] in ("grid", "hg")
            runs.add(rec["run"])
        assert (ablation_run / study / "results.md").exists()
        assert results["config"]["study"] == study
    sampler = load(ablation_run / "sampler" / "results.json")["records"]
    assert {r["hg_options"]["sampler"] for r in sampler} == {"random", "importance",
                                                             "topk_random"}
    ratio = {r["setting"]: r for r in load(ablation_run / "ratio" / "results.json")["records"]}
    hg = sorted((r for r in ratio.values() if r["variant"] == "hg"),
                key=lambda r: -r["hg_options"]["ratio"])
    assert ratio["grid (1/1)"]["variant"] == "grid" and len(hg) == 4
    groups = [r["groups_per_image"] for r in hg]
    assert groups == sorted(groups, reverse=True) and groups[0] > groups[-1]  # fewer groups
    gflops = [r["gflops_per_image"] for r in hg]
    assert gflops == sorted(gflops, reverse=True)  # ... cost less
    nc = load(ablation_run / "noise_cancel" / "results.json")["records"]
    # max direction under every rule; the settings that keep every direction name none
    assert sorted((r["hg_options"]["noise_cancel"], r["hg_options"]["max_direction"],
                   r["hg_options"].get("direction_rule", "")) for r in nc) == sorted(
        [(False, False, ""), (True, False, "")] + [(True, True, rule) for rule in DIRECTION_RULES])
    # the default HG model is one run shared by the four studies (12 models, not 15)
    assert len(runs) == 12
    assert len(list((ablation_run / "runs").iterdir())) == 12


def test_ablation_tables_show_the_paper_beside_ours(ablation_run):
    report = (ablation_run / "ratio" / "results.md").read_text(encoding="utf-8")
    assert "1826" in report and "80.3" in report  # Table 5
    assert "79.4" in (ablation_run / "sampler" / "results.md").read_text(encoding="utf-8")
    assert "41.6" in (ablation_run / "noise_cancel" / "results.md").read_text(encoding="utf-8")


def test_non_zero_ddp_ranks_read_the_results_but_never_write(tmp_path, monkeypatch):
    from benchmarks.common.results import ResultStore

    config = {"schedule": "quick"}
    writer = ResultStore(tmp_path, config, ("model",))
    writer.add({"model": "grid", "miou": 0.5})
    before = (tmp_path / "results.json").read_bytes()
    monkeypatch.setenv("RANK", "1")
    reader = model_runs.open_store(tmp_path, config, ("model",), {"seed": 0}, fresh=False)
    assert isinstance(reader, model_runs.ReaderStore) and reader.done(model="grid")
    reader.add({"model": "hg", "miou": 0.6})  # rank 0 stores its own copy of this record
    assert (tmp_path / "results.json").read_bytes() == before
    monkeypatch.setenv("RANK", "0")
    assert type(model_runs.open_store(tmp_path, config, ("model",), {}, fresh=False)) is ResultStore
