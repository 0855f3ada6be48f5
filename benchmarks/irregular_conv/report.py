"""Tables, plots and notes of the irregular-convolution benchmark (from its records only)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.common.plots import group_records, line_plot, scatter_plot, seed_plot
from benchmarks.common.results import markdown_table
from benchmarks.common.summary import format_pm
from pyg_hgconv.nn.conv.registry import get_conv
from pyg_hgconv.nn.pool.image_to_group_graph import DIRECTION_RULE

from .comparison import (
    HG_MODEL,
    PAPER_TABLE3,
    difference_text,
    model_summaries,
    pairwise,
    ranking,
)
from .operator import GRAPH_CONVS, GRID_CONVS
from .task import PROTOCOLS

__all__ = ["REFERENCE_RATIO", "fairness_notes", "findings", "operator_tables", "plots",
           "task_tables"]

#: the paper's default downsampling ratio: the headline rows use it
REFERENCE_RATIO = "1/64"
#: the whole HG-Conv module's forward time over the dense 3x3 conv's that it should
#: stay within on the headline maps (the clustering included)
MODULE_TIME_TARGET = 0.5
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
            # HG-Conv's module was also timed beside the dense conv: that ratio
            row["time_vs_dense"] = r.get("module_vs_dense_fwd", unit_ms / dense["fwd_ms"])
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
        row["embed_mflops"] = steps.get("embedding", 0) / 1e6
        row["candidates_mflops"] = steps.get("candidates", 0) / 1e6
        if r.get("module_flops"):
            row["share_of_module"] = (r["module_flops_components"].get("clustering", 0)
                                      / r["module_flops"])
        if "clustering_share_of_module_fwd" in r:  # timed side by side
            row["time_share"] = r["clustering_share_of_module_fwd"]
        elif r.get("module_fwd_ms"):
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


PROTOCOL_TITLES = {"scratch": "w/o transfer", "transfer": "w/ transfer"}


def task_tables(records: Sequence[Record]) -> dict[str, str]:
    """The task part's tables: Table 3 side by side with the paper's, every
    model (mean ± std over seeds, paired differences to HG-Conv and to the grid
    model), every pair of models and every seed."""
    summaries = model_summaries(records)
    tables = {
        "Task: Table 3 (val mIoU %, mean ± std over seeds; the paper's Cityscapes / ADE20K / "
        "PASCAL-Context numbers for reference)": table3(summaries),
        "Task: every model (paired per-seed differences; 'resolved' = every seed agrees on the "
        "sign and the paired t-test gives p < 0.05 after Holm's correction over every pair of "
        "models of the protocol)": summary_table(summaries),
    }
    for protocol in PROTOCOLS:
        pairs = pairwise(records, protocol)
        if pairs:
            tables[f"Task, {PROTOCOL_TITLES[protocol]}: every pair of models"] = markdown_table(
                [{"a": c["a"], "b": c["b"], "diff": difference_text(c),
                  "per_seed": ", ".join(f"{100 * d:+.1f}" for d in c["diffs"])} for c in pairs],
                [("a", "model A (higher mean)"), ("b", "model B"),
                 ("diff", "A - B, mIoU points"), ("per_seed", "per seed")])
    tables["Task: every training run"] = markdown_table(
        [dict(r, status=_status(r)) for r in records], [
            ("protocol", "protocol"), ("model", "model"), ("seed", "seed"),
            ("miou", "val mIoU", ".4f"), ("pixel_accuracy", "pixel acc", ".4f"),
            ("gflops_per_image", "GFLOPs/img", ".4f"), ("stage4_gflops", "of which stage 4",
                                                        ".4f"),
            ("groups", "groups/img", ".1f"), ("train_time_s", "train s", ".1f"),
            ("status", "status")])
    return tables


def table3(summaries: Sequence[Record]) -> str:
    """Rows per conv, the two protocols side by side, the paper's numbers beside."""
    rows = []
    convs = [c for c in ("gcn", "dynamic_edge", "gmm", "spline", "hgconv")
             if any(s["conv"] == c for s in summaries)]
    for conv in [*convs, "conv2d"]:
        for cell in dict.fromkeys(s["cell"] for s in summaries if s["conv"] == conv):
            row: dict[str, Any] = {}
            for protocol in PROTOCOLS:
                s = next((x for x in summaries if x["conv"] == conv and x["cell"] == cell
                          and x["protocol"] == protocol), None)
                row["model"] = row.get("model") or (s["model"] if s else None)
                row[protocol] = (format_pm(s["miou"], s["miou_std"], seeds=s["seeds"],
                                           scale=100.0) if s else "-")
                row[f"{protocol}_hg"] = difference_text(s.get("hg_vs")) if s else "-"
                paper = PAPER_TABLE3.get(conv, {}).get(protocol)
                row[f"{protocol}_paper"] = " / ".join(f"{v:.1f}" for v in paper) if paper else "-"
            rows.append(row)
    return markdown_table(rows, [
        ("model", "model"), ("scratch", "w/o transfer: ours"),
        ("scratch_hg", "HG-Conv - this (points)"), ("scratch_paper", "paper w/o"),
        ("transfer", "w/ transfer: ours"), ("transfer_hg", "HG-Conv - this (points)"),
        ("transfer_paper", "paper w/")])


def summary_table(summaries: Sequence[Record]) -> str:
    rows = []
    for s in summaries:
        rows.append({**s, "protocol": PROTOCOL_TITLES.get(s["protocol"], s["protocol"]),
                     "miou_pm": format_pm(s["miou"], s["miou_std"], seeds=s["seeds"],
                                          scale=100.0),
                     "per_seed_text": ", ".join(f"{100 * v:.1f}" for v in
                                                s["per_seed"].values()),
                     "hg": difference_text(s.get("hg_vs")),
                     "grid": difference_text(s.get("vs_grid"))})
    return markdown_table(rows, [
        ("protocol", "protocol"), ("model", "model"), ("miou_pm", "val mIoU %"),
        ("per_seed_text", "per seed"), ("hg", "HG-Conv - this"),
        ("grid", "this - ResNet18-Dilation"), ("gflops_per_image", "GFLOPs/img", ".4f"),
        ("stage4_gflops", "stage-4 GFLOPs", ".4f"), ("params", "params", _int),
        ("groups", "groups/img", ".1f"), ("train_time_s", "train s/seed", ".1f"),
        ("transfer_note", "3x3 kernels")])


def fairness_notes(edge_threshold: float, direction_rule: str = DIRECTION_RULE) -> str:
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
        "above the threshold counts fully, mean aggregation. SplineConv runs as "
        "FusedSplineConv by default (the same function and parameters as PyG's layer, tested "
        "against it; `--spline-impl pyg` runs PyG's own, torch-spline-conv's CPU kernels).",
        "* **dynamic_edge** (EdgeConv MLP 2C -> 3C -> C, k = 8): **ignores the group graph "
        "entirely**; it builds a k-NN graph in feature space over the groups of each image "
        "(max aggregation), so it has no spatial neighbourhood.",
        f"* Edges are kept where the adjacency weight is at least edge_threshold = "
        f"{edge_threshold:g} (supplementary B: 1e-7); weights count pixel contacts, so a "
        "higher threshold keeps only groups that really touch. Each pair of groups gets one "
        f"direction type by the rule '{direction_rule}' (`--direction-rule`).",
        "* Parameter counts are matched to HG-Conv's 9 C^2 where the layer allows it (table "
        "above); GCN has 1/9 of them by design.",
        "* w/ transfer: every model starts from the ResNet18-Dilation trained w/o transfer "
        "with the same seed; the stage's 3x3 kernels reach the graph convs that have a "
        "mapping (hgconv exactly, spline as an initialisation; gcn, gmm and dynamic_edge "
        "keep their own), everything else is copied.",
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
        seeds = [dict(r, protocol=PROTOCOL_TITLES.get(r.get("protocol"), r.get("protocol")),
                      short=r["model"].replace("HG-ResNet18 ", "HG ").replace("ResNet18-", ""))
                 for r in done]
        out["Validation mIoU of every seed, mean ± std per model and protocol"] = seed_plot(
            seeds, "short", "miou", out_dir / "task_miou_per_seed.png", group="protocol",
            ylabel="val mIoU", title="segmentation: spread over seeds")
        summaries = [dict(s, label=f"{s['model']} ({PROTOCOL_TITLES[s['protocol']]})")
                     for s in model_summaries(done)]
        out["Validation mIoU vs GFLOPs per image (mean ± std over seeds)"] = scatter_plot(
            summaries, "gflops_per_image", "miou", "label",
            out_dir / "task_miou_vs_gflops.png", yerr="miou_std",
            xlabel="GFLOPs per image (mean over val images)", ylabel="val mIoU",
            title="segmentation: accuracy vs cost")
    return out


# -------------------------------------------------------------------- findings
def _ranking(rows: Sequence[Record], field: str, fmt: str) -> str:
    ordered = sorted(rows, key=lambda r: r[field], reverse=True)
    return " > ".join(f"{r['conv']} {format(r[field], fmt)}" for r in ordered)


def findings(operator: Sequence[Record], task: Sequence[Record],
             stage_share_goal: float = 0.5) -> str:
    """What the numbers of this run say, computed from the records; a
    difference between two models is called only when it is resolved over the
    seeds (:mod:`.comparison`)."""
    lines: list[str] = []
    summaries = model_summaries(task)
    for protocol in PROTOCOLS:
        text = ranking(task, protocol)
        if text:
            lines.append(f"* Task, {PROTOCOL_TITLES[protocol]}, val mIoU (%; '>' resolved, "
                         f"'~' not resolved): {text}.")
    for protocol in PROTOCOLS:
        others = [s for s in summaries if s["protocol"] == protocol and s["kind"] == "graph"
                  and s["model"] != HG_MODEL and s.get("hg_vs")]
        if others:
            lines.append(f"* Task, {PROTOCOL_TITLES[protocol]}, HG-Conv against the other graph "
                         "convs in the slot: " + "; ".join(
                             f"vs {s['conv']} {difference_text(s['hg_vs'])}" for s in others)
                         + ".")
        hg = next((s for s in summaries if s["protocol"] == protocol
                   and s["model"] == HG_MODEL), None)
        grid = next((s for s in summaries if s["protocol"] == protocol
                     and s["cell"] == "resnet18-dilated"), None)
        if hg is not None and grid is not None and hg.get("vs_grid"):
            share = (hg["stage4_gflops"] / grid["stage4_gflops"]
                     if hg.get("stage4_gflops") and grid.get("stage4_gflops") else None)
            share_text = (f"{share:.0%} of the stage-4 GFLOPs "
                          f"({'<' if share < stage_share_goal else '>='} "
                          f"{stage_share_goal:.0%})" if share is not None else "")
            lines.append(f"* Task, {PROTOCOL_TITLES[protocol]}, HG-ResNet18 - ResNet18-Dilation: "
                         f"{difference_text(hg['vs_grid'])} at {share_text}.")
    errors = [r for r in task if r.get("status") == "error"]
    if errors:
        lines.append("* Task, not trained: " + ", ".join(
            f"{r['model']} ({r.get('error')})" for r in errors) + ".")
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
            beside = hg.get("module_vs_dense_fwd")
            met = "met" if beside is not None and beside <= MODULE_TIME_TARGET else "not met"
            forward = (f"{beside:.2f}x the forward time (timed side by side, interleaved; "
                       f"target <= {MODULE_TIME_TARGET:g}x: {met}; "
                       f"{hg['module_fwd_ms'] / dense['fwd_ms']:.2f}x from the two cells)"
                       if beside is not None
                       else f"{hg['module_fwd_ms'] / dense['fwd_ms']:.2f}x the forward time")
            share = hg.get("clustering_share_of_module_fwd")
            share = (f"{share:.0%} of the module's forward time (timed side by side)"
                     if share is not None else
                     f"{hg['clustering_fwd_ms'] / hg['module_fwd_ms']:.0%} of the module's "
                     "forward time")
            lines.append(
                f"* Operator, whole HG-Conv module vs dense 3x3 conv on the {_size(dense)} "
                f"maps: {hg['module_mflops'] / dense['mflops']:.3f}x the FLOPs, {forward} and "
                f"{hg['module_fwdbwd_ms'] / dense['fwdbwd_ms']:.2f}x the forward+backward "
                f"time; the clustering is {share}.")
    if lines:
        lines.insert(0, "Findings of this run (computed from the records above; times from one "
                        "machine, accuracies over the seeds):\n")
    return "\n".join(lines)
