"""Graph classification of MNIST digits as graphs (``python -m benchmarks.superpixels``):
the classic benchmark of irregular convolutions (MoNet/GMMConv and SplineCNN
were introduced on it), with every graph conv of the registry on three kinds of
graphs built from the same images:

* ``slic`` -- PyG's own pipeline, the MoNet/SplineCNN setting:
  ``ToSLIC(n_segments=75)`` + ``KNNGraph(k=8)`` + :class:`~pyg_hgconv.DirectionTypes`
  (the nine direction types HG-Conv needs, from the centroids) + ``Cartesian``;
* ``groups`` -- the parameter-free :class:`~pyg_hgconv.ToGroupGraph` with 75
  groups per image + ``Cartesian``;
* ``learned`` -- the clustering inside the model (:class:`~pyg_hgconv.ImageToGroupGraph`
  with a learned embedding and scales), trained end to end through the
  classifier: the grouping adapts to the task. Its centres are sampled in
  training as in evaluation (``train_sampling='seeded'``, as the ``groups``
  kind's are), so that the two kinds differ only in what the clustering learns;
  at initialisation the learned clustering builds the ``groups`` kind's graphs,
  and the classifier starts from the same weights in both kinds (one seed, one
  initialisation).

Every model is the same small classifier (:mod:`.model`): node features
(intensity and position) -> a linear layer -> three registry graph convs with
BatchNorm and ReLU -> global mean pooling -> an MLP, with the conv's parameters
matched to HG-Conv's :math:`9 C^2` where the conv allows it (GCN has one
weight, as in the comparison benchmark). It trains with every seed of the
schedule; test accuracy is the mean ± std over the seeds, and differences are
compared seed by seed, each question's comparisons corrected together
(:func:`~benchmarks.common.summary.paired_differences`).

Graph building is timed too (:mod:`.graphs`): images/s of PyG's pipeline per
image, of ``ToGroupGraph`` per image and of the batched module, on 1 and 2
threads, interleaved; and the batched module's cost per image against the batch
size (1 to 256 digits, and the digits resized to 96 x 128 with as many pixels
per group), which must not grow with the batch; the same timings again in a
child process whose C library keeps freed memory (:mod:`.kept_memory`) say which
part of a rise is the allocator's fresh pages.

Data: only the 10,000 MNIST *test* digits are available locally, split 8k / 1k /
1k by a fixed seed (:class:`~pyg_hgconv.datasets.MNISTGroupGraphs`); published
numbers (trained on the 60k training digits) are printed beside ours for
reference only.
"""
from __future__ import annotations

from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (see :func:`benchmarks.superpixels.command.main`)."""
    from .command import main as run

    return run(argv)
