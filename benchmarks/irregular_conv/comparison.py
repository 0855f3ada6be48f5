r"""The task part's statistics: models over seeds, paired comparisons, rankings.

Every model of the task part is trained with the same seeds, the same data
order and augmentation per seed; so two models are compared seed by seed
(:func:`~benchmarks.common.summary.paired_difference`): a difference is
**resolved** when every seed agrees on its sign and a paired t-test rejects
"no difference" at 5% (:data:`~benchmarks.common.summary.RESOLVED_ALPHA`)
after Holm's correction over the **family** of every pair of models of the
same protocol (:func:`~benchmarks.common.summary.paired_differences`), else
**not resolved**. The family is the protocol block, because the ranking and
the findings of one block are claims made together from the same runs: with
four models that is six tests, and uncorrected one of them is called by
chance in up to 30% of runs. A ranking lists the models by their mean and
joins neighbours by ``>`` where their difference is resolved, by ``~`` where
it is not.

The paper's Table 3 (HG-ResNet101-Dilation, mIoU %) is printed beside ours for
reference; it was trained on other data sets at a far larger scale.
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.common.summary import (
    format_pm,
    holm_text,
    mean_std,
    paired_differences,
    verdict,
)

__all__ = ["HG_MODEL", "PAPER_TABLE3", "difference_text", "family", "model_summaries",
           "pairwise", "ranking", "versus"]

Record = Mapping[str, Any]

#: Table 3 of the paper: conv -> protocol -> (Cityscapes, ADE20K, PASCAL-Context) mIoU %
PAPER_TABLE3: dict[str, dict[str, tuple[float, float, float]]] = {
    "gcn": {"scratch": (75.8, 37.3, 41.7)},
    "dynamic_edge": {"scratch": (77.2, 39.7, 45.9)},
    "gmm": {"transfer": (77.2, 40.3, 45.9)},
    "spline": {"transfer": (78.4, 41.2, 45.5)},
    "hgconv": {"scratch": (77.7, 40.6, 44.7), "transfer": (78.8, 42.0, 47.5)},
}
#: the HG-Conv model every other model is compared with
HG_MODEL = "HG-ResNet18 (hgconv)"
#: fields averaged over the seeds of a model
AVERAGED = ("miou", "pixel_accuracy", "mean_accuracy", "gflops_per_image", "stage4_gflops",
            "groups", "train_time_s", "params")


def model_key(record: Record) -> tuple[str, str]:
    """``(protocol, model)`` of a task record."""
    return str(record.get("protocol")), str(record["model"])


def _ok(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.get("status") == "ok"]


def by_seed(records: Sequence[Record], protocol: str, model: str,
            field: str = "miou") -> dict[int, float]:
    """``seed -> field`` of one model."""
    return {int(r["seed"]): r.get(field) for r in _ok(records)
            if model_key(r) == (protocol, model) and r.get(field) is not None}


def family(records: Sequence[Record], protocol: str,
           field: str = "miou") -> dict[tuple[str, str], dict[str, Any]]:
    """Every pair of models of ``protocol``, compared over the seeds both have
    and resolved together (Holm's correction over the block).

    Returns ``{(a, b): comparison}`` with ``a`` the model of the higher mean
    (ties: the one seen first); each comparison adds ``seeds``, ``a``, ``b``
    and ``protocol`` to :func:`~benchmarks.common.summary.paired_difference`'s
    fields.
    """
    models = list(dict.fromkeys(model for p, model in (model_key(r) for r in _ok(records))
                                if p == protocol))
    values = {m: by_seed(records, protocol, m, field) for m in models}
    means = {m: mean_std(list(values[m].values()))[0] for m in models}
    rank = {m: v if math.isfinite(v) else -math.inf for m, v in means.items()}
    pairs = []
    for a, b in itertools.combinations(models, 2):
        if rank[b] > rank[a]:
            a, b = b, a
        pairs.append((a, b, sorted(set(values[a]) & set(values[b]))))
    compared = paired_differences([([values[a][s] for s in seeds], [values[b][s] for s in seeds])
                                   for a, b, seeds in pairs])
    return {(a, b): {**c, "seeds": seeds, "a": a, "b": b, "protocol": protocol}
            for (a, b, seeds), c in zip(pairs, compared, strict=True)}


def _reversed(comparison: Mapping[str, Any]) -> dict[str, Any]:
    """The same comparison read as ``b - a``."""
    return {**comparison, "a": comparison["b"], "b": comparison["a"],
            "diffs": [-d for d in comparison["diffs"]], "mean": -comparison["mean"],
            "t": -comparison["t"], "sign": -comparison["sign"]}


def _in_family(pairs: Mapping[tuple[str, str], dict[str, Any]], protocol: str, a: str,
               b: str) -> dict[str, Any]:
    """``a - b`` read from a :func:`family`."""
    if (a, b) in pairs:
        return pairs[(a, b)]
    if (b, a) in pairs:
        return _reversed(pairs[(b, a)])
    raise ValueError(f"'a' and 'b' must be two models trained under protocol {protocol!r}; "
                     f"got {a!r} and {b!r}")


def versus(records: Sequence[Record], protocol: str, a: str, b: str,
           field: str = "miou") -> dict[str, Any]:
    """The paired comparison of models ``a`` and ``b`` (``a - b``) over the
    seeds both have, within ``protocol``, as resolved in its :func:`family`."""
    return _in_family(family(records, protocol, field), protocol, a, b)


def model_summaries(records: Sequence[Record]) -> list[dict[str, Any]]:
    """One row per (protocol, model): the mean and standard deviation of
    :data:`AVERAGED` over its seeds, the per-seed mIoU and the paired
    comparison with the HG-Conv model and with the grid model of the same
    protocol."""
    ok = _ok(records)
    keys = list(dict.fromkeys(model_key(r) for r in ok))
    rows = []
    for protocol, model in keys:
        mine = sorted((r for r in ok if model_key(r) == (protocol, model)),
                      key=lambda r: r["seed"])
        first = mine[0]
        row: dict[str, Any] = {"protocol": protocol, "model": model, "conv": first["conv"],
                               "cell": first["cell"], "kind": first.get("kind"),
                               "seeds": len(mine),
                               "per_seed": {int(r["seed"]): r.get("miou") for r in mine},
                               "transfer_note": first.get("transfer_note")}
        for field in AVERAGED:
            mean, std, _ = mean_std([r.get(field) for r in mine])
            row[field], row[f"{field}_std"] = mean, std
        rows.append(row)
    families = {protocol: family(records, protocol)
                for protocol in dict.fromkeys(p for p, _ in keys)}
    for row in rows:
        hg, protocol = HG_MODEL, row["protocol"]
        grid = next((r["model"] for r in rows if r["protocol"] == protocol
                     and r["cell"] == "resnet18-dilated"), None)
        if row["model"] != hg and any(r["model"] == hg and r["protocol"] == protocol
                                      for r in rows):
            row["hg_vs"] = _in_family(families[protocol], protocol, hg, row["model"])
        if grid is not None and row["model"] != grid:
            row["vs_grid"] = _in_family(families[protocol], protocol, row["model"], grid)
    return rows


def pairwise(records: Sequence[Record], protocol: str) -> list[dict[str, Any]]:
    """Every pair of models of ``protocol``, better mean first (:func:`family`)."""
    return list(family(records, protocol).values())


def ranking(records: Sequence[Record], protocol: str, field: str = "miou",
            scale: float = 100.0) -> str:
    """The models of ``protocol`` by mean ``field``, neighbours joined by ``>``
    (resolved) or ``~`` (not resolved)."""
    rows = sorted((r for r in model_summaries(records) if r["protocol"] == protocol),
                  key=lambda r: -(r[field] if r[field] is not None else -1e9))
    if not rows:
        return ""
    pairs = family(records, protocol, field)
    parts = [_label(rows[0], field, scale)]
    for upper, lower in itertools.pairwise(rows):
        comparison = _in_family(pairs, protocol, upper["model"], lower["model"])
        parts.append((" > " if comparison["resolved"] else " ~ ") + _label(lower, field, scale))
    return "".join(parts)


def _label(row: Mapping[str, Any], field: str, scale: float) -> str:
    value = format_pm(row[field], row[f"{field}_std"], seeds=row["seeds"], scale=scale)
    return f"{row['model']} {value}"


def difference_text(comparison: Mapping[str, Any] | None, scale: float = 100.0) -> str:
    """``"+1.2 ± 0.4 (better, p=0.002, Holm 0.012)"``: a paired comparison in
    points, with its verdict, its own p-value and, in a family of several, the
    adjusted one the verdict is called on."""
    if not comparison or not comparison.get("n"):
        return "-"
    text = format_pm(comparison["mean"], comparison["std"], seeds=comparison["n"], scale=scale,
                     digits=1)
    sign = "+" if comparison["mean"] > 0 else ""
    return f"{sign}{text} ({verdict(comparison)}, p={comparison['p']:.2g}{holm_text(comparison)})"
