"""Mean and spread of per-seed records, the aggregation every TVConv study reports."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["mean_std", "seed_summary"]


def mean_std(values: Sequence[float | None]) -> tuple[float, float, int]:
    """``(mean, sample standard deviation, n)`` of the finite values.

    The standard deviation uses ``n - 1`` (0 for a single value); with no
    finite value the result is ``(nan, nan, 0)``.
    """
    kept = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(kept)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(kept) / n
    if n == 1:
        return mean, 0.0, 1
    return mean, math.sqrt(sum((v - mean) ** 2 for v in kept) / (n - 1)), n


def seed_summary(records: Sequence[Mapping[str, Any]], by: Sequence[str],
                 metrics: Sequence[str]) -> list[dict[str, Any]]:
    """One row per distinct value of the ``by`` fields, with ``<metric>_mean``,
    ``<metric>_std`` and ``seeds`` (the number of records averaged).

    Rows keep the first-seen order of their group; every other field of the
    group's first record is kept as it is (e.g. MAC counts that do not vary
    with the seed).
    """
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for rec in records:
        groups.setdefault(tuple(repr(rec.get(k)) for k in by), []).append(rec)
    rows = []
    for members in groups.values():
        row = {k: v for k, v in members[0].items() if k not in metrics and k != "seed"}
        for metric in metrics:
            mean, std, _ = mean_std([m.get(metric) for m in members])
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean, std
        row["seeds"] = len(members)
        rows.append(row)
    return rows
