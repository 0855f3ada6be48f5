"""The command line of ``python -m benchmarks.irregular_conv`` (``make bench``)."""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from benchmarks.common.cli import (
    base_parser,
    positive_int,
    protocol_config,
    schedule_name,
    setup_run,
)
from benchmarks.common.results import ResultStore, run_cells, write_report
from pyg_hgconv.nn.conv.registry import SPLINE_IMPLS
from pyg_hgconv.nn.pool.adjacency import DIRECTION_RULES
from pyg_hgconv.nn.pool.image_to_group_graph import DIRECTION_RULE, EDGE_THRESHOLD

from . import __doc__ as PACKAGE_DOC
from . import report, task
from .features import STRIDE, image_source
from .operator import backend_status, measure_operator, operator_cells
from .schedules import SCHEDULES

__all__ = ["KEY_FIELDS", "PARTS", "PROTOCOL_VERSION", "build_parser", "main"]

#: bump when a code change makes stored records incomparable
PROTOCOL_VERSION = 2
#: one record per (part, conv, cell) and, in the task part, training protocol and seed
KEY_FIELDS = ("part", "conv", "cell", "protocol", "seed")
PARTS = ("operator", "task")
TITLE = "Irregular convolutions in HG-Conv's slot vs grid convolutions"
SPLINE_CPU_WARNING = r".*non-optimized CPU version of `SplineConv`"


def build_parser() -> argparse.ArgumentParser:
    """The parser: the shared options of :func:`benchmarks.common.cli.base_parser`
    plus ``--part``, ``--edge-threshold``, ``--direction-rule``, ``--seeds`` and
    ``--spline-impl``."""
    parser = base_parser(
        "benchmarks.irregular_conv", PACKAGE_DOC, "results/irregular_conv",
        examples=["", "--quick", "--full --out results/irregular_conv/full-rerun",
                  "--part operator --threads 1", "--data-root /data --edge-threshold 1e-7"])
    parser.add_argument("--part", choices=("all", *PARTS), default="all",
                        help="measure only one part (the other part's stored records are kept)")
    parser.add_argument("--edge-threshold", type=float, default=EDGE_THRESHOLD,
                        metavar="W",
                        help="drop group-graph edges whose adjacency weight is below W "
                             "(paper: 1e-7; pixel contacts); part of the protocol")
    parser.add_argument("--direction-rule", choices=DIRECTION_RULES, default=DIRECTION_RULE,
                        help="how a pair of groups gets its one direction type "
                             "(ImageToGroupGraph(direction_rule=...)); part of the protocol")
    parser.add_argument("--seeds", type=positive_int, default=None, metavar="N",
                        help="train every model of the task part with N seeds (--seed, "
                             "--seed + 1, ...; default: the schedule's); more seeds resolve "
                             "smaller differences, and the finished runs of fewer seeds are "
                             "reused; part of the protocol")
    parser.add_argument("--spline-impl", choices=SPLINE_IMPLS, default="fused",
                        help="SplineConv: 'fused' (the same function and parameters as PyG's "
                             "layer, one sparse product; fast on CPU) or 'pyg' (PyG's layer, "
                             "torch-spline-conv); part of the protocol")
    return parser


def run_config(args: argparse.Namespace, source: dict[str, Any]) -> dict[str, Any]:
    """The protocol of this run (everything that changes what a figure means)."""
    schedule = SCHEDULES[schedule_name(args)]
    return protocol_config(
        args, protocol_version=PROTOCOL_VERSION, benchmark="irregular_conv",
        operator={**schedule.to_dict(), "memory_format": "channels_last",
                  "images": {k: v for k, v in source.items() if k != "note"},
                  "extractor": (f"ResNet-18 stem + stages 1-3 (stage 3 dilated, output stride "
                                f"{STRIDE}), width C/256, seeded, untrained, eval mode"),
                  "module": "HGConvModule(C, num_layers=1, embed_channels=16, "
                            "sampler='topk_random', num_iterations=3)"},
        task=task.task_config(args, schedule),
        edge_threshold=float(args.edge_threshold), direction_rule=args.direction_rule,
        spline_impl=args.spline_impl,
        backends=backend_status(),
        omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.edge_threshold >= 0:  # also rejects nan
        parser.error(f"--edge-threshold must be >= 0 (got {args.edge_threshold})")
    tic = time.perf_counter()
    # PyG warns on every SplineConv call on CPU (with --spline-impl pyg); the report's
    # conv notes name the CPU kernels it runs instead
    warnings.filterwarnings("ignore", message=SPLINE_CPU_WARNING)
    env = setup_run(args)
    schedule = SCHEDULES[schedule_name(args)]
    source = image_source(args.data_root)
    config = run_config(args, source)
    progress = not args.no_progress
    notes = [f"Schedule **{schedule_name(args)}**. The sizes are far below the paper's "
             "(ResNet-101 on Cityscapes / ADE20K / PASCAL-Context): no figure here is "
             "comparable with the paper's tables, only the relations between the convs are. "
             f"Times: median of {schedule.repeats} call(s) after {schedule.warmup} warm-up "
             f"call(s), {args.threads} torch thread(s), on this (possibly shared) machine -- "
             "see the load column (1-minute load average when the cell started); OpenMP wait "
             f"policy {os.environ.get('OMP_WAIT_POLICY', 'unset (spin briefly, then sleep)')}."]
    if source["fallback"]:
        notes.append(f"**Data:** {source['note']}.")
        print(f"NOTE: {source['note']}.", flush=True)
    missing = [name for name, ok in config["backends"].items() if not ok]
    if missing:
        text = (f"the compiled backends {missing} are missing: the convs that need them "
                "(spline: torch_spline_conv, dynamic_edge: torch_cluster) are recorded as "
                "errors; install them and re-run to measure those cells")
        notes.append(f"**Backends:** {text}.")
        print(f"NOTE: {text}.", flush=True)

    store = ResultStore(args.out, config, KEY_FIELDS, environment=env, fresh=args.fresh)
    parts = PARTS if args.part == "all" else (args.part,)
    cells = operator_cells(schedule)
    if "operator" in parts:
        operator = run_cells(
            store, cells,
            lambda cell: measure_operator(cell, source, schedule, args),
            desc="operator", progress=progress)
    else:
        operator = [r for r in store.records if r["part"] == "operator"]
    if "task" in parts:
        task_records = task.run(args, schedule, store, progress=progress)
    else:
        task_records = [r for r in store.records if r["part"] == "task"]

    tables = report.operator_tables(operator) if operator else {}
    if task_records:
        tables.update(report.task_tables(task_records))
        data_note = next((r["dataset_note"] for r in task_records if r.get("dataset_note")),
                         None)
        if data_note:
            notes.append(f"**Task data:** {data_note}")
    notes.append(report.fairness_notes(args.edge_threshold, args.direction_rule))
    summary = report.findings(operator, task_records)
    if summary:
        notes.append(summary)
    plots = report.plots(operator, task_records, args.out)
    for title, table in tables.items():
        print(f"\n## {title}\n\n{table}")
    print("\n" + "\n\n".join(notes))
    path = write_report(args.out, TITLE, config, tables, environment=env, plots=plots,
                        notes="\n\n".join(notes))
    records = (*operator, *task_records)
    errors = sum(r.get("status") == "error" for r in records)
    print(f"\n{len(operator)} operator and {len(task_records)} task records ({errors} with "
          f"errors); wrote {store.path}, {path} and {len(plots)} PNG plots in "
          f"{time.perf_counter() - tic:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
