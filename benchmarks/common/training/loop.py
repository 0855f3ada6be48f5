"""THE training loop :func:`fit` (see the package docstring for its guarantees)."""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import (
    Dataset,
)

from benchmarks.common.results import (
    atomic_torch_save,
    atomic_write_json,
    utc_now,
)

from .checkpoint import _load_checkpoint, _rng_state, _set_rng_state
from .config import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_NAME,
    RESULT_NAME,
    EvalFn,
    LossFn,
    TrainConfig,
    TrainResult,
)
from .data import (
    _start_epoch,
    make_loader,
    move_to_device,
)
from .distributed import (
    _deterministic_mode,
    _Dist,
    _init_distributed,
)
from .optim import build_optimizer, build_scheduler


# --------------------------------------------------------------------------------------
def _as_float(value: Any, what: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1:
            raise TypeError(f"{what} must be a number or a one-element tensor, "
                            f"got a tensor of shape {tuple(value.shape)}")
        return float(value.detach().item())
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        return float(value)
    raise TypeError(f"{what} must be a number, got {type(value).__name__}")


def _split_loss(out: Any) -> tuple[Tensor, dict[str, float]]:
    if isinstance(out, Tensor):
        loss, logs = out, {}
    elif isinstance(out, (tuple, list)) and len(out) == 2 and isinstance(out[0], Tensor):
        loss, raw = out
        if not isinstance(raw, Mapping):
            raise TypeError("compute_loss must return (loss, logs) with logs a dict "
                            f"of floats, got {type(raw).__name__}")
        if "loss" in raw:
            raise ValueError("compute_loss logs may not use the name 'loss' (reserved)")
        logs = {str(k): _as_float(v, f"compute_loss log {k!r}") for k, v in raw.items()}
    else:
        raise TypeError("compute_loss(model, batch) must return a scalar loss tensor or "
                        f"(loss, logs), got {type(out).__name__}")
    if loss.dim() != 0:
        raise TypeError(f"compute_loss must return a scalar loss, got shape {tuple(loss.shape)}")
    return loss, logs


def _check_metrics(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, Mapping):
        raise TypeError(f"evaluate(model) must return a dict of floats, got "
                        f"{type(metrics).__name__}")
    return {str(k): _as_float(v, f"metric {k!r}") for k, v in metrics.items()}


def _write_result(out_dir: Path, result: TrainResult, config: TrainConfig) -> None:
    atomic_write_json(out_dir / RESULT_NAME, {"config": config.to_dict(), **result.to_dict()})


def fit(
    model: torch.nn.Module,
    train_data: Dataset,
    compute_loss: LossFn,
    config: TrainConfig,
    out_dir: str | os.PathLike,
    *,
    evaluate: EvalFn | None = None,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    fresh: bool = False,
) -> TrainResult:
    """Train ``model`` on ``train_data``; checkpoint, resume and evaluate as documented above.

    Args:
        model: the module to train, moved to ``config.device``; on return it holds
            the trained weights (also when a finished run was only loaded).
        train_data: a map-style data set; items are batched by ``collate_fn``
            (default: :func:`collate`, PyG-aware) and moved to the device
            with :func:`move_to_device`.
        compute_loss: ``compute_loss(model, batch) -> loss`` or ``-> (loss, logs)``
            with a scalar ``loss`` tensor and ``logs`` a dict of floats (or
            one-element tensors) averaged per epoch into the history. Under DDP
            ``model`` is the DDP wrapper: call it, and reach attributes through
            :func:`unwrap_model`.
        config: the schedule.
        out_dir: directory of this training run (one per model/cell).
        evaluate: ``evaluate(model) -> {metric: float}`` after every
            ``config.eval_every`` epochs and after the last one (rank 0 only).
        collate_fn: overrides the default collate function.
        fresh: move an existing checkpoint aside and start over.

    Returns:
        The :class:`TrainResult` (identical on every DDP rank).

    Raises:
        FloatingPointError: when the loss becomes NaN/inf (the last checkpoint stays).
        TypeError/ValueError: for a bad ``compute_loss``/``evaluate`` return or arguments.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not callable(compute_loss):
        raise TypeError("compute_loss must be callable as compute_loss(model, batch)")
    if evaluate is not None and not callable(evaluate):
        raise TypeError("evaluate must be None or callable as evaluate(model)")
    out_dir = Path(out_dir)
    ctx = _init_distributed(config.device)
    was_training = model.training
    try:
        if config.batch_size % ctx.world_size:
            raise ValueError(f"TrainConfig.batch_size={config.batch_size} must be divisible by "
                             f"the number of processes ({ctx.world_size})")
        if ctx.is_main:
            out_dir.mkdir(parents=True, exist_ok=True)
        ctx.barrier()
        with _deterministic_mode(config.deterministic, ctx.device):
            return _fit(model, train_data, compute_loss, config, out_dir, evaluate,
                        collate_fn, fresh, ctx)
    finally:
        model.train(was_training)
        if ctx.created_group:
            dist.destroy_process_group()


def _fit(
    model: torch.nn.Module,
    train_data: Dataset,
    compute_loss: LossFn,
    config: TrainConfig,
    out_dir: Path,
    evaluate: EvalFn | None,
    collate_fn: Callable[[list[Any]], Any] | None,
    fresh: bool,
    ctx: _Dist,
) -> TrainResult:
    from tqdm.auto import tqdm

    model.to(ctx.device)
    loader = make_loader(
        train_data, config.batch_size // ctx.world_size, shuffle=config.shuffle,
        seed=config.seed, num_workers=config.num_workers, collate_fn=collate_fn,
        drop_last=config.drop_last, num_replicas=ctx.world_size, rank=ctx.rank,
        pin_memory=ctx.device.type == "cuda",
    )
    steps_per_epoch = len(loader)
    if config.max_steps_per_epoch is not None:
        steps_per_epoch = min(steps_per_epoch, config.max_steps_per_epoch)
    if steps_per_epoch == 0:
        raise ValueError(f"the training set ({len(train_data)} items) gives no batch of "
                         f"{config.batch_size // ctx.world_size} with drop_last=True")
    optimizer = build_optimizer(model.parameters(), config)
    scheduler = build_scheduler(optimizer, config, steps_per_epoch)
    ckpt_path = out_dir / CHECKPOINT_NAME

    ckpt = _load_checkpoint(ckpt_path, config, steps_per_epoch, len(train_data), ctx, fresh)
    history: list[dict[str, Any]] = []
    start_epoch = global_step = 0
    if ckpt is not None:
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as exc:
            raise RuntimeError(f"{ckpt_path} does not fit this model; use another out_dir "
                               f"or fresh=True (--fresh). {exc}") from exc
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
        history = list(ckpt["history"])
        start_epoch, global_step = int(ckpt["epoch"]), int(ckpt["step"])

    def result(finished: bool) -> TrainResult:
        metrics = next((h["metrics"] for h in reversed(history) if h["metrics"]), {})
        return TrainResult(
            epochs=len(history), steps=global_step,
            train_time_s=float(sum(h["train_time_s"] for h in history)),
            history=[dict(h) for h in history], metrics=dict(metrics),
            resumed_from_epoch=start_epoch, world_size=ctx.world_size,
            checkpoint=str(ckpt_path), finished=finished,
        )

    if start_epoch >= config.epochs:
        return result(finished=True)

    net: torch.nn.Module = model
    if ctx.enabled:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None,
            find_unused_parameters=config.find_unused_parameters,
        )
    show = config.progress and ctx.is_main
    params = [p for p in model.parameters() if p.requires_grad]

    for epoch in range(start_epoch, config.epochs):
        _start_epoch(loader, config.seed, epoch, ctx.rank)
        model.train()
        sums: dict[str, float] = {}
        loss_sum, n_steps = 0.0, 0
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        tic = time.perf_counter()
        with tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{config.epochs}",
                  disable=not show, leave=False, dynamic_ncols=True, unit="step") as bar:
            for step, batch in enumerate(loader):
                if step >= steps_per_epoch:
                    break
                batch = move_to_device(batch, ctx.device)
                loss, logs = _split_loss(compute_loss(net, batch))
                value = float(loss.detach().item())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"non-finite loss {value} at epoch {epoch + 1}, step {step + 1}; "
                        f"the checkpoint of epoch {epoch} in {out_dir} is intact")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                scheduler.step()
                global_step += 1
                loss_sum += value
                n_steps += 1
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.update(1)
                if n_steps % config.log_every == 0 or n_steps == steps_per_epoch:
                    bar.set_postfix(loss=f"{loss_sum / n_steps:.4g}",
                                    lr=f"{optimizer.param_groups[0]['lr']:.3g}")
        if ctx.device.type == "cuda":
            torch.cuda.synchronize(ctx.device)
        train_time = time.perf_counter() - tic

        parts = ctx.gather((loss_sum, n_steps, sums, train_time))
        total_steps = sum(p[1] for p in parts)
        entry: dict[str, Any] = {
            "epoch": epoch + 1,
            "loss": sum(p[0] for p in parts) / total_steps,
        }
        for k in sorted({k for p in parts for k in p[2]}):
            entry[k] = sum(p[2].get(k, 0.0) for p in parts) / total_steps
        entry["lr"] = float(optimizer.param_groups[0]["lr"])
        entry["steps"] = n_steps
        entry["train_time_s"] = max(p[3] for p in parts)

        metrics: dict[str, float] = {}
        last = epoch + 1 == config.epochs
        if evaluate is not None and ((epoch + 1) % config.eval_every == 0 or last):
            if ctx.is_main:
                model.eval()
                with torch.no_grad():
                    metrics = _check_metrics(evaluate(model))
                model.train()
            metrics = ctx.broadcast(metrics)
        entry["metrics"] = metrics
        history.append(entry)

        if ctx.is_main:
            atomic_torch_save(
                {
                    "format": CHECKPOINT_FORMAT,
                    "fingerprint": config.resume_fingerprint(),
                    "config": config.to_dict(),
                    "epoch": epoch + 1,
                    "step": global_step,
                    "steps_per_epoch": steps_per_epoch,
                    "dataset_size": len(train_data),
                    "world_size": ctx.world_size,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "history": history,
                    "rng": _rng_state(),
                    "saved_at": utc_now(),
                },
                ckpt_path,
            )
            _write_result(out_dir, result(finished=last), config)
            if show:
                summary = " ".join(f"{k} {v:.4g}" for k, v in metrics.items())
                tqdm.write(f"epoch {epoch + 1}/{config.epochs} loss {entry['loss']:.4g} "
                           f"lr {entry['lr']:.3g} {train_time:.1f}s"
                           + (f" | {summary}" if summary else ""))
        ctx.barrier()

    return result(finished=True)


def load_train_result(out_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Read ``<out_dir>/train_result.json`` (``None`` when absent)."""
    path = Path(out_dir) / RESULT_NAME
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))
