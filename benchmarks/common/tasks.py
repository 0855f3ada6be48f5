r"""The three dense-prediction tasks of the HG-Conv paper (Sec. 5.1, 5.3, 5.4), as data,
models, loss, metrics and one training entry point shared by every benchmark.

=================  =====================  =====================  ================================
task               data (``--data-root``)  metrics                 paper models (Sec. / Table)
=================  =====================  =====================  ================================
``segmentation``   ``camvid/`` (11         ``miou`` (primary),     ResNet-Dilation vs
                   classes, ignore 11;     ``pixel_accuracy``,     HG-ResNet-Dilation
                   generated               ``mean_accuracy``,      (5.1, Tables 2-5, 7)
                   :class:`HeterogeneousS  ``iou/<class>``
                   cenes` when absent)
``roads``          ``roads/`` (60/10/10    ``road_iou`` (primary), ResUNet18+ vs HG-ResUNet18+
                   seeded split)           ``topology`` (APLS-     (-Attn, object focus)
                                           like)                   (5.3, Table 10)
``saliency``       ``ecssd/`` (500/100/    ``max_f`` (primary),    ResUNet vs HG-ResUNet
                   100 seeded split)       ``mae`` (lower is       (-Attn, object / uncertainty
                                           better)                 focus) (5.4, Table 6)
=================  =====================  =====================  ================================

Everything a benchmark needs is here, so that every command trains and scores
the same way:

* :data:`TASKS` / :func:`get_task` -- a :class:`TaskSpec` per task: data set,
  classes, primary metric, the grid and HG architectures and their clustering
  hyper-parameters (Table 12, scaled), and the schedules ``quick`` / ``default``
  / ``full`` (:class:`TaskSchedule`: input size, epochs, batch, optimiser,
  backbone width, data subsets, ``hg_ratio``);
* :func:`load_task_data` -- the seeded splits at the schedule's input size (and
  the validation targets at their original resolution), cached per process;
* :func:`build_model` -- the grid / HG model of a task (``attention=`` for
  active focus, ``conv=`` for any registry graph conv, HG options pass through);
* :func:`compute_loss` -- :meth:`SegmentationOutput.loss
  <pyg_hgconv.models.SegmentationOutput.loss>` with the task's ignore label;
* :func:`evaluate` -- the task's metrics from :mod:`benchmarks.common.metrics`,
  on the validation split, at the **original** resolution of the targets (the
  predictions are upsampled bilinearly from the input size);
* :func:`model_flops` -- FLOPs per image averaged over the validation images
  (:func:`~pyg_hgconv.flops.average_flops`; HG graphs differ per image), the
  components and the FLOPs of the stage the HG module replaces;
* :func:`train_and_evaluate` -- all of it around THE training loop
  (:func:`~benchmarks.common.training.fit`: tqdm, a checkpoint per epoch,
  resume, deterministic seeds, DDP under ``torchrun``).

Example (what the irregular-convolution benchmark does for its CamVid part)::

    from benchmarks.common.tasks import build_model, train_and_evaluate
    from benchmarks.common.training import seed_everything
    from pyg_hgconv.models import HGResNetSeg, ResNetSeg

    seed_everything(0)
    model = build_model("segmentation", "hg", "default", conv="gmm")
    # or any model with the SegmentationOutput contract, e.g.
    # HGResNetSeg("resnet18", 11, width=0.5, ratio=1 / 4, conv="spline")
    record = train_and_evaluate(model, "segmentation", data_root="../shared/data",
                                schedule="default", out_dir="results/x/runs/gmm", seed=0)
    record["miou"], record["gflops_per_image"], record["stage_gflops"]

Calling it again with the same ``out_dir`` resumes an interrupted training or,
for a finished one, loads the weights and returns the stored metrics (FLOPs
are recounted: they are deterministic).

The schedules are scaled to 2 CPU cores (downscaled inputs, a narrow ResNet-18,
a few epochs, from scratch): their numbers are **not** comparable with the
paper's, only grid against HG under one protocol.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset, Subset

from benchmarks.common.training import TrainConfig, fit, make_loader, unwrap_model

__all__ = [
    "GRID_COUNTERPART",
    "TASKS",
    "VARIANTS",
    "RandomCrop",
    "TaskData",
    "TaskSchedule",
    "TaskSpec",
    "build_model",
    "compute_loss",
    "evaluate",
    "get_task",
    "is_graph_model",
    "load_task_data",
    "model_flops",
    "model_name",
    "resolve_schedule",
    "stage_modules",
    "subset_indices",
    "train_and_evaluate",
]

log = logging.getLogger(__name__)

#: the two model variants of every task
VARIANTS = ("grid", "hg")
GIGA = 1e9


# ----------------------------------------------------------------------------- schedules
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
        fallback_items: ``(train, val)`` images of the generated
            :class:`~pyg_hgconv.datasets.HeterogeneousScenes` that replace a
            missing CamVid.
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
    backbone: str = "resnet18"
    width: float = 0.5
    hg_ratio: float = 1 / 4
    max_train_items: int | None = None
    max_val_items: int | None = None
    max_steps_per_epoch: int | None = None
    augment: bool = True
    train_crop: tuple[int, int] | None = None
    eval_every: int | None = None
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
        for name in ("max_train_items", "max_val_items"):
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
            seed=int(seed), max_steps_per_epoch=self.max_steps_per_epoch, drop_last=True,
            eval_every=self.eval_every or self.epochs, device=device, progress=progress,
            find_unused_parameters=find_unused_parameters)

    def replace(self, **changes: Any) -> TaskSchedule:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        return json.loads(json.dumps(dataclasses.asdict(self)))


# --------------------------------------------------------------------------------- tasks
@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task: its data, metrics, architectures and schedules.

    Attributes:
        name: ``'segmentation' | 'roads' | 'saliency'``.
        title: human-readable name.
        dataset: the data set class of :mod:`pyg_hgconv.datasets` (its folder
            under the data root is ``dataset_dir``).
        num_classes: output channels (1 = binary, one logit).
        ignore_index: target label left out of loss and metrics.
        primary_metric: the headline metric; ``metrics`` all metric names of
            :func:`evaluate`; ``lower_is_better`` those where less is better.
        grid_model, hg_model: model classes of :mod:`pyg_hgconv.models`.
        arch: architecture keywords shared by both (``dilated``, ``stem``).
        hg_options: clustering options of the HG model (Table 12: ``oversample``
            is its top-k "k", ``beta`` its "b", ``num_iterations`` its "#iter").
        focus_class: class :math:`k` of object-aware focus (Eq. 12).
        model_label: base name of the models in tables (``'ResNet18-Dilation'``).
        paper_setup: the paper's setting of the task (Table 12), for reference.
        schedules: ``'quick' | 'default' | 'full'`` -> :class:`TaskSchedule`.
    """

    name: str
    title: str
    dataset: str
    dataset_dir: str
    num_classes: int
    ignore_index: int
    primary_metric: str
    metrics: tuple[str, ...]
    lower_is_better: frozenset[str]
    grid_model: str
    hg_model: str
    arch: Mapping[str, Any]
    hg_options: Mapping[str, Any]
    focus_class: int | None
    model_label: str
    paper_setup: str
    schedules: Mapping[str, TaskSchedule]

    @property
    def binary(self) -> bool:
        """Whether the task has one output logit (roads, saliency)."""
        return self.num_classes == 1

    def better(self, metric: str, a: float, b: float) -> bool:
        """Whether value ``a`` of ``metric`` is at least as good as ``b``."""
        return a <= b if metric in self.lower_is_better else a >= b


_BINARY_IGNORE = 255  # binary masks hold 0/1 only: nothing is ignored

TASKS: dict[str, TaskSpec] = {
    "segmentation": TaskSpec(
        name="segmentation", title="semantic segmentation (CamVid)", dataset="CamVid",
        dataset_dir="camvid", num_classes=11, ignore_index=11, primary_metric="miou",
        metrics=("miou", "pixel_accuracy", "mean_accuracy"), lower_is_better=frozenset(),
        grid_model="ResNetSeg", hg_model="HGResNetSeg", arch={"dilated": True},
        hg_options={"sampler": "topk_random", "oversample": 7, "beta": 0.75,
                    "num_iterations": 3},
        focus_class=None, model_label="ResNet18-Dilation",
        paper_setup="Cityscapes 713x713, ResNet101-Dilation, aux 0.4, 1/64, top-k+random "
                    "k=7 b=0.75, 3 SLIC iterations, Adam 1e-4 poly (Table 12)",
        schedules={
            "quick": TaskSchedule(input_size=(32, 48), epochs=1, batch_size=2, width=0.125,
                                  max_train_items=4, max_val_items=2, max_steps_per_epoch=1,
                                  augment=False, fallback_items=(4, 2)),
            "default": TaskSchedule(input_size=(96, 128), epochs=8, batch_size=8, width=0.5,
                                    seeds=3),
            "full": TaskSchedule(input_size=(240, 320), epochs=80, batch_size=8, width=1.0,
                                 hg_ratio=1 / 16, seeds=3),
        }),
    "roads": TaskSpec(
        name="roads", title="road extraction (aerial tiles)", dataset="RoadTiles",
        dataset_dir="roads", num_classes=1, ignore_index=_BINARY_IGNORE,
        primary_metric="road_iou", metrics=("road_iou", "topology"),
        lower_is_better=frozenset(), grid_model="ResUNet", hg_model="HGResUNet",
        arch={"stem": "plus"},
        hg_options={"sampler": "topk_random", "oversample": 7, "beta": 0.75,
                    "num_iterations": 1},
        focus_class=0, model_label="ResUNet18+",
        paper_setup="DeepGlobe 256x256 crops, ResUNet18+ (7x7 stride 1, no max-pool), "
                    "1/16, top-k+random k=7 b=0.75, 1 SLIC iteration, Adam 1e-4 poly, "
                    "120 epochs (Table 12)",
        schedules={
            "quick": TaskSchedule(input_size=(48, 48), epochs=1, batch_size=2, width=0.125,
                                  hg_ratio=1 / 16, max_train_items=4, max_val_items=2,
                                  max_steps_per_epoch=1, augment=False, train_crop=(32, 32)),
            "default": TaskSchedule(input_size=(128, 128), epochs=20, batch_size=4, width=0.25,
                                    hg_ratio=1 / 16, train_crop=(64, 64), seeds=3),
            "full": TaskSchedule(input_size=(400, 400), epochs=120, batch_size=8, width=1.0,
                                 hg_ratio=1 / 16, train_crop=(256, 256), seeds=3),
        }),
    "saliency": TaskSpec(
        name="saliency", title="salient object detection (ECSSD)", dataset="ECSSD",
        dataset_dir="ecssd", num_classes=1, ignore_index=_BINARY_IGNORE,
        primary_metric="max_f", metrics=("max_f", "mae"), lower_is_better=frozenset({"mae"}),
        grid_model="ResUNet", hg_model="HGResUNet", arch={"dilated": True},
        hg_options={"sampler": "topk_random", "oversample": 4, "beta": 0.75,
                    "num_iterations": 1},
        focus_class=0, model_label="ResUNet18",
        paper_setup="DUTS-train 352x352 -> ECSSD, ResUNet50 (dilated stages 3-4), 1/4, "
                    "top-k+random k=4 b=0.75, 1 SLIC iteration, Adam 1e-4 poly, 24 epochs "
                    "(Table 12)",
        schedules={
            "quick": TaskSchedule(input_size=(48, 48), epochs=1, batch_size=2, width=0.125,
                                  max_train_items=4, max_val_items=2, max_steps_per_epoch=1,
                                  augment=False),
            "default": TaskSchedule(input_size=(96, 96), epochs=5, batch_size=8, width=0.25,
                                    seeds=3),
            "full": TaskSchedule(input_size=(256, 256), epochs=60, batch_size=8, width=1.0,
                                 seeds=3),
        }),
}

#: the grid model class of every HG model class
GRID_COUNTERPART = {"HGResNetSeg": "ResNetSeg", "HGResUNet": "ResUNet"}


def get_task(task: str | TaskSpec) -> TaskSpec:
    """The :class:`TaskSpec` named ``task`` (a spec is returned as is)."""
    if isinstance(task, TaskSpec):
        return task
    if task not in TASKS:
        raise ValueError(f"'task' must be one of {list(TASKS)} (got {task!r})")
    return TASKS[task]


def resolve_schedule(task: str | TaskSpec, schedule: str | TaskSchedule) -> TaskSchedule:
    """``schedule`` as a :class:`TaskSchedule`: a name of the task's schedules
    (``'quick' | 'default' | 'full'``) or a schedule itself."""
    spec = get_task(task)
    if isinstance(schedule, TaskSchedule):
        return schedule
    if schedule not in spec.schedules:
        raise ValueError(f"'schedule' must be one of {list(spec.schedules)} or a "
                         f"TaskSchedule (got {schedule!r})")
    return spec.schedules[schedule]


# ---------------------------------------------------------------------------------- data
def subset_indices(num_items: int, max_items: int | None) -> list[int]:
    """``max_items`` evenly spaced indices of ``range(num_items)`` (all when ``None``
    or larger): ``round(i * (n - 1) / (k - 1))``. CamVid's frames come from a few
    videos, so an evenly spaced subset keeps every sequence (the first ``k``
    frames would keep one)."""
    if max_items is None or max_items >= num_items:
        return list(range(num_items))
    if max_items == 1:
        return [0]
    step = (num_items - 1) / (max_items - 1)
    return sorted({round(i * step) for i in range(max_items)})


class RandomCrop:
    """Random ``(h, w)`` crop of an item ``(image [C, H, W], *targets [H, W])``,
    position from torch's global RNG (seeded per epoch by the training loop)."""

    def __init__(self, size: tuple[int, int]):
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, item: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        image = item[0]
        height, width = image.shape[-2:]
        h, w = self.size
        top = int(torch.randint(0, height - h + 1, ()))
        left = int(torch.randint(0, width - w + 1, ()))
        return tuple(t[..., top:top + h, left:left + w] if t.dim() >= 2 else t for t in item)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


@dataclasses.dataclass
class TaskData:
    """The data of one task run (see :func:`load_task_data`).

    Attributes:
        task, schedule: what it was loaded for.
        train: training set (augmented, at ``input_size`` or cropped).
        val: validation set at ``input_size`` (model input).
        val_targets: the validation targets at their original resolution
            (``[N, H, W]`` when all have one size, else a list of ``[H_i, W_i]``).
        dataset: the data set actually used (``'CamVid'``, ``'HeterogeneousScenes'``, ...).
        note: why a fallback was used (``None`` for the real data).
        split: ``{"train": n, "val": n, "seed": split seed, "train_files": [...],
            "val_files": [...]}`` (file lists relative to the data set folder;
            for generated data a description instead).
        class_names: names of the classes (segmentation).
    """

    task: TaskSpec
    schedule: TaskSchedule
    train: Dataset
    val: Dataset
    val_targets: Tensor | list[Tensor]
    dataset: str
    note: str | None
    split: dict[str, Any]
    class_names: tuple[str, ...] = ()

    def split_summary(self) -> dict[str, Any]:
        """The split without the file lists, plus a hash of them (for records)."""
        files = json.dumps({k: v for k, v in self.split.items() if k.endswith("_files")},
                           sort_keys=True)
        out = {k: v for k, v in self.split.items() if not k.endswith("_files")}
        out["files_sha1"] = hashlib.sha1(files.encode("utf-8")).hexdigest()[:12]
        return out


def _subset(dataset, max_items: int | None):
    indices = subset_indices(len(dataset), max_items)
    files = None
    if hasattr(dataset, "split_files"):
        all_files = dataset.split_files()
        files = [all_files[i] for i in indices]
    if len(indices) == len(dataset):
        return dataset, files
    return Subset(dataset, indices), files


def _stack_or_list(targets: list[Tensor]) -> Tensor | list[Tensor]:
    if targets and all(t.shape == targets[0].shape for t in targets):
        return torch.stack(targets)
    return targets


def _original_target(dataset, index: int, binary: bool) -> Tensor:
    """Target ``index`` of ``dataset`` at its stored resolution, without float conversion."""
    target = dataset.raw(index)[1][0]
    return target.to(torch.uint8) if binary else target.long()


@functools.lru_cache(maxsize=4)
def _load_cached(task_name: str, root: str, schedule: TaskSchedule) -> TaskData:
    from pyg_hgconv import datasets

    spec = TASKS[task_name]
    size = schedule.input_size
    if spec.name == "segmentation" and not datasets.has_dataset(spec.dataset_dir, root):
        n_train, n_val = schedule.fallback_items
        note = (f"CamVid was not found under {root}: the segmentation task runs on the "
                f"generated HeterogeneousScenes (11 classes, ignore 11; {n_train} training / "
                f"{n_val} validation images of {size[0]}x{size[1]}) instead.")
        log.warning(note)
        common = {"size": size, "num_classes": spec.num_classes, "ignore_index": spec.ignore_index,
                  "normalize": True}
        train = datasets.HeterogeneousScenes(n_train, seed=0, augment=schedule.augment, **common)
        val = datasets.HeterogeneousScenes(n_val, seed=1, **common)
        targets = _stack_or_list([val[i][1] for i in range(len(val))])
        split = {"train": n_train, "val": n_val, "seed": None,
                 "generated": f"HeterogeneousScenes train seed 0, val seed 1, size {size}"}
        return TaskData(spec, schedule, train, val, targets, "HeterogeneousScenes", note,
                        split, val.class_names)

    cls = getattr(datasets, spec.dataset)
    options: dict[str, Any] = {"normalize": True}
    if spec.binary:
        options["mask_dtype"] = torch.float32
    crop = RandomCrop(schedule.train_crop) if schedule.train_crop is not None else None
    train_full = cls(root, "train", size=size, augment=schedule.augment, transform=crop,
                     **options)
    val_full = cls(root, "val", size=size, **options)
    originals = cls(root, "val", size=None, cache=False)
    train, train_files = _subset(train_full, schedule.max_train_items)
    val, val_files = _subset(val_full, schedule.max_val_items)
    indices = subset_indices(len(val_full), schedule.max_val_items)
    targets = [_original_target(originals, i, spec.binary) for i in indices]
    split = {"train": len(train), "val": len(val),
             "seed": getattr(train_full, "seed", None),
             "train_files": train_files, "val_files": val_files}
    names = tuple(getattr(cls, "class_names", ()))
    return TaskData(spec, schedule, train, val, _stack_or_list(targets), spec.dataset, None,
                    split, names)


def load_task_data(task: str | TaskSpec, data_root: str | os.PathLike | None = None,
                   schedule: str | TaskSchedule = "default") -> TaskData:
    """Load the training and validation data of ``task`` for ``schedule``.

    * segmentation: CamVid ``train`` / ``val``; without ``<root>/camvid`` the
      generated :class:`~pyg_hgconv.datasets.HeterogeneousScenes` (11 classes,
      boundary pixels labelled 11) replaces it and :attr:`TaskData.note` says so;
    * roads: :class:`~pyg_hgconv.datasets.RoadTiles` seeded 60/10/10 split
      (``train`` / ``val``), masks as float 0/1;
    * saliency: :class:`~pyg_hgconv.datasets.ECSSD` seeded 500/100/100 split.

    Images are standardised with the data set's statistics and resized to the
    schedule's ``input_size`` (training items augmented and optionally cropped);
    subsets are evenly spaced (:func:`subset_indices`). The result is cached per
    ``(task, root, schedule)``, so the decoded images are shared by every model
    of a process. Raises ``FileNotFoundError`` naming the folder when roads or
    ECSSD are missing.
    """
    from pyg_hgconv.datasets.root import data_root as default_root

    spec = get_task(task)
    resolved = resolve_schedule(spec, schedule)
    root = Path(data_root).expanduser() if data_root is not None else default_root()
    return _load_cached(spec.name, str(root.resolve()), resolved)


# -------------------------------------------------------------------------------- models
def model_name(task: str | TaskSpec, variant: str, attention: str | None = None,
               schedule: str | TaskSchedule | None = None) -> str:
    """Table name of a model, e.g. ``'HG-ResUNet18+-Attn (object)'``; with a
    schedule whose backbone is not ResNet-18 the depth follows it."""
    spec = get_task(task)
    label = spec.model_label
    if schedule is not None:
        depth = resolve_schedule(spec, schedule).backbone.replace("resnet", "")
        label = label.replace("18", depth, 1)
    if variant not in VARIANTS:
        raise ValueError(f"'variant' must be one of {VARIANTS} (got {variant!r})")
    if variant == "grid":
        if attention is not None:
            raise ValueError("grid models have no active focus ('attention' must be None)")
        return label
    return f"HG-{label}" + (f"-Attn ({attention})" if attention else "")


def build_model(task: str | TaskSpec, variant: str = "hg",
                schedule: str | TaskSchedule = "default", *, attention: str | None = None,
                conv: str = "hgconv", **hg_kwargs: Any) -> nn.Module:
    """The grid or HG model of ``task`` at the schedule's backbone and width.

    * segmentation: :class:`~pyg_hgconv.models.ResNetSeg` (ResNet-Dilation,
      auxiliary head) / :class:`~pyg_hgconv.models.HGResNetSeg`;
    * roads: :class:`~pyg_hgconv.models.ResUNet` with ``stem='plus'`` (ResUNet18+)
      / :class:`~pyg_hgconv.models.HGResUNet`;
    * saliency: dilated :class:`~pyg_hgconv.models.ResUNet` / HGResUNet.

    HG models get the task's clustering options (:attr:`TaskSpec.hg_options`),
    ``ratio=schedule.hg_ratio`` and ``conv``; ``hg_kwargs`` override them
    (``sampler``, ``ratio``, ``noise_cancel``, ``max_direction``, ...).
    ``attention='object' | 'uncertainty'`` adds active focus (object focus on
    the task's :attr:`TaskSpec.focus_class`). Seed the RNG first for a
    reproducible initialisation.
    """
    from pyg_hgconv import models

    spec = get_task(task)
    sched = resolve_schedule(spec, schedule)
    common = {"width": sched.width, **spec.arch}
    if variant == "grid":
        if attention is not None or hg_kwargs or conv != "hgconv":
            raise ValueError("grid models take no HG options (attention, conv, clustering)")
        return getattr(models, spec.grid_model)(sched.backbone, spec.num_classes, **common)
    if variant != "hg":
        raise ValueError(f"'variant' must be one of {VARIANTS} (got {variant!r})")
    options = {**spec.hg_options, "ratio": sched.hg_ratio, **hg_kwargs}
    if attention is not None:
        options["attention"] = attention
        if attention == "object" and "focus_class" not in options:
            if spec.focus_class is None:
                raise ValueError(f"the {spec.name} task defines no focus class for "
                                 "attention='object'; pass focus_class=")
            options["focus_class"] = spec.focus_class
    return getattr(models, spec.hg_model)(sched.backbone, spec.num_classes, conv=conv,
                                          **common, **options)


def is_graph_model(model: nn.Module) -> bool:
    """Whether ``model`` clusters its input into group graphs (an HG model)."""
    from pyg_hgconv.transform import ImageToGroupGraph

    return any(isinstance(m, ImageToGroupGraph) for m in unwrap_model(model).modules())


#: model class -> the modules that form "stage 4" (grid) or replace it (HG)
_STAGE_MODULES = {
    "ResNetSeg": ("backbone.layer4",),
    "HGResNetSeg": ("stage4",),
    "ResUNet": ("backbone.layer4", "decoder.0"),
    "HGResUNet": ("encoder_hg", "decoder.0"),
}


def stage_modules(model: nn.Module) -> tuple[str, ...]:
    """Qualified names of the modules the HG-Conv modules replace (grid models)
    or that replace them (HG models): stage 4 of (HG-)ResNetSeg; stage 4 and the
    first decoder level of (HG-)ResUNet (Sec. 4.4). For an HG model with active
    focus the coarse head (``aux_head``) is included: it only exists to place
    the groups. Other models: ``()``."""
    model = unwrap_model(model)
    names = _STAGE_MODULES.get(type(model).__name__, ())
    if names and getattr(model, "attention", None) is not None:
        names = (*names, "aux_head")
    return names


# ------------------------------------------------------------------------ loss / metrics
def compute_loss(task: str | TaskSpec) -> Callable[[nn.Module, Any],
                                                    tuple[Tensor, dict[str, float]]]:
    """``compute_loss(model, (images, targets))`` for :func:`fit`:
    :meth:`SegmentationOutput.loss` (main + 0.4 aux) with the task's ignore label."""
    spec = get_task(task)

    def loss_fn(model: nn.Module, batch: Sequence[Tensor]) -> tuple[Tensor, dict[str, float]]:
        images, targets = batch[0], batch[1]
        loss, logs = model(images).loss(targets, ignore_index=spec.ignore_index)
        logs = {k: v for k, v in logs.items() if k != "loss"}  # fit reserves "loss"
        return loss, logs

    return loss_fn


def _upsample(logits: Tensor, size: Sequence[int]) -> Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


@torch.no_grad()
def evaluate(model: nn.Module, data: TaskData, *, batch_size: int = 8,
             progress: bool = False) -> dict[str, float]:
    """Score ``model`` on the validation split of ``data`` (eval mode, no grad).

    The model sees the validation images at the input size; its logits are
    upsampled bilinearly to each target's original resolution and scored with
    :mod:`benchmarks.common.metrics`:

    * segmentation: :class:`~benchmarks.common.metrics.ConfusionMatrix` (ignore
      label 11) -> ``miou``, ``pixel_accuracy``, ``mean_accuracy``, ``iou/<class>``;
    * roads: :func:`~benchmarks.common.metrics.road_iou` (all tiles' pixels
      pooled, threshold 0.5) and :func:`~benchmarks.common.metrics.topology_score`;
    * saliency: :func:`~benchmarks.common.metrics.max_f_measure` and
      :func:`~benchmarks.common.metrics.mean_absolute_error`.

    For HG models ``groups_per_image`` (mean nodes of the first group graph)
    is added.
    """
    from tqdm.auto import tqdm

    from benchmarks.common import metrics as M

    spec = data.task
    model = unwrap_model(model)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    loader = make_loader(data.val, batch_size, shuffle=False)
    targets = data.val_targets
    confusion = M.ConfusionMatrix(spec.num_classes, ignore_index=spec.ignore_index)
    probs: list[Tensor] = []
    groups, images_seen = 0, 0
    try:
        for batch in tqdm(loader, desc="evaluating", unit="batch", disable=not progress,
                          leave=False):
            images = batch[0].to(device)
            out = model(images)
            logits = out.out.float().cpu()
            start, stop = images_seen, images_seen + images.shape[0]
            images_seen = stop
            if out.graphs:
                groups += int(out.graphs[0].num_nodes)
            if isinstance(targets, Tensor):
                up = _upsample(logits, targets.shape[-2:])
                if spec.binary:
                    probs.extend(torch.sigmoid(up[:, 0]))
                else:
                    confusion.update(up.argmax(1), targets[start:stop])
                continue
            for j, target in enumerate(targets[start:stop]):
                up = _upsample(logits[j:j + 1], target.shape[-2:])
                if spec.binary:
                    probs.append(torch.sigmoid(up[0, 0]))
                else:
                    confusion.update(up.argmax(1), target[None])
    finally:
        model.train(was_training)
    if images_seen != len(targets):
        raise RuntimeError(f"evaluated {images_seen} images for {len(targets)} targets")
    if spec.name == "segmentation":
        summary = confusion.summary(data.class_names or None)
        result = {k: summary[k] for k in ("miou", "pixel_accuracy", "mean_accuracy")}
        result.update({f"iou/{name}": value for name, value in summary["iou_per_class"].items()})
    elif spec.name == "roads" and isinstance(targets, Tensor):
        pred = torch.stack(probs)
        result = {"road_iou": M.road_iou(pred, targets),
                  "topology": M.topology_score(pred, targets)}
    elif spec.name == "roads":  # tiles of different sizes: pool the pixels, average the scores
        flat_pred = torch.cat([p.flatten() for p in probs])[None]
        flat_gt = torch.cat([t.flatten() for t in targets])[None]
        result = {"road_iou": M.road_iou(flat_pred, flat_gt),
                  "topology": sum(M.topology_score(p, t, seed=i) for i, (p, t)
                                  in enumerate(zip(probs, targets, strict=True))) / len(probs)}
    else:
        target_list = list(targets)
        result = {"max_f": M.max_f_measure(probs, target_list),
                  "mae": M.mean_absolute_error(probs, target_list)}
    if is_graph_model(model):
        result["groups_per_image"] = groups / max(images_seen, 1)
    return result


def model_flops(model: nn.Module, data: TaskData, *, progress: bool = False) -> dict[str, Any]:
    """FLOPs per image of ``model`` on the validation images of ``data``.

    HG models are counted image by image over the whole validation split
    (:func:`~pyg_hgconv.flops.average_flops`: their group graphs, hence their
    cost, differ per image); a grid model's cost does not depend on the image
    and is counted on the first one. Returns ``gflops_per_image``,
    ``gflops_std`` (fluctuation over the images), ``flops_components``
    (GFLOPs per image of each component), ``stage_modules`` and
    ``stage_gflops`` (:func:`stage_modules`: the replaced stage 4 of a grid
    model, the HG stage with its clustering, fusion conv and coarse head of an
    HG model), and ``images_counted``.
    """
    import warnings

    from pyg_hgconv.flops import average_flops

    model = unwrap_model(model)
    loader = make_loader(data.val, 8, shuffle=False)
    graph = is_graph_model(model)
    device = next(model.parameters()).device

    def batches():
        for batch in loader:
            yield (batch[0] if graph else batch[0][:1]).to(device)
            if not graph:
                return

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # uncounted module types are listed
        count = average_flops(model, batches(), progress=progress)
    n = max(count.num_images, 1)
    names = stage_modules(model)
    return {
        "gflops_per_image": count.per_image / GIGA,
        "gflops_std": count.per_image_std / GIGA,
        "flops_components": {k: v / n / GIGA for k, v in count.components.items()},
        "stage_modules": list(names),
        "stage_gflops": (sum(count.under(p) for p in names) / n / GIGA) if names else None,
        "images_counted": count.num_images,
        "flops_uncounted": list(count.uncounted),
    }


# ------------------------------------------------------------------------ train + score
def train_and_evaluate(model: nn.Module, task: str | TaskSpec, *,
                       data_root: str | os.PathLike | None = None,
                       schedule: str | TaskSchedule = "default",
                       out_dir: str | os.PathLike, seed: int = 0, fresh: bool = False,
                       threads: int | None = None, progress: bool = True,
                       device: str = "cpu", find_unused_parameters: bool = False,
                       data: TaskData | None = None) -> dict[str, Any]:
    """Train ``model`` on ``task`` with THE training loop, score it, count its FLOPs.

    Args:
        model: any model with the :class:`~pyg_hgconv.models.SegmentationOutput`
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
