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
  <pyg_hgconv.nn.models.SegmentationOutput.loss>` with the task's ignore label;
* :func:`evaluate` -- the task's metrics from :mod:`benchmarks.common.metrics`,
  on the validation split, at the **original** resolution of the targets (the
  predictions are upsampled bilinearly from the input size);
* :func:`model_flops` -- FLOPs per image averaged over the validation images
  (:func:`~pyg_hgconv.profile.counter.average_flops`; HG graphs differ per image), the
  components and the FLOPs of the stage the HG module replaces;
* :func:`train_and_evaluate` -- all of it around THE training loop
  (:func:`~benchmarks.common.training.fit`: tqdm, a checkpoint per epoch,
  resume, deterministic seeds, DDP under ``torchrun``).

Example (what the irregular-convolution benchmark does for its CamVid part)::

    from benchmarks.common.dense_prediction import build_model, train_and_evaluate
    from benchmarks.common.training import seed_everything
    from pyg_hgconv.nn.models import HGResNetSeg, ResNetSeg

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

from .data import RandomCrop, TaskData, load_task_data, subset_indices
from .evaluation import compute_loss, evaluate, model_flops
from .models import build_model, is_graph_model, model_name, stage_modules
from .run import train_and_evaluate
from .schedules import GIGA, VARIANTS, TaskSchedule
from .specs import GRID_COUNTERPART, TASKS, TaskSpec, get_task, resolve_schedule

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
