"""Aerial road-extraction tiles with binary road masks."""
from __future__ import annotations

import os
from typing import ClassVar

import torch

from .augment import JointAugment
from .base import SeededPairDataset


class RoadTiles(SeededPairDataset):
    r"""Aerial RGB tiles with road masks (road extraction, binary segmentation).

    Layout under ``root/roads``: ``images/<name>.png`` and
    ``groundtruth/<name>.png`` (grey, anti-aliased; road where value > 127).
    The copy in ``/work/shared/data`` has 80 tiles of 400x400 (~20% road).

    **Split** (no official one exists): the tiles, sorted by file name, are
    split by :func:`~pyg_hgconv.datasets.splits.seeded_split` with fractions
    :attr:`fractions` = train 0.75 / val 0.125 / test 0.125, i.e. 60 / 10 / 10
    tiles for the 80 here. :meth:`split_files` lists the exact tiles.

    Each item is ``(image, mask)``: ``image`` float32 ``[3, H, W]``, ``mask``
    ``[H, W]`` of 0/1 in ``mask_dtype`` (int64 by default; float32 for BCE).

    Args:
        root (str or os.PathLike, optional): data root holding ``roads/``.
        split (str): ``"train"``, ``"val"`` or ``"test"``. (default: :obj:`"train"`)
        size (int or tuple[int, int], optional): resize to ``(height, width)``;
            :obj:`None` keeps 400x400.
        seed (int): seed of the split. (default: :obj:`0`)
        normalize, augment, cache, mask_dtype, transform: see
            :class:`~pyg_hgconv.datasets.base.ImageDataset`; the default
            augmentation is a flip and a 0.5-1 zoom-in crop.
    """
    name = "roads"
    splits = ("train", "val", "test")
    target_subdir = "groundtruth"
    target_kinds = ("binary",)
    fractions: ClassVar[dict[str, float]] = {"train": 0.75, "val": 0.125, "test": 0.125}
    default_augment = JointAugment(hflip=0.5, scale=(0.5, 1.0))
    #: per-channel mean / std of all 80 tiles in [0, 1]
    mean = (0.3327, 0.3288, 0.2933)
    std = (0.1913, 0.1852, 0.1856)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 size: int | tuple[int, int] | None = None, seed: int = 0, *,
                 normalize: bool = False, augment: bool | JointAugment = False,
                 cache: bool = True, mask_dtype: torch.dtype = torch.int64,
                 transform=None) -> None:
        super().__init__(root, split, size, seed, normalize=normalize, augment=augment,
                         cache=cache, mask_dtype=mask_dtype, transform=transform)
