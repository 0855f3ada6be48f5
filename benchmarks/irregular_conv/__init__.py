"""The irregular-convolution benchmark (``make bench``): HG-Conv against PyG's
GCNConv, GMMConv, SplineConv and DynamicEdgeConv in the same slot, on the same
data-adaptive group graphs, and against the grid convolutions they replace
(dense 3x3, depthwise 3x3, TVConv), on real images.

It answers, in one run, the question of the HG-Conv paper's Table 3: how does
the direction-aware HG-Conv compare with the irregular convolutions of
geometric deep learning on the same group graphs -- and what do they all cost
against the grid convolutions?

Two parts, one results file:

* ``operator`` (:mod:`.operator`): every registry conv on feature maps of real
  CamVid frames (a fixed, seeded ResNet-18 trunk, :mod:`.features`) at several
  map sizes and, for the graph convs, downsampling ratios 1/16 .. 1/256:
  forward and forward+backward time, peak memory, parameters and FLOPs of the
  conv alone, of the whole HG module and of the clustering alone.
* ``task`` (:mod:`.task`): a small HG-ResNet-18 segmentation network trained
  from scratch on CamVid once per graph conv in its stage-4 slot, plus the
  grid ResNet-18 with a dilated and with a plain last stage, with the same
  budget and seed: validation mIoU, pixel accuracy, GFLOPs per image, time.

Without ``<data root>/camvid`` both parts fall back to the procedurally
generated HeterogeneousScenes set (no download) and say so. The schedules are
in :mod:`.schedules`; the default finishes in under 15 minutes on 2 CPU cores
and is far smaller than the paper's setting, so only relations between the
convolutions carry over, never the absolute figures.

Output (``--out DIR``, default ``results/irregular_conv/<schedule>``):
``results.json`` (one record per cell, keyed by ``part``, ``conv`` and
``cell``; the exact configuration and the environment at the top),
``results.md`` (the tables, notes and plots), PNG plots, and the task's
training runs under ``runs/``. An interrupted run resumes: finished cells and
finished epochs are reused. A baseline whose compiled backend is missing
(torch-spline-conv for ``spline``, torch-cluster for ``dynamic_edge``) gets an
error record instead of figures; the backends' availability is part of the
protocol, so once installed the next run measures everything anew.
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (see :func:`benchmarks.irregular_conv.command.main`).

    Importing this package does not import torch (a fast ``--help``)."""
    from .command import main as run

    return run(argv)
