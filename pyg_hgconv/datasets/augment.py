"""Joint random augmentation of an image and its dense targets.

The same geometric transform is applied to the image (bilinear) and to every
dense target (label map or binary mask: nearest neighbour, so no class is ever
invented). All random draws come from torch's global generator, so a training
loop that calls ``torch.manual_seed`` (and a ``DataLoader``, which seeds its
workers from it) gets the same augmented epochs every run.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class JointAugment:
    r"""Random horizontal flip and random zoom-in crop, applied jointly.

    For an image of size :math:`H \times W`: with probability ``hflip`` the
    image and targets are mirrored left-right; then a side fraction
    :math:`s \sim \mathcal{U}(\text{scale})` is drawn, a crop of
    :math:`\lfloor sH \rceil \times \lfloor sW \rceil` pixels is taken at a uniformly random
    position and resized back to :math:`H \times W` (bilinear for the image,
    nearest for the targets). Output shapes equal input shapes, so batches
    still stack.

    Args:
        hflip (float): probability of a horizontal flip. (default: :obj:`0.5`)
        scale (tuple[float, float]): range of the crop side as a fraction of
            the image side, in ``(0, 1]``; ``(1.0, 1.0)`` disables cropping.
            (default: :obj:`(0.5, 1.0)`)
    """
    hflip: float = 0.5
    scale: tuple[float, float] = (0.5, 1.0)

    def __post_init__(self) -> None:
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"'hflip' must be a probability in [0, 1] (got {self.hflip})")
        lo, hi = self.scale
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"'scale' must satisfy 0 < lo <= hi <= 1 (got {self.scale})")

    def __call__(self, image: Tensor, targets: tuple[Tensor, ...]) -> tuple[Tensor, tuple]:
        r"""Augment ``image`` (float ``[C, H, W]``) and ``targets`` (each ``[H, W]``)."""
        draws = torch.rand(4)  # flip, scale, top, left: always four draws per call
        if draws[0] < self.hflip:
            image = image.flip(-1)
            targets = tuple(t.flip(-1) for t in targets)
        lo, hi = self.scale
        if lo == 1.0:
            return image, targets
        height, width = image.shape[-2:]
        side = lo + (hi - lo) * float(draws[1])
        crop_h = min(height, max(1, round(side * height)))
        crop_w = min(width, max(1, round(side * width)))
        top = int(draws[2] * (height - crop_h + 1))
        left = int(draws[3] * (width - crop_w + 1))
        top, left = min(top, height - crop_h), min(left, width - crop_w)
        rows, cols = slice(top, top + crop_h), slice(left, left + crop_w)
        image = F.interpolate(image[None, :, rows, cols], size=(height, width), mode="bilinear",
                              align_corners=False)[0]
        if targets:
            stack = torch.stack([t[rows, cols] for t in targets]).float()[None]
            stack = F.interpolate(stack, size=(height, width), mode="nearest-exact")[0]
            targets = tuple(s.to(t.dtype) for s, t in zip(stack, targets, strict=True))
        return image, targets
