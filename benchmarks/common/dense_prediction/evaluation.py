"""Loss, metrics at the targets' original resolution and FLOPs per image."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common.training import make_loader, unwrap_model

from .data import TaskData, subset_indices
from .models import is_graph_model, stage_modules
from .schedules import GIGA
from .specs import TaskSpec, get_task


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
                    confusion.update(up, targets[start:stop])
                continue
            for j, target in enumerate(targets[start:stop]):
                up = _upsample(logits[j:j + 1], target.shape[-2:])
                if spec.binary:
                    probs.append(torch.sigmoid(up[0, 0]))
                else:
                    confusion.update(up, target[None])
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

    HG models are counted image by image
    (:func:`~pyg_hgconv.profile.counter.average_flops`: their group graphs, hence their
    cost, differ per image) over the validation split, or over the evenly spaced
    subset of ``data.schedule.flops_items`` of its images; a grid model's cost
    does not depend on the image and is counted on the first one. Returns ``gflops_per_image``,
    ``gflops_std`` (fluctuation over the images), ``flops_components``
    (GFLOPs per image of each component), ``stage_modules`` and
    ``stage_gflops`` (:func:`stage_modules`: the replaced stage 4 of a grid
    model, the HG stage with its clustering, fusion conv and coarse head of an
    HG model), and ``images_counted``.
    """
    import warnings

    from torch.utils.data import Subset

    from pyg_hgconv.profile.counter import average_flops

    model = unwrap_model(model)
    graph = is_graph_model(model)
    images = data.val
    if graph and data.schedule.flops_items is not None:
        images = Subset(images, subset_indices(len(images), data.schedule.flops_items))
    loader = make_loader(images, 8, shuffle=False)
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
