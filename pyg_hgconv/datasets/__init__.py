"""Image data sets of pyg-hgconv: the real benchmarks (read from a local data root)
and the procedurally generated :class:`HeterogeneousScenes`.

Every item is a tuple of tensors: ``(image float32 [C, H, W], *targets, *extras)``;
see :mod:`pyg_hgconv.datasets.base` for the shared conventions.
"""
from .augment import JointAugment
from .base import ImageDataset, ImageFileDataset
from .camvid import CamVid
from .ecssd import ECSSD
from .heterogeneous_scenes import HeterogeneousScenes
from .mnist import MNISTTest, read_idx
from .mnist_group_graphs import MNISTGroupGraphs
from .palette import colorize
from .road_tiles import RoadTiles
from .root import ENV_VAR, data_root, dataset_dir, has_dataset
from .splits import seeded_split, split_sizes

__all__ = [
    "ECSSD",
    "ENV_VAR",
    "CamVid",
    "HeterogeneousScenes",
    "ImageDataset",
    "ImageFileDataset",
    "JointAugment",
    "MNISTGroupGraphs",
    "MNISTTest",
    "RoadTiles",
    "colorize",
    "data_root",
    "dataset_dir",
    "has_dataset",
    "read_idx",
    "seeded_split",
    "split_sizes",
]
