"""Fixed, seeded splits of a sorted item list (the one split rule of every loader).

Data sets that ship without official splits (road tiles, ECSSD, ORL faces,
MNIST's test set) are split in code, reproducibly:

1. the items are put in a canonical order (sorted file names, or index order);
2. a permutation is drawn from ``torch.Generator().manual_seed(seed)``;
3. consecutive chunks of the permutation become the splits, in the order the
   splits are named, with the sizes given by :func:`split_sizes`;
4. each split's indices are sorted again, so a split lists its items in
   canonical order.

The same ``(n, sizes, seed)`` therefore always gives the same disjoint splits,
on every machine (torch's CPU generator is a fixed Mersenne twister).
"""
from __future__ import annotations

from collections.abc import Mapping

import torch


def split_sizes(num_items: int, fractions: Mapping[str, float]) -> dict[str, int]:
    r"""Turn split fractions into item counts that add up to ``num_items``.

    Every split but the first gets ``round(fraction * num_items)`` items; the
    first split takes the rest, so rounding never loses or duplicates an item.

    Args:
        num_items (int): number of items to split.
        fractions (Mapping[str, float]): split name -> fraction; the fractions
            must be positive and sum to 1.

    Returns:
        dict[str, int]: split name -> number of items, in the order given.
    """
    if num_items < 0:
        raise ValueError(f"'num_items' must be >= 0 (got {num_items})")
    if not fractions:
        raise ValueError("'fractions' must name at least one split")
    if any(f <= 0 for f in fractions.values()):
        raise ValueError(f"'fractions' must all be positive (got {dict(fractions)})")
    total = sum(fractions.values())
    if abs(total - 1.0) > 1e-6:
        raise ValueError(f"'fractions' must sum to 1 (got {total:.6f} from {dict(fractions)})")
    names = list(fractions)
    sizes = {name: round(fractions[name] * num_items) for name in names[1:]}
    first = num_items - sum(sizes.values())
    if first < 0:
        raise ValueError(f"cannot split {num_items} items by {dict(fractions)}")
    return {names[0]: first, **sizes}


def seeded_split(num_items: int, sizes: Mapping[str, int], seed: int = 0) -> dict[str, list[int]]:
    r"""Split ``range(num_items)`` into disjoint, seeded, sorted index lists.

    Args:
        num_items (int): number of items (indices ``0 .. num_items - 1``).
        sizes (Mapping[str, int]): split name -> number of items; the sizes must
            add up to ``num_items`` (see :func:`split_sizes`).
        seed (int): seed of the permutation. (default: :obj:`0`)

    Returns:
        dict[str, list[int]]: split name -> sorted item indices.
    """
    if any(s < 0 for s in sizes.values()):
        raise ValueError(f"'sizes' must be >= 0 (got {dict(sizes)})")
    if sum(sizes.values()) != num_items:
        raise ValueError(
            f"'sizes' must add up to num_items={num_items} (got {dict(sizes)})"
        )
    generator = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(num_items, generator=generator).tolist()
    out: dict[str, list[int]] = {}
    start = 0
    for name, size in sizes.items():
        out[name] = sorted(perm[start:start + size])
        start += size
    return out
