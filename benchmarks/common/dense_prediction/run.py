"""Train, score and count one model: :func:`train_and_evaluate`."""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmarks.common.training import fit, unwrap_model

from .data import (
    TaskData,
    load_task_data,
)
from .evaluation import compute_loss, evaluate, model_flops
from .models import is_graph_model
from .schedules import TaskSchedule
from .specs import TaskSpec, get_task, resolve_schedule


def train_and_evaluate(model: nn.Module, task: str | TaskSpec, *,
                       data_root: str | os.PathLike | None = None,
                       schedule: str | TaskSchedule = "default",
                       out_dir: str | os.PathLike, seed: int = 0, fresh: bool = False,
                       threads: int | None = None, progress: bool = True,
                       device: str = "cpu", find_unused_parameters: bool = False,
                       data: TaskData | None = None) -> dict[str, Any]:
    """Train ``model`` on ``task`` with THE training loop, score it, count its FLOPs.

    Args:
        model: any model with the :class:`~pyg_hgconv.nn.models.SegmentationOutput`
            contract and ``num_classes`` outputs of the task (e.g. from
            :func:`build_model`, or ``HGResNetSeg(..., conv=<any graph conv>)``).
        task: ``'segmentation' | 'roads' | 'saliency'`` (or a :class:`TaskSpec`).
        data_root: root of the data sets (default
            :func:`pyg_hgconv.datasets.root.data_root`).
        schedule: ``'quick' | 'default' | 'full'`` or a :class:`TaskSchedule`.
        out_dir: the run directory: ``checkpoint.pt`` (every epoch) and
            ``train_result.json``; an unfinished run there is resumed, a
            finished one only loaded (``fresh=True`` starts over, moving the old
            files aside).
        seed: seed of data order, augmentation, dropout and training-mode
            clustering (``TrainConfig.seed``; seed the model's initialisation
            yourself before building it).
        threads: ``torch.set_num_threads`` for this run (``None``: unchanged).
        progress: tqdm bars and per-epoch lines.
        device: torch device; under ``torchrun`` each process trains a shard
            (gloo on CPU) and every rank returns the same record.
        find_unused_parameters: passed to DDP (not needed by the models here:
            every parameter takes part in every training step).
        data: preloaded :func:`load_task_data` result (default: loaded here).

    Returns:
        A JSON-able record: ``task``, ``dataset``, ``data_note`` (fallback
        reason or ``None``), ``split`` (:meth:`TaskData.split_summary`),
        ``input_size``, ``schedule``, ``model_class``, ``variant``
        (``'grid'``/``'hg'``), ``attention``, ``conv``, ``primary_metric``,
        the metrics of :func:`evaluate` (top level, ``iou_per_class`` as a
        dict), ``groups_per_image`` (HG), the fields of :func:`model_flops`,
        ``params``, ``train_time_s``, ``epochs``, ``steps``, ``final_loss``,
        ``world_size``, ``resumed_from_epoch``, ``eval_time_s`` (the last evaluation
        in this call; ``None`` when a finished run was only loaded), ``flops_time_s``
        and ``run_dir``.
    """
    spec = get_task(task)
    sched = resolve_schedule(spec, schedule)
    if not isinstance(model, nn.Module):
        raise TypeError(f"'model' must be a torch.nn.Module (got {type(model).__name__})")
    classes = getattr(unwrap_model(model), "num_classes", spec.num_classes)
    if classes != spec.num_classes:
        raise ValueError(f"the {spec.name} task needs num_classes={spec.num_classes} "
                         f"(the model has {classes})")
    if threads is not None:
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"'threads' must be None or an int >= 1 (got {threads!r})")
        torch.set_num_threads(threads)
    if data is None:
        data = load_task_data(spec, data_root, sched)
    elif data.task.name != spec.name or data.schedule != sched:
        raise ValueError("'data' was loaded for another task or schedule")
    if data.note and progress:
        print(f"note: {data.note}", flush=True)

    config = sched.train_config(seed, progress=progress, device=device,
                                find_unused_parameters=find_unused_parameters)
    eval_time: list[float] = []

    def timed_evaluate(m: nn.Module) -> dict[str, float]:
        tic = time.perf_counter()
        scores = evaluate(m, data, batch_size=sched.batch_size, progress=progress)
        eval_time.append(time.perf_counter() - tic)
        return scores

    result = fit(model, data.train, compute_loss(spec), config, out_dir,
                 evaluate=timed_evaluate, fresh=fresh)
    tic = time.perf_counter()
    flops = model_flops(model, data, progress=progress)
    metrics = dict(result.metrics)
    per_class = {k.split("/", 1)[1]: metrics.pop(k) for k in list(metrics) if k.startswith("iou/")}
    inner = unwrap_model(model)
    record: dict[str, Any] = {
        "task": spec.name,
        "dataset": data.dataset,
        "data_note": data.note,
        "split": data.split_summary(),
        "input_size": list(sched.input_size),
        "schedule": sched.to_dict(),
        "model_class": type(inner).__name__,
        "variant": "hg" if is_graph_model(inner) else "grid",
        "attention": getattr(inner, "attention", None),
        "conv": getattr(inner, "conv_name", None),
        "primary_metric": spec.primary_metric,
        **metrics,
    }
    if per_class:
        record["iou_per_class"] = per_class
    record.update(flops)
    record.update({
        "params": sum(p.numel() for p in inner.parameters()),
        "train_time_s": result.train_time_s,
        "epochs": result.epochs,
        "steps": result.steps,
        "final_loss": result.final_loss if math.isfinite(result.final_loss) else None,
        "world_size": result.world_size,
        "resumed_from_epoch": result.resumed_from_epoch,
        "eval_time_s": eval_time[-1] if eval_time else None,
        "flops_time_s": time.perf_counter() - tic,
        "run_dir": str(Path(out_dir)),
    })
    return record
