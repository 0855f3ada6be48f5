r"""Cluster-centre samplers (paper, Sec. 4.1, supplementary C and Table 4).

All samplers draw pixel indices *without replacement* and are vectorised over
the batch (a top-k over random keys per image):

* ``'random'``: uniform;
* ``'importance'``: proportional to the importance map (Gumbel top-k, exact
  sequential weighted sampling without replacement);
* ``'topk_random'``: PointRend's scheme [Kirillov et al. 2020]: draw
  :math:`kK` candidates uniformly, keep the :math:`\beta K` most important,
  fill the remaining :math:`(1 - \beta) K` uniformly from the other pixels
  (paper: :math:`k = 7, \beta = 0.75`).

Every "largest" takes equal keys (or importances) in index order, as a stable
sort does, so the fused CPU kernel (:mod:`~pyg_hgconv.nn.pool.fused_sampling`,
taken on the CPU) and the PyTorch path pick the same pixels. Centres are returned
sorted by pixel index (raster order), so groups are numbered from the top-left.
"""
from __future__ import annotations

import torch
from torch import Tensor

from pyg_hgconv.nn.pool.fused_sampling import fused_sampling_applies, fused_select_centers

SAMPLERS = ("random", "importance", "topk_random")


def _uniform_keys(shape, like: Tensor, generator: torch.Generator | None,
                  shared: bool = False) -> Tensor:
    """Uniform keys ``[B, N]``; with ``shared`` one row ``[1, N]`` drawn for the
    whole batch."""
    b, n = shape
    return torch.rand((1 if shared else b, n), generator=generator, device=like.device,
                      dtype=torch.float32)


def largest(keys: Tensor, k: int) -> Tensor:
    """The indices of the ``k`` largest keys of every row, largest first; equal
    keys in index order (a stable sort: the rule the fused kernel follows too)."""
    return keys.sort(dim=1, descending=True, stable=True).indices[:, :k]


def sample_centers(
    importance: Tensor,
    num_centers: int,
    sampler: str = "topk_random",
    oversample: float = 7.0,
    beta: float = 0.75,
    generator: torch.Generator | None = None,
    batch_invariant: bool = False,
) -> Tensor:
    r"""Sample ``num_centers`` distinct pixels per image.

    Args:
        importance (Tensor): ``[B, N]`` non-negative importance per pixel.
        num_centers (int): :math:`K \le N`.
        sampler (str): ``'random' | 'importance' | 'topk_random'``.
        oversample (float): :math:`k`, candidates drawn per centre by
            ``'topk_random'``.
        beta (float): :math:`\beta \in [0, 1]`, fraction of importance-driven
            centres of ``'topk_random'``.
        generator (torch.Generator, optional): source of randomness (fix it
            for deterministic sampling).
        batch_invariant (bool): draw one row of random keys for the whole
            batch, so that an image's centres depend only on its own importance
            map and the generator state, not on its position in the batch or
            the batch size (used in evaluation).

    Returns:
        LongTensor ``[B, K]`` of pixel indices, sorted per row.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"'sampler' must be one of {SAMPLERS} (got {sampler!r})")
    b, n = importance.shape
    if not 1 <= num_centers <= n:
        raise ValueError(f"'num_centers' must lie in [1, {n}] (got {num_centers})")
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"'beta' must lie in [0, 1] (got {beta})")
    if oversample < 1.0:
        raise ValueError(f"'oversample' must be >= 1 (got {oversample})")
    importance = importance.detach().float()
    fused = fused_sampling_applies(importance)
    if sampler == "topk_random":
        num_important = int(beta * num_centers)
        num_candidates = min(n, max(num_important, round(oversample * num_centers)))
        keys = _uniform_keys((b, n), importance, generator, batch_invariant)
        rest_keys = _uniform_keys((b, n), importance, generator, batch_invariant)
        if fused:
            return fused_select_centers(keys, importance, rest_keys, b, num_centers,
                                        num_important, num_candidates)
        candidates = largest(keys, num_candidates).expand(b, -1)  # keys: [1 or B, N]
        best = largest(importance.gather(1, candidates), num_important)
        chosen = candidates.gather(1, best)
        rest_keys = rest_keys.expand(b, n).clone()
        rest_keys.scatter_(1, chosen, -1.0)
        rest = largest(rest_keys, num_centers - num_important)
        return torch.cat([chosen, rest], dim=1).sort(dim=1).values
    keys = _uniform_keys((b, n), importance, generator, batch_invariant)
    if sampler == "importance":
        # Gumbel top-k: argsort of log w + Gumbel noise. Normalising by the
        # per-image maximum and adding a floor keeps flat images uniform.
        peak = importance.amax(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        weight = importance / peak + 1e-6
        keys = weight.log() - torch.log(-torch.log(keys.clamp_min(1e-12)))
    if fused:
        return fused_select_centers(keys, None, None, b, num_centers, 0, 0)
    return largest(keys, num_centers).expand(b, -1).sort(dim=1).values
