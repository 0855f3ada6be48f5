"""Tables, plots and notes of the irregular-convolution benchmark (from its records only)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common.plots import group_records, line_plot, scatter_plot
from benchmarks.common.results import markdown_table
from pyg_hgconv.nn.conv.registry import get_conv

from .operator import GRAPH_CONVS, GRID_CONVS

__all__ = ["REFERENCE_RATIO", "fairness_notes", "findings", "operator_tables", "plots",
           "task_table"]

#: the paper's default downsampling ratio: the headline rows use it
REFERENCE_RATIO = "1/64"
Record = Mapping[str, Any]


def _ok(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.get("status") == "ok"]


def _size(r: Record) -> str:
    return f"{r['height']}x{r['width']}"


def _int(v: Any) -> str:
    return f"{round(v):,d}"


def _status(r: Record) -> str:
    """``ok``, ``error: <reason>`` or ``skipped: <reason>``."""
    status = r.get("status", "?")
    if status == "ok":
        return "ok"
    return f"{status}: {r.get('error') or r.get('reason') or '?'}"


def _short_status(r: Record) -> str:
    """``ok``, ``error`` or ``skipped`` (the reasons are listed once elsewhere)."""
    return str(r.get("status", "?"))


def conv_table(records: Sequence[Record]) -> tuple[str, str]:
    """One row per conv: what it is, its size settings and its parameters, at
    the largest map (TVConv's parameters grow with the map). Returns
    ``(title, table)``."""
    largest = max((r["pixels"] for r in records), default=0)
    at_largest = [r for r in records if r["pixels"] == largest]
    reference = next((r["params"] for r in _ok(at_largest) if r["conv"] == "hgconv"), None)
    rows = []
    for conv in (*GRAPH_CONVS, *GRID_CONVS):
        mine = [r for r in at_largest if r["conv"] == conv]
        first = (_ok(mine) or mine or [{}])[0]
        row = {"conv": conv, "kind": get_conv(conv).kind, "what": get_conv(conv).description,
               "settings": first.get("settings"), "params": first.get("params"),
               "params_inference": first.get("params_inference"),
               "status": _status(first) if first else "not run"}
        if reference and row["params"] is not None:
            row["vs_hgconv"] = row["params"] / reference
        rows.append(row)
    size = _size(at_largest[0]) if at_largest else "-"
    channels = at_largest[0]["channels"] if at_largest else "C"
    title = (f"Convolutions compared: size settings and parameters, {channels} -> {channels} "
             f"channels, at the {size} maps")
    return title, markdown_table(rows, [
        ("conv", "conv"), ("kind", "kind"), ("what", "what"), ("settings", "size settings"),
        ("params", "params", _int), ("vs_hgconv", "params / HG-Conv", ".2f"),
        ("params_inference", "params at inference", _int), ("status", "status")])


def headline_table(records: Sequence[Record]) -> tuple[str, str]:
    """The largest map at the reference ratio: every conv side by side, with
    time and FLOPs relative to the dense 3x3 conv."""
    ok = _ok(records)
    if not ok:
        return "", markdown_table([], [("conv", "conv")])
    largest = max((r["pixels"] for r in records), default=0)
    rows = [r for r in records if r["pixels"] == largest
            and (r["kind"] == "grid" or r.get("ratio_label") == REFERENCE_RATIO)]
    dense = next((r for r in _ok(rows) if r["conv"] == "conv2d"), None)
    out = []
    for r in rows:
        row = dict(r)
        row["status"] = _short_status(r)
        if r.get("status") == "ok" and dense is not None:
            unit_ms = r.get("module_fwd_ms", r["fwd_ms"])
            unit_bwd = r.get("module_fwdbwd_ms", r["fwdbwd_ms"])
            unit_flops = r.get("module_mflops", r["mflops"])
            row["time_vs_dense"] = unit_ms / dense["fwd_ms"]
            row["train_vs_dense"] = unit_bwd / dense["fwdbwd_ms"]
            row["flops_vs_dense"] = unit_flops / dense["mflops"]
        out.append(row)
    title = (f"Every conv on the {_size(rows[0])} maps (graph convs at ratio {REFERENCE_RATIO}); "
             "'vs dense' compares the whole HG module (clustering included) with Conv2d 3x3"
             if rows else "")
    return title, markdown_table(out, [
        ("conv", "conv"), ("groups", "groups/img", ".0f"), ("conv_edges", "edges/img", ".0f"),
        ("fwd_ms", "conv fwd ms", ".2f"), ("fwdbwd_ms", "conv fwd+bwd ms", ".2f"),
        ("mflops", "conv MFLOPs/img", ".2f"), ("module_fwd_ms", "module fwd ms", ".2f"),
        ("module_fwdbwd_ms", "module fwd+bwd ms", ".2f"),
        ("module_mflops", "module MFLOPs/img", ".2f"),
        ("time_vs_dense", "fwd time vs dense", ".2f"),
        ("train_vs_dense", "fwd+bwd vs dense", ".2f"),
        ("flops_vs_dense", "FLOPs vs dense", ".3f"), ("status", "status")])


def operator_table(records: Sequence[Record]) -> str:
    """Every operator cell (one row per record)."""
    rows = []
    for r in records:
        row = dict(r)
        row["map"] = _size(r)
        row["status"] = _short_status(r)
        rows.append(row)
    return markdown_table(rows, [
        ("map", "map"), ("ratio_label", "ratio"), ("conv", "conv"),
        ("groups", "groups/img", ".1f"), ("conv_edges", "edges/img", ".0f"),
        ("fwd_ms", "fwd ms", ".3f"), ("fwdbwd_ms", "fwd+bwd ms", ".3f"),
        ("fwd_peak_mib", "fwd MiB", ".2f"), ("fwdbwd_peak_mib", "fwd+bwd MiB", ".2f"),
        ("params", "params", _int), ("mflops", "MFLOPs/img", ".3f"),
        ("module_fwd_ms", "module fwd ms", ".2f"),
        ("module_fwdbwd_ms", "module fwd+bwd ms", ".2f"),
        ("module_fwdbwd_peak_mib", "module fwd+bwd MiB", ".1f"),
        ("module_mflops", "module MFLOPs/img", ".2f"), ("load_1min", "load", ".1f"),
        ("status", "status")])


def clustering_rows(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Clustering figures per (map, ratio), from the ``hgconv`` cells that measured them."""
    rows = []
    for r in _ok(records):
        if "clustering_fwd_ms" not in r:
            continue
        row = {"map": _size(r), **r}
        steps = r.get("clustering_flops_steps", {})
        row["slic_mflops"] = steps.get("slic", 0) / 1e6
        row["embed_mflops"] = steps.get("embed", 0) / 1e6
        row["candidates_mflops"] = steps.get("candidates", 0) / 1e6
        if r.get("module_flops"):
            row["share_of_module"] = (r["module_flops_components"].get("clustering", 0)
                                      / r["module_flops"])
        if r.get("module_fwd_ms"):
            row["time_share"] = r["clustering_fwd_ms"] / r["module_fwd_ms"]
        rows.append(row)
    return rows


def clustering_table(records: Sequence[Record]) -> str:
    """Clustering alone per map size and ratio."""
    return markdown_table(clustering_rows(records), [
        ("map", "map"), ("ratio_label", "ratio"), ("groups", "groups/img", ".1f"),
        ("edges", "edges/img", ".0f"), ("clustering_fwd_ms", "fwd ms", ".2f"),
        ("time_share", "of module fwd", ".0%"), ("clustering_fwdbwd_ms", "fwd+bwd ms", ".2f"),
        ("clustering_fwd_peak_mib", "fwd MiB", ".1f"),
        ("clustering_fwdbwd_peak_mib", "fwd+bwd MiB", ".1f"),
        ("clustering_mflops", "MFLOPs/img", ".2f"),
        ("embed_mflops", "of which 1x1 embedding", ".2f"), ("slic_mflops", "SLIC", ".2f"),
        ("candidates_mflops", "nearest centres", ".2f"),
        ("share_of_module", "of module FLOPs", ".0%"), ("clustering_params", "params", _int)])


def operator_tables(records: Sequence[Record]) -> dict[str, str]:
    """The operator part's tables, titled."""
    title, table = conv_table(records)
    tables = {title: table}
    title, table = headline_table(records)
    if title:
        tables[title] = table
    tables["Operator benchmark: every cell"] = operator_table(records)
    tables["Clustering alone (ImageToGroupGraph, measured in the hgconv cells)"] = \
        clustering_table(records)
    return tables


def task_table(records: Sequence[Record]) -> str:
    """One row per trained model."""
    rows = []
    for r in records:
        row = dict(r)
        row["status"] = _status(r)
        rows.append(row)
    return markdown_table(rows, [
        ("model", "model"), ("conv", "conv in stage 4"), ("miou", "val mIoU", ".4f"),
        ("pixel_accuracy", "pixel acc", ".4f"), ("gflops_per_image", "GFLOPs/img", ".4f"),
        ("stage4_gflops", "of which stage 4", ".4f"), ("params", "params", _int),
        ("probe_step_s", "1st step s", ".2f"),
        ("groups", "groups/img", ".1f"), ("train_time_s", "train s", ".1f"),
        ("epochs", "epochs"), ("status", "status")])


def fairness_notes(edge_threshold: float) -> str:
    """What each baseline sees of the group graph (the choices behind the comparison)."""
    return "\n".join([
        "How the baselines use the same group graphs (choices that can weaken them):",
        "",
        "* **hgconv**: edge types (9 directions) and adjacency weights, degree-normalised "
        "per direction (Eq. 3); 9 weight matrices.",
        "* **gcn**: adjacency weights, symmetric normalisation, a single weight matrix "
        "(isotropic: it cannot tell directions apart), as in the paper's Table 3.",
        "* **gmm** (8 Gaussian kernels) and **spline** (3x3 B-spline kernels, degree 1): "
        "continuous Cartesian pseudo-coordinates of the group centroids (PyG's Cartesian "
        "transform, one maximum per batch); they **ignore the adjacency weights**: every edge "
        "above the threshold counts fully, mean aggregation. On CPU, torch-spline-conv runs "
        "its generic (\"non-optimized\", as PyG warns) kernels: spline's times are not "
        "tuned figures.",
        "* **dynamic_edge** (EdgeConv MLP 2C -> 3C -> C, k = 8): **ignores the group graph "
        "entirely**; it builds a k-NN graph in feature space over the groups of each image "
        "(max aggregation), so it has no spatial neighbourhood.",
        f"* Edges are kept where the adjacency weight exceeds edge_threshold = {edge_threshold:g} "
        "(the paper's default 1e-7). Soft assignment tails then link groups that barely touch; "
        "the weight-ignoring convs treat those links like real contacts. "
        "`--edge-threshold 0.5` keeps only groups that share at least half a pixel of border.",
        "* Parameter counts are matched to HG-Conv's 9 C^2 where the layer allows it (table "
        "above); GCN has 1/9 of them by design.",
    ])


# ----------------------------------------------------------------------- plots
def plots(operator: Sequence[Record], task: Sequence[Record], out_dir: Path) -> dict[str, Path]:
    """Write the PNG plots; returns caption -> path."""
    out: dict[str, Path] = {}
    ok = _ok(operator)
    at_reference = [r for r in ok if r["kind"] == "grid" or r.get("ratio_label") == REFERENCE_RATIO]
    if ok:
        series = group_records(at_reference, "conv")
        out["Forward time of the conv alone vs map size (graph convs at ratio 1/64)"] = line_plot(
            series, "pixels", "fwd_ms", out_dir / "operator_fwd_time_vs_size.png", logy=True,
            xlabel="feature-map pixels (H x W)",
            ylabel="forward ms (median)", title="conv alone, forward")
        out["Forward+backward time of the conv alone vs map size"] = line_plot(
            series, "pixels", "fwdbwd_ms", out_dir / "operator_fwdbwd_time_vs_size.png",
            logy=True, xlabel="feature-map pixels (H x W)",
            ylabel="forward+backward ms (median)", title="conv alone, forward + backward")
        units = [dict(r, unit_ms=r.get("module_fwd_ms", r["fwd_ms"])) for r in at_reference]
        out["Whole HG module (clustering included) vs grid convs, forward"] = line_plot(
            group_records(units, "conv"), "pixels", "unit_ms",
            out_dir / "operator_module_time_vs_size.png", logy=True,
            xlabel="feature-map pixels (H x W)", ylabel="forward ms (median)",
            title="HG module (clustering + conv + unpool) vs grid conv")
        largest = max(r["pixels"] for r in ok)
        by_ratio = [r for r in ok if r["kind"] == "graph" and r["pixels"] == largest]
        out["Graph convs vs number of groups (largest map)"] = line_plot(
            group_records(by_ratio, "conv"), "groups", "fwd_ms",
            out_dir / "operator_time_vs_groups.png", logx=True, logy=True,
            xlabel="groups per image", ylabel="forward ms (median)",
            title="graph conv alone vs downsampling ratio")
    done = _ok(task)
    if done:
        out["Validation mIoU vs GFLOPs per image"] = scatter_plot(
            done, "gflops_per_image", "miou", "model", out_dir / "task_miou_vs_gflops.png",
            xlabel="GFLOPs per image (mean over val images)", ylabel="val mIoU",
            title="segmentation: accuracy vs cost")
    return out


# -------------------------------------------------------------------- findings
def _ranking(rows: Sequence[Record], field: str, fmt: str) -> str:
    ordered = sorted(rows, key=lambda r: r[field], reverse=True)
    return " > ".join(f"{r['conv']} {format(r[field], fmt)}" for r in ordered)


def findings(operator: Sequence[Record], task: Sequence[Record]) -> str:
    """What the numbers of this run say, computed from the records (one seed,
    one machine: a reading aid, not a significance test)."""
    lines: list[str] = []
    done = _ok(task)
    graph = [r for r in done if r["conv"] in GRAPH_CONVS]
    grid = [r for r in done if r["conv"] not in GRAPH_CONVS]
    if graph:
        lines.append(f"* Task, val mIoU of the graph convs in the same slot: "
                     f"{_ranking(graph, 'miou', '.4f')}.")
        lines.append("* Task, GFLOPs per image: " + ", ".join(
            f"{r['model']} {r['gflops_per_image']:.3f}" for r in (*graph, *grid)) + ".")
    skipped = [r for r in task if r.get("status") == "skipped"]
    if skipped:
        lines.append("* Task, not trained (over the time cap): " + ", ".join(
            f"{r['conv']} (one step {r['probe_step_s']:.1f} s, projected "
            f"{r['projected_train_s'] / 60:.0f} min)" for r in skipped) + ".")
    if grid:
        lines.append("* Task, grid baselines: " + ", ".join(
            f"{r['model']} mIoU {r['miou']:.4f}" for r in grid) + ".")
    ok = _ok(operator)
    if ok:
        largest = max(r["pixels"] for r in ok)
        cell = [r for r in ok if r["pixels"] == largest
                and (r["kind"] == "grid" or r.get("ratio_label") == REFERENCE_RATIO)]
        dense = next((r for r in cell if r["conv"] == "conv2d"), None)
        hg = next((r for r in cell if r["conv"] == "hgconv"), None)
        graph_cell = [r for r in cell if r["kind"] == "graph"]
        if graph_cell:
            lines.append(f"* Operator, {_size(cell[0])} maps at ratio {REFERENCE_RATIO}, "
                         "forward ms of the graph conv alone: "
                         + ", ".join(f"{r['conv']} {r['fwd_ms']:.3g}" for r in graph_cell) + ".")
        if dense is not None and hg is not None:
            lines.append(
                f"* Operator, whole HG-Conv module vs dense 3x3 conv on the {_size(dense)} "
                f"maps: {hg['module_mflops'] / dense['mflops']:.3f}x the FLOPs, "
                f"{hg['module_fwd_ms'] / dense['fwd_ms']:.2f}x the forward time and "
                f"{hg['module_fwdbwd_ms'] / dense['fwdbwd_ms']:.2f}x the forward+backward "
                f"time; the clustering is {hg['clustering_fwd_ms'] / hg['module_fwd_ms']:.0%} "
                "of the module's forward time.")
    if lines:
        lines.insert(0, "Findings of this run (computed from the records above; one seed, one "
                        "machine -- small differences are within run-to-run noise):\n")
    return "\n".join(lines)
