"""Training the model cells of a task with several seeds, and their per-seed records.

Shared by the task benchmark (:mod:`benchmarks.tasks`) and the ablations
(:mod:`benchmarks.ablations`): :class:`ModelCell` (variant, active focus, HG
options), :class:`ModelRunner` (one training run per cell and seed, shared
between studies), the seed aggregation (:func:`seed_means`), the paired
per-seed comparison with the grid model (:func:`paired_wins`), the results
files (:data:`SEEDS_FILE` with one record per seed, ``results.json`` with one
per model, :func:`write_model_records`) and the metric formatting of the tables.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common.cli import (
    protocol_config,
)
from benchmarks.common.dense_prediction import (
    TaskData,
    TaskSchedule,
    TaskSpec,
    build_model,
    model_name,
    train_and_evaluate,
)
from benchmarks.common.results import (
    ResultStore,
    markdown_table,
    run_cells,
    to_jsonable,
)
from benchmarks.common.summary import format_pm, mean_std, seed_summary
from benchmarks.common.training import distributed_rank, seed_everything

PROTOCOL_VERSION = 1


#: metrics shown in percent (the paper's unit for them)
PERCENT_METRICS = frozenset({"miou", "pixel_accuracy", "mean_accuracy", "road_iou", "topology"})


METRIC_LABELS = {"miou": "mIoU", "pixel_accuracy": "pixel acc.", "mean_accuracy": "mean acc.",
                 "road_iou": "road IoU", "topology": "topology", "max_f": "MaxF", "mae": "MAE"}


@dataclasses.dataclass(frozen=True)
class ModelCell:
    """One model of a benchmark: its variant, active focus and HG options."""

    variant: str
    attention: str | None = None
    hg_options: tuple[tuple[str, Any], ...] = ()

    def options(self) -> dict[str, Any]:
        return dict(self.hg_options)

    def run_id(self, schedule: TaskSchedule) -> str:
        """Directory name of the training run: the full model configuration, so
        that identical models of different studies share one run."""
        if self.variant == "grid":
            return "grid"
        options = {"ratio": schedule.hg_ratio, **self.options()}
        parts = [f"{k}-{_short(v)}" for k, v in sorted(options.items())]
        if self.attention:
            parts.insert(0, f"attn-{self.attention}")
        return "hg_" + "_".join(parts)


def _short(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        inverse = 1 / value
        return f"1o{round(inverse)}" if abs(inverse - round(inverse)) < 1e-9 else f"{value:g}"
    return str(value)


class ReaderStore(ResultStore):
    """The results of a non-zero DDP rank: it reads rank 0's ``results.json`` to
    skip the same cells, but never writes (one writer per directory)."""

    def _write(self) -> None:
        pass

    def _move_aside(self, raw: bytes) -> Path:
        return self.path


#: the per-seed records (the resumable store); ``results.json`` holds one record per model
SEEDS_FILE = "seeds.json"


def open_store(out_dir: Path, config: Mapping[str, Any], key_fields: Sequence[str],
               env: Mapping[str, Any], fresh: bool, filename: str | None = None
               ) -> ResultStore:
    """The :class:`ResultStore` of ``out_dir`` (read-only on DDP ranks > 0)."""
    cls = ResultStore if distributed_rank() == 0 else ReaderStore
    return cls(out_dir, config, key_fields, environment=env, fresh=fresh, filename=filename)


class ModelRunner:
    """Trains and scores the model cells of one task and schedule (shared by
    :mod:`benchmarks.tasks` and :mod:`benchmarks.ablations`).

    Every cell is trained once per seed of the schedule (``args.seed``,
    ``args.seed + 1``, ...; ``schedule.seeds`` of them) in
    ``runs_dir / cell.run_id(schedule) / seed<s>``, so a model that several
    studies share is trained once; ``fresh`` restarts a run only the first time
    this runner meets it.
    """

    def __init__(self, task: TaskSpec, schedule: TaskSchedule, data: TaskData,
                 args: argparse.Namespace, runs_dir: Path, progress: bool):
        self.task, self.schedule, self.data = task, schedule, data
        self.args, self.runs_dir, self.progress = args, runs_dir, progress
        self._restarted: set[Path] = set()

    @property
    def seeds(self) -> list[int]:
        """The training seeds of every cell."""
        return [int(self.args.seed) + i for i in range(self.schedule.seeds)]

    def cell_fields(self, cell: ModelCell, **extra: Any) -> dict[str, Any]:
        """The identifying fields of a cell's records (without the seed)."""
        return {"model": model_name(self.task, cell.variant, cell.attention, self.schedule),
                "variant": cell.variant, "attention": cell.attention,
                "hg_options": cell.options() if cell.variant == "hg" else None,
                "run": cell.run_id(self.schedule), **extra}

    def measure(self, cell: ModelCell, seed: int) -> dict[str, Any]:
        """Build, train (or resume / load) and score one model with one seed."""
        run_dir = self.runs_dir / cell.run_id(self.schedule) / f"seed{seed}"
        fresh = bool(self.args.fresh) and run_dir not in self._restarted
        self._restarted.add(run_dir)
        seed_everything(seed)
        model = build_model(self.task, cell.variant, self.schedule, attention=cell.attention,
                            **cell.options())
        if self.progress:
            print(f"\n[{self.task.name}] {model_name(self.task, cell.variant, cell.attention)}"
                  f" seed {seed} -> {run_dir}", flush=True)
        return train_and_evaluate(model, self.task, schedule=self.schedule, out_dir=run_dir,
                                  seed=seed, fresh=fresh, progress=self.progress,
                                  device=self.args.device, data=self.data)

    def run(self, store: ResultStore, cells: Iterable[tuple[ModelCell, dict[str, Any]]],
            desc: str) -> list[dict[str, Any]]:
        """Measure every ``(cell, record fields)`` x seed the store lacks (the
        store's key fields must include ``"seed"``); all per-seed records."""
        pairs = [(cell, {**fields, "seed": seed}) for cell, fields in cells
                 for seed in self.seeds]
        by_key = {json_key(fields, store.key_fields): cell for cell, fields in pairs}
        return run_cells(store, [fields for _, fields in pairs],
                         lambda fields: self.measure(by_key[json_key(fields, store.key_fields)],
                                                     fields["seed"]),
                         desc=desc, progress=self.progress)


def json_key(fields: Mapping[str, Any], key_fields: Sequence[str]) -> tuple[str, ...]:
    return tuple(repr(fields[k]) for k in key_fields)


#: per-seed fields that are averaged over the seeds besides the task's metrics
AVERAGED_FIELDS = ("gflops_per_image", "stage_gflops", "groups_per_image", "train_time_s")


def seed_means(task: TaskSpec, records: Sequence[Mapping[str, Any]],
               by: Sequence[str] = ("model",)) -> list[dict[str, Any]]:
    """One record per model (per distinct ``by``) from its per-seed records.

    Every metric of the task and :data:`AVERAGED_FIELDS` becomes the mean over
    the seeds (``None`` where no seed has it), with its sample standard
    deviation in ``<field>_std``; ``seeds`` counts the records and
    ``iou_per_class`` is averaged class by class. Other fields are the first
    seed's (they do not depend on the seed).
    """
    fields = (*task.metrics, *AVERAGED_FIELDS)
    rows = seed_summary(records, by, fields)
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(repr(rec.get(k)) for k in by), []).append(rec)
    for row, members in zip(rows, groups.values(), strict=True):
        for field in fields:
            mean = row.pop(f"{field}_mean")
            row[field] = None if math.isnan(mean) else mean
        per_class = [m["iou_per_class"] for m in members if m.get("iou_per_class")]
        if per_class:
            row["iou_per_class"] = {name: mean_std([c.get(name) for c in per_class])[0]
                                    for name in per_class[0]}
    return rows


def paired_wins(task: TaskSpec, records: Sequence[Mapping[str, Any]], model: str) -> str:
    """``"k/n"``: in how many of the ``n`` seeds both ``model`` and the grid model
    have, ``model`` matches or beats the grid on the task's primary metric."""
    metric = task.primary_metric
    grid = {r["seed"]: r.get(metric) for r in records if r.get("variant") == "grid"}
    pairs = [(r.get(metric), grid.get(r["seed"])) for r in records if r["model"] == model]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    return f"{sum(task.better(metric, a, b) for a, b in pairs)}/{len(pairs)}"


#: fields of a per-seed record that describe that one training run only
PER_RUN_FIELDS = ("seed", "run_dir", "resumed_from_epoch", "final_loss", "eval_time_s",
                  "flops_time_s", "world_size")


def write_model_records(out_dir: Path, config: Mapping[str, Any], env: Mapping[str, Any],
                        task: TaskSpec, records: Sequence[Mapping[str, Any]],
                        per_seed: Sequence[Mapping[str, Any]], label: str = "model",
                        fresh: bool = False) -> ResultStore:
    """Write ``results.json``: one record per model (per ``label``) of
    :func:`seed_means`, with the per-run fields of each seed under ``per_seed``
    (the per-seed records themselves stay in :data:`SEEDS_FILE`)."""
    store = ResultStore(out_dir, config, (label,), environment=env, fresh=fresh)
    for rec in records:
        runs = [{k: r.get(k) for k in (*PER_RUN_FIELDS, *task.metrics, "train_time_s")}
                for r in per_seed if r.get(label) == rec[label]]
        new = to_jsonable({**{k: v for k, v in rec.items()
                              if not k.startswith("_") and k not in PER_RUN_FIELDS},
                           "per_seed": runs})
        old = store.get(**{label: rec[label]})
        if old is None or {k: v for k, v in old.items() if not k.startswith("_")} != new:
            store.add(new)  # unchanged records keep their time of measurement
    return store


def metric_value(record: Mapping[str, Any], metric: str) -> float | None:
    """A record's metric in the unit of the tables (percent for IoU-like ones)."""
    value = record.get(metric)
    if value is None:
        return None
    return 100.0 * value if metric in PERCENT_METRICS else float(value)


def metric_text(record: Mapping[str, Any], metric: str) -> str:
    """A (seed-averaged) record's metric in table units, ``"mean ± std"`` over seeds."""
    return format_pm(record.get(metric), record.get(f"{metric}_std"),
                     seeds=record.get("seeds", 1),
                     scale=100.0 if metric in PERCENT_METRICS else 1.0,
                     digits=int(metric_format(metric)[1]))


def metric_format(metric: str) -> str:
    return ".1f" if metric in PERCENT_METRICS else ".4f" if metric == "mae" else ".3f"


def metric_header(metric: str) -> str:
    label = METRIC_LABELS.get(metric, metric)
    return f"{label} (%)" if metric in PERCENT_METRICS else label


def per_seed_table(task: TaskSpec, per_seed: Sequence[Mapping[str, Any]],
                   label: str = "model") -> str:
    """Every metric of every model (or other ``label`` field) and seed."""
    rows = [{label: r[label], "seed": r.get("seed"),
             **{m: metric_value(r, m) for m in task.metrics},
             "train_time_s": r.get("train_time_s")} for r in per_seed]
    return markdown_table(rows, [
        (label, label.capitalize()), ("seed", "seed"),
        *((m, metric_header(m), metric_format(m)) for m in task.metrics),
        ("train_time_s", "train (s)", ".0f")])


def task_config(args: argparse.Namespace, task: TaskSpec, schedule: TaskSchedule,
                data: TaskData, **extra: Any) -> dict[str, Any]:
    """The protocol of a run: schedule, task, split (with its file lists), models."""
    return protocol_config(args, protocol_version=PROTOCOL_VERSION, task=task.name,
                           dataset=data.dataset, data_note=data.note,
                           task_schedule=schedule.to_dict(), hg_options=dict(task.hg_options),
                           split=data.split, **extra)


def report_config(config: Mapping[str, Any], data: TaskData) -> dict[str, Any]:
    """The configuration for ``results.md``: the split without its file lists
    (they are in ``results.json``, ``config.split``)."""
    return {**config, "split": {**data.split_summary(),
                                "files": "listed in results.json (config.split)"}}
