"""Training configuration and result records (:class:`TrainConfig`, :class:`TrainResult`)."""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from benchmarks.common.results import (
    config_fingerprint,
)

log = logging.getLogger(__name__)

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("none", "poly", "cosine", "step")
CHECKPOINT_NAME = "checkpoint.pt"
RESULT_NAME = "train_result.json"
CHECKPOINT_FORMAT = 1

#: ``compute_loss(model, batch) -> (scalar loss tensor, {name: float})``
LossFn = Callable[[torch.nn.Module, Any], "tuple[Tensor, Mapping[str, float]] | Tensor"]
#: ``evaluate(model) -> {metric: float}``
EvalFn = Callable[[torch.nn.Module], Mapping[str, float]]


# --------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training schedule.

    Args:
        epochs: passes over the training set.
        batch_size: *global* batch size (split evenly over DDP processes).
        optimizer: ``'sgd'`` (with ``momentum``), ``'adam'`` or ``'adamw'`` (with ``betas``).
        lr: initial (peak) learning rate.
        momentum: SGD momentum.
        betas: Adam/AdamW betas.
        weight_decay: L2 penalty (SGD, Adam) or decoupled decay (AdamW).
        scheduler: per-iteration learning-rate schedule over
            ``T = epochs * steps_per_epoch`` steps, step ``s = 0 .. T-1``:
            ``'none'``; ``'poly'``: ``lr * (1 - s/T) ** poly_power`` (the paper's
            ``poly p=0.9``); ``'cosine'``: ``lr * (1 + cos(pi s/T)) / 2``;
            ``'step'``: ``lr * gamma ** #{m in milestones : m <= epoch(s)}`` with
            ``milestones`` in epochs (the paper's ``step gamma=0.1 at 60, 90, 110``).
            ``min_lr`` is a floor for all of them.
        poly_power: exponent of ``'poly'``.
        milestones: epochs at which ``'step'`` multiplies the rate by ``gamma``.
        gamma: factor of ``'step'``.
        min_lr: lower bound of the scheduled rate.
        warmup_iters: linear warm-up over the first steps, factor ``(s + 1) / warmup_iters``.
        grad_clip: clip the global gradient L2 norm to this value (``None``: off).
        seed: base seed of initialisation-independent randomness (data order,
            augmentation, dropout); ``>= 0``.
        num_workers: DataLoader worker processes.
        max_steps_per_epoch: cap on optimiser steps per epoch (quick runs);
            ``None`` = the whole training set.
        shuffle: reshuffle the training set every epoch.
        drop_last: drop the last incomplete batch.
        log_every: refresh the progress-bar loss every this many steps.
        eval_every: run ``evaluate`` every this many epochs (and after the last).
        device: torch device; under DDP with CUDA each rank uses ``cuda:LOCAL_RANK``.
        deterministic: on CUDA, deterministic algorithms while training (see the
            module docstring); seeding is always deterministic.
        find_unused_parameters: passed to DDP (models with unused branches).
        progress: show tqdm progress bars and per-epoch summary lines (rank 0).
    """

    epochs: int
    batch_size: int
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    scheduler: str = "none"
    poly_power: float = 0.9
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_iters: int = 0
    grad_clip: float | None = None
    seed: int = 0
    num_workers: int = 0
    max_steps_per_epoch: int | None = None
    shuffle: bool = True
    drop_last: bool = False
    log_every: int = 10
    eval_every: int = 1
    device: str = "cpu"
    deterministic: bool = True
    find_unused_parameters: bool = False
    progress: bool = True

    #: fields that never change the trained weights
    _RUN_ONLY_FIELDS = ("log_every", "eval_every", "progress", "device")

    def __post_init__(self) -> None:
        def need(cond: bool, field: str, expected: str) -> None:
            if not cond:
                raise ValueError(
                    f"TrainConfig.{field} must be {expected}, got {getattr(self, field)!r}"
                )

        def is_int(v: Any) -> bool:
            return isinstance(v, (int, np.integer)) and not isinstance(v, bool)

        def is_num(v: Any) -> bool:
            return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(
                v, bool
            ) and math.isfinite(float(v))

        need(is_int(self.epochs) and self.epochs >= 1, "epochs", "an integer >= 1")
        need(is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "an integer >= 1")
        need(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}")
        need(is_num(self.lr) and self.lr > 0, "lr", "a finite number > 0")
        need(is_num(self.momentum) and 0 <= self.momentum < 1, "momentum", "in [0, 1)")
        object.__setattr__(self, "betas", tuple(float(b) for b in self.betas))
        need(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), "betas",
             "two numbers in [0, 1)")
        need(is_num(self.weight_decay) and self.weight_decay >= 0, "weight_decay", ">= 0")
        need(self.scheduler in SCHEDULERS, "scheduler", f"one of {SCHEDULERS}")
        need(is_num(self.poly_power) and self.poly_power > 0, "poly_power", "> 0")
        object.__setattr__(self, "milestones", tuple(int(m) for m in self.milestones))
        need(all(m >= 1 for m in self.milestones)
             and list(self.milestones) == sorted(set(self.milestones)),
             "milestones", "strictly increasing epochs >= 1")
        need(self.scheduler != "step" or len(self.milestones) > 0, "milestones",
             "non-empty for scheduler='step'")
        need(is_num(self.gamma) and 0 < self.gamma <= 1, "gamma", "in (0, 1]")
        need(is_num(self.min_lr) and 0 <= self.min_lr <= self.lr, "min_lr", "in [0, lr]")
        need(is_int(self.warmup_iters) and self.warmup_iters >= 0, "warmup_iters",
             "an integer >= 0")
        need(self.grad_clip is None or (is_num(self.grad_clip) and self.grad_clip > 0),
             "grad_clip", "None or a number > 0")
        need(is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0")
        need(is_int(self.num_workers) and self.num_workers >= 0, "num_workers",
             "an integer >= 0")
        need(self.max_steps_per_epoch is None
             or (is_int(self.max_steps_per_epoch) and self.max_steps_per_epoch >= 1),
             "max_steps_per_epoch", "None or an integer >= 1")
        need(is_int(self.log_every) and self.log_every >= 1, "log_every", "an integer >= 1")
        need(is_int(self.eval_every) and self.eval_every >= 1, "eval_every", "an integer >= 1")
        try:
            torch.device(self.device)
        except (RuntimeError, TypeError):
            need(False, "device", "a torch device string such as 'cpu' or 'cuda:0'")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON-able dict (for results records and checkpoints)."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        d["milestones"] = list(self.milestones)
        return d

    def protocol_dict(self) -> dict[str, Any]:
        """:meth:`to_dict` without the run-only fields (``log_every``, ``eval_every``,
        ``progress``, ``device``): what to put in a :class:`ResultStore` config so
        that toggling progress bars does not invalidate measured records."""
        d = self.to_dict()
        for name in self._RUN_ONLY_FIELDS:
            d.pop(name)
        return d

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def resume_fingerprint(self) -> str:
        """Hash of the fields a checkpoint must share to be resumed.

        All fields except the run-only ones (``log_every``, ``eval_every``,
        ``progress``, ``device``); ``epochs`` counts only for ``'poly'`` and
        ``'cosine'``, whose rate at every step depends on the total length --
        for ``'none'`` and ``'step'`` a finished run can be extended.
        """
        d = self.protocol_dict()
        if self.scheduler not in ("poly", "cosine"):
            d.pop("epochs")
        return config_fingerprint(d)


@dataclasses.dataclass
class TrainResult:
    """What :func:`fit` returns (and stores in ``train_result.json``).

    Attributes:
        epochs: completed epochs.
        steps: optimiser steps in total.
        train_time_s: training wall time in seconds, without evaluation/checkpointing.
        history: one dict per epoch: ``epoch`` (1-based), ``loss`` (mean over the
            epoch's steps and ranks), the mean of every ``logs`` entry, ``lr``
            (after the epoch), ``steps``, ``train_time_s`` and ``metrics``
            (``evaluate``'s result, ``{}`` when it did not run).
        metrics: the last evaluation (``{}`` without ``evaluate``).
        resumed_from_epoch: epochs loaded from a checkpoint at the start of the
            call (``0`` for a fresh run; ``epochs`` when nothing was left to do).
        world_size: processes that trained the last epoch.
        checkpoint: path of ``checkpoint.pt``.
        finished: whether all configured epochs are done.
    """

    epochs: int
    steps: int
    train_time_s: float
    history: list[dict[str, Any]]
    metrics: dict[str, float]
    resumed_from_epoch: int
    world_size: int
    checkpoint: str
    finished: bool = True

    @property
    def final_loss(self) -> float:
        """Mean training loss of the last epoch (NaN before the first epoch)."""
        return float(self.history[-1]["loss"]) if self.history else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of all fields."""
        return dataclasses.asdict(self)
