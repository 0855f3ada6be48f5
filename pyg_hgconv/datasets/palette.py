"""Colour-coding of label maps for figures."""
from __future__ import annotations

import torch
from torch import Tensor


def colorize(label: Tensor, palette: Tensor, ignore_index: int | None = None,
             ignore_color: tuple[int, int, int] = (0, 0, 0)) -> Tensor:
    r"""Map a label map to RGB colours.

    Args:
        label (Tensor): integer class ids ``[..., H, W]``.
        palette (Tensor): ``uint8 [num_classes, 3]`` colour of each class.
        ignore_index (int, optional): id drawn in ``ignore_color``.
        ignore_color (tuple[int, int, int]): colour of ignored and of
            out-of-range ids. (default: black)

    Returns:
        Tensor: ``uint8 [..., H, W, 3]``.
    """
    if label.is_floating_point():
        raise TypeError(f"'label' must be an integer tensor (got {label.dtype})")
    palette = torch.as_tensor(palette, dtype=torch.uint8)
    table = torch.cat([palette, torch.tensor([ignore_color], dtype=torch.uint8)])
    label = label.long()
    valid = (label >= 0) & (label < palette.shape[0])
    if ignore_index is not None:
        valid &= label != ignore_index
    return table[torch.where(valid, label, palette.shape[0])]
