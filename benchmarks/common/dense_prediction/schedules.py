"""Training schedules of the tasks (:class:`TaskSchedule`)."""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from benchmarks.common.training import TrainConfig

#: the two model variants of every task
VARIANTS = ("grid", "hg")
GIGA = 1e9


@dataclasses.dataclass(frozen=True)
class TaskSchedule:
    """Data size, model size and training schedule of one task run.

    Args:
        input_size: ``(height, width)`` the images are resized to (training and
            model input of the evaluation; targets are scored at their original size).
        epochs: passes over the (possibly subsampled) training set.
        batch_size: global batch size.
        lr, weight_decay, optimizer, scheduler: the optimiser (Adam, poly p=0.9
            per iteration by default, as Table 12's HG rows).
        warmup_iters: linear learning-rate warm-up over the first optimiser steps.
        grad_clip: clip the global gradient L2 norm to this value (``None``: off).
        backbone: ResNet depth name of every model (``'resnet18'``, ...).
        width: channel multiplier of the backbone.
        hg_ratio: groups per pixel of the HG module's input map (the paper's
            "downsampling ratio"; it is relative to the map, so a smaller input
            needs a larger ratio for the same number of groups).
        max_train_items, max_val_items: evenly spaced subsets of the splits
            (:func:`subset_indices`; ``None`` = all).
        max_steps_per_epoch: cap of optimiser steps per epoch (smoke runs).
        augment: the data set's random flip + zoom-in crop.
        train_crop: random crop ``(h, w)`` of every augmented training item
            (roads: the paper trains on crops); ``None`` = whole images.
        eval_every: evaluate every this many epochs (``None``: after the last only).
        flops_items: HG models' FLOPs are averaged over this many evenly spaced
            validation images (:func:`subset_indices`; ``None`` = all of them).
        fallback_items: ``(train, val)`` images of the generated
            :class:`~pyg_hgconv.datasets.HeterogeneousScenes` that replace a
            missing CamVid (at most ``max_train_items`` / ``max_val_items``).
        seeds: training seeds per model (``seed, seed + 1, ...``); tables report
            the mean and sample standard deviation over them.
    """

    input_size: tuple[int, int]
    epochs: int
    batch_size: int
    lr: float = 1e-3
    weight_decay: float = 1e-4
    optimizer: str = "adam"
    scheduler: str = "poly"
    warmup_iters: int = 0
    grad_clip: float | None = None
    backbone: str = "resnet18"
    width: float = 0.5
    hg_ratio: float = 1 / 4
    max_train_items: int | None = None
    max_val_items: int | None = None
    max_steps_per_epoch: int | None = None
    augment: bool = True
    train_crop: tuple[int, int] | None = None
    eval_every: int | None = None
    flops_items: int | None = None
    fallback_items: tuple[int, int] = (256, 64)
    seeds: int = 1

    def __post_init__(self) -> None:
        size = tuple(int(v) for v in self.input_size)
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f"TaskSchedule.input_size must be (height, width) >= 16 "
                             f"(got {self.input_size!r})")
        object.__setattr__(self, "input_size", size)
        if self.train_crop is not None:
            crop = tuple(int(v) for v in self.train_crop)
            if len(crop) != 2 or min(crop) < 16 or crop[0] > size[0] or crop[1] > size[1]:
                raise ValueError(f"TaskSchedule.train_crop must be (h, w) >= 16 within "
                                 f"input_size {size} (got {self.train_crop!r})")
            object.__setattr__(self, "train_crop", crop)
        if not 0 < self.hg_ratio <= 1:
            raise ValueError(f"TaskSchedule.hg_ratio must lie in (0, 1] (got {self.hg_ratio!r})")
        if not self.width > 0:
            raise ValueError(f"TaskSchedule.width must be > 0 (got {self.width!r})")
        for name in ("max_train_items", "max_val_items", "flops_items"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"TaskSchedule.{name} must be None or an int >= 1 "
                                 f"(got {value!r})")
        object.__setattr__(self, "fallback_items", tuple(int(v) for v in self.fallback_items))
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValueError(f"TaskSchedule.seeds must be an int >= 1 (got {self.seeds!r})")
        self.train_config(0)  # validates epochs, batch size, optimiser, ...

    def train_config(self, seed: int, *, progress: bool = True, device: str = "cpu",
                     find_unused_parameters: bool = False) -> TrainConfig:
        """The :class:`~benchmarks.common.training.TrainConfig` of this schedule."""
        return TrainConfig(
            epochs=self.epochs, batch_size=self.batch_size, optimizer=self.optimizer,
            lr=self.lr, weight_decay=self.weight_decay, scheduler=self.scheduler,
            warmup_iters=self.warmup_iters, grad_clip=self.grad_clip,
            seed=int(seed), max_steps_per_epoch=self.max_steps_per_epoch, drop_last=True,
            eval_every=self.eval_every or self.epochs, device=device, progress=progress,
            find_unused_parameters=find_unused_parameters)

    def replace(self, **changes: Any) -> TaskSchedule:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))
