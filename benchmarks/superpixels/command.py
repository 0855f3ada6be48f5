"""The command line of ``python -m benchmarks.superpixels``."""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.common.cli import base_parser, protocol_config, schedule_name, setup_run
from benchmarks.common.results import ResultStore, markdown_table, run_cells, write_report
from benchmarks.common.summary import format_pm, holm_text, mean_std, paired_differences, verdict
from benchmarks.common.training import TrainConfig, fit, make_loader, seed_everything

from . import __doc__ as PACKAGE_DOC
from .graphs import (
    GRAPH_KINDS,
    image_split,
    kind_dataset,
    measure_batch_scaling,
    measure_building,
)
from .kept_memory import KEPT_MEMORY_ENV, measure_batch_scaling_keeping_memory
from .model import GraphClassifier

__all__ = ["CONVS", "PUBLISHED", "SCHEDULES", "build_parser", "main"]

PROTOCOL_VERSION = 4
CONVS = ("hgconv", "gcn", "gmm", "spline", "dynamic_edge")
TITLE = "MNIST digits as graphs: graph classification with every graph conv"
#: published test accuracies (%) on superpixel MNIST, trained on the 60k training digits:
#: for reference only, not comparable with our 8k-digit split
PUBLISHED = (
    {"source": "MoNet (Monti et al., CVPR 2017), 75 superpixels", "model": "MoNet / GMMConv",
     "accuracy": 91.11},
    {"source": "SplineCNN (Fey et al., CVPR 2018), 75 superpixels", "model": "SplineCNN",
     "accuracy": 95.22},
    {"source": "Benchmarking GNNs (Dwivedi et al.), ~100k params", "model": "GCN",
     "accuracy": 90.705},
    {"source": "Benchmarking GNNs (Dwivedi et al.), ~100k params", "model": "MoNet",
     "accuracy": 90.805},
    {"source": "Benchmarking GNNs (Dwivedi et al.), ~100k params", "model": "GatedGCN",
     "accuracy": 97.340},
)
#: the building goals: the batched module this many times faster per image than
#: PyG's pipeline, the per-image transform at least as fast
BATCHED_GOAL = 10.0
PER_IMAGE_GOAL = 1.0
#: the batched module's cost per image must not grow with the batch: no batch size
#: may cost more per image than a smaller one did, beyond this factor (the 10% by
#: which timings of this kind vary from run to run on a shared machine)
GROWTH_GOAL = 1.1


@dataclasses.dataclass(frozen=True)
class SuperpixelSchedule:
    """Sizes of one schedule.

    Attributes:
        train_items, val_items, test_items: digits per split (``None``: all of
            the 8k / 1k / 1k).
        epochs, batch_size, lr: the training (Adam, cosine schedule); the
            validation accuracy is measured after the last epoch.
        seeds: training seeds per model.
        width, num_layers: the classifier.
        building_rounds, building_batch: the graph-building timing.
        scaling_batches, scaling_sizes: the batch sizes and image sizes (the
            digits resized, with as many pixels per group) at which the batched
            module's cost per image is timed against the batch size.
    """

    train_items: int | None
    val_items: int | None
    test_items: int | None
    epochs: int
    batch_size: int
    lr: float
    seeds: int
    width: int
    num_layers: int
    building_rounds: int
    building_batch: int
    scaling_batches: tuple[int, ...] = (1, 4, 16, 64, 256)
    scaling_sizes: tuple[tuple[int, int], ...] = ((28, 28), (96, 128))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SCHEDULES = {
    "quick": SuperpixelSchedule(train_items=64, val_items=32, test_items=32, epochs=1,
                                batch_size=32, lr=1e-3, seeds=2, width=16, num_layers=2,
                                building_rounds=1, building_batch=16,
                                scaling_batches=(1, 4), scaling_sizes=((28, 28), (48, 64))),
    "default": SuperpixelSchedule(train_items=1280, val_items=None, test_items=None, epochs=4,
                                  batch_size=64, lr=2e-3, seeds=3, width=48, num_layers=3,
                                  building_rounds=3, building_batch=256),
    "full": SuperpixelSchedule(train_items=None, val_items=None, test_items=None, epochs=30,
                               batch_size=64, lr=1e-3, seeds=3, width=48, num_layers=3,
                               building_rounds=7, building_batch=256),
}


def build_parser() -> argparse.ArgumentParser:
    parser = base_parser("benchmarks.superpixels", PACKAGE_DOC, "results/superpixels",
                         examples=["", "--quick", "--full --out results/superpixels/full"])
    parser.add_argument("--cache", type=Path, default=None, metavar="DIR",
                        help="where the graphs of every kind are cached (default: <out>/graphs)")
    parser.add_argument("--convs", nargs="+", choices=CONVS, default=list(CONVS),
                        help="the graph convs to train (default: all)")
    parser.add_argument("--kinds", nargs="+", choices=tuple(GRAPH_KINDS),
                        default=list(GRAPH_KINDS), help="the graph kinds (default: all)")
    return parser


def _labels(batch) -> torch.Tensor:
    return batch[1] if isinstance(batch, (list, tuple)) else batch.y.view(-1)


def _inputs(batch):
    return batch[0] if isinstance(batch, (list, tuple)) else batch


def compute_loss(model, batch):
    logits = model(_inputs(batch))
    labels = _labels(batch)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.argmax(1) == labels).float().mean()
    return loss, {"train_acc": float(accuracy)}


@torch.no_grad()
def accuracy(model, dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on ``dataset``."""
    model.eval()
    correct = total = 0
    for batch in make_loader(dataset, batch_size, shuffle=False):
        labels = _labels(batch)
        correct += int((model(_inputs(batch)).argmax(1) == labels).sum())
        total += int(labels.numel())
    return correct / max(total, 1)


def train_cell(cell: dict[str, Any], args: argparse.Namespace, schedule: SuperpixelSchedule,
               cache: Path) -> dict[str, Any]:
    """Train the classifier of one (kind, conv, seed) and score it."""
    kind, conv, seed = cell["kind"], cell["conv"], cell["seed"]
    data = {split: kind_dataset(kind, split, args.data_root, cache, limit)
            for split, limit in (("train", schedule.train_items), ("val", schedule.val_items),
                                 ("test", schedule.test_items))}
    seed_everything(seed)
    model = GraphClassifier(conv, learned_clustering=kind == "learned", width=schedule.width,
                            num_layers=schedule.num_layers)
    config = TrainConfig(epochs=schedule.epochs, batch_size=schedule.batch_size,
                         optimizer="adam", lr=schedule.lr, weight_decay=1e-4,
                         scheduler="cosine", seed=seed, drop_last=True,
                         eval_every=schedule.epochs, progress=not args.no_progress,
                         device=args.device)
    run_dir = Path(args.out) / "runs" / f"{kind}-{conv}" / f"seed{seed}"
    result = fit(model, data["train"], compute_loss, config, run_dir,
                 evaluate=lambda m: {"val_acc": accuracy(m, data["val"])}, fresh=args.fresh)
    tic = time.perf_counter()
    test = accuracy(model, data["test"])
    record = {"test_acc": test, "val_acc": result.metrics.get("val_acc"),
              "params": sum(p.numel() for p in model.parameters()),
              "conv_params": sum(p.numel() for p in model.convs.parameters()),
              "train_time_s": result.train_time_s, "epochs": result.epochs,
              "steps": result.steps, "final_loss": result.final_loss,
              "test_time_s": time.perf_counter() - tic,
              "train_items": len(data["train"]), "test_items": len(data["test"]),
              "status": "ok"}
    if kind != "learned":
        graphs = data["train"]
        record["nodes_per_graph"] = float(graphs._data.num_nodes / len(graphs))
        record["edges_per_graph"] = float(graphs._data.edge_index.size(1) / len(graphs))
    return record


def measure_building_cell(cell: dict[str, Any], args, schedule: SuperpixelSchedule
                          ) -> dict[str, Any]:
    limit = max(schedule.building_batch, 16, *schedule.scaling_batches)
    images = image_split("test", args.data_root, limit).images
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        record = measure_building(images, cell["threads"], schedule.building_rounds,
                                  schedule.building_batch)
        record["scaling"] = measure_batch_scaling(images, cell["threads"],
                                                  schedule.building_rounds,
                                                  schedule.scaling_batches,
                                                  schedule.scaling_sizes)
    # the same timings where the C library keeps freed memory: what is left of a
    # rise is not the allocator's
    record["scaling_kept_memory"] = measure_batch_scaling_keeping_memory(
        args.data_root, limit, cell["threads"], schedule.building_rounds,
        schedule.scaling_batches, schedule.scaling_sizes)
    record["status"] = "ok"
    return record


def scaling_by_size(scaling: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The batch-scaling records per image size (in the order measured), by batch size."""
    sizes = dict.fromkeys(r["size"] for r in scaling)
    return {size: sorted((r for r in scaling if r["size"] == size), key=lambda r: r["batch"])
            for size in sizes}


def scaling_growth(scaling: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Per image size: the largest rise of the batched module's cost per image from
    one batch size to a larger one (the cost at a batch size over the lowest cost at
    any smaller one; at most 1 where the cost per image never grows with the batch)."""
    growth = {}
    for size, records in scaling_by_size(scaling).items():
        costs = [r["ms_per_image"] for r in records]
        growth[size] = max([1.0] + [cost / min(costs[:i]) for i, cost in
                                    enumerate(costs) if i])
    return growth


# ------------------------------------------------------------------------ report
def summaries(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (kind, conv): test / val accuracy over the seeds."""
    rows = []
    for kind in GRAPH_KINDS:
        for conv in CONVS:
            mine = [r for r in records if r.get("kind") == kind and r.get("conv") == conv
                    and r.get("status") == "ok"]
            if not mine:
                continue
            row = {"kind": kind, "conv": conv, "seeds": len(mine),
                   "per_seed": {r["seed"]: r["test_acc"] for r in mine},
                   "params": mine[0]["params"], "conv_params": mine[0]["conv_params"],
                   "train_time_s": mean_std([r["train_time_s"] for r in mine])[0],
                   "nodes": mine[0].get("nodes_per_graph"),
                   "edges": mine[0].get("edges_per_graph")}
            for field in ("test_acc", "val_acc"):
                row[field], row[f"{field}_std"], _ = mean_std([r.get(field) for r in mine])
            rows.append(row)
    return rows


Model = tuple[str, str]  # (graph kind, conv)
Comparisons = Mapping[tuple[Model, Model], dict[str, Any]]  # what comparisons() returns


def families(rows: Sequence[dict[str, Any]]) -> list[list[tuple[Model, Model]]]:
    """The ``(a, b)`` comparisons the report calls, grouped by the question they
    answer together: per graph kind, HGConv against every other conv; over the
    convs, learned against fixed groups; over the convs, fixed groups against
    PyG's superpixels. Models that were not trained are left out."""
    have = {(r["kind"], r["conv"]) for r in rows}
    questions = [[((kind, "hgconv"), (kind, conv)) for conv in CONVS if conv != "hgconv"]
                 for kind in GRAPH_KINDS]
    questions.append([(("learned", conv), ("groups", conv)) for conv in CONVS])
    questions.append([(("groups", conv), ("slic", conv)) for conv in CONVS])
    return [[(a, b) for a, b in pairs if a in have and b in have] for pairs in questions]


def comparisons(rows: Sequence[dict[str, Any]]) -> dict[tuple[Model, Model], dict[str, Any]]:
    """Paired per-seed differences of test accuracy, ``a - b``, of every pair of
    :func:`families`, each family resolved together (Holm's correction,
    :func:`~benchmarks.common.summary.paired_differences`)."""
    by_model = {(r["kind"], r["conv"]): r["per_seed"] for r in rows}
    out = {}
    for pairs in families(rows):
        values = []
        for a, b in pairs:
            seeds = sorted(set(by_model[a]) & set(by_model[b]))
            values.append(([by_model[a][s] for s in seeds], [by_model[b][s] for s in seeds]))
        out.update(zip(pairs, paired_differences(values), strict=True))
    return out


def difference(comparison) -> str:
    if not comparison or not comparison["n"]:
        return "-"
    text = format_pm(comparison["mean"], comparison["std"], seeds=comparison["n"], scale=100.0)
    p = ""
    if math.isfinite(comparison["p"]):
        p = f", p={comparison['p']:.2g}{holm_text(comparison)}"
    return f"{'+' if comparison['mean'] > 0 else ''}{text} ({verdict(comparison)}{p})"


def accuracy_table(rows: Sequence[dict[str, Any]], found: Comparisons) -> str:
    out = []
    for r in rows:
        out.append({**r, "acc": format_pm(r["test_acc"], r["test_acc_std"], seeds=r["seeds"],
                                          scale=100.0, digits=2),
                    "val": format_pm(r["val_acc"], r["val_acc_std"], seeds=r["seeds"],
                                     scale=100.0, digits=2),
                    "per_seed_text": ", ".join(f"{100 * v:.2f}" for v in r["per_seed"].values()),
                    "hg": "(reference)" if r["conv"] == "hgconv" else difference(
                        found.get(((r["kind"], "hgconv"), (r["kind"], r["conv"]))))})
    return markdown_table(out, [
        ("kind", "graphs"), ("conv", "conv"), ("acc", "test accuracy %"),
        ("per_seed_text", "per seed"), ("val", "val accuracy %"),
        ("hg", "HGConv - this (points, paired)"), ("conv_params", "conv params"),
        ("params", "model params"), ("nodes", "nodes/graph", ".1f"),
        ("edges", "edges/graph", ".1f"), ("train_time_s", "train s/seed", ".1f")])


def grouping_table(found: Comparisons) -> str:
    out = []
    for conv in CONVS:
        learned = found.get((("learned", conv), ("groups", conv)))
        groups_vs_slic = found.get((("groups", conv), ("slic", conv)))
        if learned is None and groups_vs_slic is None:
            continue
        out.append({"conv": conv, "learned": difference(learned),
                    "fixed": difference(groups_vs_slic)})
    return markdown_table(out, [("conv", "conv"),
                                ("learned", "learned - fixed groups (points, paired)"),
                                ("fixed", "fixed groups - PyG superpixels (points, paired)")])


def building_table(records: Sequence[dict[str, Any]]) -> str:
    return markdown_table(list(records), [
        ("threads", "threads"),
        ("pyg_slic_pipeline_ms_per_image", "PyG ToSLIC+KNN+Cartesian ms/img", ".3f"),
        ("to_group_graph_ms_per_image", "ToGroupGraph ms/img", ".3f"),
        ("batched_module_ms_per_image", "batched module ms/img", ".3f"),
        ("batched_module_as_batch_ms_per_image", "batched, as a PyG Batch ms/img", ".3f"),
        ("batched_module_and_split_ms_per_image", "batched + split into graphs ms/img", ".3f"),
        ("batch_size", "batch"),
        ("batched_speedup", f"batched vs PyG (goal >= {BATCHED_GOAL:g}x)", ".2f"),
        ("batched_as_batch_speedup", "batched, as a PyG Batch, vs PyG", ".2f"),
        ("batched_with_split_speedup", "batched + split vs PyG", ".2f"),
        ("per_image_speedup", f"per image vs PyG (goal >= {PER_IMAGE_GOAL:g}x)", ".2f")])


def scaling_table(building: Sequence[dict[str, Any]], key: str = "scaling") -> str:
    """The batched module's ms per image by batch size, one row per (threads, image
    size), from the records' ``key`` (``"scaling"``: as measured, with the goal;
    ``"scaling_kept_memory"``: the C library keeping freed memory)."""
    rows, batches = [], []
    for r in building:
        if not r.get(key):
            continue
        growth = scaling_growth(r[key])
        for size, mine in scaling_by_size(r[key]).items():
            row = {"threads": r["threads"], "size": size, "groups": mine[0]["groups"],
                   "growth": growth[size]}
            for s in mine:
                row[f"b{s['batch']}"] = s["ms_per_image"]
                batches.append(s["batch"])
            rows.append(row)
    if not rows and key == "scaling_kept_memory":
        return "(not measured: the C library is not glibc)"
    columns = [("threads", "threads"), ("size", "image"), ("groups", "groups")]
    columns += [(f"b{b}", f"batch {b} ms/img", ".3f") for b in sorted(set(batches))]
    goal = f" (goal <= {GROWTH_GOAL:g})" if key == "scaling" else ""
    columns.append(("growth", f"largest rise to a larger batch{goal}", ".2f"))
    return markdown_table(rows, columns)


def findings(found: Comparisons, building: Sequence[dict[str, Any]]) -> str:
    lines = []
    for kind in GRAPH_KINDS:
        for other in ("gmm", "spline"):
            c = found.get(((kind, "hgconv"), (kind, other)))
            if c is not None:
                lines.append(f"* {kind} graphs: HGConv - {other} {difference(c)}; goal "
                             f"HGConv >= {other} (means): "
                             f"{'holds' if c['mean'] >= 0 else 'does not hold'}.")
    c = found.get((("learned", "hgconv"), ("groups", "hgconv")))
    if c is not None:
        lines.append(f"* HGConv, learned - fixed grouping: {difference(c)}; goal learned >= "
                     f"fixed (means): {'holds' if c['mean'] >= 0 else 'does not hold'}.")
    for r in building:
        batched = "holds" if r["batched_speedup"] >= BATCHED_GOAL else "does not hold"
        single = "holds" if r["per_image_speedup"] >= PER_IMAGE_GOAL else "does not hold"
        lines.append(f"* Graph building, {r['threads']} thread(s): the batched module "
                     f"{r['batched_speedup']:.2f}x PyG's pipeline per image (goal >= "
                     f"{BATCHED_GOAL:g}x: {batched}), {r['batched_as_batch_speedup']:.2f}x "
                     f"as a PyG Batch, {r['batched_with_split_speedup']:.2f}x "
                     "with the split into per-image graphs; ToGroupGraph per image "
                     f"{r['per_image_speedup']:.2f}x (goal >= {PER_IMAGE_GOAL:g}x: {single}).")
        kept = scaling_growth(r["scaling_kept_memory"]) if r.get("scaling_kept_memory") else {}
        for size, growth in scaling_growth(r["scaling"]).items():
            line = (f"* Batched module, {r['threads']} thread(s), {size} images: the cost "
                    f"per image rises by at most {growth:.2f}x from a batch size to a "
                    f"larger one (goal: no growth beyond the timing noise, <= "
                    f"{GROWTH_GOAL:g}: {'holds' if growth <= GROWTH_GOAL else 'does not hold'})")
            if size in kept:
                line += f"; {kept[size]:.2f}x where the C library keeps freed memory"
                if growth > GROWTH_GOAL:
                    line += (": the rise is the fresh pages of the allocator"
                             if kept[size] <= GROWTH_GOAL else
                             ": the rise is not only the allocator's fresh pages")
            lines.append(line + ".")
    if lines:
        lines.insert(0, "Findings of this run (accuracy differences compared seed by seed; "
                        "'not resolved' where the seeds do not agree):\n")
    return "\n".join(lines)


def plots(rows: Sequence[dict[str, Any]], records: Sequence[dict[str, Any]],
          building: Sequence[dict[str, Any]], out: Path) -> dict[str, Path]:
    from benchmarks.common.plots import bar_plot, line_plot, seed_plot

    result = {}
    per_seed = [dict(r, accuracy=100 * r["test_acc"]) for r in records
                if r.get("part") == "train" and r.get("status") == "ok"]
    if per_seed:
        result["Test accuracy of every seed, mean ± std per conv and graph kind"] = seed_plot(
            per_seed, "conv", "accuracy", out / "test_accuracy.png", group="kind",
            ylabel="test accuracy (%)", title="MNIST digits as graphs")
    if building:
        builders = (("PyG ToSLIC pipeline", "pyg_slic_pipeline"),
                    ("ToGroupGraph", "to_group_graph"), ("batched module", "batched_module"),
                    ("batched, as a PyG Batch", "batched_module_as_batch"))
        bars = [{"threads": f"{r['threads']} thread(s)", "builder": label,
                 "ms": r[f"{key}_ms_per_image"]} for r in building for label, key in builders]
        result["Graph building, ms per image"] = bar_plot(
            bars, "builder", "ms", out / "graph_building.png", group="threads",
            ylabel="ms per image", logy=True, title="graph building time per image")
        series = {f"{r['threads']} thread(s), {size}{label}": records for r in building
                  for key, label in (("scaling", ""), ("scaling_kept_memory", ", memory kept"))
                  if r.get(key) for size, records in scaling_by_size(r[key]).items()}
        result["Batched module, ms per image by batch size"] = line_plot(
            series, "batch", "ms_per_image", out / "batch_scaling.png", logx=True, logy=True,
            xlabel="images per batch", ylabel="ms per image",
            title="batched module: cost per image by batch size")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tic = time.perf_counter()
    env = setup_run(args)
    name = schedule_name(args)
    schedule = SCHEDULES[name]
    cache = args.cache or Path(args.out) / "graphs"
    config = protocol_config(args, protocol_version=PROTOCOL_VERSION, benchmark="superpixels",
                             schedule_sizes=schedule.to_dict(), kinds=GRAPH_KINDS,
                             convs=list(CONVS))
    store = ResultStore(args.out, config, ("part", "kind", "conv", "seed", "threads"),
                        environment=env, fresh=args.fresh)
    seeds = [int(args.seed) + i for i in range(schedule.seeds)]
    cells = [{"part": "train", "kind": kind, "conv": conv, "seed": seed, "threads": None}
             for kind in args.kinds for conv in args.convs for seed in seeds]
    building_cells = [{"part": "building", "kind": None, "conv": None, "seed": None,
                       "threads": t} for t in (1, 2)]
    progress = not args.no_progress
    building = run_cells(store, building_cells,
                         lambda c: measure_building_cell(c, args, schedule), desc="building",
                         progress=progress)
    torch.set_num_threads(int(args.threads))
    trained = run_cells(store, cells, lambda c: train_cell(c, args, schedule, cache),
                        desc="train", progress=progress)
    rows = summaries(trained)
    found = comparisons(rows)
    tables = {
        "Test accuracy (mean ± std over seeds) on our 8k / 1k / 1k split of the 10k MNIST "
        "test digits": accuracy_table(rows, found),
        "Grouping: learned against fixed, fixed against PyG's superpixels":
            grouping_table(found),
        "Published results on superpixel MNIST (60k training digits: for reference only, "
        "not comparable)": markdown_table(list(PUBLISHED), [
            ("model", "model"), ("accuracy", "test accuracy %", ".3f"), ("source", "source")]),
        "Graph building per image (interleaved rounds)": building_table(building),
        "Batched module, ms per image by batch size (the digits resized, as many pixels "
        "per group; interleaved rounds)": scaling_table(building),
        "The same, in a child process whose C library keeps freed memory ("
        + ", ".join(f"{k}={v}" for k, v in KEPT_MEMORY_ENV.items()) + ")":
            scaling_table(building, "scaling_kept_memory"),
    }
    notes = "\n\n".join([
        f"Schedule **{name}**: {schedule.train_items or 8000} training digits, "
        f"{schedule.epochs} epochs, batch {schedule.batch_size}, Adam lr {schedule.lr:g} "
        f"(cosine), width {schedule.width}, {schedule.num_layers} graph conv layers, "
        f"{schedule.seeds} seed(s). Graph kinds: "
        + "; ".join(f"**{k}**: {v}" for k, v in GRAPH_KINDS.items()) + ".",
        "Node features: intensity and position; GMM and Spline read Cartesian "
        "pseudo-coordinates, HGConv the nine direction types (DirectionTypes on PyG's "
        "superpixels) and weights. Differences are compared seed by seed: 'resolved' = every "
        "seed agrees on the sign and the paired t-test gives p < 0.05 after Holm's correction "
        "within each question (HGConv against the other convs on one graph kind; learned "
        "against fixed groups over the convs; fixed groups against PyG's superpixels over "
        "the convs).",
        findings(found, building)])
    for title, table in tables.items():
        print(f"\n## {title}\n\n{table}")
    print("\n" + notes)
    path = write_report(args.out, TITLE, config, tables, environment=env,
                        plots=plots(rows, trained, building, Path(args.out)), notes=notes)
    print(f"\nwrote {store.path} and {path} in {time.perf_counter() - tic:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
