r"""Differentiable SLIC on tiles with sparse candidate sets (paper, Algorithm 1).

The pixels are cut into tiles of about one by two centre spacings
(:meth:`~pyg_hgconv.nn.pool.tiling.TileGrid.for_spacing`); every pixel of a tile is
compared with only the ``m`` sampled centres nearest to the tile (found once
per forward, without gradient), as SSN [Jampani et al. 2018] compares every
pixel of a grid cell with the 9 surrounding superpixels. The assignment is a
``[T, m, P]`` tensor (tiles, candidates, pixels of a tile), never an
``N_pix x N_grp`` matrix, and every step is a batched matrix product over
tiles.

One iteration of Algorithm 1 (column-normalise, update centres, re-assign):

.. math::
    \bar{S} = S Z^{-1},\ Z_{jj} = \sum_i S_{ij}; \qquad
    X^c = \bar{S}^\top X; \qquad
    S_{ij} \propto \exp\{-\lVert X_i - X^c_j \rVert^2\},\ j \in \mathcal{C}(i),

followed after the last iteration by the filter :math:`S_{ij} < 10^{-3}
\to 0` and row normalisation. Line 1, the hard assignment
:math:`S^0 = F_{nearest}(V, V_0)`, gives each pixel its spatially nearest
candidate.

Two ways to weight the candidates (``weights=``): ``'paper'`` follows the
text of Algorithm 1, the unnormalised :math:`\exp(-d^2)` in the loop and in
the filter of line 7, then row normalisation. ``'softmax'`` (the default, a
documented deviation) normalises over each pixel's candidates (a softmax of
:math:`-d^2`, as in SSN) inside the loop too and filters the normalised
weights: the paper's raw :math:`\exp(-d^2)` underflows to an all-zero row for
a pixel far from every centre (features of a large scale), where line 8
divides by zero, and its filter then depends on the scale of the features.
The two agree when every pixel is close to a centre, up to the per-pixel
weighting of the centre update. The softmax also drops the
term :math:`\lVert X_i \rVert^2`, equal for all candidates of a pixel, so the
distances reduce to one matrix product per tile,
:math:`2 X_i \cdot X^c_j - \lVert X^c_j \rVert^2`; coordinates enter relative
to the tile so that these terms stay small.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.fused_slic import fused_slic_applies, fused_slic_assignment
from pyg_hgconv.utils.sparse import SegmentSum

#: Algorithm 1, line 7
ASSIGN_THRESHOLD = 1e-3
#: how the SLIC iterations weight a pixel's candidates (:func:`slic_assignment`)
SLIC_WEIGHTS = ("softmax", "paper")


def _knn_backend():
    """PyG's :func:`~torch_geometric.nn.knn` when a backend (torch-cluster or
    pyg-lib) is installed, else ``None``."""
    global _KNN
    if _KNN is None:
        try:
            from torch_geometric.nn import knn

            knn(torch.zeros(1, 2), torch.zeros(1, 2), 1)
            _KNN = knn
        except (ImportError, RuntimeError):
            _KNN = False
    return _KNN or None


_KNN = None


@torch.no_grad()
def nearest_centers(
    center_yx: Tensor,
    query_yx: Tensor,
    num_candidates: int,
    max_chunk_elements: int = 1 << 22,
    method: str = "auto",
) -> Tensor:
    r"""Return the ``m`` spatially nearest centres of every query point.

    ``method='brute'`` compares every query with every centre, in chunks whose
    distance block stays below ``max_chunk_elements``, and takes centres at equal
    distance in index order (the rule of the fused clustering kernel,
    :mod:`~pyg_hgconv.nn.pool.fused_clustering`, which computes the distances
    exactly: pass integer or half-integer coordinates, whose squared distances
    float arithmetic holds exactly); ``method='knn'`` uses PyG's k-NN search (a
    KD-tree on CPU, from torch-cluster or pyg-lib); ``'auto'`` takes the brute
    force when it fits in one chunk or no k-NN backend is installed, else the
    k-NN search. Among centres at equal distance the two may pick different
    ones.

    Args:
        center_yx (Tensor): ``[B, K, 2]`` centre coordinates.
        query_yx (Tensor): ``[Q, 2]`` query coordinates (shared by the batch).
        num_candidates (int): :math:`m \le K`.
        max_chunk_elements (int): bound on the ``B x chunk x K`` distance block.
        method (str): ``'auto' | 'knn' | 'brute'``.

    Returns:
        LongTensor ``[B, Q, m]`` of centre indices (within the image), nearest
        first.
    """
    if method not in ("auto", "knn", "brute"):
        raise ValueError(f"'method' must be 'auto', 'knn' or 'brute' (got {method!r})")
    b, k, _ = center_yx.shape
    n = query_yx.size(0)
    knn = _knn_backend() if method != "brute" else None
    if method == "knn" and knn is None:
        raise RuntimeError("method='knn' needs torch-cluster or pyg-lib")
    if knn is not None and (method == "knn" or b * n * k > max_chunk_elements):
        device = center_yx.device
        row, col = knn(center_yx.reshape(-1, 2), query_yx.repeat(b, 1), num_candidates,
                       torch.arange(b, device=device).repeat_interleave(k),
                       torch.arange(b, device=device).repeat_interleave(n))
        out = col[torch.argsort(row, stable=True)].view(b, n, num_candidates)
        out = out - (torch.arange(b, device=device) * k).view(b, 1, 1)
        # nearest first (the backend's order within a query is not guaranteed)
        gathered = center_yx.gather(1, out.view(b, -1, 1).expand(-1, -1, 2))
        dist = (gathered.view(b, n, num_candidates, 2) - query_yx.view(1, n, 1, 2)).square()
        return out.gather(2, dist.sum(3).argsort(dim=2, stable=True))

    chunk = max(1, max_chunk_elements // max(1, b * k))
    out = torch.empty(b, n, num_candidates, dtype=torch.long, device=center_yx.device)
    cy = center_yx[..., 0].unsqueeze(1)
    cx = center_yx[..., 1].unsqueeze(1)
    for start in range(0, n, chunk):
        p = query_yx[start:start + chunk]
        dist = (p[:, 0].view(1, -1, 1) - cy).square() + (p[:, 1].view(1, -1, 1) - cx).square()
        # a stable sort: the nearest first, equal distances in centre order
        out[:, start:start + chunk] = dist.sort(dim=2, stable=True).indices[..., :num_candidates]
    return out


def closeness(centres: Tensor, points: Tensor, offset: Tensor | float = 0.0) -> Tensor:
    r""":math:`-\lVert p - c \rVert^2` up to :math:`\lVert p \rVert^2` (the same for
    every centre of a point), :math:`2 p \cdot c - \lVert c \rVert^2 - \text{offset}`,
    as one batched product: ``centres [T, m, D]``, ``points [T, D, P]`` ->
    ``[T, m, P]``."""
    return torch.baddbmm(centres.square().sum(2, keepdim=True).neg() - offset, centres, points,
                         alpha=2.0)


@torch.no_grad()
def nearest_candidate(candidate_yx: Tensor, pixel_yx: Tensor) -> Tensor:
    r"""Hard initial assignment (Algorithm 1, line 1): every pixel to its
    spatially nearest candidate.

    Args:
        candidate_yx (Tensor): ``[T, m, 2]`` candidate centres, relative to the
            tile (integer pixel coordinates).
        pixel_yx (Tensor): ``[2, P]`` pixel positions, relative to the tile.

    Returns:
        Tensor ``[T, m, P]``, one-hot over the candidates (the first one on ties).
    """
    t, m, _ = candidate_yx.shape
    # on integer pixel coordinates the closeness is an integer, so a penalty
    # below 1/2 that grows with the candidate's slot breaks ties towards the
    # first slot and changes nothing else
    penalty = torch.arange(m, device=pixel_yx.device, dtype=pixel_yx.dtype).view(1, m, 1) / (2 * m)
    near = closeness(candidate_yx, pixel_yx.unsqueeze(0).expand(t, -1, -1), penalty)
    return (near == near.amax(1, keepdim=True)).to(pixel_yx.dtype)


def slic_assignment(
    features: Tensor,
    valid: Tensor,
    origins: Tensor,
    candidates: Tensor,
    init: Tensor,
    fallback: Tensor,
    num_iterations: int = 3,
    threshold: float = ASSIGN_THRESHOLD,
    weights: str = "softmax",
    tiles_per_image: int | None = None,
) -> Tensor:
    r"""Run differentiable SLIC on tiles and return the assignment weights.

    Where no gradient is needed, the fused CPU kernel runs the whole loop
    (:mod:`~pyg_hgconv.nn.pool.fused_slic`, the same arithmetic); otherwise,
    and as its reference, the batched products below.

    Args:
        features (Tensor): ``[T, D, P]`` clustering features of the pixels of
            every tile (embedding and scaled coordinates, the coordinates
            relative to the tile); gradients flow back to them.
        valid (Tensor): ``[T, 1, P]``, 1 on image pixels, 0 on padding.
        origins (Tensor): ``[T, D]`` what the tile subtracted from its
            features (zero except on the coordinate channels).
        candidates (LongTensor): ``[T, m]`` candidate centres of every tile
            (indices into ``fallback``).
        init (Tensor): ``[T, m, P]`` initial hard assignment
            (:func:`nearest_candidate`).
        fallback (Tensor): ``[B K, D]`` absolute features of the centres'
            own pixels; a centre that loses all its pixels keeps them.
        num_iterations (int): :math:`N_{iter} \ge 0` (0 keeps ``init``).
        threshold (float): filter of line 7.
        weights (str): ``'softmax'`` (default): every iteration normalises a
            pixel's weights over its candidates (SSN) and line 7 filters the
            normalised weights; ``'paper'``: Algorithm 1 as written, the
            unnormalised :math:`\exp(-\lVert X_i - X^c_j \rVert^2)` in the
            loop and in the filter, then row normalisation; a pixel whose
            candidates all fall below the filter (all far away, where the
            paper's line 8 divides by zero) keeps its nearest candidate in
            feature space.
        tiles_per_image (int, optional): tiles of one image when the tiles
            of every image index only that image's centres (consecutive
            blocks of ``fallback``, as :class:`~pyg_hgconv.ImageToGroupGraph`
            builds them); the fused kernel then runs the images in parallel.
            ``None``: all tiles form one block.

    Returns:
        Tensor ``[T, m, P]``: :math:`S_{ij}` for pixel ``i`` of the tile and
        its candidate ``j``; the weights of every image pixel sum to one over
        ``j``; padding pixels are zero.
    """
    t, d, _ = features.shape
    if weights not in SLIC_WEIGHTS:
        raise ValueError(f"'weights' must be one of {SLIC_WEIGHTS} (got {weights!r})")
    if fused_slic_applies(features, origins, fallback):
        return fused_slic_assignment(features, valid.to(features.dtype), origins, candidates,
                                     init.to(features.dtype), fallback,
                                     t if tiles_per_image is None else tiles_per_image,
                                     num_iterations, threshold, weights == "softmax")
    to_centres = SegmentSum(candidates.reshape(-1), fallback.size(0))
    origin = origins.unsqueeze(1)  # [T, 1, D]
    # [absolute features, 1] of the image pixels, zero on padding: one product
    # gives the weighted feature sums and the masses (Algorithm 1, lines 3-4)
    with_mass = torch.cat([features + origins.unsqueeze(2),
                           features.new_ones(t, 1, features.size(2))], 1) * valid
    weight, logits = init, None
    for _ in range(num_iterations):
        sums = to_centres(torch.bmm(weight, with_mass.transpose(1, 2)).reshape(-1, d + 1))
        total, mass = sums[:, :d], sums[:, d:]
        centre = torch.where(mass > 1e-12, total / mass.clamp_min(1e-12), fallback)
        # -||x - c||^2 up to the per-pixel ||x||^2 (softmax-invariant)
        logits = closeness(centre[candidates] - origin, features)
        if weights == "softmax":
            weight = torch.softmax(logits, dim=1)
        else:  # Algorithm 1, line 5: exp(-||x - c||^2), unnormalised
            logits = logits - features.square().sum(1, keepdim=True)
            weight = torch.exp(logits)

    weight = weight * (weight >= threshold)
    if weights == "paper" and logits is not None:
        nearest = logits.detach() == logits.detach().amax(1, keepdim=True)
        empty = weight.detach().sum(1, keepdim=True) == 0
        weight = torch.where(empty & nearest, torch.ones_like(weight), weight)
    weight = weight / weight.sum(1, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)
    return weight * valid
