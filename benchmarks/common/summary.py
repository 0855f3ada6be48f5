"""Mean and spread of per-seed records, the aggregation every multi-seed benchmark reports."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["RESOLVED_ALPHA", "format_mean_std", "format_pm", "holm_adjusted", "holm_text",
           "mean_std", "paired_difference", "paired_differences", "seed_summary", "verdict"]


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


#: significance level of the paired comparison that calls a difference resolved
RESOLVED_ALPHA = 0.05


def paired_difference(a: Sequence[float | None], b: Sequence[float | None], *,
                      alpha: float = RESOLVED_ALPHA) -> dict[str, Any]:
    r"""Compare two models over the same seeds: ``a[i] - b[i]`` per seed ``i``.

    The rule that calls a difference **resolved** (documented in every report
    that uses it): every seed agrees on its sign *and* a paired two-sided
    t-test rejects "no difference" at level ``alpha``,

    .. math::
        t = \frac{\bar d}{s_d / \sqrt{n}}, \qquad p = 2\,(1 - F_{t, n-1}(|t|)) < \alpha,

    with :math:`d_i` the per-seed differences. With 3 seeds this asks for
    :math:`|t| > 4.30`: a difference several times its seed-to-seed spread.
    Anything else is **not resolved**: the seeds do not say which model is
    better.

    A single comparison is a family of one; where one report makes several,
    :func:`paired_differences` corrects them together.

    Returns:
        ``{"diffs", "mean", "std", "n", "t", "p", "same_sign", "p_adjusted",
        "family_size", "resolved", "sign"}``; ``sign`` is ``+1`` (``a``
        better), ``-1`` or ``0`` (not resolved). Seeds where either value is
        missing are left out.
    """
    from scipy import stats

    diffs = [float(x) - float(y) for x, y in zip(a, b, strict=True)
             if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
    mean, std, n = mean_std(diffs)
    t = p = math.nan
    if n >= 2 and std > 0:
        t = mean / (std / math.sqrt(n))
        p = float(2 * stats.t.sf(abs(t), df=n - 1))
    elif n >= 2 and mean != 0:  # identical non-zero differences: no spread at all
        t, p = math.copysign(math.inf, mean), 0.0
    same_sign = n >= 2 and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs))
    return _resolve({"diffs": diffs, "mean": mean, "std": std, "n": n, "t": t, "p": p,
                     "same_sign": same_sign}, p, 1, alpha)


def _resolve(comparison: dict[str, Any], p_adjusted: float, family_size: int,
             alpha: float) -> dict[str, Any]:
    resolved = bool(comparison["same_sign"] and math.isfinite(p_adjusted)
                    and p_adjusted < alpha)
    return {**comparison, "p_adjusted": p_adjusted, "family_size": family_size,
            "resolved": resolved,
            "sign": (1 if comparison["mean"] > 0 else -1) if resolved else 0}


def holm_adjusted(p_values: Sequence[float]) -> list[float]:
    r"""Holm's step-down adjusted p-values of a family of tests.

    With the :math:`m` finite p-values sorted, :math:`p_{(1)} \le \dots \le p_{(m)}`,

    .. math::
        \tilde p_{(i)} = \max_{j \le i} \min\bigl(1, (m - j + 1)\, p_{(j)}\bigr),

    so rejecting where :math:`\tilde p < \alpha` keeps the chance of *any*
    false call in the family at most :math:`\alpha` (Holm 1979). NaN entries
    (no test possible, e.g. one seed) stay NaN and do not count in :math:`m`.
    Returned in the input's order.
    """
    finite = sorted((p, i) for i, p in enumerate(p_values) if math.isfinite(p))
    m = len(finite)
    out = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(finite):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def paired_differences(pairs: Sequence[tuple[Sequence[float | None], Sequence[float | None]]],
                       *, alpha: float = RESOLVED_ALPHA) -> list[dict[str, Any]]:
    r""":func:`paired_difference` of every ``(a, b)`` of one family of
    comparisons, resolved on Holm's adjusted p-values (:func:`holm_adjusted`).

    A report that calls several differences from the same runs is such a
    family: with :math:`m` uncorrected tests at 5% one of them is called by
    chance in up to :math:`m \cdot 5\%` of runs, which is how two runs that
    differ only in their base seed come to call different differences. Every
    entry keeps its own ``p`` and adds ``p_adjusted`` and ``family_size``.
    """
    results = [paired_difference(a, b, alpha=alpha) for a, b in pairs]
    adjusted = holm_adjusted([r["p"] for r in results])
    size = sum(math.isfinite(p) for p in adjusted)
    return [_resolve(r, p, size, alpha) for r, p in zip(results, adjusted, strict=True)]


def holm_text(comparison: Mapping[str, Any]) -> str:
    """``", Holm 0.037"``: the adjusted p-value a comparison of a family of
    several was called on (:func:`paired_differences`), else ``""``."""
    adjusted = comparison.get("p_adjusted", math.nan)
    if comparison.get("family_size", 1) > 1 and math.isfinite(adjusted):
        return f", Holm {adjusted:.2g}"
    return ""


def verdict(comparison: Mapping[str, Any], better: str = "better", worse: str = "worse") -> str:
    """``better`` / ``worse`` for a resolved :func:`paired_difference`, else
    ``"not resolved"``."""
    if not comparison.get("resolved"):
        return "not resolved"
    return better if comparison["sign"] > 0 else worse
