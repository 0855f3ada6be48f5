r"""Task part: the graph convs in HG-ResNet-18's stage-4 slot, trained on CamVid,
under the two protocols of the paper's Table 3, with several seeds.

Models (``conv`` / ``cell``):

==================  ====================  ===================================================
``conv``            ``cell``              model
==================  ====================  ===================================================
hgconv, gcn, gmm,   ``hg-resnet18``       :class:`~pyg_hgconv.nn.models.HGResNetSeg`: dilated
spline,                                   ResNet-18 stages 1-3, stage 4 on the group graph of
dynamic_edge                              the stage-3 map with ``conv`` in every 3x3 slot,
                                          fused with stage 3 (the slot of the paper's Table 3)
conv2d              ``resnet18-dilated``  :class:`~pyg_hgconv.nn.models.ResNetSeg`, stages 3-4
                                          dilated (output stride 8: "ResNet-Dilation")
conv2d              ``resnet18-plain``    the same without dilation (output stride 32; ``--full``)
==================  ====================  ===================================================

Protocols (``protocol``), Table 3's two blocks:

* ``scratch`` ("w/o transfer"): every model trained from its seeded
  initialisation;
* ``transfer`` ("w/ transfer"): the ResNet18-Dilation trained from scratch with
  the same seed is the pretrained model; every model of the block starts from
  it and is fine-tuned with the same schedule -- the grid model itself, and the
  HG models converted from it by :func:`~pyg_hgconv.nn.models.hg_from_grid`:
  stages 1-3 and the heads copied, stage 4 moved onto the group graph with its
  BatchNorms and 1x1 layers, the fusion conv starting as a pass-through, and
  the stage's 3x3 kernels copied into the graph convs through their registry
  mapping where one exists (``ConvSpec.transfer``: exact for ``hgconv``, an
  initialisation for ``spline``; ``gcn``, ``gmm`` and ``dynamic_edge`` keep
  their own initialisation there). Each record says which
  (``transfer_note``).

The default schedule follows Table 3's own split (:data:`PROTOCOL_CONVS`: GCN
and DynamicEdgeConv w/o transfer, GMM and Spline w/ transfer, HG-Conv and the
grid model in both); ``--full`` trains every conv under both protocols. Every
model trains with every seed of the schedule (``--seed``, ``--seed + 1``, ...),
the same data order and augmentation for every model of a seed, so that the
models can be compared seed by seed (:func:`~benchmarks.common.summary.paired_difference`).
The task, data, loss, metrics and base schedule are those of the
``segmentation`` task of :mod:`benchmarks.common.dense_prediction`, shortened
(:data:`SCHEDULE_CHANGES`) so that the default run fits its time budget.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common.cli import schedule_name
from benchmarks.common.results import ResultStore, config_fingerprint, run_cells
from benchmarks.common.training import seed_everything
from pyg_hgconv.nn.conv.registry import get_conv

from .operator import GRAPH_CONVS
from .schedules import IrregularSchedule

__all__ = ["PROTOCOLS", "PROTOCOL_CONVS", "SCHEDULE_CHANGES", "TASK", "measure_task", "run",
           "task_cells", "task_config", "task_schedule"]

#: the task of :mod:`benchmarks.common.dense_prediction` this part trains on
TASK = "segmentation"
#: the two blocks of Table 3
PROTOCOLS = ("scratch", "transfer")
#: changes to the task's schedules (``TaskSchedule.replace``): the models of both
#: blocks, with every seed, must fit the default run's budget with the operator part.
#: The default trains 5 seeds on fewer images rather than 3 on more: a difference
#: is resolved only when all 5 seeds agree on its sign and the paired t-test,
#: corrected over the block's pairs (:mod:`.comparison`), agrees, and with 3 seeds
#: the corrected test can call almost nothing. The FLOPs of the HG models are
#: averaged over 32 of the validation images (their spread over the images is
#: reported as ``gflops_std``)
SCHEDULE_CHANGES: dict[str, dict[str, Any]] = {
    "quick": {"seeds": 2},
    "default": {"epochs": 4, "max_train_items": 128, "seeds": 5, "flops_items": 32},
    "full": {"seeds": 3},
}
#: graph convs per protocol and schedule (Table 3's split by default)
PROTOCOL_CONVS: dict[str, dict[str, tuple[str, ...]]] = {
    "quick": {"scratch": ("hgconv", "gcn", "dynamic_edge"),
              "transfer": ("hgconv", "gmm", "spline")},
    "default": {"scratch": ("hgconv", "gcn", "dynamic_edge"),
                "transfer": ("hgconv", "gmm", "spline")},
    "full": {"scratch": GRAPH_CONVS, "transfer": GRAPH_CONVS},
}
#: grid models per schedule: cell -> dilated (the plain one only in --full, w/o transfer)
GRID_CELLS: dict[str, dict[str, bool]] = {
    "quick": {"resnet18-dilated": True},
    "default": {"resnet18-dilated": True},
    "full": {"resnet18-dilated": True, "resnet18-plain": False},
}
#: the grid model the transfer block starts from
PRETRAINED_CELL = "resnet18-dilated"


def task_schedule(name: str, seeds: int | None = None):
    """The :class:`~benchmarks.common.dense_prediction.TaskSchedule` of schedule
    ``name``, with ``seeds`` seeds per model instead of the schedule's if given."""
    from benchmarks.common.dense_prediction import resolve_schedule

    sched = resolve_schedule(TASK, name).replace(**SCHEDULE_CHANGES[name])
    return sched if seeds is None else sched.replace(seeds=seeds)


def schedule_of(args: argparse.Namespace):
    """The task schedule of a command line: ``--quick``/``--full`` and ``--seeds``."""
    return task_schedule(schedule_name(args), getattr(args, "seeds", None))


def runs_fingerprint(config: dict[str, Any]) -> str:
    """The fingerprint of what one training run depends on: the protocol
    configuration without the operator part, the base seed and the number of
    seeds. A run is keyed by its own seed inside, so adding seeds (``--seeds``)
    or another base seed reuses every finished run instead of training it again."""
    task = {k: v for k, v in config["task"].items() if k != "seeds"}
    task["schedule"] = {k: v for k, v in task["schedule"].items() if k != "seeds"}
    rest = {k: v for k, v in config.items() if k not in ("operator", "seed", "task")}
    return config_fingerprint({**rest, "task": task})


def seeds_of(args: argparse.Namespace) -> list[int]:
    """The training seeds: ``--seed``, ``--seed + 1``, ... (the schedule's number)."""
    return [int(args.seed) + i for i in range(schedule_of(args).seeds)]


def task_config(args: argparse.Namespace, schedule: IrregularSchedule) -> dict[str, Any]:
    """The task part of the protocol configuration."""
    from benchmarks.common.dense_prediction import get_task

    spec = get_task(TASK)
    name = schedule_name(args)
    return {"task": TASK, "schedule": schedule_of(args).to_dict(),
            "seeds": seeds_of(args), "protocol_convs": {k: list(v) for k, v in
                                                       PROTOCOL_CONVS[name].items()},
            "grid_cells": dict(GRID_CELLS[name]),
            "hg_options": dict(spec.hg_options), "paper_setup": spec.paper_setup,
            "split": "train / val (CamVid folders as given; evenly spaced subsets)"}


def task_cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (model, protocol, seed) of the schedule: all ``scratch`` models
    first (the ``transfer`` block starts from the scratch grid model)."""
    name = schedule_name(args)
    cells = []
    for protocol in PROTOCOLS:
        for seed in seeds_of(args):
            grids = GRID_CELLS[name] if protocol == "scratch" else {PRETRAINED_CELL: True}
            for cell, dilated in grids.items():
                cells.append({"part": "task", "conv": "conv2d", "cell": cell, "kind": "grid",
                              "protocol": protocol, "seed": seed,
                              "model": f"ResNet18-{'Dilation' if dilated else 'Plain'}"})
            for conv in PROTOCOL_CONVS[name][protocol]:
                cells.append({"part": "task", "conv": conv, "cell": "hg-resnet18",
                              "kind": "graph", "protocol": protocol, "seed": seed,
                              "model": f"HG-ResNet18 ({conv})"})
    return cells


def hg_options(args: argparse.Namespace, sched) -> dict[str, Any]:
    """The clustering options of the HG models (the task's, the schedule's ratio
    and the benchmark's graph options)."""
    from benchmarks.common.dense_prediction import get_task

    return {**get_task(TASK).hg_options, "ratio": sched.hg_ratio,
            "edge_threshold": args.edge_threshold, "direction_rule": args.direction_rule}


def conv_kwargs_of(args: argparse.Namespace, conv: str) -> dict[str, Any] | None:
    """Extra arguments of a graph conv: the SplineConv implementation (``--spline-impl``)."""
    return {"impl": args.spline_impl} if conv == "spline" else None


def build_grid_model(cell: dict[str, Any], sched, seed: int):
    """The seeded grid model of a cell."""
    from benchmarks.common.dense_prediction import get_task
    from pyg_hgconv.nn.models import ResNetSeg

    seed_everything(seed)
    dilated = cell["cell"] != "resnet18-plain"
    return ResNetSeg(sched.backbone, get_task(TASK).num_classes, width=sched.width,
                     dilated=dilated)


def build_scratch_model(cell: dict[str, Any], args: argparse.Namespace, sched):
    """The seeded model of a ``scratch`` cell."""
    from benchmarks.common.dense_prediction import build_model

    if cell["kind"] == "grid":
        return build_grid_model(cell, sched, cell["seed"])
    seed_everything(cell["seed"])
    # the task's clustering options and ratio, the benchmark's graph options
    return build_model(TASK, "hg", sched, conv=cell["conv"], edge_threshold=args.edge_threshold,
                       direction_rule=args.direction_rule,
                       conv_kwargs=conv_kwargs_of(args, cell["conv"]))


def pretrained_grid(seed: int, args: argparse.Namespace, sched, runs_dir: Path, data):
    """The ResNet18-Dilation trained from scratch with ``seed`` (loaded from its
    finished run, which the ``scratch`` block wrote)."""
    from benchmarks.common.dense_prediction import train_and_evaluate

    cell = {"cell": PRETRAINED_CELL, "conv": "conv2d", "protocol": "scratch", "seed": seed}
    model = build_grid_model(cell, sched, seed)
    train_and_evaluate(model, TASK, schedule=sched, out_dir=run_dir_of(runs_dir, cell),
                       seed=seed, fresh=False, threads=args.threads, progress=False,
                       device=args.device, data=data)
    return model


def build_transfer_model(cell: dict[str, Any], args: argparse.Namespace, sched,
                         runs_dir: Path, data):
    """The model of a ``transfer`` cell: the pretrained grid model of its seed,
    or the HG model converted from it (see the module docstring)."""
    from pyg_hgconv.nn.models import hg_from_grid

    grid = pretrained_grid(cell["seed"], args, sched, runs_dir, data)
    if cell["kind"] == "grid":
        return grid
    seed_everything(cell["seed"])  # the layers the HG model adds (fusion, embedding)
    return hg_from_grid(grid, conv=cell["conv"], conv_kwargs=conv_kwargs_of(args, cell["conv"]),
                        **hg_options(args, sched))


def run_dir_of(runs_dir: Path, cell: dict[str, Any]) -> Path:
    """Where a cell's training run lives."""
    return runs_dir / cell["protocol"] / f"{cell['cell']}-{cell['conv']}" / f"seed{cell['seed']}"


#: fields of :func:`~benchmarks.common.dense_prediction.train_and_evaluate`'s record kept here
_KEPT = ("dataset", "data_note", "split", "input_size", "variant", "miou", "pixel_accuracy",
         "mean_accuracy", "iou_per_class", "groups_per_image", "gflops_per_image",
         "gflops_std", "flops_components", "stage_modules", "stage_gflops", "images_counted",
         "params", "train_time_s", "epochs", "steps", "final_loss", "eval_time_s",
         "flops_time_s", "run_dir")


def measure_task(cell: dict[str, Any], args: argparse.Namespace, sched, runs_dir: Path,
                 progress: bool = True) -> dict[str, Any]:
    """Train (or fine-tune) and score the model of ``cell``; checkpoints in
    :func:`run_dir_of`. A conv whose compiled backend is missing gives
    ``{"status": "error", "error": ...}``."""
    from benchmarks.common.dense_prediction import load_task_data, train_and_evaluate

    from .operator import missing_backend

    missing = missing_backend(cell["conv"])
    if missing is not None:
        return {"status": "error",
                "error": f"backend {missing!r} is not installed: {cell['conv']!r} cannot run"}
    data = load_task_data(TASK, args.data_root, sched)
    if cell["protocol"] == "scratch":
        model = build_scratch_model(cell, args, sched)
    else:
        model = build_transfer_model(cell, args, sched, runs_dir, data)
    record = train_and_evaluate(model, TASK, schedule=sched, out_dir=run_dir_of(runs_dir, cell),
                                seed=cell["seed"], fresh=args.fresh, threads=args.threads,
                                progress=progress, device=args.device, data=data)
    out = {k: record[k] for k in _KEPT if k in record}
    out["dataset_note"] = record.get("data_note")
    out["groups"] = record.get("groups_per_image")
    out["stage4_gflops"] = record.get("stage_gflops")
    if cell["kind"] == "graph":
        spec = get_conv(cell["conv"])
        out["transfer_note"] = (spec.transfer_note if cell["protocol"] == "transfer"
                                else "trained from scratch")
        out["settings"] = spec.describe(model.stage4.stage.blocks[0].conv1.layer)
    out["status"] = "ok"
    return out


def run(args: argparse.Namespace, schedule: IrregularSchedule, store: ResultStore,
        progress: bool = True) -> list[dict[str, Any]]:
    """Train every (model, protocol, seed) that ``store`` has no record of; return
    all task records.

    Training runs live in ``<out>/runs/<runs fingerprint>/`` (:func:`runs_fingerprint`):
    a run is only resumed (or its finished weights reused) under the same protocol,
    e.g. not after ``--edge-threshold`` changed, which the training loop's own
    fingerprint (the schedule only) would not notice; more seeds or another base
    seed reuse the finished runs.
    """
    sched = schedule_of(args)
    runs_dir = Path(args.out) / "runs" / runs_fingerprint(store.config)
    return run_cells(store, task_cells(args),
                     lambda cell: measure_task(cell, args, sched, runs_dir, progress),
                     desc="task", progress=progress)
