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
  native depthwise (float32, and cached vs native in bfloat16), one layer's training
  step (float32; the apply alone also in bfloat16), MobileNetV2
  throughput (batch 1-16, 1-2 threads) and peak memory of x0.5-TVConv vs
  x1.0-depthwise, MACs and parameters.

``--study all`` runs the three one after the other. The default schedule is sized
for about 20 minutes per study on 2 CPU cores; ``--full`` runs the longer, more
faithful schedules (hours), ``--quick`` is a smoke run. Every study prints its
tables (and whether the performance goals hold) and resumes after an
interruption: finished cells are reused, an unfinished training continues from
its last epoch.

``--threads`` (default 1) and ``--device`` apply to the two training studies (one
intra-op thread by default: the small models of these studies gain little from a
second thread, and on a shared machine the threads wait for each other at every
op); the efficiency study always measures the CPU and sets its thread counts per
cell.
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from benchmarks.common.cli import base_parser, run_parts, setup_run

STUDIES = ("faces", "drive", "efficiency")


def _study_module(name: str):
    # imported when run, so that ``--help`` does not import torch
    return importlib.import_module(f"benchmarks.tvconv.{name}")


def build_parser():
    """The command line of ``python -m benchmarks.tvconv``."""
    parser = base_parser(
        "benchmarks.tvconv", __doc__, "results/tvconv",
        examples=["--study faces", "--study efficiency --quick",
                  "--study drive --full --out results/tvconv/drive-full", "--study all"])
    parser.add_argument("--study", choices=(*STUDIES, "all"), required=True,
                        help="which study to run (results go to <out>/<study>/)")
    # One intra-op thread by default for the training studies (see the module
    # docstring); the efficiency study sets its own thread counts per cell.
    parser.set_defaults(threads=1)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    env = setup_run(args)
    parts = STUDIES if args.study == "all" else (args.study,)
    return run_parts(args, parts, lambda name, out_dir: _study_module(name).run(args, env, out_dir))


if __name__ == "__main__":
    sys.exit(main())
