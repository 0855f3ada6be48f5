"""The three tasks of the paper as data (:class:`TaskSpec`, :data:`TASKS`)."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .schedules import TaskSchedule


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
        grid_model, hg_model: model classes of :mod:`pyg_hgconv.nn.models`.
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
            # tiles at 256 px, 128-px training crops, the paper's ratio 1/16 of the
            # stride-4 map: 64 groups per training crop and about 256 per evaluated tile (the
            # paper's 256-px crops: 256), a quarter of stage 4's pixels as in the paper
            # (64-px crops of 128-px tiles gave the HG module 16 groups in training);
            # 16 epochs with a 30-step (two-epoch) warm-up: half as many epochs without
            # the warm-up left the grid model under-trained and unstable across seeds
            "default": TaskSchedule(input_size=(256, 256), epochs=16, batch_size=4, width=0.25,
                                    hg_ratio=1 / 16, train_crop=(128, 128), warmup_iters=30,
                                    seeds=3),
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
