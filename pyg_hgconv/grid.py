r"""The pixel grid as a direction-typed graph.

On the pixel grid every pixel is its own group, :math:`S = I`, and the
direction-wise adjacency :math:`A^\delta` links pixel ``p`` (target) to pixel
``p + delta`` (source). With these graphs :class:`~pyg_hgconv.HGConv` is exactly
a zero-padded 3x3 convolution (paper, Eq. 2): a border pixel simply has no edge
of the directions that leave the image.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv._checks import check_positive_int
from pyg_hgconv.directions import NUM_DIRECTIONS, OFFSETS


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


def grid_graph(
    height: int,
    width: int,
    batch_size: int = 1,
    device: torch.device | str | None = None,
):
    r"""Return the pixel grid as a batch of group graphs (one group per pixel).

    The result has the same form as the output of
    :class:`~pyg_hgconv.ImageToGroupGraph`: ``edge_index`` (source, target),
    ``edge_type`` (0..8, row-major, 4 = self loop), ``edge_weight`` (all ones),
    ``pos`` (pixel centres as ``(x, y)``), ``batch`` and the identity assignment
    (``assign_index``, ``assign_weight``), so that :func:`~pyg_hgconv.unpool`
    works on it. ``x`` is left unset.

    Node order is batch-major, then row-major pixels ``(b, y, x)``: the node
    features of a map ``f`` of shape ``[B, C, H, W]`` are
    ``f.permute(0, 2, 3, 1).reshape(-1, C)``.

    Args:
        height (int): image height :math:`H \geq 1`.
        width (int): image width :math:`W \geq 1`.
        batch_size (int): number of images :math:`B \geq 1`.
        device: device of the returned tensors.

    Returns:
        :class:`~pyg_hgconv.GroupGraph` batch with :math:`B H W` nodes and
        :math:`\sum_\delta B (H - |d_y|)(W - |d_x|)` edges, edges sorted by
        target, then direction type.
    """
    from pyg_hgconv.group_graph import make_group_batch

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
    edge_type = edge_type[order]

    num_pixels = height * width
    n = batch_size * num_pixels
    local = torch.arange(num_pixels, device=device)
    pos = torch.stack([local % width, local // width], dim=1).float().repeat(batch_size, 1)
    return make_group_batch(
        x=None,
        pos=pos,
        edge_index=edge_index,
        edge_type=edge_type,
        edge_weight=torch.ones(edge_type.numel(), device=device),
        assign_index=torch.arange(n, device=device).repeat(2, 1),
        assign_weight=torch.ones(n, device=device),
        mass=torch.ones(n, device=device),
        center_pixel=local.repeat(batch_size),
        groups_per_image=torch.full((batch_size,), num_pixels, device=device),
        image_size=(height, width),
    )
