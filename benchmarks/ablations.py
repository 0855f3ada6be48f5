r"""Ablations of HG-Conv's design choices (paper Sec. 5.1, Tables 4, 5 and 7).

Three studies (``--study``), each on HG-ResNet for semantic segmentation by
default (``--task``; the task's data, metrics and FLOPs come from
:mod:`benchmarks.common.dense_prediction`):

* ``sampler`` (Table 4) -- how the cluster centres are sampled from the
  importance map: ``random``, ``importance`` sampling, or ``topk_random``
  (top-k + random, the default of every other experiment);
* ``ratio`` (Table 5) -- the downsampling ratio (groups per pixel of the HG
  module's input), four ratios against the grid baseline, with the FLOPs
  reduction of the whole network;
* ``noise_cancel`` (Table 7) -- the adjacency refinement: neither, noise
  cancelling (Eq. 7) alone, noise cancelling + the max-direction heuristic
  (the default) under each direction rule (the paper's, ``length``,
  ``centroid``).

Every study prints a table shaped like the paper's with our numbers beside
the paper's (typed from its tables, for reference: the paper's models are
ResNet-101 on Cityscapes / ADE20K / PASCAL-context). The studies share the
training runs in ``<out>/<task>/runs/`` (the default HG model is the same in
all three and trains once); each study writes ``<out>/<task>/<study>/results.json``
(one record per setting: metrics as the mean over the seeds with their std,
GFLOPs, ``variant``, options), ``seeds.json`` (one record per setting and seed),
``results.md`` and a PNG.

The ablation schedule is the task's default schedule with fewer epochs and a
smaller batch (:data:`ABLATION_SCHEDULES`), so that each study (3 to 5 models,
each trained with the task's 3 seeds) finishes within about 20 minutes on 2 CPU
cores (``--study all``, 12 distinct models, about 45 minutes); the numbers are not
comparable with the paper's, and differences of a point or two between
settings are within the run-to-run noise of such short schedules (compare the
spread over the seeds).
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common.cli import base_parser, run_parts, schedule_name, setup_run
from benchmarks.common.dense_prediction import (
    TASKS,
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
    metric_header,
    metric_text,
    metric_value,
    open_store,
    per_seed_table,
    report_config,
    seed_means,
    task_config,
    write_model_records,
)
from benchmarks.common.results import markdown_table, write_report
from benchmarks.common.summary import format_pm, paired_differences, verdict
from benchmarks.common.training import distributed_rank, process_group
from pyg_hgconv.nn.pool.adjacency import DIRECTION_RULES
from pyg_hgconv.nn.pool.image_to_group_graph import DIRECTION_RULE

STUDIES = ("sampler", "ratio", "noise_cancel", "importance")
PAPER_DATASETS = ("Cityscapes", "ADE20K", "PASCAL-context")


def ablation_schedule(task: TaskSpec, schedule: str) -> TaskSchedule:
    """The schedule of the ablations: the task's ``quick`` and ``full`` as they
    are; ``default`` with half the batch, at most 4 epochs and (when the task
    caps its training images) half the images, so that each study, with the
    task's seeds, trains within about 20 minutes on 2 CPU cores (the smaller
    batch keeps the number of optimiser steps up)."""
    base = resolve_schedule(task, schedule)
    if schedule != "default":
        return base
    train_items = base.max_train_items
    return base.replace(epochs=min(base.epochs, 4), batch_size=max(2, base.batch_size // 2),
                        max_train_items=None if train_items is None else max(8, train_items // 2))


#: the schedule per task of :func:`ablation_schedule`
ABLATION_SCHEDULES = {name: {s: ablation_schedule(spec, s) for s in spec.schedules}
                      for name, spec in TASKS.items()}


@dataclasses.dataclass(frozen=True)
class Setting:
    """One row of a study: its label, model and the paper's numbers for it."""

    label: str
    cell: ModelCell
    paper: tuple[float | None, ...] = ()
    paper_label: str | None = None
    extra: Mapping[str, Any] = dataclasses.field(default_factory=dict)


def _hg(**options: Any) -> ModelCell:
    return ModelCell("hg", None, tuple(sorted(options.items())))


def sampler_settings(schedule: TaskSchedule) -> list[Setting]:
    """Table 4: the three centre samplers (values: Cityscapes, ADE20K, PASCAL-context)."""
    return [
        Setting("Random sampling", _hg(sampler="random"), (79.1, 41.0, 45.8)),
        Setting("Importance sampling", _hg(sampler="importance"), (79.4, 40.5, 46.0)),
        Setting("Top-k + random", _hg(sampler="topk_random"), (79.0, 41.3, 46.0)),
    ]


#: Table 5 (Cityscapes, ResNet101-DCN): ratio -> (mIoU, GFLOPs, reduction %)
PAPER_RATIOS = (("1/1", 78.1, 1826, None), ("1/16", 78.1, 1574, 13.8),
                ("1/32", 80.3, 1558, 14.7), ("1/64", 79.5, 1550, 15.1),
                ("1/128", 79.9, 1546, 15.3))


def study_ratios(schedule: TaskSchedule) -> tuple[float, ...]:
    """Four ratios around the schedule's: 2x, 1x, 1/2x and 1/4x of ``hg_ratio``
    (capped at 1). The paper's 1/16 .. 1/128 are for 90x90 maps; the same ranks
    on our ~40x smaller maps need ~16x larger ratios."""
    base = schedule.hg_ratio
    return tuple(min(1.0, base * f) for f in (2.0, 1.0, 0.5, 0.25))


def ratio_settings(schedule: TaskSchedule) -> list[Setting]:
    """Table 5: grid baseline and four downsampling ratios, paired by rank."""
    rows = [Setting("grid (1/1)", ModelCell("grid"), (PAPER_RATIOS[0][1],), "1/1",
                    {"ratio": 1.0, "paper_gflops": PAPER_RATIOS[0][2]})]
    for ratio, paper in zip(study_ratios(schedule), PAPER_RATIOS[1:], strict=True):
        label = f"1/{round(1 / ratio)}" if abs(1 / ratio - round(1 / ratio)) < 1e-9 else \
            f"{ratio:g}"
        rows.append(Setting(label, _hg(ratio=ratio), (paper[1],), paper[0],
                            {"ratio": ratio, "paper_gflops": paper[2],
                             "paper_reduction": paper[3]}))
    return rows


def max_direction_label(rule: str) -> str:
    """The label of the noise-cancelling + max-direction setting under ``rule``."""
    return f"noise cancelling + max direction ({rule} rule)"


def noise_cancel_settings(schedule: TaskSchedule) -> list[Setting]:
    """Table 7: adjacency refinement off, noise cancelling, + max direction,
    the last under every direction rule (:data:`~pyg_hgconv.DIRECTION_RULES`;
    the paper's numbers stand beside its own rule, ``'paper'``). The first two
    keep every direction of a pair, so no rule applies to them."""
    rows = [
        Setting("none", _hg(noise_cancel=False, max_direction=False), (78.4, 40.4, 45.0),
                extra={"noise_cancel": False, "max_direction": False}),
        Setting("noise cancelling", _hg(noise_cancel=True, max_direction=False),
                (78.5, 41.6, 45.9), extra={"noise_cancel": True, "max_direction": False}),
    ]
    for rule in DIRECTION_RULES:
        rows.append(Setting(
            max_direction_label(rule),
            _hg(noise_cancel=True, max_direction=True, direction_rule=rule),
            (79.0, 41.3, 46.0) if rule == "paper" else (),
            extra={"noise_cancel": True, "max_direction": True, "direction_rule": rule}))
    return rows


def importance_settings(schedule: TaskSchedule) -> list[Setting]:
    """The map the importance is computed on: the clustering embedding (this
    implementation's default, 16 channels) or the features themselves (Sec. 4.1)."""
    return [
        Setting("importance on the features (Sec. 4.1)", _hg(importance_from="features"),
                extra={"importance_from": "features"}),
        Setting("importance on the embedding", _hg(importance_from="embedding"),
                extra={"importance_from": "embedding"}),
    ]


SETTINGS: dict[str, Callable[[TaskSchedule], list[Setting]]] = {
    "sampler": sampler_settings, "ratio": ratio_settings, "noise_cancel": noise_cancel_settings,
    "importance": importance_settings}
TITLES = {"sampler": "Sampling methods of the cluster centres (Table 4)",
          "ratio": "Downsampling ratio (Table 5)",
          "noise_cancel": "Noise cancelling of the adjacency matrices (Table 7)",
          "importance": "The map the importance is computed on (Sec. 4.1)"}
#: the setting of each study every other setting is compared with, seed by seed:
#: the configuration all other experiments use
REFERENCE_SETTING = {"sampler": "Top-k + random", "ratio": "grid (1/1)",
                     "noise_cancel": max_direction_label(DIRECTION_RULE),
                     "importance": "importance on the embedding"}


def _canonical_options(cell: ModelCell, schedule: TaskSchedule, task: TaskSpec,
                       direction_rule: str = DIRECTION_RULE) -> ModelCell:
    """The cell with every studied option spelled out (defaults filled in), so
    that equal models of different studies get one run directory."""
    if cell.variant == "grid":
        return cell
    options = {"sampler": task.hg_options.get("sampler", "topk_random"), "noise_cancel": True,
               "max_direction": True, "ratio": schedule.hg_ratio,
               "importance_from": "embedding", "direction_rule": direction_rule,
               **cell.options()}
    if not options["max_direction"]:  # every direction of a pair kept: no rule applies
        del options["direction_rule"]
    return dataclasses.replace(cell, hg_options=tuple(sorted(options.items())))


# ------------------------------------------------------------------------------ tables
def study_rows(study: str, task: TaskSpec, settings: Sequence[Setting],
               records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    by_label = {r["setting"]: r for r in records}
    grid = next((r for r in records if r.get("variant") == "grid"), None)
    rows = []
    for s in settings:
        rec = by_label.get(s.label, {})
        row = {"setting": s.label, "ours": metric_text(rec, task.primary_metric) if rec else None,
               "gflops": rec.get("gflops_per_image"), "stage_gflops": rec.get("stage_gflops"),
               "groups": rec.get("groups_per_image"), "epochs": rec.get("epochs"),
               **{f"paper_{d}": v for d, v in zip(PAPER_DATASETS, s.paper, strict=False)},
               **s.extra}
        if study == "ratio":
            row["paper_ratio"] = s.paper_label
            if grid and rec and rec is not grid:
                row["reduction"] = 1 - rec["gflops_per_image"] / grid["gflops_per_image"]
        row["vs_reference"] = rec.get("vs_reference", "-")
        rows.append(row)
    return rows


def add_paired_comparison(task: TaskSpec, records: list[dict[str, Any]],
                          per_seed: Sequence[Mapping[str, Any]], reference: str) -> None:
    """Add to every setting's record its per-seed difference to ``reference`` on
    the primary metric (``vs_reference``, ``"+1.2 ± 0.4 (better)"`` or ``"... (not
    resolved)"``). The settings of a study are one family: they are resolved
    together (:func:`~benchmarks.common.summary.paired_differences`, Holm)."""
    metric = task.primary_metric
    scale = 100.0 if metric in PERCENT_METRICS else 1.0
    ref = {r["seed"]: r.get(metric) for r in per_seed if r.get("setting") == reference}
    others = [rec for rec in records if rec["setting"] != reference]
    pairs = []
    for rec in others:
        mine = {r["seed"]: r.get(metric) for r in per_seed if r.get("setting") == rec["setting"]}
        seeds = sorted(set(ref) & set(mine))
        pairs.append(([mine[s] for s in seeds], [ref[s] for s in seeds]))
    for rec in records:
        if rec["setting"] == reference:
            rec["vs_reference"] = "(reference)"
    better = "better" if metric not in task.lower_is_better else "worse"
    worse = "worse" if better == "better" else "better"
    for rec, comparison in zip(others, paired_differences(pairs), strict=True):
        if not comparison["n"]:
            rec["vs_reference"] = "-"
            continue
        sign = "+" if comparison["mean"] > 0 else ""
        value = format_pm(comparison["mean"], comparison["std"], seeds=comparison["n"],
                          scale=scale)
        rec["vs_reference"] = f"{sign}{value} ({verdict(comparison, better, worse)})"


def study_table(study: str, task: TaskSpec, settings: Sequence[Setting],
                records: Sequence[Mapping[str, Any]]) -> str:
    """The study's table, shaped like the paper's, our numbers beside the paper's."""
    metric = task.primary_metric
    ours = (f"ours: {metric_header(metric)} ({task.dataset})",)
    rows = study_rows(study, task, settings, records)
    if study == "ratio":
        columns = [("setting", "ratio (ours)"), ("ours", *ours),
                   ("gflops", "GFLOPs/img", ".4f"), ("reduction", "(reduction)", ".1%"),
                   ("groups", "groups/img", ".1f"), ("paper_ratio", "paper ratio"),
                   ("paper_Cityscapes", "paper mIoU (Cityscapes)", ".1f"),
                   ("paper_gflops", "paper GFLOPs"),
                   ("paper_reduction", "paper (reduction %)", ".1f")]
    else:
        columns = [("setting", "setting")]
        if study == "noise_cancel":
            columns = [("noise_cancel", "noise cancelling",
                        lambda v: "x" if v else ""),
                       ("max_direction", "max direction", lambda v: "x" if v else ""),
                       ("direction_rule", "direction rule")]
        columns += [("ours", *ours), ("vs_reference", f"- {REFERENCE_SETTING[study]}, paired"),
                    ("gflops", "GFLOPs/img", ".4f"), ("groups", "groups/img", ".1f")]
        if study != "importance":
            columns += [(f"paper_{d}", f"paper {d}", ".1f") for d in PAPER_DATASETS]
    return markdown_table(rows, columns)


def study_plot(study: str, task: TaskSpec, settings: Sequence[Setting],
               records: Sequence[Mapping[str, Any]], out_dir: Path) -> dict[str, Path]:
    from benchmarks.common.plots import bar_plot, scatter_plot

    metric = task.primary_metric
    label = metric_header(metric)
    points = [{**r, "metric": metric_value(r, metric)} for r in records]
    if study == "ratio":
        path = scatter_plot(points, "gflops_per_image", "metric", "setting",
                            out_dir / "ratio_metric_vs_gflops.png",
                            title=f"{TITLES[study]}: {label} vs GFLOPs",
                            xlabel="GFLOPs per image (validation average)", ylabel=label)
        return {f"{label} vs GFLOPs per ratio": path}
    path = bar_plot(points, "setting", "metric", out_dir / f"{study}_{metric}.png",
                    title=TITLES[study], ylabel=label, horizontal=True)
    return {f"{label} per setting": path}


# ------------------------------------------------------------------------------ command
def run_study(args: argparse.Namespace, env: Mapping[str, Any], study: str,
              out_dir: Path, runs_dir: Path) -> dict[str, str]:
    """Train and score the settings of one study; write and return its table."""
    task = get_task(args.task)
    schedule = ablation_schedule(task, schedule_name(args))
    progress = not args.no_progress and distributed_rank() == 0
    data = load_task_data(task, args.data_root, schedule)
    if data.note:
        print(f"note: {data.note}", flush=True)
    settings = SETTINGS[study](schedule)
    cells = [(_canonical_options(s.cell, schedule, task, args.direction_rule), s)
             for s in settings]
    config = task_config(args, task, schedule, data, study=study,
                         settings=[{"setting": s.label, **dataclasses.asdict(c)}
                                   for c, s in cells])
    store = open_store(out_dir, config, ("setting", "seed"), env, args.fresh, SEEDS_FILE)
    runner = ModelRunner(task, schedule, data, args, runs_dir, progress)
    per_seed = runner.run(store, [(c, runner.cell_fields(c, study=study, setting=s.label))
                                  for c, s in cells], desc=study)
    records = seed_means(task, per_seed, by=("setting",))
    add_paired_comparison(task, records, per_seed, REFERENCE_SETTING[study])
    table = study_table(study, task, settings, records)
    title = f"{TITLES[study]}: {task.title}"
    tables = {title: table, f"{study}: per seed": per_seed_table(task, per_seed, "setting")}
    if distributed_rank() == 0:
        write_model_records(out_dir, config, env, task, records, per_seed, label="setting",
                            fresh=args.fresh)
        plots = study_plot(study, task, settings, records, out_dir)
        notes = (f"{METRIC_LABELS[task.primary_metric]} on {data.dataset} "
                 f"({data.split['train']} training / {data.split['val']} validation images at "
                 f"{schedule.input_size[0]}x{schedule.input_size[1]}, {schedule.backbone} "
                 f"x{schedule.width}, {schedule.epochs} epochs; mean ± std over {schedule.seeds} "
                 "seed(s)). A small CPU schedule "
                 "trained from scratch: **not comparable with the paper's numbers** (ResNet-101, "
                 "full-resolution data), which are typed from the paper for reference. "
                 "Differences of a point or two between settings are within the noise of "
                 "such short runs.")
        if data.note:
            notes += f"\n\n**Note:** {data.note}"
        write_report(out_dir, f"HG-Conv ablation: {TITLES[study]}", report_config(config, data),
                     tables, environment=env, plots=plots, notes=notes)
    return tables


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m benchmarks.ablations``."""
    parser = base_parser(
        "benchmarks.ablations", __doc__, "results/ablations",
        examples=["--study sampler", "--study ratio --quick", "--study all",
                  "--study noise_cancel --full --out results/ablations-full"])
    parser.add_argument("--study", choices=(*STUDIES, "all"), required=True,
                        help="which ablation to run (results go to <out>/<task>/<study>/)")
    parser.add_argument("--task", choices=tuple(TASKS), default="segmentation",
                        help="task the HG models are trained on (the paper: segmentation)")
    parser.add_argument("--direction-rule", choices=DIRECTION_RULES, default=DIRECTION_RULE,
                        help="how a pair of groups gets its one direction type, in every HG "
                             "model of the studies")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = setup_run(args)
    task_out = args.out / args.task  # studies on different tasks never share a file
    with process_group(args.device) as rank:
        parts = STUDIES if args.study == "all" else (args.study,)
        return run_parts(args, parts,
                         lambda name, out_dir: run_study(args, env, name, out_dir,
                                                         task_out / "runs"),
                         out=task_out, verbose=rank == 0)


if __name__ == "__main__":
    sys.exit(main())
