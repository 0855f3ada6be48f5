"""The seeded splits of every task at the schedule's input size (:func:`load_task_data`)."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset

from .schedules import TaskSchedule
from .specs import TASKS, TaskSpec, get_task, resolve_schedule

log = logging.getLogger(__name__)

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
        # the subset sizes of the schedule bound the generated splits as they bound CamVid's
        n_train, n_val = (n if cap is None else min(n, cap) for n, cap in
                          zip(schedule.fallback_items,
                              (schedule.max_train_items, schedule.max_val_items), strict=True))
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
