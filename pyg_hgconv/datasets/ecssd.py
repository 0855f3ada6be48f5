"""ECSSD salient object detection (images of varying size with binary masks)."""
from __future__ import annotations

import os
from typing import ClassVar

import torch

from .augment import JointAugment
from .base import SeededPairDataset


class ECSSD(SeededPairDataset):
    r"""The ECSSD salient-object data set (700 natural images, binary masks).

    Layout under ``root/ecssd``: ``images/NNNN.jpg`` and ``masks/NNNN.png``
    (0 / 255). Image sizes vary (long side ~400; one image is greyscale and is
    decoded to RGB), so items are resized to a fixed ``size`` by default.

    **Split** (no official one exists): images sorted by name, split by
    :func:`~pyg_hgconv.datasets.splits.seeded_split` with :attr:`fractions` =
    train 5/7 / val 1/7 / test 1/7, i.e. 500 / 100 / 100 of the 700 here.
    :meth:`split_files` lists the exact images.

    Each item is ``(image, mask)``: ``image`` float32 ``[3, H, W]``, ``mask``
    ``[H, W]`` of 0/1 in ``mask_dtype``.

    Args:
        root (str or os.PathLike, optional): data root holding ``ecssd/``.
        split (str): ``"train"``, ``"val"`` or ``"test"``. (default: :obj:`"train"`)
        size (int or tuple[int, int], optional): ``(height, width)``; :obj:`None`
            keeps each image's own size (then items cannot be stacked into a batch
            larger than 1). (default: :obj:`(256, 256)`)
        seed (int): seed of the split. (default: :obj:`0`)
        normalize, augment, cache, mask_dtype, transform: see
            :class:`~pyg_hgconv.datasets.base.ImageDataset`.
    """
    name = "ecssd"
    splits = ("train", "val", "test")
    target_subdir = "masks"
    target_kinds = ("binary",)
    fractions: ClassVar[dict[str, float]] = {"train": 5 / 7, "val": 1 / 7, "test": 1 / 7}
    default_augment = JointAugment(hflip=0.5, scale=(0.75, 1.0))
    #: per-channel mean / std of all 700 images in [0, 1]
    mean = (0.4624, 0.4472, 0.3605)
    std = (0.2528, 0.2400, 0.2582)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 size: int | tuple[int, int] | None = (256, 256), seed: int = 0, *,
                 normalize: bool = False, augment: bool | JointAugment = False,
                 cache: bool = True, mask_dtype: torch.dtype = torch.int64,
                 transform=None) -> None:
        super().__init__(root, split, size, seed, normalize=normalize, augment=augment,
                         cache=cache, mask_dtype=mask_dtype, transform=transform)
