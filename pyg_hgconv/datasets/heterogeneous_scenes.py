"""Procedurally generated "heterogeneous scenes": large flat regions + many small objects."""
from __future__ import annotations

import colorsys
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .augment import JointAugment
from .base import ImageDataset, RawItem, parse_size
from .palette import colorize

#: classes 0-2: the large regions ("stuff")
STUFF_CLASSES = ("sky", "ground", "building")
#: shapes of the small-object classes, cycled through class by class
THING_SHAPES = ("disc", "box", "pole")

_SKY_TOP = (0.42, 0.62, 0.90)
_SKY_HORIZON = (0.78, 0.86, 0.95)
_GROUND = (0.42, 0.40, 0.36)
_BUILDINGS = ((0.62, 0.48, 0.42), (0.55, 0.55, 0.58), (0.70, 0.64, 0.52))

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def item_seed(seed: int, index: int) -> int:
    """The generator seed of item ``index``: a splitmix64 hash of ``(seed, index)``.

    Hashing (rather than ``seed + index``) keeps data sets with nearby seeds
    disjoint: item 0 of ``seed=1`` is not item 1 of ``seed=0``.
    """
    return _splitmix64(_splitmix64(int(seed) & _MASK64) ^ int(index)) & ((1 << 63) - 1)


def thing_colours(num_things: int) -> Tensor:
    r"""RGB colours in ``[0, 1]`` of the small-object classes, ``[num_things, 3]``.

    Thing class ``j`` has shape ``THING_SHAPES[j % 3]`` and colour index
    ``j // 2``: consecutive classes share a colour and differ in shape, so that
    telling them apart needs shape, not colour alone. Colour index ``c`` of
    ``n = ceil(num_things / 2)`` is the saturated HSV colour of hue ``c / n``
    (value 0.95 for even, 0.7 for odd ``c``).
    """
    n = max(1, math.ceil(num_things / 2))
    table = [colorsys.hsv_to_rgb(c / n, 0.85, 0.95 if c % 2 == 0 else 0.7) for c in range(n)]
    return torch.tensor([table[j // 2] for j in range(num_things)], dtype=torch.float32)


def _smooth_noise(size: tuple[int, int], cells: int, generator: torch.Generator) -> Tensor:
    """Low-frequency noise in [-1, 1], ``[H, W]``: a random coarse grid upsampled."""
    coarse = torch.rand(1, 1, cells + 1, cells + 1, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=size, mode="bicubic", align_corners=True)[0, 0].clamp(-1, 1)


def _top_object(masks: Tensor) -> tuple[Tensor, Tensor]:
    """Which of the ordered masks ``[K, H, W]`` is on top (later ones cover earlier ones).

    Returns ``hit`` (``bool [H, W]``, any mask covers the pixel) and ``idx``
    (``int64 [H, W]``, index of the top mask; 0 where ``hit`` is false).
    """
    if masks.shape[0] == 0:
        empty = torch.zeros(masks.shape[1:], dtype=torch.long)
        return empty.bool(), empty
    order = torch.arange(masks.shape[0], dtype=torch.int32).view(-1, 1, 1)
    top = torch.where(masks, order, -1).amax(0)  # the last mask covering a pixel wins
    return top >= 0, top.clamp_min(0).long()


def generate_scene(size: tuple[int, int], num_classes: int, num_objects: tuple[int, int],
                   noise: float, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    r"""Draw one heterogeneous scene (see :class:`HeterogeneousScenes`).

    Returns:
        (Tensor, Tensor): image float32 ``[3, H, W]`` in ``[0, 1]`` and label
        int64 ``[H, W]`` in ``0 .. num_classes - 1``.
    """
    height, width = size
    scale = min(height, width)
    g = generator

    def uniform(lo, hi, n=()):
        shape = n if isinstance(n, tuple) else (n,)
        return lo + (hi - lo) * torch.rand(shape, generator=g)

    yy = torch.arange(height, dtype=torch.float32).view(-1, 1).expand(height, width)
    xx = torch.arange(width, dtype=torch.float32).view(1, -1).expand(height, width)

    # 1. sky over ground, split by a slightly tilted horizon
    horizon_mid = float(uniform(0.35, 0.6)) * height
    slope = float(uniform(-0.15, 0.15)) * height / width
    horizon = horizon_mid + slope * (xx - width / 2)
    below = yy >= horizon
    label = torch.where(below, 1, 0)
    t_sky = (yy / horizon.clamp_min(1)).clamp(0, 1)
    sky = torch.tensor(_SKY_TOP).view(3, 1, 1) * (1 - t_sky) \
        + torch.tensor(_SKY_HORIZON).view(3, 1, 1) * t_sky
    sky = sky + 0.02 * _smooth_noise(size, 3, g)
    t_ground = ((yy - horizon) / (height - horizon).clamp_min(1)).clamp(0, 1)
    ground = torch.tensor(_GROUND).view(3, 1, 1) * (0.8 + 0.35 * t_ground) \
        + 0.06 * _smooth_noise(size, 8, g)
    image = torch.where(below[None], ground, sky)

    # 2. buildings: large rectangles on the horizon, half of them with a gabled roof
    num_buildings = int(torch.randint(1, 4, (), generator=g))
    bw = uniform(0.12, 0.3, num_buildings) * width
    x0 = uniform(-0.05, 0.95, num_buildings) * width
    top = uniform(0.08, 0.3, num_buildings) * height
    bottom = horizon_mid + uniform(0.0, 0.06, num_buildings) * height
    roof = uniform(0.0, 0.12, num_buildings) * height * (torch.rand(num_buildings, generator=g)
                                                         < 0.5)
    x0, x1, top, bottom, roof = (v.view(-1, 1, 1) for v in (x0, x0 + bw, top, bottom, roof))
    inside_x = (xx >= x0) & (xx < x1)
    body = inside_x & (yy >= top) & (yy < bottom)
    half = (x1 - x0) / 2
    gable = inside_x & (yy < top) & (yy >= top - roof * (1 - (xx - x0 - half).abs() / half))
    building_masks = body | gable
    hit, idx = _top_object(building_masks)
    base = torch.tensor(_BUILDINGS)[torch.randint(0, len(_BUILDINGS), (num_buildings,),
                                                  generator=g)]
    x0, x1 = x0.flatten()[idx], x1.flatten()[idx]
    lit = 0.9 + 0.2 * ((xx - x0) / (x1 - x0)).clamp(0, 1)  # light from the right
    facade = base[idx].permute(2, 0, 1) * lit + 0.03 * _smooth_noise(size, 6, g)
    label = torch.where(hit, 2, label)
    image = torch.where(hit, facade, image)

    # 3. many small objects: discs, boxes and thin poles in saturated class colours
    num_things = num_classes - len(STUFF_CLASSES)
    lo, hi = num_objects
    n = int(torch.randint(lo, hi + 1, (), generator=g))
    cls = torch.randint(0, num_things, (n,), generator=g)
    shape = cls % len(THING_SHAPES)
    cx, cy = uniform(0, width, n), uniform(0, height, n)
    radius = (uniform(0.02, 0.05, n) * scale).clamp_min(1.5)
    aspect = uniform(0.6, 1.4, n)
    # poles stand on the ground: foot below the horizon, thin, tall
    foot = horizon_mid + uniform(0.05, 0.9, n) * (height - horizon_mid)
    pole_h = uniform(0.12, 0.3, n) * height
    pole_w = uniform(0.5, 1.0, n) * max(1.0, scale / 96)
    # boxes and poles are axis-aligned rectangles: half-width in x, [y0, y1] in y
    is_pole = shape == 2
    half_x = torch.where(is_pole, pole_w, radius * aspect)
    y0 = torch.where(is_pole, foot - pole_h, cy - radius / aspect)
    y1 = torch.where(is_pole, foot, cy + radius / aspect)
    # separable distances: [n, 1, W] and [n, H, 1], broadcast to [n, H, W] once
    xs, ys = xx[:1].view(1, 1, width), yy[:, :1].view(1, height, 1)
    dx, dy = xs - cx.view(-1, 1, 1), ys - cy.view(-1, 1, 1)
    is_disc = (shape == 0).view(-1, 1, 1)
    thing_masks = torch.where(
        is_disc,
        dx.square() <= radius.square().view(-1, 1, 1) - dy.square(),  # bool, no float [n,H,W]
        (dx.abs() <= half_x.view(-1, 1, 1)) & (ys >= y0.view(-1, 1, 1)) & (ys <= y1.view(-1, 1, 1)))
    hit, idx = _top_object(thing_masks)
    colours = (thing_colours(num_things)[cls] + uniform(-0.04, 0.04, (n, 3))).clamp(0, 1)
    if n > 0:
        # discs get a rounded look: brighter centre, darker rim
        d2 = (xx - cx[idx]).square() + (yy - cy[idx]).square()
        shade = torch.where(shape[idx] == 0, 1.08 - 0.2 * d2 / radius[idx].square(), 1.0)
        label = torch.where(hit, cls[idx] + len(STUFF_CLASSES), label)
        image = torch.where(hit, colours[idx].permute(2, 0, 1) * shade, image)

    # 4. global illumination and mild sensor noise
    image = image * float(uniform(0.85, 1.1)) + noise * torch.randn(image.shape, generator=g)
    return image.clamp(0, 1), label


def boundary_mask(label: Tensor) -> Tensor:
    """``bool [H, W]``: pixels whose right or lower neighbour has another label."""
    edge = torch.zeros_like(label, dtype=torch.bool)
    edge[:, :-1] |= label[:, :-1] != label[:, 1:]
    edge[:-1, :] |= label[:-1, :] != label[1:, :]
    return edge


class HeterogeneousScenes(ImageDataset):
    r"""A procedurally generated segmentation data set of "heterogeneous scenes".

    The built-in default of the segmentation benchmark when no real data are
    present: every image mixes a few **large, flat regions** with **many small
    objects**, the situation HG-Conv's data-adaptive grouping is designed for.

    * **stuff** (classes 0-2): *sky* (top, vertical colour gradient) over
      *ground* (bottom, textured) split by a slightly tilted horizon, and 1-3
      *buildings*: large rectangles standing on the horizon, half with a gabled
      (triangular) roof, in dull colours with a horizontal lighting gradient;
    * **things** (classes 3 .. ``num_classes - 1``): ``num_objects`` small
      objects at random positions, thing class ``j`` has shape
      ``("disc", "box", "pole")[j % 3]`` (radius 2-5 % of the short side; poles
      are 1-2 px wide, stand on the ground) and colour index ``j // 2``
      (see :func:`thing_colours`): consecutive classes share a colour and differ
      in shape, so class identity is predictable from colour, shape and context
      (sky vs. ground vs. building share no colours with things), not from
      colour alone;
    * a global brightness factor (0.85-1.1), per-object colour jitter and
      Gaussian noise of standard deviation ``noise`` make it non-trivial.

    Item ``i`` is drawn from a ``torch.Generator`` seeded with
    :func:`item_seed` ``(seed, i)``, so any item or subset is reproducible on
    its own and data sets of different seeds do not share items. Generation is
    vectorised over pixels and objects (no per-pixel Python loop). Items are
    quantised to ``uint8`` like a real photo and cached (``cache=True``).

    Each item is ``(image, label)`` exactly like :class:`CamVid`: ``image``
    float32 ``[3, H, W]`` in ``[0, 1]`` (or standardised), ``label`` int64
    ``[H, W]``.

    Args:
        num_images (int): number of images. (default: :obj:`64`)
        size (int or tuple[int, int]): ``(height, width)``, at least 16x16.
            (default: :obj:`(96, 128)`)
        num_classes (int): 3 stuff classes + ``num_classes - 3`` thing classes,
            between 4 and 64; the default 11 matches CamVid. (default: :obj:`11`)
        seed (int): base seed. (default: :obj:`0`)
        num_objects (int or tuple[int, int]): number of small objects per image,
            a fixed count or an inclusive range. (default: :obj:`(16, 40)`)
        noise (float): standard deviation of the pixel noise. (default: :obj:`0.03`)
        ignore_index (int, optional): when set (in ``num_classes .. 255``), the
            1-pixel boundary between two classes (the pixel above / left of a
            label change) is labelled ``ignore_index``, like the unlabelled
            outlines of hand-made annotations. (default: :obj:`None`)
        normalize (bool): standardise with :attr:`mean`/:attr:`std`.
            (default: :obj:`False`)
        augment (bool or JointAugment): random flip + zoom-in crop.
            (default: :obj:`False`)
        cache (bool): keep generated items in memory. (default: :obj:`True`)
        transform (callable, optional): applied to every item tuple.
    """
    target_kinds = ("label",)
    default_augment = JointAugment(hflip=0.5, scale=(0.5, 1.0))
    #: per-channel mean / std in [0, 1], measured on 256 images of the defaults
    mean = (0.4878, 0.5203, 0.5680)
    std = (0.1472, 0.1961, 0.2778)

    def __init__(
        self,
        num_images: int = 64,
        size: int | tuple[int, int] = (96, 128),
        num_classes: int = 11,
        seed: int = 0,
        num_objects: int | tuple[int, int] = (16, 40),
        noise: float = 0.03,
        ignore_index: int | None = None,
        *,
        normalize: bool = False,
        augment: bool | JointAugment = False,
        cache: bool = True,
        transform=None,
    ) -> None:
        super().__init__(normalize=normalize, augment=augment, cache=cache, transform=transform)
        if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < 0:
            raise ValueError(f"'num_images' must be an int >= 0 (got {num_images!r})")
        parsed = parse_size(size)
        if parsed is None or min(parsed) < 16:
            raise ValueError(f"'size' must be at least (16, 16) (got {size!r})")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) \
                or not 4 <= num_classes <= 64:
            raise ValueError(f"'num_classes' must be an int in [4, 64] (got {num_classes!r})")
        if isinstance(num_objects, int):
            num_objects = (num_objects, num_objects)
        lo, hi = num_objects
        if not 0 <= lo <= hi:
            raise ValueError(f"'num_objects' must be a count or a range 0 <= lo <= hi "
                             f"(got {num_objects!r})")
        if noise < 0:
            raise ValueError(f"'noise' must be >= 0 (got {noise})")
        if ignore_index is not None and not num_classes <= ignore_index <= 255:
            raise ValueError(f"'ignore_index' must be in [{num_classes}, 255] or None "
                             f"(got {ignore_index})")
        self.num_images = num_images
        self.size = parsed
        self.num_classes = num_classes
        self.seed = int(seed)
        self.num_objects = (int(lo), int(hi))
        self.noise = float(noise)
        self.ignore_index = ignore_index

    @property
    def class_names(self) -> tuple[str, ...]:
        """``sky, ground, building`` then ``<shape><colour index>`` per thing class."""
        things = tuple(f"{THING_SHAPES[j % 3]}{j // 2}"
                       for j in range(self.num_classes - len(STUFF_CLASSES)))
        return STUFF_CLASSES + things

    @property
    def palette(self) -> Tensor:
        """``uint8 [num_classes, 3]``: a distinct display colour per class.

        The stuff colours and :func:`thing_colours`; the second class of every
        colour pair (odd thing index) is darkened by 40 % so that the two classes
        of a pair, which share an image colour, differ in figures.
        """
        stuff = torch.tensor([_SKY_HORIZON, _GROUND, _BUILDINGS[0]])
        num_things = self.num_classes - len(STUFF_CLASSES)
        dim = torch.tensor([1.0, 0.6]).repeat(num_things)[:num_things, None]
        colours = torch.cat([stuff, thing_colours(num_things) * dim])
        return (colours * 255).round().to(torch.uint8)

    def colorize(self, label: Tensor) -> Tensor:
        """RGB ``uint8 [..., H, W, 3]`` rendering of a label map."""
        return colorize(label, self.palette, ignore_index=self.ignore_index)

    def __len__(self) -> int:
        return self.num_images

    def load(self, index: int) -> RawItem:
        generator = torch.Generator().manual_seed(item_seed(self.seed, index))
        image, label = generate_scene(self.size, self.num_classes, self.num_objects,
                                      self.noise, generator)
        if self.ignore_index is not None:
            label = torch.where(boundary_mask(label), self.ignore_index, label)
        image_u8 = image.mul(255).round_().to(torch.uint8)
        return image_u8, (label.to(torch.uint8),), ()

    def _repr_args(self) -> str:
        return (f"size={self.size}, num_classes={self.num_classes}, seed={self.seed}, "
                f"num_objects={self.num_objects}")
