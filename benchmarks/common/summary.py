"""Mean and spread of per-seed records, the aggregation every multi-seed benchmark reports."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["format_mean_std", "format_pm", "mean_std", "seed_summary"]


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


def format_pm(mean: float | None, std: float | None = None, *, seeds: int = 1,
              scale: float = 1.0, digits: int = 1, missing: str = "-") -> str:
    """``"mean ± std"`` (times ``scale``, ``digits`` decimals); the mean alone for a
    single seed or no finite std, ``missing`` without a finite mean."""
    if mean is None or not math.isfinite(mean):
        return missing
    text = f"{scale * mean:.{digits}f}"
    if seeds > 1 and std is not None and math.isfinite(std):
        text += f" ± {scale * std:.{digits}f}"
    return text


def format_mean_std(row: Mapping[str, Any], field: str, **options: Any) -> str:
    """:func:`format_pm` of a :func:`seed_summary` row's ``field``."""
    return format_pm(row.get(f"{field}_mean"), row.get(f"{field}_std"),
                     seeds=row.get("seeds", 1), **options)
