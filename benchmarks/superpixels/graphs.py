r"""The three kinds of graphs of the superpixel benchmark, their data sets, and
the time it takes to build them.

=============  ==================================================================
kind           graph of one image
=============  ==================================================================
``slic``       PyG's pipeline: ``ToSLIC(n_segments=75)`` + ``KNNGraph(k=8)`` +
               :class:`~pyg_hgconv.DirectionTypes` + ``Cartesian``
``groups``     :class:`~pyg_hgconv.ToGroupGraph` (75 groups) + ``Cartesian``
``learned``    none: the model clusters the image itself (the data are images)
=============  ==================================================================

The graphs are cached per kind under ``<cache>/<kind>/processed``
(:class:`~pyg_hgconv.datasets.MNISTGroupGraphs`); the ``learned`` kind reads the
digits of the same split as images.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import torch_geometric.transforms as T
from torch.utils.data import Dataset

from benchmarks.common.timing import fixed_threads, interleaved_times
from pyg_hgconv.datasets import MNISTGroupGraphs, MNISTTest
from pyg_hgconv.nn.pool.image_to_group_graph import ImageToGroupGraph
from pyg_hgconv.transforms import DirectionTypes, ToGroupGraph

__all__ = ["GRAPH_KINDS", "NUM_SEGMENTS", "graph_transform", "groups_at", "image_split",
           "kind_dataset", "measure_batch_scaling", "measure_building"]

#: superpixels / groups per image (the MoNet / SplineCNN setting)
NUM_SEGMENTS = 75
#: neighbours of the k-NN graph of PyG's pipeline
KNN = 8
#: the side of the digits
DIGIT_SIZE = (28, 28)
GRAPH_KINDS: dict[str, str] = {
    "slic": f"PyG: ToSLIC(n_segments={NUM_SEGMENTS}) + KNNGraph(k={KNN}) + DirectionTypes + "
            "Cartesian",
    "groups": f"ToGroupGraph(num_groups={NUM_SEGMENTS}) + Cartesian (fixed, parameter-free)",
    "learned": f"ImageToGroupGraph({NUM_SEGMENTS} groups) inside the model, trained end to end "
               "(centres sampled as in evaluation)",
}


def graph_transform(kind: str):
    """The per-image transform of a fixed graph kind (``[1, H, W]`` image -> graph)."""
    if kind == "slic":
        return T.Compose([T.ToSLIC(n_segments=NUM_SEGMENTS), T.KNNGraph(k=KNN),
                          DirectionTypes(), T.Cartesian()])
    if kind == "groups":
        return T.Compose([ToGroupGraph(num_groups=NUM_SEGMENTS), T.Cartesian()])
    raise ValueError(f"no fixed graphs for kind {kind!r}")


class ImageSplit(Dataset):
    """The digits of one split as ``(image [1, 28, 28] in [0, 1], label)``."""

    def __init__(self, split: str, data_root: str | os.PathLike, limit: int | None = None):
        digits = MNISTTest(data_root, "all")
        index = torch.tensor(MNISTTest.split_indices(len(digits), seed=0)[split][:limit])
        self.images = digits.data[index].unsqueeze(1).float() / 255.0
        self.labels = digits.targets[index]

    def __len__(self) -> int:
        return int(self.labels.numel())

    def __getitem__(self, i: int):
        return self.images[i], self.labels[i]


def image_split(split: str, data_root: str | os.PathLike, limit: int | None = None) -> ImageSplit:
    """The images of a split (the ``learned`` kind's data)."""
    return ImageSplit(split, data_root, limit)


def kind_dataset(kind: str, split: str, data_root: str | os.PathLike, cache: Path,
                 limit: int | None = None):
    """The data of ``kind`` for ``split``: cached graphs, or images for ``learned``."""
    if kind == "learned":
        return image_split(split, data_root, limit)
    return MNISTGroupGraphs(cache / kind, split, data_root=data_root,
                            pre_transform=graph_transform(kind), limit=limit)


def measure_building(images: torch.Tensor, threads: int, rounds: int,
                     batch_size: int) -> dict[str, Any]:
    """Images per second of the three ways to build graphs, timed in interleaved
    rounds on ``threads`` threads: PyG's pipeline and ``ToGroupGraph`` on one
    image at a time, the batched :class:`~pyg_hgconv.ImageToGroupGraph` on
    ``batch_size`` images (its disjoint union; its default output, a PyG
    ``Batch``, and splitting the union into per-image graphs are timed too)."""
    slic = graph_transform("slic")
    per_image = ToGroupGraph(num_groups=NUM_SEGMENTS)
    module = ImageToGroupGraph(num_groups=NUM_SEGMENTS, embed_channels=None,
                               learnable=False).eval()
    batch = images[:batch_size]
    singles = images[:16]
    fns = {
        "pyg_slic_pipeline": lambda: [slic(im) for im in singles],
        "to_group_graph": lambda: [per_image(im) for im in singles],
        "batched_module": lambda: module(batch, as_batch=False),
        "batched_module_as_batch": lambda: module(batch),
        "batched_module_and_split": lambda: module(batch, as_batch=False).split_images(),
    }
    per_call = {"pyg_slic_pipeline": len(singles), "to_group_graph": len(singles),
                "batched_module": len(batch), "batched_module_as_batch": len(batch),
                "batched_module_and_split": len(batch)}
    with fixed_threads(threads), torch.no_grad():
        stats = interleaved_times(fns, rounds=rounds, round_s=0.5)
    out: dict[str, Any] = {"threads": threads, "batch_size": len(batch)}
    for name, value in stats.items():
        ms_per_image = value["ms"] / per_call[name]
        out[f"{name}_ms_per_image"] = ms_per_image
        out[f"{name}_images_per_s"] = 1e3 / ms_per_image
    base = out["pyg_slic_pipeline_ms_per_image"]
    out["batched_speedup"] = base / out["batched_module_ms_per_image"]
    out["batched_as_batch_speedup"] = base / out["batched_module_as_batch_ms_per_image"]
    out["batched_with_split_speedup"] = base / out["batched_module_and_split_ms_per_image"]
    out["per_image_speedup"] = base / out["to_group_graph_ms_per_image"]
    return out


def groups_at(size: tuple[int, int]) -> int:
    """Groups of an image of ``size`` with the digits' pixels per group
    (:data:`NUM_SEGMENTS` on 28 x 28)."""
    return max(1, round(NUM_SEGMENTS * size[0] * size[1] / (DIGIT_SIZE[0] * DIGIT_SIZE[1])))


def measure_batch_scaling(images: torch.Tensor, threads: int, rounds: int,
                          batch_sizes: tuple[int, ...], sizes: tuple[tuple[int, int], ...]
                          ) -> list[dict[str, Any]]:
    """Milliseconds per image of the batched :class:`~pyg_hgconv.ImageToGroupGraph`
    on batches of every size of ``batch_sizes`` (interleaved rounds on ``threads``
    threads), for the digits resized (bilinear) to every image size of ``sizes``
    with :func:`groups_at` groups: the cost per image must not grow with the batch.
    One record per (image size, batch size)."""
    records = []
    with fixed_threads(threads), torch.no_grad():
        for size in sizes:
            batch = images[:max(batch_sizes)]
            if tuple(batch.shape[-2:]) != tuple(size):
                batch = F.interpolate(batch, size=size, mode="bilinear", align_corners=False)
            groups = groups_at(size)
            module = ImageToGroupGraph(num_groups=groups, embed_channels=None,
                                       learnable=False).eval()
            fns = {str(b): (lambda m=module, x=batch[:b]: m(x, as_batch=False))
                   for b in batch_sizes}
            stats = interleaved_times(fns, rounds=rounds, round_s=0.5)
            for b in batch_sizes:
                records.append({"size": f"{size[0]}x{size[1]}", "groups": groups,
                                "batch": b, "ms_per_image": stats[str(b)]["ms"] / b})
    return records
