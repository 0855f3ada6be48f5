r"""Pooling to groups and unpooling to pixels with a sparse assignment.

The assignment :math:`S` (``N_pix x N_grp``) is stored in coordinate format,
like a bipartite ``edge_index`` from pixels to groups:
``assign_index = [pixel; group]`` (``[2, nnz]``, sorted by pixel) and
``assign_weight`` (``[nnz]``, the non-zero :math:`S_{pg}`). Every pixel has at
least one entry and at most the number of SLIC candidates; pooling and
unpooling are sparse matrix products (:func:`~pyg_hgconv.utils.sparse.sparse_matmul`)
that cost ``O(nnz C)``, never ``O(N_pix N_grp)``. A graph built by
:class:`~pyg_hgconv.ImageToGroupGraph` also keeps :math:`S` in tiled form
(:mod:`pyg_hgconv.nn.pool.tiling`), which :func:`unpool` uses.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.tiling import mass_eps, tiled_assignment_of
from pyg_hgconv.utils.checks import check_float_tensor
from pyg_hgconv.utils.sparse import sparse_matmul


def check_assignment(x: Tensor, assign_index: Tensor, assign_weight: Tensor,
                     num_pixels: int, num_groups: int, name: str) -> None:
    """Raise a clear error unless ``(x, assign_index, assign_weight)`` fit together."""
    check_float_tensor(x, name, ndim=2, shape_hint="[N, C]")
    if not isinstance(assign_index, Tensor) or assign_index.dtype != torch.long:
        raise TypeError("'assign_index' must be a LongTensor [2, nnz]")
    if assign_index.dim() != 2 or assign_index.size(0) != 2:
        raise ValueError(f"'assign_index' must have shape [2, nnz] (got "
                         f"{tuple(assign_index.shape)})")
    if assign_weight.shape != (assign_index.size(1),):
        raise ValueError(f"'assign_weight' must have shape [nnz] = [{assign_index.size(1)}] "
                         f"(got {tuple(assign_weight.shape)})")
    if assign_index.numel():
        pixel_max, group_max = (int(v) for v in assign_index.amax(1))
        if pixel_max >= num_pixels or group_max >= num_groups or int(assign_index.min()) < 0:
            raise ValueError(f"'assign_index' must hold pixels in [0, {num_pixels}) and groups "
                             f"in [0, {num_groups}) (got maxima {pixel_max}, {group_max})")


def group_mass(assign_index: Tensor, assign_weight: Tensor, num_groups: int) -> Tensor:
    r"""Column sums :math:`\bar{Z}_{jj} = \sum_i S_{ij}` (soft pixel counts), ``[N_grp]``."""
    return assign_weight.new_zeros(num_groups).index_add(0, assign_index[1], assign_weight)


def pixel_mass(assign_index: Tensor, assign_weight: Tensor, num_pixels: int) -> Tensor:
    r"""Row sums :math:`\tilde{Z}_{ii} = \sum_j S_{ij}`, ``[N_pix]``."""
    return assign_weight.new_zeros(num_pixels).index_add(0, assign_index[0], assign_weight)


def pool(x: Tensor, assign_index: Tensor, assign_weight: Tensor, num_groups: int) -> Tensor:
    r"""Average pixel features inside each group (Eq. 5).

    .. math::
        \hat{X} = \bar{S}^\top X, \qquad \bar{S} = S \bar{Z}^{-1},\
        \bar{Z}_{jj} = \sum_i S_{ij}.

    Args:
        x (Tensor): pixel features ``[N_pix, C]``.
        assign_index (LongTensor): ``[2, nnz]`` (pixel, group).
        assign_weight (Tensor): ``[nnz]``.
        num_groups (int): :math:`N_{grp}`.

    Returns:
        Tensor ``[N_grp, C]``; a group without pixels gets zeros.
    """
    check_assignment(x, assign_index, assign_weight, x.size(0), num_groups, "x")
    pixel, group = assign_index
    # S_bar = S Z^-1 on the non-zeros, then one sparse product
    mass = group_mass(assign_index, assign_weight, num_groups)
    return sparse_matmul(group, pixel, assign_weight / mass.clamp_min(mass_eps(mass))[group], x,
                         num_groups)


def unpool_features(x: Tensor, assign_index: Tensor, assign_weight: Tensor,
                    num_pixels: int) -> Tensor:
    r"""Copy group features back to the pixels (Eq. 6), ``[N_pix, C]``.

    .. math::
        X = \tilde{S} X', \qquad \tilde{S} = \tilde{Z}^{-1} S,\
        \tilde{Z}_{ii} = \sum_j S_{ij}.
    """
    check_assignment(x, assign_index, assign_weight, num_pixels, x.size(0), "x")
    pixel, group = assign_index
    # S_tilde = Z^-1 S on the non-zeros, then one sparse product
    rows = pixel_mass(assign_index, assign_weight, num_pixels)
    return sparse_matmul(pixel, group, assign_weight / rows.clamp_min(mass_eps(rows))[pixel], x,
                         num_pixels)


def _check_group_graph(graph) -> None:
    for key in ("assign_index", "assign_weight", "image_size"):
        if getattr(graph, key, None) is None:
            raise TypeError(f"'graph' has no '{key}': pass a group graph from "
                            "ImageToGroupGraph or grid_graph")


def image_grid(graph) -> tuple[int, int, int]:
    """``(B, H, W)`` of the images behind a group graph (a union, a PyG batch
    or one image's graph)."""
    _check_group_graph(graph)
    sizes = graph.image_size
    if sizes.size(0) > 1 and bool((sizes != sizes[:1]).any()):
        raise ValueError("'graph' holds images of different sizes; unpool them one by one")
    height, width = (int(v) for v in sizes[0])
    return graph.num_images, height, width


def unpool(x_groups: Tensor, graph) -> Tensor:
    r"""Unpool group features to the feature map of the graph's images (Eq. 6).

    Uses the tiled form of the assignment when the graph has one (one small
    product per tile, no host synchronisation), else its coordinate form.

    Args:
        x_groups (Tensor): ``[N_grp, C]`` features of the nodes of ``graph``.
        graph: group graphs from :class:`~pyg_hgconv.ImageToGroupGraph` or
            :func:`~pyg_hgconv.grid_graph` (a union or a PyG batch of images of
            one size).

    Returns:
        Tensor ``[B, C, H, W]``.
    """
    check_float_tensor(x_groups, "x_groups", ndim=2, shape_hint="[N_grp, C]")
    _check_group_graph(graph)
    if x_groups.size(0) != graph.num_nodes:
        raise ValueError(f"'x_groups' has {x_groups.size(0)} rows but 'graph' has "
                         f"{graph.num_nodes} nodes")
    tiled = tiled_assignment_of(graph)
    if tiled is not None:  # the same S in tiled form: one small product per tile
        return tiled.unpool(x_groups)
    batch_size, height, width = image_grid(graph)
    out = unpool_features(x_groups, graph.assign_index, graph.assign_weight.to(x_groups.dtype),
                          batch_size * height * width)
    return out.view(batch_size, height, width, x_groups.size(1)).permute(0, 3, 1, 2)
