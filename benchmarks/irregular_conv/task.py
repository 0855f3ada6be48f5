r"""Task part: the graph convs in HG-ResNet-18's stage-4 slot, trained on CamVid.

One model per cell, each trained from scratch with the same schedule, data
order and initialisation seed by :func:`benchmarks.common.dense_prediction.train_and_evaluate`
(THE training loop, checkpoints, resume, evaluation with the metrics module,
FLOPs averaged over the validation images):

==================  ====================  ===================================================
``conv``            ``cell``              model
==================  ====================  ===================================================
hgconv, gcn, gmm,   ``hg-resnet18``       :class:`~pyg_hgconv.nn.models.HGResNetSeg`: dilated
spline,                                   ResNet-18 stages 1-3, stage 4 on the group graph of
dynamic_edge                              the stage-3 map with ``conv`` in every 3x3 slot,
                                          fused with stage 3 (the slot of the paper's Table 3)
conv2d              ``resnet18-dilated``  :class:`~pyg_hgconv.nn.models.ResNetSeg`, stages 3-4
                                          dilated (output stride 8: "ResNet-Dilation")
conv2d              ``resnet18-plain``    :class:`~pyg_hgconv.nn.models.ResNetSeg` without
                                          dilation (output stride 32)
==================  ====================  ===================================================

The task, data, loss, metrics and base schedule are those of the
``segmentation`` task of :mod:`benchmarks.common.dense_prediction` (CamVid, or the
generated HeterogeneousScenes when it is absent); this benchmark shortens the
default schedule (:data:`SCHEDULE_CHANGES`) so that the models fit its time
budget. The HG models use the task's clustering options and ``hg_ratio`` and
the benchmark's ``--edge-threshold``.

Time cap
--------
Before a model is trained, one training step (forward, backward, Adam step on
the first training batch, on a copy of the model) is timed and multiplied by
the planned number of steps. A model whose projected training time exceeds
the cap (``--max-train-minutes``; the default schedule's
:data:`MAX_TRAIN_MINUTES`, none for ``--quick`` and ``--full``) is not trained:
its record has ``status='skipped'``, the measured step time and the
projection. The rule is the same for every model; on 2 CPU cores it is meant
for PyG's SplineConv, whose CPU kernels (torch-spline-conv) take tens of
seconds per step where the other convs take under one. The first step
carries one-off costs, so the projection errs on the high side.
"""
from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.common.cli import schedule_name
from benchmarks.common.results import ResultStore, run_cells
from benchmarks.common.training import seed_everything

from .operator import GRAPH_CONVS, missing_backend
from .schedules import IrregularSchedule

__all__ = ["MAX_TRAIN_MINUTES", "SCHEDULE_CHANGES", "TASK", "max_train_seconds", "measure_task",
           "project_training", "run", "task_cells", "task_config", "task_schedule"]

#: the task of :mod:`benchmarks.common.dense_prediction` this part trains on
TASK = "segmentation"
#: changes to the task's schedules (``TaskSchedule.replace``): all the models
#: must fit the default run's budget (under 15 minutes with the operator part)
#: (one seed per conv: the part compares many convs, not seeds)
SCHEDULE_CHANGES: dict[str, dict[str, Any]] = {
    "quick": {"seeds": 1},
    "default": {"epochs": 4, "max_train_items": 184, "seeds": 1},
    "full": {"seeds": 1},
}
GRID_CELLS = {"resnet18-dilated": True, "resnet18-plain": False}
#: default cap on a model's projected training time per schedule (``None``: no cap)
MAX_TRAIN_MINUTES: dict[str, float | None] = {"quick": None, "default": 5.0, "full": None}


def max_train_seconds(args: argparse.Namespace) -> float | None:
    """The cap in force: ``--max-train-minutes`` (``0``: none) or the schedule's."""
    minutes = getattr(args, "max_train_minutes", None)
    if minutes is None:
        minutes = MAX_TRAIN_MINUTES[schedule_name(args)]
    return None if minutes is None or minutes <= 0 else 60.0 * minutes


def task_schedule(name: str):
    """The :class:`~benchmarks.common.dense_prediction.TaskSchedule` of schedule ``name``."""
    from benchmarks.common.dense_prediction import resolve_schedule

    return resolve_schedule(TASK, name).replace(**SCHEDULE_CHANGES[name])


def task_config(args: argparse.Namespace, schedule: IrregularSchedule) -> dict[str, Any]:
    """The task part of the protocol configuration."""
    from benchmarks.common.dense_prediction import get_task

    spec = get_task(TASK)
    return {"task": TASK, "schedule": task_schedule(schedule_name(args)).to_dict(),
            "max_train_s": max_train_seconds(args),
            "hg_options": dict(spec.hg_options), "paper_setup": spec.paper_setup,
            "split": "train / val (CamVid folders as given; evenly spaced subsets)"}


def task_cells() -> list[dict[str, Any]]:
    """The models of the task part (graph convs first, then the grid baselines)."""
    cells = [{"part": "task", "conv": conv, "cell": "hg-resnet18", "model": f"HG-ResNet18 ({conv})",
              "kind": "graph"} for conv in GRAPH_CONVS]
    cells += [{"part": "task", "conv": "conv2d", "cell": name, "kind": "grid",
               "model": f"ResNet18-{'Dilation' if dilated else 'Plain'}"}
              for name, dilated in GRID_CELLS.items()]
    return cells


def build_task_model(cell: dict[str, Any], sched, seed: int, edge_threshold: float):
    """The (seeded) model of a task cell."""
    from benchmarks.common.dense_prediction import build_model, get_task
    from pyg_hgconv.nn.models import ResNetSeg

    seed_everything(seed)
    if cell["kind"] == "graph":
        return build_model(TASK, "hg", sched, conv=cell["conv"], edge_threshold=edge_threshold)
    spec = get_task(TASK)
    return ResNetSeg(sched.backbone, spec.num_classes, width=sched.width,
                     dilated=GRID_CELLS[cell["cell"]])


#: fields of :func:`~benchmarks.common.dense_prediction.train_and_evaluate`'s record kept here
_KEPT = ("dataset", "data_note", "split", "input_size", "variant", "miou", "pixel_accuracy",
         "mean_accuracy", "iou_per_class", "groups_per_image", "gflops_per_image",
         "gflops_std", "flops_components", "stage_modules", "stage_gflops", "images_counted",
         "params", "train_time_s", "epochs", "steps", "final_loss", "eval_time_s",
         "flops_time_s", "run_dir")


def project_training(model: torch.nn.Module, data, sched, device: str) -> dict[str, Any]:
    """Time one training step of a copy of ``model`` on the first training batch
    and project it onto the schedule (see "Time cap" in the module docstring).
    The model itself and the training run are untouched (the training loop
    re-seeds every epoch)."""
    from benchmarks.common.dense_prediction import compute_loss
    from benchmarks.common.training import make_loader, move_to_device

    loader = make_loader(data.train, sched.batch_size, shuffle=False, drop_last=True)
    steps_per_epoch = len(loader)
    if sched.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, sched.max_steps_per_epoch)
    probe = copy.deepcopy(model).to(device).train()
    optimizer = torch.optim.Adam(probe.parameters(), lr=sched.lr)
    batch = move_to_device(next(iter(loader)), torch.device(device))
    tic = time.perf_counter()
    loss, _ = compute_loss(TASK)(probe, batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    step = time.perf_counter() - tic
    steps = sched.epochs * steps_per_epoch
    return {"probe_step_s": step, "planned_steps": steps, "projected_train_s": step * steps}


def measure_task(cell: dict[str, Any], args: argparse.Namespace, sched, runs_dir: Path,
                 progress: bool = True) -> dict[str, Any]:
    """Train and score the model of ``cell`` (checkpoints in
    ``runs_dir/<cell>-<conv>``). A conv whose compiled backend is missing gives
    ``{"status": "error", "error": ...}``, a model over the time cap
    ``{"status": "skipped", "reason": ..., <its projection>}``."""
    from benchmarks.common.dense_prediction import load_task_data, train_and_evaluate

    missing = missing_backend(cell["conv"])
    if missing is not None:
        return {"status": "error",
                "error": f"backend {missing!r} is not installed: {cell['conv']!r} cannot run"}
    model = build_task_model(cell, sched, args.seed, args.edge_threshold)
    params = sum(p.numel() for p in model.parameters())
    data = load_task_data(TASK, args.data_root, sched)
    projection = project_training(model, data, sched, args.device)
    cap = max_train_seconds(args)
    if cap is not None and projection["projected_train_s"] > cap:
        return {"status": "skipped", "params": params, "max_train_s": cap, **projection,
                "reason": (f"projected training time {projection['projected_train_s'] / 60:.1f} "
                           f"min ({projection['planned_steps']} steps of "
                           f"{projection['probe_step_s']:.1f} s) exceeds the cap of "
                           f"{cap / 60:.1f} min; --max-train-minutes 0 lifts it")}
    run_dir = runs_dir / f"{cell['cell']}-{cell['conv']}"
    record = train_and_evaluate(model, TASK, data_root=args.data_root, schedule=sched,
                                out_dir=run_dir, seed=args.seed, fresh=args.fresh,
                                threads=args.threads, progress=progress, device=args.device,
                                data=data)
    out = {k: record[k] for k in _KEPT if k in record}
    out.update(projection)
    out["dataset_note"] = record.get("data_note")
    out["groups"] = record.get("groups_per_image")
    out["stage4_gflops"] = record.get("stage_gflops")
    out["status"] = "ok"
    return out


def run(args: argparse.Namespace, schedule: IrregularSchedule, store: ResultStore,
        progress: bool = True) -> list[dict[str, Any]]:
    """Train every model that ``store`` has no record of; return all task records.

    Training runs live in ``<out>/runs/<protocol fingerprint>/``: a run is only
    resumed (or its finished weights reused) under the same protocol, e.g. not
    after ``--edge-threshold`` changed, which the training loop's own
    fingerprint (the schedule only) would not notice.
    """
    sched = task_schedule(schedule_name(args))
    runs_dir = Path(args.out) / "runs" / store.fingerprint
    return run_cells(store, task_cells(),
                     lambda cell: measure_task(cell, args, sched, runs_dir, progress),
                     desc="task", progress=progress)
