"""PNG plots of benchmark records, written atomically.

All plots take *records* (the dicts of :class:`~benchmarks.common.results.ResultStore`)
and field names, skip points whose values are missing (``None``/NaN), render
with matplotlib's Agg canvas through the object API (no ``pyplot``, no global
backend switch, nothing left open) and replace the target PNG atomically.

* :func:`scatter_plot` -- one labelled point per record (accuracy vs GFLOPs);
* :func:`line_plot` -- one line per series (time vs input size per conv);
* :func:`bar_plot` -- one bar per record, optionally grouped (metric per model and study);
* :func:`group_records` -- records -> series for :func:`line_plot`.
"""
from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["bar_plot", "group_records", "line_plot", "scatter_plot"]

PathLike = str | os.PathLike

#: Distinct colours (matplotlib's tab10) cycled over labels/series.
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]


def _value(record: Mapping[str, Any], field: str) -> float | None:
    v = record.get(field)
    if v is None or isinstance(v, bool):
        return None
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _new_figure(figsize: tuple[float, float]) -> tuple[Any, Any]:
    from pyg_hgconv.viz.figure import new_figure

    return new_figure(1, 1, figsize=figsize, squeeze=True)


def _plain_log_formatter(label_only_base: bool) -> Any:
    """A log-axis tick formatter printing ``20`` or ``0.5`` instead of ``2 x 10^1``."""
    from matplotlib import ticker

    class PlainLogFormatter(ticker.LogFormatter):
        def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
            return f"{x:g}"

    return PlainLogFormatter(labelOnlyBase=label_only_base)


def _finish(ax: Any, title: str | None, xlabel: str, ylabel: str,
            logx: bool, logy: bool) -> None:
    for log, axis, set_scale in ((logx, ax.xaxis, ax.set_xscale),
                                 (logy, ax.yaxis, ax.set_yscale)):
        if log:
            set_scale("log")
            axis.set_major_formatter(_plain_log_formatter(True))
            axis.set_minor_formatter(_plain_log_formatter(False))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)


def _save(fig: Any, path: PathLike, dpi: int) -> Path:
    from pyg_hgconv.viz.figure import save_figure

    return save_figure(fig, path, dpi=dpi)


def _check_log(values: Sequence[float], log: bool, axis: str) -> None:
    if log and any(v <= 0 for v in values):
        raise ValueError(f"log{axis}=True needs positive {axis} values")


def scatter_plot(
    points: Sequence[Mapping[str, Any]],
    x: str,
    y: str,
    label: str,
    path: PathLike,
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    logx: bool = False,
    logy: bool = False,
    xerr: str | None = None,
    yerr: str | None = None,
    figsize: tuple[float, float] = (6.0, 4.5),
    dpi: int = 150,
) -> Path:
    """One labelled point per record, e.g. accuracy (``y``) vs GFLOPs (``x``) per conv.

    Args:
        points: records holding ``x``, ``y`` and ``label`` fields.
        x, y: numeric fields for the axes; records missing either are skipped.
        label: field whose value annotates each point; points with the same
            label share a colour and marker.
        path: the ``.png`` to write.
        title, xlabel, ylabel: text (axis labels default to the field names).
        logx, logy: logarithmic axes (values must be positive).
        xerr, yerr: optional fields with symmetric errors (e.g. the standard
            deviation over seeds), drawn as error bars.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    fig, ax = _new_figure(figsize)
    kept = [(p, _value(p, x), _value(p, y)) for p in points]
    kept = [(p, vx, vy) for p, vx, vy in kept if vx is not None and vy is not None]
    _check_log([vx for _, vx, _ in kept], logx, "x")
    _check_log([vy for _, _, vy in kept], logy, "y")
    styles = {name: i for i, name in enumerate(dict.fromkeys(str(p.get(label, ""))
                                                            for p, _, _ in kept))}
    for p, vx, vy in kept:
        text = str(p.get(label, ""))
        i = styles[text]
        ax.scatter([vx], [vy], color=_COLORS[i % len(_COLORS)],
                   marker=_MARKERS[i % len(_MARKERS)], s=48, zorder=3)
        ex = _value(p, xerr) if xerr else None
        ey = _value(p, yerr) if yerr else None
        if ex or ey:
            ax.errorbar([vx], [vy], xerr=[ex] if ex else None, yerr=[ey] if ey else None,
                        fmt="none", ecolor=_COLORS[i % len(_COLORS)], capsize=3, zorder=2)
        ax.annotate(text, (vx, vy), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.margins(0.1)  # room for the annotations at the edges
    if not kept:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    _finish(ax, title, xlabel or x, ylabel or y, logx and bool(kept), logy and bool(kept))
    return _save(fig, path, dpi)


def group_records(
    records: Sequence[Mapping[str, Any]], by: str
) -> dict[str, list[Mapping[str, Any]]]:
    """Split records into series by the value of field ``by`` (first-seen order)."""
    series: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        series.setdefault(str(rec.get(by)), []).append(rec)
    return series


def line_plot(
    series: Mapping[str, Sequence[Mapping[str, Any]]],
    x: str,
    y: str,
    path: PathLike,
    *,
    yerr: str | None = None,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
    logx: bool = False,
    logy: bool = False,
    figsize: tuple[float, float] = (6.0, 4.5),
    dpi: int = 150,
) -> Path:
    """One line per series, e.g. time (``y``) vs input size (``x``) per conv.

    Args:
        series: name -> records (see :func:`group_records`); each line is
            drawn through its records sorted by ``x``, skipping missing values.
        x, y: numeric fields for the axes.
        yerr: optional field with a symmetric error (e.g. an IQR) drawn as bars.
        path: the ``.png`` to write.
        title, xlabel, ylabel: text (axis labels default to the field names).
        logx, logy: logarithmic axes (values must be positive).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    fig, ax = _new_figure(figsize)
    all_x: list[float] = []
    all_y: list[float] = []
    for i, (name, records) in enumerate(series.items()):
        pts = [(_value(r, x), _value(r, y), _value(r, yerr) if yerr else None) for r in records]
        pts = sorted((p for p in pts if p[0] is not None and p[1] is not None),
                     key=lambda p: p[0])
        if not pts:
            continue
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        all_x += xs
        all_y += ys
        style = {"color": _COLORS[i % len(_COLORS)], "marker": _MARKERS[i % len(_MARKERS)],
                 "label": str(name), "markersize": 4}
        if yerr:
            ax.errorbar(xs, ys, yerr=[p[2] or 0.0 for p in pts], capsize=2, **style)
        else:
            ax.plot(xs, ys, **style)
    _check_log(all_x, logx, "x")
    _check_log(all_y, logy, "y")
    if all_x:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    _finish(ax, title, xlabel or x, ylabel or y, logx and bool(all_x), logy and bool(all_y))
    return _save(fig, path, dpi)


def bar_plot(
    records: Sequence[Mapping[str, Any]],
    label: str,
    value: str,
    path: PathLike,
    *,
    group: str | None = None,
    error: str | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    logy: bool = False,
    horizontal: bool = False,
    figsize: tuple[float, float] = (6.0, 4.5),
    dpi: int = 150,
) -> Path:
    """Bars of ``value`` per ``label`` (categories in first-seen order).

    Args:
        records: records holding ``label`` and ``value`` fields.
        label: categorical field along the bar axis (e.g. the model).
        value: numeric field for the bar length; missing values draw no bar.
        path: the ``.png`` to write.
        group: optional second categorical field (e.g. the study); its values
            become side-by-side bars within each category, with a legend.
        error: optional field with a symmetric error drawn as error bars.
        title, ylabel: text (``ylabel`` defaults to ``value``).
        logy: logarithmic value axis (values must be positive).
        horizontal: horizontal bars (long category names).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    fig, ax = _new_figure(figsize)
    cats = list(dict.fromkeys(str(r.get(label)) for r in records))
    hues = list(dict.fromkeys(str(r.get(group)) for r in records)) if group else [None]
    width = 0.8 / len(hues)
    values: list[float] = []
    for j, hue in enumerate(hues):
        pos, heights, errs = [], [], []
        for r in records:
            v = _value(r, value)
            if v is None or (group and str(r.get(group)) != hue):
                continue
            pos.append(cats.index(str(r.get(label))) - 0.4 + width * (j + 0.5))
            heights.append(v)
            errs.append((_value(r, error) or 0.0) if error else 0.0)
        values += heights
        if not pos:
            continue
        kw = {"color": _COLORS[j % len(_COLORS)], "label": hue}
        if horizontal:
            ax.barh(pos, heights, height=width, xerr=errs if error else None, **kw)
        else:
            ax.bar(pos, heights, width=width, yerr=errs if error else None, **kw)
    _check_log(values, logy, "y")
    ticks = list(range(len(cats)))
    if horizontal:
        ax.set_yticks(ticks, cats)
        ax.invert_yaxis()
    else:
        ax.set_xticks(ticks, cats, rotation=30 if max(map(len, cats), default=0) > 8 else 0,
                      ha="right" if max(map(len, cats), default=0) > 8 else "center")
    if group and values:
        ax.legend(fontsize=8, title=group)
    if not values:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    vlabel = ylabel or value
    if horizontal:
        _finish(ax, title, vlabel, label, logy and bool(values), False)
    else:
        _finish(ax, title, label, vlabel, False, logy and bool(values))
    return _save(fig, path, dpi)


def seed_plot(
    records: Sequence[Mapping[str, Any]],
    label: str,
    value: str,
    path: PathLike,
    *,
    group: str | None = None,
    title: str | None = None,
    ylabel: str | None = None,
    figsize: tuple[float, float] = (7.0, 4.5),
    dpi: int = 150,
) -> Path:
    """The spread over seeds: one dot per record (a seed) and the mean with a
    ± one-standard-deviation bar per ``label`` (and ``group``, side by side).

    Args:
        records: per-seed records holding ``label``, ``value`` (and ``group``).
        label: categorical field along the x axis (e.g. the conv).
        value: numeric field (e.g. ``miou``).
        path: the ``.png`` to write.
        group: optional second categorical field (e.g. the training protocol);
            its values are drawn side by side within each category, with a legend.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    from benchmarks.common.summary import mean_std

    fig, ax = _new_figure(figsize)
    cats = list(dict.fromkeys(str(r.get(label)) for r in records))
    hues = list(dict.fromkeys(str(r.get(group)) for r in records)) if group else [None]
    width = 0.8 / len(hues)
    drawn = False
    for j, hue in enumerate(hues):
        color = _COLORS[j % len(_COLORS)]
        for i, cat in enumerate(cats):
            values = [_value(r, value) for r in records if str(r.get(label)) == cat
                      and (not group or str(r.get(group)) == hue)]
            values = [v for v in values if v is not None]
            if not values:
                continue
            centre = i - 0.4 + width * (j + 0.5)
            offsets = [width * 0.25 * (k - (len(values) - 1) / 2) / max(len(values), 1)
                       for k in range(len(values))]
            ax.scatter([centre + o for o in offsets], values, color=color, s=14, alpha=0.7,
                       zorder=3, label=hue if group and not any(
                           t.get_label() == hue for t in ax.collections) else None)
            mean, std, _ = mean_std(values)
            ax.errorbar([centre], [mean], yerr=[std], color=color, marker="_", markersize=14,
                        capsize=4, zorder=4)
            drawn = True
    ax.set_xticks(list(range(len(cats))), cats,
                  rotation=30 if max(map(len, cats), default=0) > 8 else 0,
                  ha="right" if max(map(len, cats), default=0) > 8 else "center")
    if group and drawn:
        ax.legend(fontsize=8, title=group)
    if not drawn:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    _finish(ax, title, label, ylabel or value, False, False)
    return _save(fig, path, dpi)
