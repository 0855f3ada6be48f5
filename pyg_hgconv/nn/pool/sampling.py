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

Centres are returned sorted by pixel index (raster order), so groups are
numbered from the top-left.
"""
from __future__ import annotations

import torch
from torch import Tensor

SAMPLERS = ("random", "importance", "topk_random")


def _uniform_keys(shape, like: Tensor, generator: torch.Generator | None,
                  shared: bool = False) -> Tensor:
    """Uniform keys ``[B, N]``; with ``shared`` one row drawn for the whole batch."""
    b, n = shape
    keys = torch.rand((1 if shared else b, n), generator=generator, device=like.device,
                      dtype=torch.float32)
    return keys.expand(b, n).clone() if shared else keys


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

    if sampler == "random":
        keys = _uniform_keys((b, n), importance, generator, batch_invariant)
        idx = keys.topk(num_centers, dim=1).indices
    elif sampler == "importance":
        # Gumbel top-k: argsort of log w + Gumbel noise. Normalising by the
        # per-image maximum and adding a floor keeps flat images uniform.
        peak = importance.amax(1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)
        weight = importance / peak + 1e-6
        u = _uniform_keys((b, n), importance, generator, batch_invariant).clamp_min(1e-12)
        keys = weight.log() - torch.log(-torch.log(u))
        idx = keys.topk(num_centers, dim=1).indices
    else:
        num_important = int(beta * num_centers)
        num_candidates = min(n, max(num_important, round(oversample * num_centers)))
        keys = _uniform_keys((b, n), importance, generator, batch_invariant)
        candidates = keys.topk(num_candidates, dim=1).indices
        best = importance.gather(1, candidates).topk(num_important, dim=1).indices
        chosen = candidates.gather(1, best)
        rest_keys = _uniform_keys((b, n), importance, generator, batch_invariant)
        rest_keys.scatter_(1, chosen, -1.0)
        rest = rest_keys.topk(num_centers - num_important, dim=1).indices
        idx = torch.cat([chosen, rest], dim=1)
    return idx.sort(dim=1).values
