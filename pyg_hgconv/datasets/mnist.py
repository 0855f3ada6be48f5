"""The MNIST 10k test set from its IDX files, with a seeded train/val/test split."""
from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from .base import ImageDataset, check_split, require_dir
from .root import dataset_dir
from .splits import seeded_split, split_sizes

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into a numpy array.

    The header is two zero bytes, a type code, the number of dimensions ``d``
    and ``d`` big-endian uint32 sizes; the data follow in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = tuple(int(v) for v in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - offset != expected:
        raise ValueError(f"{path} holds {len(data) - offset} data bytes, header says {expected}")
    array = np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


class MNISTTest(ImageDataset):
    r"""The 10,000 MNIST *test* digits, split in code (the 60k training set is absent).

    Layout under ``root/mnist``: ``t10k-images-idx3-ubyte.gz`` and
    ``t10k-labels-idx1-ubyte.gz`` (standard IDX). All 10k images are read
    into memory once (7.8 MB, ``uint8``).

    **Split**: ``"all"`` is the whole set; otherwise the indices are split by
    :func:`~pyg_hgconv.datasets.splits.seeded_split` with :attr:`fractions` =
    train 0.8 / val 0.1 / test 0.1 (8000 / 1000 / 1000). :meth:`split_indices`
    returns all three index lists. Results on these splits are *not*
    comparable with numbers trained on the official 60k training set.

    Each item is ``(image, label)``: ``image`` float32 ``[1, 28, 28]`` in
    ``[0, 1]`` (or standardised), ``label`` an int64 scalar. :attr:`data`
    (``uint8 [N, 28, 28]``) and :attr:`targets` (``int64 [N]``) hold the
    split's images and labels for vectorised use (e.g. superpixel graphs).

    Args:
        root (str or os.PathLike, optional): data root holding ``mnist/``.
        split (str): ``"all"``, ``"train"``, ``"val"`` or ``"test"``.
            (default: :obj:`"all"`)
        seed (int): seed of the split. (default: :obj:`0`)
        normalize (bool): standardise with :attr:`mean`/:attr:`std`.
        transform (callable, optional): applied to every item tuple.
    """
    name = "mnist"
    splits = ("all", "train", "val", "test")
    fractions: ClassVar[dict[str, float]] = {"train": 0.8, "val": 0.1, "test": 0.1}
    num_classes = 10
    #: mean / std of the 10k test images in [0, 1]
    mean = (0.1325,)
    std = (0.3105,)

    def __init__(self, root: str | os.PathLike | None = None, split: str = "all",
                 seed: int = 0, *, normalize: bool = False, transform=None) -> None:
        super().__init__(normalize=normalize, augment=False, cache=False, transform=transform)
        self.split = check_split(split, self.splits)
        self.seed = int(seed)
        self.root = require_dir(dataset_dir(self.name, root), "MNISTTest")
        images = read_idx(self._file("t10k-images-idx3-ubyte"))
        labels = read_idx(self._file("t10k-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"MNIST images {images.shape} and labels {labels.shape} do not match")
        indices = (torch.arange(len(labels)) if split == "all"
                   else torch.tensor(self.split_indices(len(labels), self.seed)[split]))
        self.indices = indices
        self.data = torch.from_numpy(images.copy())[indices]
        self.targets = torch.from_numpy(labels.astype(np.int64))[indices]

    def _file(self, stem: str) -> Path:
        for name in (f"{stem}.gz", stem):
            if (self.root / name).is_file():
                return self.root / name
        raise FileNotFoundError(f"MNISTTest: {stem}.gz not found in {self.root}")

    @classmethod
    def split_indices(cls, num_items: int = 10_000, seed: int = 0) -> dict[str, list[int]]:
        """The seeded ``train``/``val``/``test`` index lists of ``num_items`` digits."""
        return seeded_split(num_items, split_sizes(num_items, cls.fractions), seed)

    def __len__(self) -> int:
        return int(self.targets.numel())

    def load(self, index: int):
        return self.data[index][None], (), (self.targets[index],)

    def _repr_args(self) -> str:
        return f"split={self.split!r}, seed={self.seed}"
