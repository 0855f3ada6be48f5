r"""MNIST digits as graphs, the classic benchmark of irregular convolutions, as a PyG dataset."""
from __future__ import annotations

import os
from collections.abc import Callable

import torch
from torch_geometric.data import Data, InMemoryDataset
from torch_geometric.transforms import Compose

from pyg_hgconv.transforms.to_group_graph import ToGroupGraph

from .mnist import MNISTTest
from .root import dataset_dir

__all__ = ["MNISTGroupGraphs"]


class MNISTGroupGraphs(InMemoryDataset):
    r"""The MNIST digits as graphs, in the style of PyG's
    :class:`~torch_geometric.datasets.MNISTSuperpixels` (the benchmark on which
    MoNet/GMMConv and SplineCNN were introduced): every image becomes one graph
    through ``pre_transform`` -- by default :class:`~pyg_hgconv.ToGroupGraph`
    with 75 groups, any other transform that takes a ``[1, 28, 28]`` image
    tensor works (e.g. ``T.Compose([T.ToSLIC(n_segments=75), T.KNNGraph(k=8)])``,
    PyG's own pipeline) -- and the graphs are cached under ``root/processed``.

    Only the 10,000 *test* digits of MNIST are available locally (the IDX files
    ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz`` under
    ``<data_root>/mnist``), so they are split by a fixed seeded permutation into
    8,000 / 1,000 / 1,000 training / validation / test digits
    (:meth:`MNISTTest.split_indices <pyg_hgconv.datasets.MNISTTest.split_indices>`
    with seed 0). Accuracies on this split are not comparable with those of
    models trained on the official 60,000 training digits.

    Every graph has the image's label in ``y`` (``[1]``) and, with the default
    ``pre_transform``, the attributes of a :class:`~pyg_hgconv.GroupGraph`
    (``x`` the mean intensity of each group, ``pos``, ``edge_index``,
    ``edge_type``, ``edge_weight``, the assignment).

    Args:
        root (str): where the processed graphs are cached (``root/processed``);
            one root per ``pre_transform`` (PyG warns when it changes).
        split (str): ``"train"``, ``"val"`` or ``"test"``.
        data_root (str, optional): the data root holding ``mnist/``
            (default: :func:`~pyg_hgconv.datasets.data_root`).
        transform, pre_transform, pre_filter, force_reload: as for any PyG
            :class:`~torch_geometric.data.InMemoryDataset`; ``pre_transform``
            maps an image ``[1, 28, 28]`` (``float32`` in ``[0, 1]``) to a graph
            (default ``ToGroupGraph(num_groups=75)``).
        batch_size (int): images per batch when the default transform builds
            the graphs (the batched module gives every image the same graph as
            the per-image transform, only faster).
        limit (int, optional): keep the first ``limit`` digits of every split
            (smoke runs; the processed files are named after it).

    **STATS** (default ``pre_transform``): 10,000 graphs, 75 nodes each, 10 classes.
    """

    splits = ("train", "val", "test")
    num_images = 10_000

    def __init__(self, root: str | os.PathLike, split: str = "train",
                 data_root: str | os.PathLike | None = None,
                 transform: Callable | None = None, pre_transform: Callable | None = None,
                 pre_filter: Callable | None = None, force_reload: bool = False,
                 batch_size: int = 256, limit: int | None = None) -> None:
        if split not in self.splits:
            raise ValueError(f"'split' must be one of {self.splits} (got {split!r})")
        self.split = split
        self.data_root = data_root
        self.batch_size = int(batch_size)
        if limit is not None and (not isinstance(limit, int) or limit < 1):
            raise ValueError(f"'limit' must be None or an int >= 1 (got {limit!r})")
        self.limit = limit
        if pre_transform is None:
            pre_transform = ToGroupGraph(num_groups=75)
        super().__init__(str(root), transform, pre_transform, pre_filter,
                         force_reload=force_reload)
        self.load(self.processed_paths[self.splits.index(split)])

    @property
    def raw_dir(self) -> str:
        return str(dataset_dir(MNISTTest.name, self.data_root))

    @property
    def raw_file_names(self) -> list[str]:
        return ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]

    @property
    def processed_file_names(self) -> list[str]:
        suffix = "" if self.limit is None else f"_first{self.limit}"
        return [f"{split}{suffix}.pt" for split in self.splits]

    def download(self) -> None:
        raise FileNotFoundError(
            f"MNISTGroupGraphs: {self.raw_file_names} not found in {self.raw_dir}; put the "
            "MNIST IDX files there or pass data_root= (nothing is downloaded)")

    def process(self) -> None:
        digits = MNISTTest(self.data_root, "all")
        parts = MNISTTest.split_indices(len(digits), seed=0)
        for split, path in zip(self.splits, self.processed_paths, strict=True):
            index = torch.tensor(parts[split][:self.limit])
            images = digits.data[index].unsqueeze(1).float() / 255.0
            graphs = self._graphs(images)
            for graph, label in zip(graphs, digits.targets[index].tolist(), strict=True):
                graph.y = torch.tensor([label])
            if self.pre_filter is not None:
                graphs = [g for g in graphs if self.pre_filter(g)]
            self.save(graphs, path)

    def _graphs(self, images: torch.Tensor) -> list[Data]:
        """``pre_transform`` of every image. A :class:`~pyg_hgconv.ToGroupGraph`
        (alone or first in a ``Compose``) runs batched, the rest per graph."""
        first, rest = self.pre_transform, []
        if isinstance(first, Compose) and first.transforms and isinstance(
                first.transforms[0], ToGroupGraph):
            first, rest = first.transforms[0], list(first.transforms[1:])
        if not isinstance(first, ToGroupGraph):
            return [self.pre_transform(image) for image in images]
        out: list[Data] = []
        with torch.no_grad():
            for start in range(0, images.size(0), self.batch_size):
                batch = images[start:start + self.batch_size]
                union = first.module(batch, as_batch=False)
                for image, graph in zip(batch, union.split_images(), strict=True):
                    if first.add_img:
                        graph.img = image.unsqueeze(0)
                    for transform in rest:
                        graph = transform(graph)
                    out.append(graph)
        return out

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(self)}, split={self.split!r})"

