"""The grid and HG models of every task (:func:`build_model`, :func:`stage_modules`)."""
from __future__ import annotations

from typing import Any

from torch import nn

from benchmarks.common.training import unwrap_model

from .schedules import VARIANTS, TaskSchedule
from .specs import TaskSpec, get_task, resolve_schedule


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

    * segmentation: :class:`~pyg_hgconv.nn.models.ResNetSeg` (ResNet-Dilation,
      auxiliary head) / :class:`~pyg_hgconv.nn.models.HGResNetSeg`;
    * roads: :class:`~pyg_hgconv.nn.models.ResUNet` with ``stem='plus'`` (ResUNet18+)
      / :class:`~pyg_hgconv.nn.models.HGResUNet`;
    * saliency: dilated :class:`~pyg_hgconv.nn.models.ResUNet` / HGResUNet.

    HG models get the task's clustering options (:attr:`TaskSpec.hg_options`),
    ``ratio=schedule.hg_ratio`` and ``conv``; ``hg_kwargs`` override them
    (``sampler``, ``ratio``, ``noise_cancel``, ``max_direction``, ...).
    ``attention='object' | 'uncertainty'`` adds active focus (object focus on
    the task's :attr:`TaskSpec.focus_class`). Seed the RNG first for a
    reproducible initialisation.
    """
    from pyg_hgconv.nn import models

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
    from pyg_hgconv.nn.pool.image_to_group_graph import ImageToGroupGraph

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
