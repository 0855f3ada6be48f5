"""DRIVE retinal vessel segmentation (fundus images, vessel and field-of-view masks)."""
from __future__ import annotations

import os

import torch

from pyg_hgconv.datasets.augment import JointAugment
from pyg_hgconv.datasets.base import ImageFileDataset, find_by_stem, list_images, require_dir


class DRIVE(ImageFileDataset):
    r"""The DRIVE retinal-vessel data set: 20 training + 20 test fundus images.

    Layout under ``root/drive/{training,test}`` (PNG here; the original TIF/GIF
    files are read too)::

        images/NN_{split}.png        RGB fundus image, 565x584
        1st_manual/NN_manual1.png    vessel mask of observer 1 (0 / 255)
        mask/NN_{split}_mask.png     field-of-view (FOV) mask (0 / 255)
        2nd_manual/NN_manual2.png    test only: observer 2, palette PNG of indices 0/1

    The second observer's masks store palette *indices* 0/1 (black/white
    palette); they are decoded through the palette, so vessel pixels are 1 like
    observer 1's. ``observer=2`` (test split only) returns them instead of
    observer 1's, e.g. to measure the inter-observer agreement.

    Each item is ``(image, vessel, fov)``: ``image`` float32 ``[3, H, W]``,
    ``vessel`` and ``fov`` ``[H, W]`` of 0/1 in ``mask_dtype``. DRIVE metrics
    are conventionally computed inside the FOV only.

    Args:
        root (str or os.PathLike, optional): data root holding ``drive/``.
        split (str): ``"training"`` or ``"test"``. (default: :obj:`"training"`)
        size (int or tuple[int, int], optional): resize to ``(height, width)``;
            :obj:`None` keeps 584x565.
        observer (int): 1 (``1st_manual``) or 2 (``2nd_manual``, test only).
            (default: :obj:`1`)
        normalize, augment, cache, mask_dtype, transform: see
            :class:`~pyg_hgconv.datasets.base.ImageDataset`; the default
            augmentation is a flip only (the layout of a fundus image matters).
    """
    name = "drive"
    splits = ("training", "test")
    target_kinds = ("binary", "binary")
    default_augment = JointAugment(hflip=0.5, scale=(1.0, 1.0))
    #: per-channel mean / std of the 20 training images in [0, 1]
    mean = (0.4974, 0.2706, 0.1624)
    std = (0.3481, 0.1900, 0.1079)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "training",
                 size: int | tuple[int, int] | None = None, observer: int = 1, *,
                 normalize: bool = False, augment: bool | JointAugment = False,
                 cache: bool = True, mask_dtype: torch.dtype = torch.int64,
                 transform=None) -> None:
        if observer not in (1, 2):
            raise ValueError(f"'observer' must be 1 or 2 (got {observer!r})")
        if observer == 2 and split != "test":
            raise ValueError(f"'observer=2' (2nd_manual) exists only for split='test' "
                             f"(got split={split!r})")
        self.observer = observer
        super().__init__(root, split, size, normalize=normalize, augment=augment,
                         cache=cache, mask_dtype=mask_dtype, transform=transform)

    def find_files(self):
        base = require_dir(self.root / self.split, f"DRIVE split {self.split!r}")
        images = require_dir(base / "images", "DRIVE images")
        vessels = require_dir(base / f"{'1st' if self.observer == 1 else '2nd'}_manual",
                              f"DRIVE observer {self.observer} masks")
        fovs = require_dir(base / "mask", "DRIVE field-of-view masks")
        files = []
        for image in list_images(images):
            number = image.stem.split("_")[0]
            files.append((image, find_by_stem(vessels, f"{number}_manual{self.observer}"),
                          find_by_stem(fovs, f"{image.stem}_mask")))
        if not files:
            raise FileNotFoundError(f"no image files in {images}")
        return files

    def _repr_args(self) -> str:
        return f"{super()._repr_args()}, observer={self.observer}"
