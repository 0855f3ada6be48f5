"""CamVid road-scene segmentation (SegNet version, 11 classes)."""
from __future__ import annotations

import os

import torch
from torch import Tensor

from .augment import JointAugment
from .base import ImageFileDataset, pair_by_stem, require_dir
from .palette import colorize


class CamVid(ImageFileDataset):
    r"""The CamVid road-scene segmentation data set as prepared by SegNet.

    Layout under ``root/camvid``: ``{split}/*.jpg`` (or ``.png``) frames and
    ``{split}annot/<frame>.png`` label maps whose pixel value is the class id
    (0-10; 11 = *Unlabelled*, ignored). The copy in ``/work/shared/data`` has
    367 ``train`` and 101 ``val`` frames of 360x480; the original SegNet release
    also has ``test`` (233 frames), which is read when present.

    Each item is ``(image, label)``: ``image`` float32 ``[3, H, W]`` in
    ``[0, 1]`` (or standardised with :attr:`mean`/:attr:`std` when
    ``normalize=True``), ``label`` int64 ``[H, W]`` in ``0..11`` with
    :attr:`ignore_index` = 11. Frames are decoded once and kept in memory as
    ``uint8`` (resized) tensors.

    Args:
        root (str or os.PathLike, optional): data root holding ``camvid/``
            (default: ``$PYG_HGCONV_DATA``).
        split (str): ``"train"``, ``"val"`` or ``"test"``. (default: :obj:`"train"`)
        size (int or tuple[int, int], optional): ``(height, width)`` to resize to,
            bilinear for frames, nearest for labels; :obj:`None` keeps 360x480.
        normalize (bool): standardise the frames. (default: :obj:`False`)
        augment (bool or JointAugment): random flip + zoom-in crop (scale
            0.5-1) drawn from torch's RNG. (default: :obj:`False`)
        cache (bool): keep decoded items in memory. (default: :obj:`True`)
        transform (callable, optional): applied to every item tuple.
    """
    name = "camvid"
    splits = ("train", "val", "test")
    target_kinds = ("label",)
    default_augment = JointAugment(hflip=0.5, scale=(0.5, 1.0))

    num_classes = 11
    ignore_index = 11
    class_names = ("Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol",
                   "Fence", "Car", "Pedestrian", "Bicyclist")
    #: SegNet's colour code of the 11 classes, uint8 [11, 3]
    palette = torch.tensor([
        [128, 128, 128], [128, 0, 0], [192, 192, 128], [128, 64, 128], [60, 40, 222],
        [128, 128, 0], [192, 128, 128], [64, 64, 128], [64, 0, 128], [64, 64, 0],
        [0, 128, 192]], dtype=torch.uint8)
    #: per-channel mean / std of the 367 training frames in [0, 1] (full resolution)
    mean = (0.4117, 0.4250, 0.4324)
    std = (0.3068, 0.3115, 0.3069)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 size: int | tuple[int, int] | None = None, *, normalize: bool = False,
                 augment: bool | JointAugment = False, cache: bool = True,
                 transform=None) -> None:
        super().__init__(root, split, size, normalize=normalize, augment=augment,
                         cache=cache, transform=transform)

    def find_files(self):
        images = require_dir(self.root / self.split, f"CamVid split {self.split!r}")
        labels = require_dir(self.root / f"{self.split}annot", f"CamVid labels {self.split!r}")
        return pair_by_stem(images, labels)

    @classmethod
    def colorize(cls, label: Tensor) -> Tensor:
        """RGB ``uint8 [..., H, W, 3]`` rendering of a label map (ignored pixels black)."""
        return colorize(label, cls.palette, ignore_index=cls.ignore_index)
