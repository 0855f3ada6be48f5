"""TVConv benchmark: ORL faces, DRIVE vessel segmentation and efficiency, depthwise vs TVConv.

Three studies (``--study``), each written to ``<out>/<study>/``
(``results.json``, ``results.md``, PNG plots, training checkpoints in ``runs/``):

* ``faces`` -- MobileNetV2 face models with depthwise convs or TVConv trained on a
  fixed seeded split of the ORL faces (96x96, AM-Softmax), identification and
  verification accuracy on held-out images/pairs per width, mean and spread over
  seeds; the affinity maps of a trained TVConv model (PNG).
* ``drive`` -- a DeepLabV3+-style network whose ASPP uses inverted residual blocks
  with depthwise convs or TVConv, trained on DRIVE; Dice and Hausdorff distance on
  the test images.
* ``efficiency`` -- per-layer forward time of cached/uncached/official TVConv vs
  native depthwise, MobileNetV2 throughput (batch 1-16, 1-2 threads) and peak
  memory of x0.5-TVConv vs x1.0-depthwise, MACs and parameters.

``--study all`` runs the three one after the other. The default schedule is sized
for about 20 minutes per study on 2 CPU cores; ``--full`` runs the longer, more
faithful schedules (hours), ``--quick`` is a smoke run. Every study prints its
tables (and whether the issue's performance goals hold) and resumes after an
interruption: finished cells are reused, an unfinished training continues from
its last epoch.

``--threads`` (default 1) and ``--device`` apply to the two training studies; on a
shared 2-core machine two OpenMP threads were measured 3-9x slower than one. The
efficiency study always measures the CPU and sets its thread counts per cell.
"""
from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence

from benchmarks.common.cli import base_parser, setup_run

STUDIES = ("faces", "drive", "efficiency")


def _study_module(name: str):
    from benchmarks.tvconv_bench import drive, efficiency, faces

    return {"faces": faces, "drive": drive, "efficiency": efficiency}[name]


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (AttributeError, OSError):  # no load average on this OS
        return "n/a"


def build_parser():
    """The command line of ``python -m benchmarks.tvconv``."""
    parser = base_parser(
        "benchmarks.tvconv", __doc__, "results/tvconv",
        examples=["--study faces", "--study efficiency --quick",
                  "--study drive --full --out results/tvconv/drive-full", "--study all"])
    parser.add_argument("--study", choices=(*STUDIES, "all"), required=True,
                        help="which study to run (results go to <out>/<study>/)")
    parser.add_argument("--no-progress", action="store_true",
                        help="hide the progress bars")
    # One intra-op thread by default for the training studies: on a shared 2-core
    # machine two OpenMP threads were measured 3-9x slower than one (each waits for
    # the other at every op); pass --threads 2 on an idle machine. The efficiency
    # study sets its own thread counts per cell (1 and 2).
    parser.set_defaults(threads=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = setup_run(args)
    base_out = args.out
    for name in STUDIES if args.study == "all" else (args.study,):
        out_dir = base_out / name
        tic, load_before = time.perf_counter(), _load()
        tables = _study_module(name).run(args, env, out_dir)
        for title, table in tables.items():
            print(f"\n## {name}: {title}\n\n{table}")
        print(f"\n{name}: {time.perf_counter() - tic:.0f} s in this call (1-minute load "
              f"average {load_before} before, {_load()} after, {os.cpu_count()} logical "
              f"cores); wrote {out_dir / 'results.json'} and {out_dir / 'results.md'}",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
