"""The common base of the image data sets: decode once, resize, cache, augment.

Every image data set of pyg-hgconv returns items of the same form::

    (image, *dense_targets, *extras)

* ``image``: ``float32 [C, H, W]`` in ``[0, 1]``, or standardised with the data
  set's ``mean``/``std`` when ``normalize=True``;
* ``dense_targets``: one ``[H, W]`` map per entry of ``target_kinds``: a
  ``"label"`` map of class ids (``int64``) or a ``"binary"`` mask of 0/1
  (``mask_dtype``, ``int64`` by default, ``float32`` for BCE-style losses);
* ``extras``: per-item scalars, e.g. the ``int64`` class label of a face.

Subclasses only say how to produce the *raw* item (``uint8`` image
``[C, H, W]`` and ``uint8`` targets ``[H, W]``, already resized) in
:meth:`ImageDataset.load`. This base keeps the raw items in memory after the
first access (``cache=True``), so later epochs never decode a file again,
converts them to float, applies the optional :class:`JointAugment` and the
normalisation. :class:`ImageFileDataset` adds the file handling shared by the
real data sets: the data root, split names, decoding with PIL and resizing.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from .augment import JointAugment
from .root import ENV_VAR, dataset_dir
from .splits import seeded_split, split_sizes

#: a raw item: (uint8 image [C, H, W], uint8 dense targets [H, W], extra scalars)
RawItem = tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...]]

TARGET_KINDS = ("label", "binary")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".gif", ".bmp", ".ppm", ".pgm")


def parse_size(size, name: str = "size") -> tuple[int, int] | None:
    """Return ``size`` as ``(height, width)``; an int means a square; ``None`` stays."""
    if size is None:
        return None
    if isinstance(size, bool):
        raise TypeError(f"'{name}' must be an int, a (height, width) pair or None (got bool)")
    if isinstance(size, int):
        size = (size, size)
    if not isinstance(size, Sequence) or len(size) != 2:
        raise TypeError(f"'{name}' must be an int, a (height, width) pair or None (got {size!r})")
    height, width = size
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ValueError(f"'{name}' must hold two positive ints (got {tuple(size)!r})")
    return int(height), int(width)


def check_split(split: str, valid: Sequence[str]) -> str:
    """Raise a ``ValueError`` listing ``valid`` unless ``split`` is one of them."""
    if split not in valid:
        raise ValueError(f"'split' must be one of {list(valid)} (got {split!r})")
    return split


def require_dir(path: Path, what: str) -> Path:
    """Raise a ``FileNotFoundError`` naming ``path`` and the data-root setting."""
    if not path.is_dir():
        raise FileNotFoundError(
            f"{what}: directory not found: {path}. Pass root=... or set the environment "
            f"variable {ENV_VAR} to the directory that holds the data sets "
            f"(see the data README for the expected layout)."
        )
    return path


def list_images(directory: Path) -> list[Path]:
    """The image files of ``directory`` (by extension), sorted by name."""
    return sorted(p for p in directory.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def find_by_stem(directory: Path, stem: str) -> Path:
    """The image file ``directory/stem.<ext>`` (any image extension)."""
    for ext in IMAGE_EXTENSIONS:
        path = directory / f"{stem}{ext}"
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"no image file named {stem!r} (extensions {list(IMAGE_EXTENSIONS)}) in {directory}"
    )


def read_image(path: Path, mode: str = "RGB", size: tuple[int, int] | None = None) -> Tensor:
    """Decode ``path`` as ``uint8 [C, H, W]`` (``mode`` ``"RGB"`` or ``"L"``), bilinear resize."""
    with Image.open(path) as img:
        img = img.convert(mode)
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        array = np.asarray(img, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()


def read_target(path: Path, kind: str, size: tuple[int, int] | None = None) -> Tensor:
    """Decode a dense target as ``uint8 [H, W]``, nearest-neighbour resize.

    ``kind="label"``: the stored pixel values are the class ids (a greyscale or
    palette-index PNG). ``kind="binary"``: the mask is converted to grey through
    its palette (so a palette PNG storing indices 0/1 with a black/white palette
    decodes correctly) and thresholded at ``> 127`` to 0/1.
    """
    with Image.open(path) as img:
        if kind == "binary":
            img = img.convert("L")
        elif img.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"label map {path} must be a single-channel image (got {img.mode})")
        if size is not None and img.size != (size[1], size[0]):
            img = img.resize((size[1], size[0]), Image.Resampling.NEAREST)
        array = np.asarray(img)
    if kind == "binary":
        array = array > 127
    elif array.max(initial=0) > 255:
        raise ValueError(f"label map {path} has class ids > 255")
    return torch.from_numpy(array.astype(np.uint8))


class ImageDataset(Dataset):
    r"""Base of every image data set: lazy uint8 cache, augmentation, normalisation.

    Subclasses set the class attributes and implement :meth:`__len__` and
    :meth:`load`.

    Args:
        normalize (bool): standardise images with :attr:`mean` and :attr:`std`
            instead of returning them in ``[0, 1]``. (default: :obj:`False`)
        augment (bool or JointAugment): random joint augmentation;
            :obj:`True` uses :attr:`default_augment`. (default: :obj:`False`)
        cache (bool): keep every decoded (resized) raw item in memory as
            ``uint8`` after its first access. With ``DataLoader`` workers, call
            :meth:`preload` first so the workers share the filled cache.
            (default: :obj:`True`)
        mask_dtype (torch.dtype): dtype of ``"binary"`` targets, ``torch.int64``
            or a floating dtype. (default: :obj:`torch.int64`)
        transform (callable, optional): applied to the item tuple on every
            access, after augmentation and normalisation. (default: :obj:`None`)
    """
    #: per-channel mean of the images in [0, 1] (used by ``normalize=True``)
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    #: per-channel standard deviation of the images in [0, 1]
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    #: one entry per dense target: "label" (class ids) or "binary" (0/1 mask)
    target_kinds: tuple[str, ...] = ()
    #: the augmentation used by ``augment=True``
    default_augment: JointAugment = JointAugment()

    def __init__(
        self,
        *,
        normalize: bool = False,
        augment: bool | JointAugment = False,
        cache: bool = True,
        mask_dtype: torch.dtype = torch.int64,
        transform: Callable | None = None,
    ) -> None:
        if isinstance(augment, JointAugment):
            self.augment: JointAugment | None = augment
        elif isinstance(augment, bool):
            self.augment = self.default_augment if augment else None
        else:
            raise TypeError(f"'augment' must be a bool or a JointAugment (got {augment!r})")
        if mask_dtype != torch.int64 and not mask_dtype.is_floating_point:
            raise ValueError(
                f"'mask_dtype' must be torch.int64 or a float dtype (got {mask_dtype})")
        if transform is not None and not callable(transform):
            raise TypeError(f"'transform' must be callable (got {transform!r})")
        self.normalize = bool(normalize)
        self.cache = bool(cache)
        self.mask_dtype = mask_dtype
        self.transform = transform
        self._cache: dict[int, RawItem] = {}

    # ----------------------------------------------------------------- subclass
    def __len__(self) -> int:
        raise NotImplementedError

    def load(self, index: int) -> RawItem:
        """Produce raw item ``index``: ``(uint8 [C, H, W], uint8 targets [H, W], extras)``."""
        raise NotImplementedError

    # ------------------------------------------------------------------- public
    def raw(self, index: int) -> RawItem:
        """The cached raw (``uint8``, resized, un-augmented) item ``index``."""
        index = self._check_index(index)
        item = self._cache.get(index)
        if item is None:
            item = self.load(index)
            if self.cache:
                self._cache[index] = item
        return item

    def preload(self, progress: bool = True) -> ImageDataset:
        """Decode every item into the cache now (e.g. before forking workers)."""
        if not self.cache:
            return self
        for index in tqdm(range(len(self)), desc=f"decoding {type(self).__name__}",
                          disable=not progress, leave=False):
            self.raw(index)
        return self

    def clear_cache(self) -> None:
        """Drop all cached raw items."""
        self._cache.clear()

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        image_u8, targets_u8, extras = self.raw(index)
        image = image_u8.float().div_(255.0)
        targets = targets_u8
        if self.augment is not None:
            image, targets = self.augment(image, targets)
        if self.normalize:
            mean = torch.tensor(self.channel_mean(image.shape[0])).view(-1, 1, 1)
            std = torch.tensor(self.channel_std(image.shape[0])).view(-1, 1, 1)
            image = (image - mean) / std
        out = [image]
        for kind, target in zip(self.target_kinds, targets, strict=True):
            out.append(target.long() if kind == "label" else target.to(self.mask_dtype))
        item = (*out, *extras)
        return self.transform(item) if self.transform is not None else item

    def channel_mean(self, channels: int) -> tuple[float, ...]:
        """:attr:`mean` for an image with ``channels`` channels (grey stats repeat)."""
        return _broadcast(self.mean, channels, "mean")

    def channel_std(self, channels: int) -> tuple[float, ...]:
        """:attr:`std` for an image with ``channels`` channels (grey stats repeat)."""
        return _broadcast(self.std, channels, "std")

    def _check_index(self, index) -> int:
        if isinstance(index, Tensor) and index.numel() == 1:
            index = int(index)
        if not isinstance(index, int | np.integer):
            raise TypeError(f"index must be an int (got {type(index).__name__})")
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {type(self).__name__} of {n} items")
        return int(index) % n

    def _repr_args(self) -> str:
        return ""

    def __repr__(self) -> str:
        args = self._repr_args()
        return f"{type(self).__name__}({len(self)}{', ' + args if args else ''})"


def _broadcast(stats: tuple[float, ...], channels: int, name: str) -> tuple[float, ...]:
    if len(stats) == channels:
        return tuple(stats)
    if len(stats) == 1:
        return tuple(stats) * channels
    if channels == 1:
        return (sum(stats) / len(stats),)
    raise ValueError(f"{name} has {len(stats)} entries but the image has {channels} channels")


class ImageFileDataset(ImageDataset):
    r"""Base of the data sets read from files under the data root.

    Subclasses set :attr:`name` (the folder under the data root), :attr:`splits`
    and implement :meth:`find_files`, which returns one tuple of paths per item:
    the image first, then one path per entry of :attr:`target_kinds`.

    Args:
        root (str or os.PathLike, optional): the data root that contains the
            folder :attr:`name`; :obj:`None` means
            :func:`~pyg_hgconv.datasets.root.data_root` (``$PYG_HGCONV_DATA``).
        split (str): one of :attr:`splits`.
        size (int or tuple[int, int], optional): resize every item to
            ``(height, width)`` (bilinear for the image, nearest for targets);
            :obj:`None` keeps the stored size.
        **kwargs: see :class:`ImageDataset`.
    """
    #: folder of the data set under the data root
    name: str = ""
    #: valid split names
    splits: tuple[str, ...] = ()
    #: PIL mode the images are decoded to ("RGB" or "L")
    image_mode: str = "RGB"

    def __init__(self, root: str | os.PathLike | None, split: str,
                 size: int | tuple[int, int] | None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.split = check_split(split, self.splits)
        self.size = parse_size(size)
        self.root = require_dir(dataset_dir(self.name, root), type(self).__name__)
        self.files: list[tuple[Path, ...]] = self.find_files()
        for paths in self.files:
            if len(paths) != 1 + len(self.target_kinds):
                raise RuntimeError(f"{type(self).__name__}.find_files returned {paths}")

    def find_files(self) -> list[tuple[Path, ...]]:
        """One tuple ``(image_path, *target_paths)`` per item of the split."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.files)

    def extras(self, index: int) -> tuple[Tensor, ...]:
        """Per-item scalars appended to the item (none by default)."""
        return ()

    def load(self, index: int) -> RawItem:
        image_path, *target_paths = self.files[index]
        image = read_image(image_path, self.image_mode, self.size)
        targets = tuple(read_target(path, kind, self.size)
                        for path, kind in zip(target_paths, self.target_kinds, strict=True))
        for path, target in zip(target_paths, targets, strict=True):
            if target.shape != image.shape[1:]:
                raise ValueError(f"{path} has size {tuple(target.shape)} but its image "
                                 f"{image_path} has size {tuple(image.shape[1:])}")
        return image, targets, self.extras(index)

    def split_files(self) -> list[str]:
        """The image files of this split, relative to the data set folder (POSIX paths)."""
        return [paths[0].relative_to(self.root).as_posix() for paths in self.files]

    def _repr_args(self) -> str:
        return f"split={self.split!r}, size={self.size}"


def pair_by_stem(image_dir: Path, target_dir: Path, target_stem: Callable[[str], str] = str
                 ) -> list[tuple[Path, Path]]:
    """Pair every image of ``image_dir`` with ``target_dir/target_stem(stem).<ext>``."""
    images = list_images(image_dir)
    if not images:
        raise FileNotFoundError(f"no image files in {image_dir}")
    return [(image, find_by_stem(target_dir, target_stem(image.stem))) for image in images]


class SeededPairDataset(ImageFileDataset):
    r"""Image/mask pairs without an official split: the pairs, sorted by file
    name, are split by :func:`~pyg_hgconv.datasets.splits.seeded_split` with
    the fractions :attr:`fractions` and the given ``seed``.

    Subclasses set :attr:`image_subdir` and :attr:`target_subdir` (folders
    under the data set folder) besides the attributes of
    :class:`ImageFileDataset`.

    Args:
        root, split, size: see :class:`ImageFileDataset`.
        seed (int): seed of the split. (default: :obj:`0`)
        **kwargs: see :class:`ImageDataset`.
    """
    #: folder of the images under the data set folder
    image_subdir: str = "images"
    #: folder of the masks under the data set folder
    target_subdir: str = "masks"
    #: split name -> fraction of the pairs
    fractions: ClassVar[dict[str, float]] = {}

    def __init__(self, root: str | os.PathLike | None, split: str,
                 size: int | tuple[int, int] | None, seed: int = 0, **kwargs) -> None:
        self.seed = int(seed)
        super().__init__(root, split, size, **kwargs)

    def find_files(self) -> list[tuple[Path, ...]]:
        what = type(self).__name__
        images = require_dir(self.root / self.image_subdir, f"{what} images")
        masks = require_dir(self.root / self.target_subdir, f"{what} masks")
        pairs = pair_by_stem(images, masks)
        split = seeded_split(len(pairs), split_sizes(len(pairs), self.fractions), self.seed)
        return [pairs[i] for i in split[self.split]]

    def _repr_args(self) -> str:
        return f"{super()._repr_args()}, seed={self.seed}"

