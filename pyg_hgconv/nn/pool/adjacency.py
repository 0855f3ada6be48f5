r"""Direction-wise group adjacency (paper, Eqs. 4 and 7, supplementary B).

Edges are stored as in PyG, ``edge_index = [source, target]``, plus an
``edge_type`` (direction, 0..8) and an ``edge_weight``. Edge ``h -> g`` of
type :math:`\delta` with weight :math:`w` is the entry
:math:`\hat{A}^\delta_{gh} = w`.

The pipeline (:func:`build_group_adjacency`):

1. :func:`group_adjacency`: :math:`\hat{A}^\delta = S^\top A^\delta S` (Eq. 4),
   built tile by tile from the tiled assignment (one small matrix product per
   pair of neighbouring tiles). Only four directions are computed, the
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

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from pyg_hgconv.nn.pool.fused_adjacency import (
    fused_applies,
    fused_centroid_applies,
    fused_centroid_edges,
    fused_half_direction_blocks,
)
from pyg_hgconv.nn.pool.tiling import TiledAssignment, TileGrid
from pyg_hgconv.utils.directions import (
    HALF_DIRECTIONS,
    NUM_DIRECTIONS,
    OFFSETS,
    SELF_LOOP,
    TAN_SECTOR,
    direction_lengths,
    displacement_direction,
)

#: supplementary B: adjacency weights below this are dropped (the default of the
#: pipeline functions here; :class:`~pyg_hgconv.ImageToGroupGraph` uses its own)
PAPER_EDGE_THRESHOLD = 1e-7
#: how one direction per pair of groups is chosen (:func:`build_group_adjacency`)
DIRECTION_RULES = ("paper", "length", "centroid")

TypedEdges = tuple[Tensor, Tensor, Tensor]


def _typed_key(target: Tensor, source: Tensor, edge_type: Tensor, num_nodes: int) -> Tensor:
    return (target * num_nodes + source) * NUM_DIRECTIONS + edge_type


@functools.lru_cache(maxsize=64)
def _neighbour_pairs(tile_h: int, tile_w: int) -> tuple[tuple[Tensor, ...], ...]:
    r"""The pairs of positions ``(p, p + delta)`` of the four half directions,
    by where ``p + delta`` lies.

    The neighbour ``p + delta`` of position ``p`` of a tile lies in the same
    tile or in the next one along ``dy`` and/or ``dx``. One *block* is a pair
    (direction, tile offset) with the list of its positions ``p`` and of the
    positions of their neighbours in the offset tile. Blocks within the tile
    hold most positions, blocks across tile borders one row or column, so
    the two groups are padded separately (with ``P``, no position).

    Returns:
        Two groups (same tile, other tiles), each ``(half [NB], offset_y
        [NB], offset_x [NB], position [NB, L], neighbour_position [NB, L])``,
        ``half`` indexing :data:`~pyg_hgconv.utils.directions.HALF_DIRECTIONS`.
    """
    a = torch.arange(tile_h).repeat_interleave(tile_w)
    c = torch.arange(tile_w).repeat(tile_h)
    none = tile_h * tile_w
    groups: tuple[list, list] = ([], [])
    for half, t in enumerate(HALF_DIRECTIONS):
        dy, dx = OFFSETS[t]
        y, x = a + dy, c + dx
        oy = torch.div(y, tile_h, rounding_mode="floor")
        ox = torch.div(x, tile_w, rounding_mode="floor")
        position = y.remainder(tile_h) * tile_w + x.remainder(tile_w)
        for o_y, o_x in sorted({(int(u), int(v)) for u, v in zip(oy, ox, strict=True)}):
            inside = ((oy == o_y) & (ox == o_x)).nonzero().view(-1)
            groups[(o_y, o_x) != (0, 0)].append((half, o_y, o_x, inside, position[inside]))

    def pack(blocks: list) -> tuple[Tensor, ...]:
        length = max((len(b[3]) for b in blocks), default=0)
        padded = [torch.full((len(blocks), length), none, dtype=torch.long) for _ in range(2)]
        for i, (*_, source, target) in enumerate(blocks):
            padded[0][i, :len(source)] = source
            padded[1][i, :len(target)] = target
        return (torch.tensor([b[0] for b in blocks], dtype=torch.long),
                torch.tensor([b[1] for b in blocks], dtype=torch.long),
                torch.tensor([b[2] for b in blocks], dtype=torch.long), *padded)

    return pack(groups[0]), pack(groups[1])


#: key spaces up to this size are coalesced with a dense accumulator (no sort)
DENSE_COALESCE_LIMIT = 1 << 22


def coalesce(key: Tensor, weight: Tensor, space: int) -> tuple[Tensor, Tensor]:
    """Sum the weights of equal keys in ``[0, space)``; keep the keys whose sum
    is positive (weights are non-negative).

    Not :func:`torch_geometric.utils.coalesce`: the keys here are one integer
    per ``(direction, target, source)`` triple, zero sums are dropped, and a
    small key space is accumulated without any sort.

    Returns ``(keys, sums)`` sorted by key. Small key spaces (up to
    :data:`DENSE_COALESCE_LIMIT`) are accumulated densely, larger ones sorted
    with :func:`torch.unique`; both are differentiable in ``weight``.
    """
    if space <= DENSE_COALESCE_LIMIT:
        summed = weight.new_zeros(space).index_add_(0, key, weight)
        unique = (summed.detach() > 0).nonzero().view(-1)
        return unique, summed[unique]
    positive = weight.detach() > 0
    key, weight = key[positive], weight[positive]
    unique, inverse = torch.unique(key, sorted=True, return_inverse=True)
    return unique, weight.new_zeros(unique.numel()).index_add(0, inverse, weight)


def group_adjacency(assignment: TiledAssignment) -> TypedEdges:
    r"""Return the eight non-centre :math:`\hat{A}^\delta = S^\top A^\delta S` (Eq. 4).

    .. math::
        \hat{A}^\delta_{gh} = \sum_p S_{p g} S_{p + \delta, h},

    summed over every pixel pair ``(p, p + delta)``. With the tiled
    assignment (:class:`~pyg_hgconv.nn.pool.tiling.TiledAssignment`) the sum runs
    tile by tile: for tile :math:`t` and a tile :math:`u` that holds
    neighbours of its pixels, the ``[m, m]`` block
    :math:`S_t^\top A^\delta_{tu} S_u` is one matrix product, and the blocks
    are coalesced on ``(target g, source h, delta)``. Only the four half
    directions are computed; the others are their transposes,
    :math:`\hat{A}^{-\delta} = (\hat{A}^\delta)^\top`. Diagonal entries (a
    group next to itself) are kept; the centre direction is left out
    (supplementary B replaces it by the identity); zero entries are dropped.

    Returns:
        ``(edge_index [2, E], edge_type [E], edge_weight [E])``.
    """
    num_nodes = assignment.num_groups
    key, products = _half_direction_products(assignment)
    key, summed = coalesce(key, products, len(HALF_DIRECTIONS) * num_nodes * num_nodes)
    half_type = torch.tensor(HALF_DIRECTIONS, device=key.device)[key // (num_nodes * num_nodes)]
    target, source = (key // num_nodes) % num_nodes, key % num_nodes
    # delta: g receives from h; -delta: h receives from g (transpose).
    edge_index = torch.stack([torch.cat([source, target]), torch.cat([target, source])])
    edge_type = torch.cat([half_type, NUM_DIRECTIONS - 1 - half_type])
    return edge_index, edge_type, torch.cat([summed, summed])


def _half_direction_products(assignment: TiledAssignment, row_key: Tensor | None = None,
                             col_key: Tensor | None = None, half_stride: int | None = None
                             ) -> tuple[Tensor, Tensor]:
    r"""The uncoalesced terms of :math:`\hat{A}^\delta` for the four half
    directions: one ``[m, m]`` block :math:`S_t^\top A^\delta_{tu} S_u` per
    tile :math:`t` and neighbour tile :math:`u` (see :func:`group_adjacency`).

    Returns:
        ``(key [M], weight [M])`` with ``key = half * half_stride + row_key[target]
        + col_key[source]``, ``half`` indexing
        :data:`~pyg_hgconv.utils.directions.HALF_DIRECTIONS`; by default
        ``key = (half * N + target) * N + source``. Callers choose the keys of
        their output layout, so that no key is decoded again.
    """
    weight, candidates = assignment.weight, assignment.candidates
    n = assignment.num_groups
    t, m, _ = weight.shape
    if row_key is None:
        nodes = torch.arange(n, device=candidates.device)
        row_key, col_key, half_stride = nodes * n, nodes, n * n
    target_key = row_key[candidates]  # [T, m]
    source_key = F.pad(col_key[candidates], (0, 0, 0, 1))  # [T + 1, m], a zero tile
    # S by position: [T + 1, P + 1, m], with a zero position and a zero tile
    rows = F.pad(weight.transpose(1, 2), (0, 0, 0, 1, 0, 1))
    keys, products = [], []
    for same_tile, (neighbour, position, neighbour_position, half) in zip(
            (True, False), _tile_neighbours(assignment.grid, weight.device), strict=True):
        nb, length = position.shape
        if nb == 0:
            continue
        left = rows[:t].index_select(1, position.view(-1))  # [T, NB L, m]
        right = rows.index_select(1, neighbour_position.view(-1))  # [T + 1, NB L, m]
        if same_tile:
            right = right[:t]
        else:  # rows of the tile that holds the neighbours, block by block
            right = right.view(t + 1, nb, length, m)[
                neighbour, torch.arange(nb, device=weight.device)]
        block = torch.bmm(left.view(t * nb, length, m).transpose(1, 2),
                          right.reshape(t * nb, length, m))  # S_t^T A_tu S_u: [T NB, m, m]
        key = (half.view(1, nb, 1, 1) * half_stride + target_key.view(t, 1, m, 1)
               + source_key[neighbour].view(t, nb, 1, m))
        keys.append(key.reshape(-1))
        products.append(block.reshape(-1))
    if not keys:
        return candidates.new_zeros(0), weight.new_zeros(0)
    return torch.cat(keys), torch.cat(products)


@functools.lru_cache(maxsize=32)
def _tile_neighbours(grid: TileGrid, device: torch.device) -> tuple[tuple[Tensor, ...], ...]:
    """What :func:`_half_direction_products` needs of the tiling alone, per
    group of :func:`_neighbour_pairs`: the tile holding each block's
    neighbours ``[T, NB]`` (``T``, a zero tile, off the image), the positions
    and neighbour positions ``[NB, L]`` and the half directions ``[NB]``."""
    t = grid.num_tiles
    tile = torch.arange(t, device=device)
    ty = (tile // grid.tiles_x) % grid.tiles_y
    tx = tile % grid.tiles_x
    out = []
    for halves, off_y, off_x, position, neighbour_position in _neighbour_pairs(grid.tile_h,
                                                                              grid.tile_w):
        off_y, off_x = off_y.to(device), off_x.to(device)
        ny, nx = ty.unsqueeze(1) + off_y, tx.unsqueeze(1) + off_x  # [T, NB]
        inside = (ny < grid.tiles_y) & (nx >= 0) & (nx < grid.tiles_x)
        neighbour = torch.where(inside, tile.unsqueeze(1) + off_y * grid.tiles_x + off_x, t)
        out.append((neighbour, position.to(device), neighbour_position.to(device),
                    halves.to(device)))
    return tuple(out)


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
                             num_nodes: int, scale: Tensor | None = None) -> TypedEdges:
    r"""Keep, per ordered pair (target, source), only the strongest direction
    (of ``edge_weight / scale[edge_type]`` when ``scale`` ``[9]`` is given; the
    kept weight is the unscaled one).

    Centre edges are kept. Ties break towards the smallest type when
    ``target < source`` and the largest otherwise, so the selection commutes
    with transposition (if :math:`\delta` wins for ``(g, h)``, :math:`\bar\delta`
    wins for ``(h, g)``).
    """
    centre = edge_type == SELF_LOOP
    pair = edge_index[1] * num_nodes + edge_index[0]
    _, inverse = torch.unique(pair, return_inverse=True)
    num_pairs = int(inverse.max()) + 1 if inverse.numel() else 0
    weight = edge_weight.detach() if scale is None else edge_weight.detach() / scale[edge_type]
    weight = weight.masked_fill(centre, float("-inf"))
    best = weight.new_full((num_pairs,), float("-inf")).scatter_reduce(
        0, inverse, weight, reduce="amax")
    is_max = (weight == best[inverse]) & ~centre
    score = torch.where(edge_index[1] < edge_index[0], edge_type, NUM_DIRECTIONS - 1 - edge_type)
    score = score.masked_fill(~is_max, NUM_DIRECTIONS)
    best_score = score.new_full((num_pairs,), NUM_DIRECTIONS).scatter_reduce(
        0, inverse, score, reduce="amin")
    keep = centre | (is_max & (score == best_score[inverse]))
    return edge_index[:, keep], edge_type[keep], edge_weight[keep]


def keep_centroid_direction(edge_index: Tensor, edge_type: Tensor, edge_weight: Tensor,
                            num_nodes: int, pos: Tensor) -> TypedEdges:
    r"""One edge per ordered pair (target, source): its weight the sum over the
    pair's directions (the whole contact), its type the sector of the centroid
    displacement ``pos[source] - pos[target]``
    (:func:`~pyg_hgconv.utils.directions.displacement_direction`); pairs with
    coinciding centroids keep their strongest type. Centre edges are kept."""
    centre = edge_type == SELF_LOOP
    pair = edge_index[1] * num_nodes + edge_index[0]
    unique, inverse = torch.unique(pair[~centre], return_inverse=True)  # sorted pairs
    total = edge_weight.new_zeros(unique.numel()).index_add(0, inverse, edge_weight[~centre])
    target, source = unique // num_nodes, unique % num_nodes
    types = displacement_direction(pos[source].detach() - pos[target].detach())
    # the strongest type of every pair (one edge per pair), in the order of ``unique``
    s_index, s_type, _ = keep_strongest_direction(edge_index[:, ~centre], edge_type[~centre],
                                                  edge_weight[~centre], num_nodes)
    strongest = s_type[torch.argsort(s_index[1] * num_nodes + s_index[0])]
    types = torch.where(types == SELF_LOOP, strongest, types)
    return (torch.cat([torch.stack([source, target]), edge_index[:, centre]], 1),
            torch.cat([types, edge_type[centre]]), torch.cat([total, edge_weight[centre]]))


def finalize_adjacency(edge_index: Tensor, edge_type: Tensor, edge_weight: Tensor,
                       num_nodes: int, threshold: float = PAPER_EDGE_THRESHOLD) -> TypedEdges:
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


#: images of up to this many ``(type, target, source)`` slots (:math:`9 n^2`,
#: ``n`` the largest number of groups of an image) run the dense pipeline
#: (:func:`dense_group_adjacency`)
DENSE_PIPELINE_LIMIT = 1 << 22
#: the dense pipeline takes the images of a batch in chunks of at most this many
#: slots (:math:`9 B_{chunk} n^2`): the intermediate arrays of a chunk stay in
#: the CPU caches, so the cost per image does not grow with the batch (one
#: pass over a large batch of MNIST digits was markedly slower per image)
DENSE_CHUNK_SLOTS = 1 << 20


def dense_group_adjacency(assignment: TiledAssignment, noise_cancel: bool = True,
                          max_direction: bool = True,
                          threshold: float = PAPER_EDGE_THRESHOLD, direction_rule: str = "paper",
                          pos: Tensor | None = None,
                          groups_per_image: Tensor | None = None) -> TypedEdges:
    r"""The whole pipeline on dense ``[B, 9, n, n]`` arrays of :math:`\hat{A}^\delta`,
    one ``n x n`` block per image (``n`` its largest number of groups).

    The same steps as :func:`group_adjacency`, :func:`cancel_noise`,
    :func:`select_directions` and :func:`finalize_adjacency`, with the same tie
    rule and the same output order (by target, then type, then source), as a
    handful of array operations instead of sorts and searches. Groups of
    different images never touch, so every image gets its own block; with the
    ``'centroid'`` rule the selection runs on ``[B, n, n]`` arrays
    (:func:`_centroid_edges`). For images of up to
    :data:`DENSE_PIPELINE_LIMIT` slots; :func:`build_group_adjacency` feeds it
    chunks of :data:`DENSE_CHUNK_SLOTS`.

    Args:
        groups_per_image (LongTensor, optional): ``[B]`` groups of every image,
            in node order (default: all groups in one image).
    """
    n = assignment.num_groups
    device = assignment.weight.device
    counts = (torch.tensor([n], device=device) if groups_per_image is None
              else groups_per_image.to(device=device, dtype=torch.long))
    b, n_max = counts.numel(), max(int(counts.max()), 1) if counts.numel() else 1
    first = counts.cumsum(0) - counts
    image = torch.repeat_interleave(torch.arange(b, device=device), counts, output_size=n)
    local = torch.arange(n, device=device) - first[image]
    half = dense_half_blocks(assignment, image, local, b, n_max)  # [B, half, t, s]
    if max_direction and direction_rule == "centroid" and fused_centroid_applies(half, pos):
        # the steps below in one pass per image (no gradient)
        return fused_centroid_edges(half, pos.detach(), counts, noise_cancel, threshold,
                                    TAN_SECTOR)
    if noise_cancel:  # Eq. 7: the opposite direction of the pair is the transpose
        half = (half - half.transpose(2, 3)).clamp_min(0.0)
    slots = torch.arange(n_max, device=device)
    present = slots.view(1, -1) < counts.view(-1, 1)  # [B, n]: real groups
    pairs = present.unsqueeze(2) & present.unsqueeze(1)  # [B, t, s]
    eye = torch.eye(n_max, dtype=torch.bool, device=device) & pairs
    if max_direction and direction_rule == "centroid":
        b_, t_, edge_type, s_, edge_weight = _centroid_edges(half, pos, first, pairs, eye,
                                                             threshold)
        return torch.stack([first[b_] + s_, first[b_] + t_]), edge_type, edge_weight
    # all nine types (centre zero): the halves, their transposes (the opposite
    # types), reordered by type
    full = torch.cat([half, half.transpose(2, 3), half.new_zeros(b, 1, n_max, n_max)], 1)
    full = full[:, _type_order(device)]
    weight = full.detach()
    keep = weight >= threshold if threshold > 0 else weight > 0
    keep &= pairs.unsqueeze(1)
    if not noise_cancel:  # (noise cancelling empties the diagonal by itself)
        keep &= ~eye.unsqueeze(1)
    if max_direction:
        keep &= _strongest_rank_mask(weight, n_max, device,
                                     _selection_scale(direction_rule, weight))
    keep[:, SELF_LOOP] = eye  # supplementary B
    b_, t_, edge_type, s_ = keep.permute(0, 2, 1, 3).nonzero().unbind(1)
    edge_weight = torch.where(edge_type == SELF_LOOP, 1.0, full[b_, edge_type, t_, s_])
    return torch.stack([first[b_] + s_, first[b_] + t_]), edge_type, edge_weight


def dense_half_blocks(assignment: TiledAssignment, image: Tensor, local: Tensor,
                      batch_size: int, n: int, fused: bool = True) -> Tensor:
    r"""The ``[B, 4, n, n]`` blocks :math:`\hat{A}^\delta` (Eq. 4) of every image
    for the four half directions, entry ``[b, d, g, h]`` the weight of
    ``h -> g`` in direction ``HALF_DIRECTIONS[d]``.

    The fused C++ op where it applies
    (:mod:`~pyg_hgconv.nn.pool.fused_adjacency`: only the non-zero entries of
    :math:`S`), else (or with ``fused=False``) the tile-block products of
    :func:`_half_direction_products` summed into the blocks; the two agree to
    float tolerance, values and gradients.

    Args:
        image, local (LongTensor): ``[N_grp]`` image of every group and its
            index within the image (``< n``).
        batch_size (int): blocks :math:`B`: the images of the tiling, or 1 for
            all their groups in one block (``image`` all zero).
    """
    if fused and fused_applies(assignment.weight):
        blocks = fused_half_direction_blocks(assignment.weight, local[assignment.candidates],
                                             assignment.grid, n)
        if batch_size != assignment.grid.batch_size:  # the images' groups as one block
            blocks = blocks.sum(0, keepdim=True)
        return blocks
    # keys straight into the [B, half, n, n] blocks (a group's neighbours are of its image)
    key, products = _half_direction_products(
        assignment, row_key=(image * len(HALF_DIRECTIONS) * n + local) * n,
        col_key=local, half_stride=n * n)
    return products.new_zeros(batch_size * len(HALF_DIRECTIONS) * n * n).index_add_(
        0, key, products).view(batch_size, len(HALF_DIRECTIONS), n, n)


def _centroid_edges(half: Tensor, pos: Tensor, first: Tensor, pairs: Tensor, eye: Tensor,
                    threshold: float) -> tuple[Tensor, ...]:
    r"""The ``'centroid'`` rule on the dense half blocks ``[B, 4, n, n]``: one
    edge per pair, its weight the pair's whole contact
    :math:`\sum_\delta \hat{A}^\delta_{ts}` (the halves and their transposes),
    its type the sector of the centroid displacement ``pos[s] - pos[t]``;
    pairs with coinciding centroids take their strongest type
    (:func:`_strongest_type`). Works on ``[B, n, n]`` arrays, never on all
    nine types.

    Returns:
        ``(image, target, type, source, weight)`` of the kept edges and the
        identity self loops, sorted by image, target, type, source.
    """
    n = half.size(2)
    device = half.device
    contact = half.sum(1)
    total = contact + contact.transpose(1, 2)  # [B, t, s]
    weight = total.detach()
    keep = (weight >= threshold if threshold > 0 else weight > 0) & pairs & ~eye
    b_, t_, s_ = keep.nonzero().unbind(1)
    centroids = pos.detach()  # node first[b] + local of image b
    types = displacement_direction(centroids[first[b_] + s_] - centroids[first[b_] + t_])
    coincident = (types == SELF_LOOP).nonzero().view(-1)
    if coincident.numel():  # rare: the strongest of the nine types of those pairs
        cb, ct, cs = b_[coincident], t_[coincident], s_[coincident]
        nine = torch.cat([half[cb, :, ct, cs], half[cb, :, cs, ct],
                          half.new_zeros(coincident.numel(), 1)], 1).detach()
        strongest = _strongest_type(nine[:, _type_order(device)], (ct < cs).view(-1, 1))
        types = types.index_put((coincident,), strongest)
    loops_b, loops_t, _ = eye.nonzero().unbind(1)
    edge_weight = torch.cat([total[b_, t_, s_], total.new_ones(loops_t.numel())])
    b_, t_, s_ = torch.cat([b_, loops_b]), torch.cat([t_, loops_t]), torch.cat([s_, loops_t])
    edge_type = torch.cat([types, torch.full_like(loops_t, SELF_LOOP)])
    order = torch.argsort(((b_ * n + t_) * NUM_DIRECTIONS + edge_type) * n + s_)
    return b_[order], t_[order], edge_type[order], s_[order], edge_weight[order]


def _selection_scale(direction_rule: str, like: Tensor) -> Tensor | None:
    """What each type's weight is divided by before the strongest one is kept."""
    if direction_rule == "length":
        return direction_lengths(like.dtype, like.device).clamp_min(1.0).view(1, -1, 1, 1)
    return None


def _strongest_type(score: Tensor, below: Tensor) -> Tensor:
    """The strongest type of every pair: ``score [K, 9, ...]`` (types along
    dimension 1) -> ``[K, ...]``; among equal maxima the smallest type where
    ``below`` (target < source; broadcastable to ``score`` with a size-1 type
    dimension, e.g. ``[n, n]`` for ``[B, 9, n, n]``, ``[K, 1]`` for ``[K, 9]``),
    else the largest, so that the choice commutes with transposition."""
    shape = [1] * score.dim()
    shape[1] = NUM_DIRECTIONS
    # ranks in uint8: PyTorch's int64 reductions over a middle dimension are
    # not vectorised on CPU (about 100x slower here)
    types = torch.arange(NUM_DIRECTIONS, device=score.device, dtype=torch.uint8).view(shape)
    rank = torch.where(below, types, NUM_DIRECTIONS - 1 - types)  # distinct per pair
    rank = torch.where(score == score.amax(1, keepdim=True), rank, NUM_DIRECTIONS)
    best = rank.amin(1).long()  # the rank of the chosen type, then the type itself
    below = below.expand_as(rank).select(1, 0)
    return torch.where(below, best, NUM_DIRECTIONS - 1 - best)


def _strongest_rank_mask(weight: Tensor, n: int, device: torch.device,
                         scale: Tensor | None) -> Tensor:
    """``[B, 9, n, n]``: True at the strongest type of every pair (of
    ``weight / scale``, :func:`_strongest_type`)."""
    score = weight if scale is None else weight / scale
    nodes = torch.arange(n, device=device)
    below = nodes.view(-1, 1) < nodes.view(1, -1)  # [t, s]: target < source
    types = torch.arange(NUM_DIRECTIONS, device=device).view(1, -1, 1, 1)
    return types == _strongest_type(score, below).unsqueeze(1)


@functools.lru_cache(maxsize=8)
def _type_order(device: torch.device) -> Tensor:
    """Index that reorders ``[half types, their opposites, centre]`` by type."""
    order = [*HALF_DIRECTIONS, *(NUM_DIRECTIONS - 1 - t for t in HALF_DIRECTIONS), SELF_LOOP]
    return torch.tensor([order.index(t) for t in range(NUM_DIRECTIONS)], device=device)


def runs_fused_kernel(weight: Tensor, largest: int) -> bool:
    """Whether :func:`build_group_adjacency` computes Eq. 4 with the fused
    kernel (:func:`dense_half_blocks`) for the tiled weights ``weight`` of
    images of at most ``largest`` groups."""
    return NUM_DIRECTIONS * largest * largest <= DENSE_PIPELINE_LIMIT and fused_applies(weight)


def build_group_adjacency(
    assignment: TiledAssignment,
    noise_cancel: bool = True,
    max_direction: bool = True,
    threshold: float = PAPER_EDGE_THRESHOLD,
    direction_rule: str = "paper",
    pos: Tensor | None = None,
    groups_per_image: Tensor | None = None,
) -> TypedEdges:
    r"""Run the whole pipeline of this module (Eq. 4, Eq. 7, one direction per
    pair, supplementary B) on a tiled assignment (an assignment in coordinate
    form converts with :meth:`~pyg_hgconv.nn.pool.tiling.TiledAssignment.from_coo`)
    and return the final typed, weighted edges, sorted by target, then type,
    then source. Small graphs take :func:`dense_group_adjacency`, larger ones
    the sparse steps.

    Args:
        direction_rule (str): how ``max_direction`` picks a pair's one direction
            (:data:`DIRECTION_RULES`): ``'paper'`` the strongest weight (Sec. 4.3),
            ``'length'`` the strongest weight per unit of offset length
            (:math:`\hat{A}^\delta / |\delta|`), ``'centroid'`` the sector of the
            centroid displacement with the pair's whole contact as weight.
        pos (Tensor, optional): ``[N, 2]`` group centroids ``(x, y)``
            (``'centroid'`` only).
        groups_per_image (LongTensor, optional): ``[B]`` groups of every image
            (node order): small graphs then run one dense block per image.
    """
    check_direction_rule(direction_rule, pos)
    num_groups = assignment.num_groups
    if groups_per_image is None:
        images, largest = 1, num_groups
    else:
        images, largest = groups_per_image.numel(), int(groups_per_image.max())
    block = NUM_DIRECTIONS * largest * largest
    if block <= DENSE_PIPELINE_LIMIT:
        if images * block <= DENSE_CHUNK_SLOTS or groups_per_image is None:
            return dense_group_adjacency(assignment, noise_cancel, max_direction, threshold,
                                         direction_rule, pos, groups_per_image)
        # many images: dense blocks, a cache-sized chunk of images at a time
        return _dense_in_chunks(assignment, noise_cancel, max_direction, threshold,
                                direction_rule, pos, groups_per_image.to(torch.long), largest)
    edges = group_adjacency(assignment)
    if noise_cancel:
        edges = cancel_noise(*edges, num_groups)
    if max_direction:
        edges = select_directions(*edges, num_groups, direction_rule, pos)
    return finalize_adjacency(*edges, num_groups, threshold=threshold)


def _dense_in_chunks(assignment: TiledAssignment, noise_cancel: bool, max_direction: bool,
                     threshold: float, direction_rule: str, pos: Tensor | None,
                     groups_per_image: Tensor, largest: int) -> TypedEdges:
    """:func:`dense_group_adjacency` on chunks of images whose dense blocks fit
    :data:`DENSE_CHUNK_SLOTS`, concatenated (the same edges, in the same order)."""
    chunk = max(1, DENSE_CHUNK_SLOTS // (NUM_DIRECTIONS * largest * largest))
    counts = groups_per_image.tolist()
    first = [0]
    for count in counts:
        first.append(first[-1] + count)
    parts = []
    for start in range(0, len(counts), chunk):
        stop = min(start + chunk, len(counts))
        g0, g1 = first[start], first[stop]
        sub = assignment.images(start, stop, g0, g1 - g0)
        edge_index, edge_type, edge_weight = dense_group_adjacency(
            sub, noise_cancel, max_direction, threshold, direction_rule,
            None if pos is None else pos[g0:g1], groups_per_image[start:stop])
        parts.append((edge_index + g0, edge_type, edge_weight))
    return (torch.cat([p[0] for p in parts], 1), torch.cat([p[1] for p in parts]),
            torch.cat([p[2] for p in parts]))


def select_directions(edge_index: Tensor, edge_type: Tensor, edge_weight: Tensor,
                      num_nodes: int, direction_rule: str = "paper",
                      pos: Tensor | None = None) -> TypedEdges:
    """One direction per ordered pair by ``direction_rule`` (see
    :func:`build_group_adjacency`)."""
    check_direction_rule(direction_rule, pos)
    if direction_rule == "centroid":
        return keep_centroid_direction(edge_index, edge_type, edge_weight, num_nodes, pos)
    scale = None
    if direction_rule == "length":
        scale = direction_lengths(edge_weight.dtype, edge_weight.device).clamp_min(1.0)
    return keep_strongest_direction(edge_index, edge_type, edge_weight, num_nodes, scale)


def check_direction_rule(direction_rule: str, pos: Tensor | None) -> None:
    if direction_rule not in DIRECTION_RULES:
        raise ValueError(f"'direction_rule' must be one of {DIRECTION_RULES} "
                         f"(got {direction_rule!r})")
    if direction_rule == "centroid" and pos is None:
        raise ValueError("direction_rule='centroid' needs the group centroids 'pos'")


def block_positions(grid: TileGrid) -> int:
    """Positions of the ``[m, L] x [L, m]`` block products of Eq. 4 per tile,
    :math:`\\sum L` over the four half directions and the neighbouring tiles
    (padding included): what :func:`group_adjacency` multiplies, ``m * m`` per
    position."""
    return sum(int(position.numel()) for *_, position, _ in
               _neighbour_pairs(grid.tile_h, grid.tile_w))
