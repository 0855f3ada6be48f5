r"""The pixel grid as a batch of group graphs (one group per pixel).

On the pixel grid every pixel is its own group, :math:`S = I`, and the
direction-wise adjacency :math:`A^\delta` links pixel ``p`` (target) to pixel
``p + delta`` (source). With these graphs :class:`~pyg_hgconv.HGConv` is exactly
a zero-padded 3x3 convolution (paper, Eq. 2): a border pixel simply has no edge
of the directions that leave the image.
"""
from __future__ import annotations

import torch

from pyg_hgconv.data.group_graph import make_group_graph
from pyg_hgconv.utils.grid import grid


def grid_graph(
    height: int,
    width: int,
    batch_size: int = 1,
    device: torch.device | str | None = None,
    *,
    as_batch: bool = True,
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
        as_batch (bool): a PyG :class:`~torch_geometric.data.Batch` of the
            images (default), or their disjoint union as one graph.

    Returns:
        :class:`~pyg_hgconv.GroupGraph` batch with :math:`B H W` nodes and
        :math:`\sum_\delta B (H - |d_y|)(W - |d_x|)` edges, edges sorted by
        target, then direction type (:func:`pyg_hgconv.utils.grid.grid`).
    """
    edge_index, edge_type, pos = grid(height, width, batch_size, device)
    device = pos.device
    num_pixels = height * width
    n = batch_size * num_pixels
    local = torch.arange(num_pixels, device=device)
    graph = make_group_graph(
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
    return graph.to_batch() if as_batch else graph
