r"""The pixel grid as direction-typed edges (the twin of :func:`torch_geometric.utils.grid`).

On the pixel grid every pixel is its own group, :math:`S = I`, and the
direction-wise adjacency :math:`A^\delta` links pixel ``p`` (target) to pixel
``p + delta`` (source). With these graphs :class:`~pyg_hgconv.HGConv` is exactly
a zero-padded 3x3 convolution (paper, Eq. 2): a border pixel simply has no edge
of the directions that leave the image.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.utils.checks import check_positive_int
from pyg_hgconv.utils.directions import NUM_DIRECTIONS, OFFSETS


def pixel_neighbour_pairs(
    batch_size: int,
    height: int,
    width: int,
    direction: int,
    device: torch.device | None = None,
) -> tuple[Tensor, Tensor]:
    r"""Return all pixel pairs ``(target p, source p + delta)`` of one direction.

    Pixels are indexed batch-major, then row-major: ``p = (b * H + y) * W + x``.
    Pairs whose source would leave the image are absent (zero padding).

    Returns:
        ``(target, source)``, two ``LongTensor[M]`` with
        ``M = B * (H - |dy|) * (W - |dx|)``.
    """
    dy, dx = OFFSETS[direction]
    ys = torch.arange(max(0, -dy), height - max(0, dy), device=device)
    xs = torch.arange(max(0, -dx), width - max(0, dx), device=device)
    bs = torch.arange(batch_size, device=device)
    target = ((bs.view(-1, 1, 1) * height + ys.view(1, -1, 1)) * width + xs.view(1, 1, -1))
    target = target.reshape(-1)
    return target, target + (dy * width + dx)


def grid(height: int, width: int, batch_size: int = 1,
         device: torch.device | str | None = None) -> tuple[Tensor, Tensor, Tensor]:
    r"""The typed edges and pixel positions of ``batch_size`` pixel grids.

    Like :func:`torch_geometric.utils.grid`, but every edge carries its
    direction type and there are no edges of zero length except the self
    loops (type 4).

    Args:
        height (int): image height :math:`H \geq 1`.
        width (int): image width :math:`W \geq 1`.
        batch_size (int): number of images :math:`B \geq 1`.
        device: device of the returned tensors.

    Returns:
        ``(edge_index [2, E], edge_type [E], pos [B H W, 2])``: ``edge_index``
        (source, target) over nodes ``p = (b * H + y) * W + x``, sorted by
        target, then type; ``pos`` the pixel centres as ``(x, y)``, ``float32``;
        :math:`E = \sum_\delta B (H - |d_y|)(W - |d_x|)`.
    """
    check_positive_int(height, "height")
    check_positive_int(width, "width")
    check_positive_int(batch_size, "batch_size")
    device = torch.device(device) if device is not None else None
    targets, sources, types = [], [], []
    for t in range(NUM_DIRECTIONS):
        target, source = pixel_neighbour_pairs(batch_size, height, width, t, device)
        targets.append(target)
        sources.append(source)
        types.append(torch.full_like(target, t))
    target, source, edge_type = torch.cat(targets), torch.cat(sources), torch.cat(types)
    order = torch.argsort(target * NUM_DIRECTIONS + edge_type)
    edge_index = torch.stack([source[order], target[order]])
    local = torch.arange(height * width, device=device)
    pos = torch.stack([local % width, local // width], dim=1).float().repeat(batch_size, 1)
    return edge_index, edge_type[order], pos
