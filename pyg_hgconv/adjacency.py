r"""Direction-wise group adjacency (paper, Eqs. 4 and 7, supplementary B).

Edges are stored as in PyG, ``edge_index = [source, target]``, plus an
``edge_type`` (direction, 0..8) and an ``edge_weight``. Edge ``h -> g`` of
type :math:`\delta` with weight :math:`w` is the entry
:math:`\hat{A}^\delta_{gh} = w`.

The pipeline (:func:`build_group_adjacency`):

1. :func:`group_adjacency`: :math:`\hat{A}^\delta = S^\top A^\delta S` (Eq. 4),
   built sparsely from pixel pairs. Only four directions are computed, the
   other four are their transposes, :math:`\hat{A}^{-\delta} = (\hat{A}^\delta)^\top`.
2. :func:`cancel_noise`: :math:`\hat{A}^\delta \leftarrow \max(0, \hat{A}^\delta -
   \hat{A}^{\bar\delta})` (Eq. 7).
3. :func:`keep_strongest_direction`: per ordered pair of groups keep only the
   direction with the largest weight (Sec. 4.3, "max direction", Table 7).
4. :func:`finalize_adjacency`: drop weights below :math:`10^{-7}`, zero the
   diagonal of every non-centre direction and set the centre direction to the
   identity (supplementary B).
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.directions import HALF_DIRECTIONS, NUM_DIRECTIONS, OFFSETS, SELF_LOOP

#: supplementary B: adjacency weights below this are dropped
EDGE_THRESHOLD = 1e-7

TypedEdges = tuple[Tensor, Tensor, Tensor]


def _typed_key(target: Tensor, source: Tensor, edge_type: Tensor, num_nodes: int) -> Tensor:
    return (target * num_nodes + source) * NUM_DIRECTIONS + edge_type


def neighbour_entry_pairs(
    pixel: Tensor,
    counts: Tensor,
    height: int,
    width: int,
    direction: int,
) -> tuple[Tensor, Tensor]:
    r"""Enumerate all pairs of assignment entries ``(e, f)`` whose pixels are
    neighbours along ``direction``: ``pixel[f] = pixel[e] + delta``.

    Entries must be sorted by pixel; ``counts[p]`` is the number of entries of
    pixel ``p``. The pairs are generated exactly (no padding):
    :math:`\sum_p n_p n_{p+\delta}` of them, vectorised with ``repeat_interleave``.

    Returns:
        ``(e, f)``, two ``LongTensor`` of entry indices.
    """
    dy, dx = OFFSETS[direction]
    starts = counts.cumsum(0) - counts
    local = pixel % (height * width)
    y, x = local // width, local % width
    valid = (y + dy >= 0) & (y + dy < height) & (x + dx >= 0) & (x + dx < width)
    e = valid.nonzero().view(-1)
    neighbour = pixel[e] + (dy * width + dx)
    repeats = counts[neighbour]
    e_rep = torch.repeat_interleave(e, repeats)
    first = torch.repeat_interleave(starts[neighbour] - (repeats.cumsum(0) - repeats), repeats)
    return e_rep, first + torch.arange(e_rep.numel(), device=pixel.device)


#: key spaces up to this size are coalesced with a dense accumulator (no sort)
DENSE_COALESCE_LIMIT = 1 << 22


def coalesce_pairs(target: Tensor, source: Tensor, weight: Tensor, num_nodes: int
                   ) -> tuple[Tensor, Tensor]:
    """Sum the weights of duplicate ``(target, source)`` pairs.

    Returns ``(edge_index [2, E] as (source, target), weight [E])``, sorted by
    target then source. Small key spaces (``num_nodes**2`` up to
    :data:`DENSE_COALESCE_LIMIT`) are accumulated densely, larger ones sorted
    with :func:`torch.unique`; both are differentiable in ``weight``.
    """
    key = target * num_nodes + source
    space = num_nodes * num_nodes
    if space <= DENSE_COALESCE_LIMIT:
        present = torch.bincount(key, minlength=space).nonzero().view(-1)
        summed = weight.new_zeros(space).index_add(0, key, weight)[present]
        unique = present
    else:
        unique, inverse = torch.unique(key, sorted=True, return_inverse=True)
        summed = weight.new_zeros(unique.numel()).index_add(0, inverse, weight)
    return torch.stack([unique % num_nodes, unique // num_nodes]), summed


def group_adjacency(
    assign_index: Tensor,
    assign_weight: Tensor,
    batch_size: int,
    height: int,
    width: int,
    num_groups: int,
) -> TypedEdges:
    r"""Return the eight non-centre :math:`\hat{A}^\delta = S^\top A^\delta S` (Eq. 4).

    .. math::
        \hat{A}^\delta_{gh} = \sum_p S_{p g} S_{p + \delta, h},

    summed over every pixel pair ``(p, p + delta)`` and every pair of their
    non-zero assignment entries, then coalesced on ``(target g, source h,
    delta)``. Diagonal entries (a group next to itself) are kept; the centre
    direction is left out (supplementary B replaces it by the identity).

    Args:
        assign_index (LongTensor): ``[2, nnz]`` (pixel, group), sorted by pixel.
        assign_weight (Tensor): ``[nnz]`` assignment weights :math:`S`.
        batch_size, height, width (int): the pixel grid.
        num_groups (int): total number of groups in the batch.

    Returns:
        ``(edge_index [2, E], edge_type [E], edge_weight [E])``.
    """
    pixel, group = assign_index
    counts = torch.bincount(pixel, minlength=batch_size * height * width)
    targets, sources, types, weights = [], [], [], []
    for t in HALF_DIRECTIONS:
        e, f = neighbour_entry_pairs(pixel, counts, height, width, t)
        edge_index, weight = coalesce_pairs(group[e], group[f],
                                            assign_weight[e] * assign_weight[f], num_groups)
        source, target = edge_index
        # delta: g receives from h; -delta: h receives from g (transpose).
        targets += [target, source]
        sources += [source, target]
        types += [torch.full_like(target, t), torch.full_like(target, NUM_DIRECTIONS - 1 - t)]
        weights += [weight, weight]
    # the eight per-direction lists are coalesced and disjoint by type
    return torch.stack([torch.cat(sources), torch.cat(targets)]), torch.cat(types), \
        torch.cat(weights)


def _partner_weight(edge_index: Tensor, edge_type: Tensor, edge_weight: Tensor,
                    num_nodes: int, partner_type: Tensor) -> Tensor:
    """Weight of the entry with the same (target, source) and ``partner_type`` (0 if absent)."""
    key = _typed_key(edge_index[1], edge_index[0], edge_type, num_nodes)
    order = torch.argsort(key)
    sorted_key = key[order]
    wanted = _typed_key(edge_index[1], edge_index[0], partner_type, num_nodes)
    pos = torch.searchsorted(sorted_key, wanted).clamp_max(max(key.numel() - 1, 0))
    found = sorted_key[pos] == wanted if key.numel() else torch.zeros_like(wanted, dtype=torch.bool)
    return torch.where(found, edge_weight[order][pos], edge_weight.new_zeros(()))


def cancel_noise(edge_index: Tensor, edge_type: Tensor, edge_weight: Tensor,
                 num_nodes: int) -> TypedEdges:
    r"""Noise-canceling (Eq. 7): :math:`\hat{A}^\delta \leftarrow
    \max(0, \hat{A}^\delta - \hat{A}^{\bar\delta})`.

    Every non-centre entry is reduced by the entry of the opposite direction
    between the same ordered pair; entries that reach zero are removed (so the
    diagonal of every non-centre direction vanishes). Centre edges pass
    unchanged. Input entries must be unique per ``(target, source, type)``.
    """
    partner = _partner_weight(edge_index, edge_type, edge_weight, num_nodes,
                              NUM_DIRECTIONS - 1 - edge_type)
    centre = edge_type == SELF_LOOP
    weight = torch.where(centre, edge_weight, (edge_weight - partner).clamp_min(0.0))
    keep = centre | (weight > 0)
    return edge_index[:, keep], edge_type[keep], weight[keep]


def keep_strongest_direction(edge_index: Tensor, edge_type: Tensor, edge_weight: Tensor,
                             num_nodes: int) -> TypedEdges:
    r"""Keep, per ordered pair (target, source), only the strongest direction.

    Centre edges are kept. Ties break towards the smallest type when
    ``target < source`` and the largest otherwise, so the selection commutes
    with transposition (if :math:`\delta` wins for ``(g, h)``, :math:`\bar\delta`
    wins for ``(h, g)``).
    """
    centre = edge_type == SELF_LOOP
    pair = edge_index[1] * num_nodes + edge_index[0]
    _, inverse = torch.unique(pair, return_inverse=True)
    num_pairs = int(inverse.max()) + 1 if inverse.numel() else 0
    weight = edge_weight.detach().masked_fill(centre, float("-inf"))
    best = weight.new_full((num_pairs,), float("-inf")).scatter_reduce(
        0, inverse, weight, reduce="amax")
    is_max = (weight == best[inverse]) & ~centre
    score = torch.where(edge_index[1] < edge_index[0], edge_type, NUM_DIRECTIONS - 1 - edge_type)
    score = score.masked_fill(~is_max, NUM_DIRECTIONS)
    best_score = score.new_full((num_pairs,), NUM_DIRECTIONS).scatter_reduce(
        0, inverse, score, reduce="amin")
    keep = centre | (is_max & (score == best_score[inverse]))
    return edge_index[:, keep], edge_type[keep], edge_weight[keep]


def finalize_adjacency(edge_index: Tensor, edge_type: Tensor, edge_weight: Tensor,
                       num_nodes: int, threshold: float = EDGE_THRESHOLD) -> TypedEdges:
    r"""Supplementary B: drop weights below ``threshold``, zero the diagonal of
    every non-centre direction and set the centre direction to the identity.

    Returns edges sorted by target, then type, then source (edges of one image
    stay together).
    """
    non_centre = edge_type != SELF_LOOP
    keep = non_centre & (edge_weight >= threshold) & (edge_index[0] != edge_index[1])
    loops = torch.arange(num_nodes, device=edge_index.device)
    source = torch.cat([edge_index[0, keep], loops])
    target = torch.cat([edge_index[1, keep], loops])
    edge_type = torch.cat([edge_type[keep], torch.full_like(loops, SELF_LOOP)])
    edge_weight = torch.cat([edge_weight[keep], edge_weight.new_ones(num_nodes)])
    order = torch.argsort((target * NUM_DIRECTIONS + edge_type) * num_nodes + source)
    return torch.stack([source[order], target[order]]), edge_type[order], edge_weight[order]


def build_group_adjacency(
    assign_index: Tensor,
    assign_weight: Tensor,
    batch_size: int,
    height: int,
    width: int,
    num_groups: int,
    noise_cancel: bool = True,
    max_direction: bool = True,
    threshold: float = EDGE_THRESHOLD,
) -> TypedEdges:
    """Run the whole pipeline of this module (Eq. 4, Eq. 7, max direction,
    supplementary B) and return the final typed, weighted edges."""
    edges = group_adjacency(assign_index, assign_weight, batch_size, height, width, num_groups)
    if noise_cancel:
        edges = cancel_noise(*edges, num_groups)
    if max_direction:
        edges = keep_strongest_direction(*edges, num_groups)
    return finalize_adjacency(*edges, num_groups, threshold=threshold)
