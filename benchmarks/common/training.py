"""THE training loop of the benchmarks: :func:`fit`.

One loop serves every task: what a step computes is the caller's
``compute_loss(model, batch) -> (loss, logs)``, so segmentation with an
auxiliary head, face recognition with AM-Softmax and saliency with BCE all use
the same optimiser/scheduler/checkpoint/resume/DDP machinery::

    def compute_loss(model, batch):
        out, aux = model(batch.x)
        main = F.cross_entropy(out, batch.y, ignore_index=255)
        aux_loss = F.cross_entropy(aux, batch.y, ignore_index=255)
        return main + 0.4 * aux_loss, {"main": main.item(), "aux": aux_loss.item()}

    config = TrainConfig(epochs=120, batch_size=32, optimizer="adam", lr=1e-4,
                         weight_decay=1e-4, scheduler="poly")
    result = fit(model, train_set, compute_loss, config, out / "runs" / "hgconv",
                 evaluate=lambda m: {"miou": miou(m, val_loader)})

Guarantees
----------
* **Checkpoints**: after every epoch ``<out_dir>/checkpoint.pt`` (model, optimiser,
  scheduler, epoch, step, history, RNG states) and ``<out_dir>/train_result.json``
  are replaced atomically; an interrupt never corrupts them.
* **Resume**: calling :func:`fit` again with the same ``out_dir`` continues after
  the last finished epoch; a finished run is not repeated -- its weights are
  loaded into ``model`` and its stored :class:`TrainResult` returned. A
  checkpoint written under another configuration (see
  :meth:`TrainConfig.resume_fingerprint`), data set size or model is moved aside
  (``checkpoint.pt.stale-<time>``), never deleted, and training starts over.
  ``epochs`` may be raised for a finished run when the learning-rate schedule
  does not depend on it (``'none'``, ``'step'``).
* **Determinism**: every epoch starts from seeds derived from
  ``(config.seed, epoch, rank)`` -- the global Python/NumPy/torch RNGs, the
  sampler's permutation (``sampler.set_epoch``) and the DataLoader generator
  that seeds the workers -- so the data order, augmentation and dropout of an
  epoch do not depend on whether the run was interrupted before it: a resumed
  run is bit-for-bit identical to an uninterrupted one on the same machine and
  thread count. On CUDA, ``config.deterministic`` also turns on
  ``torch.use_deterministic_algorithms(True, warn_only=True)`` and cuDNN's
  deterministic mode for the duration of :func:`fit`; ``warn_only`` because
  scatter-based message passing on CUDA (``index_add_``/``scatter_add_``
  atomics, torch-scatter kernels) has no deterministic implementation and must
  still run -- such GPU runs are reproducible only up to float rounding. On CPU
  the switch is not needed (torch's CPU kernels, scatter included, are
  deterministic for a fixed thread count) and not used, because it would fill
  every new tensor with NaN first.
* **Wall time**: ``train_time_s`` sums the per-epoch training time (data
  loading, forward, backward, optimiser), excluding evaluation and
  checkpointing, over all epochs including those of earlier interrupted calls.
* **Distributed data parallel**: launched under ``torchrun`` (``WORLD_SIZE > 1``
  in the environment), :func:`fit` initialises the process group (gloo on CPU,
  NCCL on CUDA, one GPU per ``LOCAL_RANK``) unless the caller did, wraps the
  model in :class:`~torch.nn.parallel.DistributedDataParallel` and shards the
  data with a :class:`~torch.utils.data.DistributedSampler`. ``batch_size`` is
  the *global* batch size (each rank takes ``batch_size // world_size``), so a
  schedule means the same on any number of processes. Only rank 0 writes files
  and shows progress; the group is destroyed at the end if :func:`fit` created it.
* **Evaluation**: ``evaluate(model)`` runs on **rank 0 only**, on the unwrapped
  model in ``eval()`` mode under ``torch.no_grad()``; the other ranks wait and
  receive its metrics by broadcast, so every rank returns the same
  :class:`TrainResult`. Rank-0 evaluation keeps metrics exact (no sharded
  confusion matrices to reduce) and our evaluation sets are small.
  ``evaluate`` must not use collective operations.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor
from torch.utils.data import (
    DataLoader,
    Dataset,
    DistributedSampler,
    IterableDataset,
    default_collate,
)

from benchmarks.common.results import (
    atomic_torch_save,
    atomic_write_json,
    config_fingerprint,
    utc_now,
)

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "collate",
    "derive_seed",
    "distributed_rank",
    "fit",
    "load_train_result",
    "lr_factor",
    "make_loader",
    "move_to_device",
    "process_group",
    "seed_everything",
    "seed_worker",
    "unwrap_model",
]

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
# configuration
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


# --------------------------------------------------------------------------------------
# seeding and data loading
# --------------------------------------------------------------------------------------
def seed_everything(seed: int) -> int:
    """Seed Python's :mod:`random`, NumPy's global RNG and torch (CPU and all GPUs).

    Returns ``seed``. Raises ``ValueError`` for a negative or non-integer seed.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    seed = int(seed)
    random.seed(seed)
    # The legacy global RNG is seeded on purpose: augmentation code uses it.
    np.random.seed(seed % 2**32)  # noqa: NPY002
    torch.manual_seed(seed)  # also seeds every CUDA device
    return seed


def derive_seed(seed: int, *keys: int) -> int:
    """A 32-bit seed derived from ``seed`` and ``keys`` (e.g. epoch, rank).

    Uses :class:`numpy.random.SeedSequence`, so seeds of neighbouring epochs
    or ranks are statistically independent.
    """
    return int(np.random.SeedSequence([int(seed), *map(int, keys)]).generate_state(1)[0])


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn`` that seeds NumPy and :mod:`random` in a DataLoader worker.

    torch seeds each worker with ``base_seed + worker_id`` (``base_seed`` drawn
    from the loader's generator); this copies that seed to NumPy and Python so
    augmentations using them are reproducible too.
    """
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)  # noqa: NPY002
    random.seed(worker_seed)


def _is_pyg_data(obj: Any) -> bool:
    # PyG objects can only exist once torch_geometric is imported; checking
    # sys.modules avoids importing it (seconds) for plain tensor data sets.
    module = sys.modules.get("torch_geometric.data.data")
    return module is not None and isinstance(obj, module.BaseData)


def collate(batch: list[Any]) -> Any:
    """Default collate function of :func:`make_loader`.

    PyG :class:`~torch_geometric.data.Data`/``HeteroData`` items become one
    :class:`~torch_geometric.data.Batch` (``Batch.from_data_list``); mappings,
    tuples (also named) and lists are collated field by field, so ``(Data,
    label)`` pairs work; everything else follows
    :func:`torch.utils.data.default_collate` (tensors stacked along a new
    dim 0, numbers -> tensors, strings -> lists).
    """
    if len(batch) == 0:
        raise ValueError("cannot collate an empty batch")
    elem = batch[0]
    if _is_pyg_data(elem):
        from torch_geometric.data import Batch

        return Batch.from_data_list(batch)
    if isinstance(elem, Mapping):
        return {key: collate([item[key] for item in batch]) for key in elem}
    if isinstance(elem, tuple) and hasattr(elem, "_fields"):
        return type(elem)(*(collate(list(field)) for field in zip(*batch, strict=True)))
    if isinstance(elem, (tuple, list)):
        if any(len(item) != len(elem) for item in batch):
            raise ValueError("all items of a batch must have the same number of fields")
        return [collate(list(field)) for field in zip(*batch, strict=True)]
    return default_collate(batch)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    shuffle: bool,
    seed: int = 0,
    *,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    drop_last: bool = False,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool = False,
) -> DataLoader:
    """A reproducible :class:`~torch.utils.data.DataLoader` for any map-style data set.

    The sampler is a :class:`~torch.utils.data.DistributedSampler` even in a
    single process (``num_replicas=1``): its order is a pure function of
    ``(seed, epoch)`` -- call ``loader.sampler.set_epoch(epoch)`` -- and with
    ``num_replicas > 1`` it gives each rank a disjoint shard of equal length.
    With ``shuffle=False`` and one replica the order is ``0, 1, 2, ...``.
    Workers are seeded from the loader's ``generator`` (seeded with ``seed``)
    through :func:`seed_worker`.

    ``collate_fn`` defaults to :func:`collate` (PyG ``Data`` -> ``Batch``, the
    rest like :func:`torch.utils.data.default_collate`).
    """
    if isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__"):
        raise TypeError("dataset must be a map-style data set with __len__ and __getitem__")
    if isinstance(dataset, DataLoader):
        raise TypeError("pass the data set, not a DataLoader")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if num_replicas < 1 or not 0 <= rank < num_replicas:
        raise ValueError(f"need num_replicas >= 1 and 0 <= rank < num_replicas, "
                         f"got num_replicas={num_replicas}, rank={rank}")
    if len(dataset) == 0:
        raise ValueError("dataset is empty")
    if collate_fn is None:
        collate_fn = collate
    sampler = DistributedSampler(dataset, num_replicas=num_replicas, rank=rank,
                                 shuffle=shuffle, seed=seed, drop_last=False)
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_fn,
        drop_last=drop_last,
        pin_memory=pin_memory,
        worker_init_fn=seed_worker,
        generator=generator,
    )


def _start_epoch(loader: DataLoader, seed: int, epoch: int, rank: int) -> None:
    """Make everything random in ``epoch`` a function of ``(seed, epoch, rank)``."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
    if loader.generator is not None:
        loader.generator.manual_seed(derive_seed(seed, epoch, rank, 1))
    seed_everything(derive_seed(seed, epoch, rank, 0))


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move tensors, PyG ``Data``/``Batch`` and (nested) lists/tuples/dicts of them."""
    if isinstance(batch, Tensor) or (hasattr(batch, "to") and callable(batch.to)
                                     and not isinstance(batch, torch.nn.Module)):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside a ``DistributedDataParallel``/``DataParallel`` wrapper."""
    return model.module if isinstance(
        model, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel)
    ) else model


# --------------------------------------------------------------------------------------
# optimiser and schedule
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


# --------------------------------------------------------------------------------------
# distributed helpers
# --------------------------------------------------------------------------------------
@dataclasses.dataclass
class _Dist:
    rank: int = 0
    world_size: int = 1
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    created_group: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def broadcast(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out


def _init_distributed(device: str) -> _Dist:
    dev = torch.device(device)
    if dist.is_available() and dist.is_initialized():
        ctx = _Dist(dist.get_rank(), dist.get_world_size(), dev, created_group=False)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available")
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if dev.type == "cuda":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend=backend)
        ctx = _Dist(dist.get_rank(), dist.get_world_size(), dev, created_group=True)
    else:
        return _Dist(0, 1, dev)
    if dev.type == "cuda" and dev.index is None:
        ctx.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return ctx


def distributed_rank() -> int:
    """This process's rank under ``torchrun`` (``RANK``; 0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


@contextlib.contextmanager
def process_group(device: str = "cpu") -> Iterator[int]:
    """One process group for a whole command under ``torchrun``.

    With ``WORLD_SIZE > 1`` and no group yet, creates one (gloo, or NCCL for a
    CUDA ``device``) that every :func:`fit` of the command reuses, and destroys
    it on exit; otherwise does nothing. Yields this process's rank.
    """
    created = False
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        if not dist.is_available():
            raise RuntimeError("WORLD_SIZE > 1 but torch.distributed is not available")
        dist.init_process_group(backend="nccl" if torch.device(device).type == "cuda"
                                else "gloo")
        created = True
    try:
        yield distributed_rank()
    finally:
        if created:
            dist.destroy_process_group()


@contextlib.contextmanager
def _deterministic_mode(enabled: bool, device: torch.device) -> Iterator[None]:
    """Deterministic algorithms (warn-only) and cuDNN flags on CUDA, restored afterwards.

    CPU runs need neither: torch's CPU kernels (scatter included) are
    deterministic for a fixed thread count, and the global switch would make
    every ``torch.empty`` fill its memory with NaN (a slowdown) and import
    ``torch._inductor`` (seconds).
    """
    if not enabled or device.type != "cuda":
        yield
        return
    old = (torch.are_deterministic_algorithms_enabled(),
           torch.is_deterministic_algorithms_warn_only_enabled(),
           torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    if device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old[0], warn_only=old[1])
        torch.backends.cudnn.deterministic = old[2]
        torch.backends.cudnn.benchmark = old[3]


# --------------------------------------------------------------------------------------
# checkpoints
# --------------------------------------------------------------------------------------
def _rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    keys = n["keys"].numpy().astype(np.uint32)
    np.random.set_state((n["kind"], keys, n["pos"], n["has_gauss"], n["cached"]))  # noqa: NPY002
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _move_aside(path: Path) -> Path | None:
    if not path.exists():
        return None
    stamp = utc_now().replace(":", "").replace("-", "")
    target = path.with_name(f"{path.name}.stale-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.stale-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    return target


def _load_checkpoint(
    path: Path, config: TrainConfig, steps_per_epoch: int, dataset_size: int,
    ctx: _Dist, fresh: bool,
) -> dict[str, Any] | None:
    """Load a resumable checkpoint, or move an unusable one aside (rank 0) and return None."""
    reason = None
    ckpt = None
    if path.exists():
        if fresh:
            reason = "fresh=True"
        else:
            try:
                ckpt = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:  # unreadable or foreign file
                reason = f"unreadable ({type(exc).__name__}: {exc})"
            else:
                if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
                    reason = "unknown checkpoint format"
                elif ckpt.get("fingerprint") != config.resume_fingerprint():
                    reason = "the training configuration changed"
                elif ckpt.get("steps_per_epoch") != steps_per_epoch:
                    reason = (f"steps per epoch changed ({ckpt.get('steps_per_epoch')} -> "
                              f"{steps_per_epoch})")
                elif ckpt.get("dataset_size") != dataset_size:
                    reason = "the training set size changed"
                elif ckpt["epoch"] > config.epochs:
                    reason = f"it has {ckpt['epoch']} epochs, more than the {config.epochs} asked"
    # Every rank must agree before rank 0 touches the files.
    reason = ctx.broadcast(reason)
    if reason is None:
        return ckpt
    if ctx.is_main:
        moved = _move_aside(path)
        _move_aside(path.with_name(RESULT_NAME))
        log.warning("not resuming from %s: %s; moved it to %s", path, reason, moved)
    ctx.barrier()
    return None


# --------------------------------------------------------------------------------------
# the loop
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
