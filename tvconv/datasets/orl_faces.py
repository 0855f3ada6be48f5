"""ORL / AT&T aligned face images (40 identities x 10 images)."""
from __future__ import annotations

import os
import re

import torch
from torch import Tensor

from pyg_hgconv.datasets.augment import JointAugment
from pyg_hgconv.datasets.base import ImageFileDataset, require_dir

from .pairs import verification_pairs


class ORLFaces(ImageFileDataset):
    r"""The ORL (AT&T) face data set: 40 identities x 10 grey 92x112 PGM images.

    Layout under ``root/orl_faces``: ``sN/K.pgm`` with identity ``N`` = 1..40
    and image ``K`` = 1..10. Identity folders are sorted *numerically*
    (``s1, s2, ..., s40``) and labelled ``0 .. num_identities - 1``.
    Please credit the Olivetti Research Laboratory (Samaria & Harter, 1994).

    **Split** (by image, every identity in both splits): a generator seeded
    with ``seed`` draws one permutation of each identity's images (identities in
    label order); the first ``train_per_identity`` images go to ``"train"``, the
    rest to ``"test"``. With the default 7, that is 280 train / 120 test images.
    Verification pairs for the test split come from :meth:`verification_pairs`
    (closed set: the test identities are the training identities, the images
    are held out).

    Each item is ``(image, label)``: ``image`` float32 ``[C, H, W]`` with
    ``C = num_channels`` (the grey value repeated for 3), ``label`` an int64
    scalar.

    Args:
        root (str or os.PathLike, optional): data root holding ``orl_faces/``.
        split (str): ``"train"`` or ``"test"``. (default: :obj:`"train"`)
        size (int or tuple[int, int], optional): ``(height, width)``; the 112x92
            images are resized bilinearly (stretched) to it; :obj:`None` keeps
            112x92. (default: :obj:`(96, 96)`)
        seed (int): seed of the split. (default: :obj:`0`)
        train_per_identity (int): training images per identity, between 1 and
            (images per identity - 1). (default: :obj:`7`)
        num_channels (int): 1 (grey) or 3 (grey repeated). (default: :obj:`1`)
        normalize, augment, cache, transform: see
            :class:`~pyg_hgconv.datasets.base.ImageDataset`; the default
            augmentation is a flip and a mild 0.9-1 zoom-in crop.
    """
    name = "orl_faces"
    splits = ("train", "test")
    target_kinds = ()
    default_augment = JointAugment(hflip=0.5, scale=(0.9, 1.0))
    #: grey mean / std of all 400 images in [0, 1]
    mean = (0.4417,)
    std = (0.1958,)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 size: int | tuple[int, int] | None = (96, 96), seed: int = 0,
                 train_per_identity: int = 7, *, num_channels: int = 1,
                 normalize: bool = False, augment: bool | JointAugment = False,
                 cache: bool = True, transform=None) -> None:
        if num_channels not in (1, 3):
            raise ValueError(f"'num_channels' must be 1 or 3 (got {num_channels!r})")
        if isinstance(train_per_identity, bool) or not isinstance(train_per_identity, int):
            raise TypeError(f"'train_per_identity' must be an int (got {train_per_identity!r})")
        self.seed = int(seed)
        self.train_per_identity = train_per_identity
        self.num_channels = num_channels
        self.image_mode = "L" if num_channels == 1 else "RGB"
        self._labels: list[int] = []
        super().__init__(root, split, size, normalize=normalize, augment=augment,
                         cache=cache, transform=transform)

    def find_files(self):
        folders = [p for p in self.root.iterdir() if p.is_dir() and re.fullmatch(r"s\d+", p.name)]
        if not folders:
            raise FileNotFoundError(f"no identity folders s1, s2, ... in {self.root}")
        folders.sort(key=lambda p: int(p.name[1:]))
        self.identities = tuple(p.name for p in folders)
        generator = torch.Generator().manual_seed(self.seed)
        files, labels = [], []
        for label, folder in enumerate(folders):
            images = sorted(require_dir(folder, "ORL identity").glob("*.pgm"),
                            key=lambda p: (len(p.stem), p.stem))
            if not 1 <= self.train_per_identity < len(images):
                raise ValueError(f"'train_per_identity' must be in [1, {len(images) - 1}] for "
                                 f"{folder} with {len(images)} images "
                                 f"(got {self.train_per_identity})")
            perm = torch.randperm(len(images), generator=generator).tolist()
            chosen = perm[:self.train_per_identity] if self.split == "train" \
                else perm[self.train_per_identity:]
            for i in sorted(chosen):
                files.append((images[i],))
                labels.append(label)
        self._labels = labels
        return files

    @property
    def num_classes(self) -> int:
        """Number of identities (40 for ORL)."""
        return len(self.identities)

    @property
    def labels(self) -> Tensor:
        """int64 ``[N]``: the identity label of every item, in item order."""
        return torch.tensor(self._labels, dtype=torch.long)

    def extras(self, index: int) -> tuple[Tensor, ...]:
        return (torch.tensor(self._labels[index], dtype=torch.long),)

    def verification_pairs(self, num_pairs: int | None = None,
                           seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """Balanced genuine/impostor pairs of this split's items.

        See :func:`~tvconv.datasets.pairs.verification_pairs`; on the default
        test split (3 images per identity) that is all 120 genuine pairs and 120
        seeded impostor pairs. Returns item indices ``a``, ``b`` and ``same``.
        """
        return verification_pairs(self.labels, num_pairs=num_pairs, seed=seed)

    def _repr_args(self) -> str:
        return (f"{super()._repr_args()}, seed={self.seed}, "
                f"train_per_identity={self.train_per_identity}, num_channels={self.num_channels}")
