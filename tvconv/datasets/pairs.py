"""Balanced genuine/impostor verification pairs drawn from labelled items."""
from __future__ import annotations

import torch
from torch import Tensor


def verification_pairs(labels: Tensor, num_pairs: int | None = None,
                       seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    r"""Build balanced, seeded face-verification pairs from item labels.

    *Genuine* pairs are unordered pairs of distinct items with the same label,
    *impostor* pairs unordered pairs with different labels; no pair occurs twice.
    With ``num_pairs=None`` every genuine pair is used, plus as many impostor
    pairs drawn uniformly without replacement. Otherwise ``num_pairs // 2``
    pairs of each kind are drawn. The two kinds always have equal counts (capped
    by the rarer kind). Pairs are listed
    genuine first, then impostor; the draws depend only on ``labels`` and
    ``seed``.

    Args:
        labels (Tensor): integer labels ``[N]``.
        num_pairs (int, optional): total number of pairs (even).
        seed (int): seed of the draws. (default: :obj:`0`)

    Returns:
        (Tensor, Tensor, Tensor): item indices ``a`` and ``b`` (``int64 [P]``,
        ``a < b``) and ``same`` (``bool [P]``).
    """
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or labels.is_floating_point():
        raise ValueError(f"'labels' must be a 1-D integer tensor (got {labels.dtype} "
                         f"{tuple(labels.shape)})")
    if num_pairs is not None and num_pairs < 2:
        raise ValueError(f"'num_pairs' must be >= 2 (got {num_pairs})")
    a, b = torch.triu_indices(labels.numel(), labels.numel(), offset=1)
    same = labels[a] == labels[b]
    genuine, impostor = same.nonzero().flatten(), (~same).nonzero().flatten()
    if genuine.numel() == 0 or impostor.numel() == 0:
        raise ValueError("'labels' must contain a repeated label and two distinct labels")
    generator = torch.Generator().manual_seed(int(seed))
    per_kind = genuine.numel() if num_pairs is None else num_pairs // 2
    n = min(per_kind, genuine.numel(), impostor.numel())
    gen_pick = genuine[torch.randperm(genuine.numel(), generator=generator)[:n].sort().values]
    imp_pick = impostor[torch.randperm(impostor.numel(), generator=generator)[:n].sort().values]
    pick = torch.cat([gen_pick, imp_pick])
    return a[pick], b[pick], same[pick]
