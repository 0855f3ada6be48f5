r"""HG-CNNs on the paper's tasks: grid vs HG models, with active focus (Sec. 5.1, 5.3, 5.4).

For each task (``--task``), the grid model and its HG counterpart are trained
with the same schedule by THE training loop and scored on the validation split
(task definitions, metrics and FLOPs: :mod:`benchmarks.common.dense_prediction`):

===============  ==========================================  ==========================
task             models                                      metrics
===============  ==========================================  ==========================
segmentation     ResNet18-Dilation, HG-ResNet18-Dilation     mIoU (CamVid, 11 classes)
roads            ResUNet18+, HG-ResUNet18+,                  road IoU, topology
                 HG-ResUNet18+-Attn (object focus)           (APLS-like)
saliency         ResUNet18, HG-ResUNet18, -Attn (object),    MaxF, MAE (ECSSD)
                 -Attn (uncertainty)
===============  ==========================================  ==========================

Active focus (``-Attn``): a coarse head on the input of the HG module predicts
the task; its prediction (object: the foreground probability, Eq. 12;
uncertainty: its normalised entropy, Eq. 13) modulates the importance map
that places the cluster centres (Eq. 11).

Every model gets its FLOPs per image averaged over the validation images (HG
graphs differ per image) and the FLOPs of the replaced stage: grid stage 4
(plus the first decoder level of a ResUNet) against the HG modules with their
clustering, fusion convs and, with active focus, the coarse head. The goal
checked and printed: **the HG variant matches or beats its grid counterpart on
the task's primary metric while spending less than half of the replaced
stage's FLOPs**.

Output per task in ``<out>/<task>/``: ``results.json`` (one record per model:
metrics as the mean over the seeds with ``<metric>_std``, every seed's run under
``per_seed``, GFLOPs, ``variant`` ``grid``/``hg``, ``attention``, the split),
``seeds.json`` (one record per model and seed: what a rerun resumes from),
``results.md`` (tables, our numbers beside the paper's for reference, the goal
check), ``metric_vs_gflops.png``, ``stage_gflops.png`` and the training runs
in ``runs/<model>/seed<s>/`` (checkpoint every epoch; rerunning resumes). Every
model trains with 3 seeds (``--seed``, ``--seed + 1``, ...); the tables give the
mean ± std; the goal check gives the seeds in which HG matches the grid and
the paired per-seed difference, and calls the goal only when that difference
is resolved (:func:`~benchmarks.common.summary.paired_differences`: every seed
agrees on the sign and the paired t-test gives p < 0.05 after Holm's
correction over the task's HG models). The
default schedules take about 10 minutes per task on an idle 2-core machine
(downscaled inputs, a narrow ResNet-18, a few epochs from scratch): the numbers are **not**
comparable with the paper's (which trains ResNet-101/50 at 713/352 px for
tens of thousands of iterations). Under ``torchrun`` the models train with DDP
(gloo on CPU); rank 0 writes the results.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common.cli import (
    base_parser,
    run_parts,
    schedule_name,
    setup_run,
)
from benchmarks.common.dense_prediction import (
    TASKS,
    TaskData,
    TaskSchedule,
    TaskSpec,
    get_task,
    load_task_data,
    resolve_schedule,
)
from benchmarks.common.model_runs import (
    METRIC_LABELS,
    PERCENT_METRICS,
    SEEDS_FILE,
    ModelCell,
    ModelRunner,
    metric_format,
    metric_header,
    metric_text,
    metric_value,
    open_store,
    paired_wins,
    per_seed_table,
    report_config,
    seed_means,
    task_config,
    write_model_records,
)
from benchmarks.common.results import (
    markdown_table,
    write_report,
)
from benchmarks.common.summary import holm_text, paired_differences, verdict
from benchmarks.common.training import distributed_rank, process_group

#: the goal: the HG stage spends less than this share of the grid stage's FLOPs
STAGE_SHARE_GOAL = 0.5


#: the models of every task (grid first: it is the reference of the goal)
TASK_MODELS: dict[str, tuple[ModelCell, ...]] = {
    "segmentation": (ModelCell("grid"), ModelCell("hg")),
    "roads": (ModelCell("grid"), ModelCell("hg"), ModelCell("hg", "object")),
    "saliency": (ModelCell("grid"), ModelCell("hg"), ModelCell("hg", "object"),
                 ModelCell("hg", "uncertainty")),
}

#: The paper's numbers, typed from its tables, for reference only (other data
#: sets, backbones and schedules). Keys: (variant, attention).
PAPER_RESULTS: dict[str, dict[str, Any]] = {
    "segmentation": {
        "source": "Table 2 (Cityscapes val, single scale; mIoU %, GFLOPs)",
        "metrics": ("miou",),
        "rows": {("grid", None): {"model": "ResNet101-Dilation", "miou": 75.3, "gflops": 512.8},
                 ("hg", None): {"model": "+ HG-conv", "miou": 78.8,
                                "gflops": round(512.8 - 78.1, 1)}},
    },
    "roads": {
        "source": "Table 10 (DeepGlobe; IoU %, APLS %)",
        "metrics": ("road_iou", "topology"),
        "rows": {("grid", None): {"model": "ResUNet18+", "road_iou": 67.5, "topology": 71.0},
                 ("hg", None): {"model": "HG-ResUNet18+", "road_iou": 68.1, "topology": 71.9},
                 ("hg", "object"): {"model": "HG-ResUNet18+-Attn", "road_iou": 68.3,
                                    "topology": 72.3}},
    },
    "saliency": {
        "source": "Table 6 (ECSSD; MaxF, MAE)",
        "metrics": ("max_f", "mae"),
        "rows": {("grid", None): {"model": "ResUNet50", "max_f": 0.938, "mae": 0.0413},
                 ("hg", None): {"model": "HG-ResUNet50", "max_f": 0.942, "mae": 0.0393},
                 ("hg", "object"): {"model": "HG-ResUNet50-Attn (object)", "max_f": 0.943,
                                    "mae": 0.0396},
                 ("hg", "uncertainty"): {"model": "HG-ResUNet50-Attn (uncertainty)",
                                         "max_f": 0.943, "mae": 0.0395}},
    },
}


# ------------------------------------------------------------------------------ tables


def grid_record(records: Sequence[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The grid model's record (the reference of the goal)."""
    return next((r for r in records if r.get("variant") == "grid"), None)


def stage_share(record: Mapping[str, Any], grid: Mapping[str, Any] | None) -> float | None:
    """The record's stage FLOPs over the grid model's stage FLOPs."""
    if grid is None or not record.get("stage_gflops") or not grid.get("stage_gflops"):
        return None
    return record["stage_gflops"] / grid["stage_gflops"]


def results_rows(task: TaskSpec, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One table row per record: metrics in table units, FLOPs, stage share and
    the paper's numbers of the corresponding model."""
    grid = grid_record(records)
    paper = PAPER_RESULTS.get(task.name, {"rows": {}, "metrics": ()})
    rows = []
    for rec in records:
        row = {"model": rec["model"], "variant": rec["variant"],
               "attention": rec.get("attention") or "-"}
        for metric in task.metrics:
            row[metric] = metric_text(rec, metric)
        row.update({"gflops": rec.get("gflops_per_image"), "stage_gflops": rec.get("stage_gflops"),
                    "stage_share": stage_share(rec, grid),
                    "groups": rec.get("groups_per_image"),
                    "params_m": rec["params"] / 1e6 if rec.get("params") else None,
                    "seeds": rec.get("seeds", 1),
                    "train_time_s": rec.get("train_time_s"), "epochs": rec.get("epochs")})
        ref = paper["rows"].get((rec["variant"], rec.get("attention")), {})
        row["paper_model"] = ref.get("model")
        for metric in paper["metrics"]:
            row[f"paper_{metric}"] = ref.get(metric)
        row["paper_gflops"] = ref.get("gflops")
        rows.append(row)
    return rows


def results_table(task: TaskSpec, records: Sequence[Mapping[str, Any]]) -> str:
    """Markdown table of the models, our numbers beside the paper's."""
    paper = PAPER_RESULTS.get(task.name, {"metrics": ()})
    columns: list[tuple] = [("model", "Model"), ("attention", "focus")]
    columns += [(m, metric_header(m)) for m in task.metrics]
    columns += [("seeds", "seeds"), ("gflops", "GFLOPs/img", ".4f"),
                ("stage_gflops", "stage GFLOPs", ".4f"),
                ("stage_share", "stage share", ".1%"), ("groups", "groups/img", ".1f"),
                ("params_m", "params (M)", ".3f"), ("train_time_s", "train (s/seed)", ".0f"),
                ("epochs", "epochs")]
    columns += [("paper_model", "paper model")]
    columns += [(f"paper_{m}", f"paper {metric_header(m)}", metric_format(m))
                for m in paper["metrics"]]
    rows = results_rows(task, records)
    if any(r["paper_gflops"] is not None for r in rows):
        columns.append(("paper_gflops", "paper GFLOPs", ".1f"))
    return markdown_table(rows, columns)


def per_class_table(records: Sequence[Mapping[str, Any]]) -> str | None:
    """IoU (%) per class of every model (segmentation; cf. the paper's Table 11)."""
    with_classes = [r for r in records if r.get("iou_per_class")]
    if not with_classes:
        return None
    names = list(with_classes[0]["iou_per_class"])
    rows = [{"model": r["model"], **{n: 100 * r["iou_per_class"][n] for n in names}}
            for r in with_classes]
    return markdown_table(rows, [("model", "Model"), *((n, n, ".1f") for n in names)])


def goal_rows(task: TaskSpec, records: Sequence[Mapping[str, Any]],
              per_seed: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """Per HG model of the seed-averaged ``records``: the mean primary metric
    against the grid model's, the seeds in which it matches or beats the grid
    (from the ``per_seed`` records), the paired per-seed difference
    (:func:`seed_differences`, oriented so that positive is better, Holm-corrected
    over the HG models of the task) and the stage share against :data:`STAGE_SHARE_GOAL`.

    The goal **holds** when the stage share is below the goal and the paired
    difference is resolved in HG's favour; it **does not hold** when the share
    is not, or the difference is resolved against HG; anything else is **not
    resolved** (the seeds disagree), whatever the means say."""
    grid = grid_record(records)
    if grid is None:
        return []
    metric = task.primary_metric
    rows = []
    hg_records = [rec for rec in records if rec.get("variant") == "hg"]
    paired_by_model = seed_differences(task, per_seed, [rec["model"] for rec in hg_records])
    for rec in hg_records:
        share = stage_share(rec, grid)
        ours, ref = rec.get(metric), grid.get(metric)
        metric_ok = ours is not None and ref is not None and task.better(metric, ours, ref)
        flops_ok = share is not None and share < STAGE_SHARE_GOAL
        paired = paired_by_model[rec["model"]]
        if not flops_ok or paired["sign"] < 0:
            goal = "does not hold"
        else:
            goal = "holds" if paired["sign"] > 0 else "not resolved"
        others = []
        for other in task.metrics:
            if other == metric or rec.get(other) is None or grid.get(other) is None:
                continue
            delta = metric_value(rec, other) - metric_value(grid, other)
            ok = task.better(other, rec[other], grid[other])
            digits = 4 if other == "mae" else 1
            others.append(f"{METRIC_LABELS.get(other, other)} {delta:+.{digits}f} "
                          f"({'better or equal' if ok else 'worse'})")
        rows.append({"model": rec["model"], "delta": (metric_value(rec, metric) or 0.0)
                     - (metric_value(grid, metric) or 0.0), "others": "; ".join(others) or "-",
                     "wins": paired_wins(task, per_seed, rec["model"]) if per_seed else "-",
                     "paired": paired_text(task, paired),
                     "stage_share": share, "metric_ok": "yes" if metric_ok else "no",
                     "flops_ok": "yes" if flops_ok else "no", "goal": goal})
    return rows


def seed_differences(task: TaskSpec, per_seed: Sequence[Mapping[str, Any]],
                     models: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per model of ``models``: the paired per-seed difference to the grid model
    on the primary metric over their common seeds, in table units and oriented
    so that a positive difference favours the model. The models form one family
    (:func:`~benchmarks.common.summary.paired_differences`: Holm's correction),
    since the goal table calls all of them from the same grid runs."""
    metric = task.primary_metric
    grid = {r["seed"]: metric_value(r, metric) for r in per_seed if r.get("variant") == "grid"}
    sign = -1.0 if metric in task.lower_is_better else 1.0
    pairs = []
    for model in models:
        ours = {r["seed"]: metric_value(r, metric) for r in per_seed if r["model"] == model}
        seeds = sorted(set(grid) & set(ours))
        pairs.append(([None if ours[s] is None else sign * ours[s] for s in seeds],
                      [None if grid[s] is None else sign * grid[s] for s in seeds]))
    return dict(zip(models, paired_differences(pairs), strict=True))


def paired_text(task: TaskSpec, paired: Mapping[str, Any]) -> str:
    """``"+1.2 ± 0.8 (p 0.01, Holm 0.02): better"`` for one of :func:`seed_differences`."""
    if paired["n"] < 1:
        return "-"
    digits = 4 if task.primary_metric == "mae" else 1
    p = f"p {paired['p']:.2g}" if math.isfinite(paired["p"]) else "p -"
    p += holm_text(paired)
    return (f"{paired['mean']:+.{digits}f} ± {paired['std']:.{digits}f} ({p}): "
            f"{verdict(paired)}")


def goal_table(task: TaskSpec, records: Sequence[Mapping[str, Any]],
               per_seed: Sequence[Mapping[str, Any]] = ()) -> str:
    metric = task.primary_metric
    unit = " (points)" if metric in PERCENT_METRICS else ""
    sign = "lower is better" if metric in task.lower_is_better else "higher is better"
    return markdown_table(goal_rows(task, records, per_seed), [
        ("model", "HG model"),
        ("delta", f"{METRIC_LABELS.get(metric, metric)} - grid{unit}, {sign} (means)", "+.3f"),
        ("wins", "seeds where HG >= grid"),
        ("paired", "paired per-seed difference (HG better > 0)"),
        ("others", "other metrics - grid"),
        ("stage_share", "stage FLOPs / grid stage", ".1%"),
        ("metric_ok", "matches or beats grid (mean)"),
        ("flops_ok", f"< {STAGE_SHARE_GOAL:.0%} of the stage"),
        ("goal", "goal (paired rule)")])


def flops_table(records: Sequence[Mapping[str, Any]]) -> str:
    """GFLOPs per image by component (and the spread over the images)."""
    rows = []
    for rec in records:
        comps = rec.get("flops_components") or {}
        rows.append({"model": rec["model"], **comps, "total": rec.get("gflops_per_image"),
                     "std": rec.get("gflops_std"), "images": rec.get("images_counted"),
                     "stage": ", ".join(rec.get("stage_modules") or [])})
    return markdown_table(rows, [
        ("model", "Model"), ("grid_conv", "grid conv", ".4f"), ("graph_conv", "graph conv", ".4f"),
        ("linear", "linear", ".4f"), ("clustering", "clustering", ".5f"),
        ("elementwise", "elementwise", ".5f"), ("total", "total", ".4f"),
        ("std", "std over images", ".2e"), ("images", "images counted"),
        ("stage", "stage modules")])


def task_plots(task: TaskSpec, records: Sequence[Mapping[str, Any]], out_dir: Path
               ) -> dict[str, Path]:
    """``metric_vs_gflops.png`` and ``stage_gflops.png``."""
    from benchmarks.common.plots import bar_plot, scatter_plot

    metric = task.primary_metric
    points = [{**r, "metric": metric_value(r, metric)} for r in records]
    plots = {
        f"{metric_header(metric)} vs GFLOPs per image": scatter_plot(
            points, "gflops_per_image", "metric", "model", out_dir / "metric_vs_gflops.png",
            title=f"{task.title}: {metric_header(metric)} vs GFLOPs",
            xlabel="GFLOPs per image (validation average)", ylabel=metric_header(metric)),
        "FLOPs of the replaced stage": bar_plot(
            records, "model", "stage_gflops", out_dir / "stage_gflops.png",
            title="replaced stage: grid vs HG", ylabel="GFLOPs per image",
            horizontal=True, figsize=(8.0, 4.5)),
    }
    return plots


# ------------------------------------------------------------------------------ command


def run_task(args: argparse.Namespace, env: Mapping[str, Any], task_name: str,
             out_dir: Path) -> dict[str, str]:
    """Train and score the models of one task; write and return its tables."""
    task = get_task(task_name)
    schedule = resolve_schedule(task, schedule_name(args))
    progress = not args.no_progress and distributed_rank() == 0
    data = load_task_data(task, args.data_root, schedule)
    if data.note:
        print(f"note: {data.note}", flush=True)
    cells = TASK_MODELS[task.name]
    config = task_config(args, task, schedule, data,
                         models=[dataclasses.asdict(c) for c in cells])
    store = open_store(out_dir, config, ("model", "seed"), env, args.fresh, SEEDS_FILE)
    runner = ModelRunner(task, schedule, data, args, out_dir / "runs", progress)
    per_seed = runner.run(store, [(c, runner.cell_fields(c)) for c in cells], desc=task.name)
    records = seed_means(task, per_seed)
    tables = {
        f"Results (mean ± std over {schedule.seeds} seed(s))": results_table(task, records),
        f"Goal: HG >= grid on {METRIC_LABELS[task.primary_metric]} with < "
        f"{STAGE_SHARE_GOAL:.0%} of the stage FLOPs": goal_table(task, records, per_seed),
        "FLOPs per image by component (GFLOPs)": flops_table(records),
        "Per seed": per_seed_table(task, per_seed),
    }
    classes = per_class_table(records)
    if classes is not None:
        tables["IoU per class (%)"] = classes
    if distributed_rank() == 0:
        write_model_records(out_dir, config, env, task, records, per_seed, fresh=args.fresh)
        plots = task_plots(task, records, out_dir)
        write_report(out_dir, f"HG-CNNs on {task.title}", report_config(config, data), tables,
                     environment=env, plots=plots, notes=report_notes(task, schedule, data))
    return tables


def report_notes(task: TaskSpec, schedule: TaskSchedule, data: TaskData) -> str:
    paper = PAPER_RESULTS.get(task.name)
    lines = [
        f"Data: {data.dataset}, {data.split['train']} training / {data.split['val']} "
        f"validation images at {schedule.input_size[0]}x{schedule.input_size[1]} (metrics at "
        "the targets' original resolution); backbone "
        f"{schedule.backbone} x{schedule.width}, {schedule.epochs} epochs x {schedule.seeds} "
        f"seed(s) (seed, seed + 1, ...), batch "
        f"{schedule.batch_size}, {schedule.optimizer} lr {schedule.lr:g} {schedule.scheduler}, "
        f"HG ratio 1/{round(1 / schedule.hg_ratio)}, clustering {dict(task.hg_options)}.",
        "These are small CPU schedules trained from scratch: the numbers are **not comparable "
        f"with the paper's** (paper setup: {task.paper_setup}).",
    ]
    if paper:
        lines.append(f"Paper columns: {paper['source']}, typed from the paper for reference.")
    if data.note:
        lines.append(f"**Note:** {data.note}")
    lines.append("Stage FLOPs: grid = stage 4 (ResUNet: + first decoder level); HG = the HG "
                 "modules with clustering, fusion 1x1 convs and, with active focus, the coarse "
                 "head. FLOPs are per image, averaged over the validation images (1 MAC = 1 FLOP).")
    return "\n\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.tasks``."""
    parser = base_parser(
        "benchmarks.tasks", __doc__, "results/tasks",
        examples=["--task segmentation", "--task roads --quick",
                  "--task saliency --full --out results/tasks-full", "--task all"])
    parser.add_argument("--task", choices=(*TASKS, "all"), required=True,
                        help="which task to run (results go to <out>/<task>/)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = setup_run(args)
    with process_group(args.device) as rank:
        parts = TASKS if args.task == "all" else (args.task,)
        return run_parts(args, parts, lambda name, out_dir: run_task(args, env, name, out_dir),
                         verbose=rank == 0)


if __name__ == "__main__":
    sys.exit(main())
