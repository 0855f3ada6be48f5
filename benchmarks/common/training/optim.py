"""Optimisers and learning-rate schedules of :class:`~.config.TrainConfig`."""
from __future__ import annotations

import math
from typing import Any

import torch

from .config import (
    OPTIMIZERS,
    SCHEDULERS,
    TrainConfig,
)


# --------------------------------------------------------------------------------------
def build_optimizer(params: Any, config: TrainConfig) -> torch.optim.Optimizer:
    """The optimiser named by ``config.optimizer`` over ``params``."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                               weight_decay=config.weight_decay)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, betas=config.betas,
                                weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, betas=config.betas,
                                 weight_decay=config.weight_decay)
    raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {config.optimizer!r}")


def lr_factor(step: int, config: TrainConfig, steps_per_epoch: int) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based).

    ``lr(step) = config.lr * lr_factor(step, ...)``; see :class:`TrainConfig`
    for the schedules. Pure function, used by :func:`build_scheduler`.
    """
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    total = config.epochs * steps_per_epoch
    floor = config.min_lr / config.lr
    progress = min(step, total) / total
    if config.scheduler == "none":
        factor = 1.0
    elif config.scheduler == "poly":
        factor = floor + (1.0 - floor) * (1.0 - progress) ** config.poly_power
    elif config.scheduler == "cosine":
        factor = floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))
    elif config.scheduler == "step":
        epoch = step // steps_per_epoch
        factor = max(floor, config.gamma ** sum(m <= epoch for m in config.milestones))
    else:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {config.scheduler!r}")
    if config.warmup_iters and step < config.warmup_iters:
        factor *= (step + 1) / config.warmup_iters
    return factor


def build_scheduler(
    optimizer: torch.optim.Optimizer, config: TrainConfig, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration :class:`~torch.optim.lr_scheduler.LambdaLR` following :func:`lr_factor`."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config, steps_per_epoch)
    )
