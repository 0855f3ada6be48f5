r"""Differentiable SLIC on sparse candidate sets (paper, Algorithm 1).

Each pixel is compared with only ``m`` candidate centres, the ``m`` sampled
centres spatially nearest to it (found once per forward, without gradient),
as SSN [Jampani et al. 2018] restricts pixels to the surrounding grid cells.
The assignment is therefore a ``[B, N, m]`` tensor, never an
``N_pix x N_grp`` matrix.

One iteration of Algorithm 1 (column-normalise, update centres, re-assign):

.. math::
    \bar{S} = S Z^{-1},\ Z_{jj} = \sum_i S_{ij}; \qquad
    X^c = \bar{S}^\top X; \qquad
    S_{ij} \propto \exp\{-\lVert X_i - X^c_j \rVert^2\},\ j \in \mathcal{C}(i),

followed after the last iteration by the filter :math:`S_{ij} < 10^{-3}
\to 0` and row normalisation.

Deviation from the text of Algorithm 1, documented: the re-assignment is
normalised over each pixel's candidates (a softmax of :math:`-d^2`, as in SSN)
inside the loop as well. The paper's raw :math:`\exp(-d^2)` underflows to an
all-zero row for a pixel far from every centre (features of a large scale),
and the row normalisation of line 8 then divides by zero. Since rows are
normalised at the end anyway, the two agree whenever no row underflows, up to
the per-pixel weighting of the centre update.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.sparse import SparsePattern

#: Algorithm 1, line 7
ASSIGN_THRESHOLD = 1e-3


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
    pixel_yx: Tensor,
    num_candidates: int,
    max_chunk_elements: int = 1 << 22,
    use_knn: bool = True,
) -> Tensor:
    r"""Return the ``m`` spatially nearest centres of every pixel.

    Uses PyG's k-NN search (a KD-tree on CPU, from torch-cluster or pyg-lib)
    when available and ``use_knn``; otherwise a chunked brute-force search
    whose memory stays ``O(B K)`` per chunk. Among centres at equal distance
    the two may pick different ones.

    Args:
        center_yx (Tensor): ``[B, K, 2]`` centre coordinates.
        pixel_yx (Tensor): ``[N, 2]`` pixel coordinates (shared by the batch).
        num_candidates (int): :math:`m \le K`.
        max_chunk_elements (int): bound on the ``B x chunk x K`` distance block
            of the brute-force search.
        use_knn (bool): allow the k-NN backend.

    Returns:
        LongTensor ``[B, N, m]`` of centre indices, nearest first.
    """
    b, k, _ = center_yx.shape
    n = pixel_yx.size(0)
    knn = _knn_backend() if use_knn else None
    if knn is not None:
        device = center_yx.device
        row, col = knn(center_yx.reshape(-1, 2), pixel_yx.repeat(b, 1), num_candidates,
                       torch.arange(b, device=device).repeat_interleave(k),
                       torch.arange(b, device=device).repeat_interleave(n))
        out = col[torch.argsort(row, stable=True)].view(b, n, num_candidates)
        out = out - (torch.arange(b, device=device) * k).view(b, 1, 1)
        # nearest first (the backend's order within a pixel is not guaranteed)
        gathered = center_yx.gather(1, out.view(b, -1, 1).expand(-1, -1, 2))
        dist = (gathered.view(b, n, num_candidates, 2) - pixel_yx.view(1, n, 1, 2)).square()
        return out.gather(2, dist.sum(3).argsort(dim=2, stable=True))

    chunk = max(1, max_chunk_elements // max(1, b * k))
    out = torch.empty(b, n, num_candidates, dtype=torch.long, device=center_yx.device)
    cy = center_yx[..., 0].unsqueeze(1)
    cx = center_yx[..., 1].unsqueeze(1)
    for start in range(0, n, chunk):
        p = pixel_yx[start:start + chunk]
        dist = (p[:, 0].view(1, -1, 1) - cy).square() + (p[:, 1].view(1, -1, 1) - cx).square()
        out[:, start:start + chunk] = dist.topk(num_candidates, dim=2, largest=False).indices
    return out


def _centre_features(features: Tensor, pattern: SparsePattern, weight: Tensor,
                     fallback: Tensor) -> Tensor:
    """Column-normalised update ``X^c = S_bar^T X`` (Algorithm 1, lines 3-4).

    ``features [B*N, D + 1]`` (the clustering features and a column of ones,
    whose pooled value is the mass); ``pattern`` is the (centre, pixel) layout
    of the candidate entries of :math:`S^T` and ``weight [B*N*m]`` their values.
    Centres that received (almost) no mass keep ``fallback``.
    """
    sums = pattern.matmul(weight, features)
    total, mass = sums[:, :-1], sums[:, -1:]
    return torch.where(mass > 1e-12, total / mass.clamp_min(1e-12), fallback)


def slic_assignment(
    features: Tensor,
    candidates: Tensor,
    centers: Tensor,
    num_iterations: int = 3,
    threshold: float = ASSIGN_THRESHOLD,
) -> Tensor:
    r"""Run differentiable SLIC and return the sparse assignment weights.

    Args:
        features (Tensor): ``[B, N, D]`` clustering features (embedding and
            scaled coordinates); gradients flow back to them.
        candidates (LongTensor): ``[B, N, m]`` candidate centres per pixel,
            nearest first (:func:`nearest_centers`).
        centers (LongTensor): ``[B, K]`` pixel index of each sampled centre.
        num_iterations (int): :math:`N_{iter} \ge 0` (0 keeps the hard
            nearest-centre assignment of line 1).
        threshold (float): filter of line 7.

    Returns:
        Tensor ``[B, N, m]``: :math:`S_{ij}` for candidate ``j`` of pixel
        ``i``; rows sum to one.
    """
    b, n, d = features.shape
    k = centers.size(1)
    m = candidates.size(2)
    flat_feat = features.reshape(b * n, d)
    offset = (torch.arange(b, device=features.device) * k).view(b, 1, 1)
    centre = (candidates + offset).reshape(-1)
    pixel = torch.arange(b * n, device=features.device).repeat_interleave(m)
    pattern = SparsePattern(centre, pixel, b * k, b * n)  # S^T, fixed for all iterations
    # A centre that loses all its pixels falls back to its own pixel's features.
    fallback = features.gather(1, centers.unsqueeze(-1).expand(b, k, d)).reshape(b * k, d)

    # Line 1: hard assignment to the spatially nearest centre.
    weight = torch.zeros(b * n, m, dtype=features.dtype, device=features.device)
    weight[:, 0] = 1.0
    with_ones = torch.cat([flat_feat, flat_feat.new_ones(b * n, 1)], dim=1)
    for _ in range(num_iterations):
        centre_feat = _centre_features(with_ones, pattern, weight.reshape(-1), fallback)
        # ||x_i - c_j||^2 over the candidates; in-place ops on fresh buffers only
        diff = torch.index_select(centre_feat, 0, centre).view(b * n, m, d)
        diff = diff.sub_(flat_feat.unsqueeze(1))
        weight = torch.softmax(torch.einsum("pmd,pmd->pm", diff, diff).neg_(), dim=1)

    weight = weight * (weight >= threshold)
    weight = weight / weight.sum(1, keepdim=True).clamp_min(torch.finfo(weight.dtype).tiny)
    return weight.view(b, n, m)
