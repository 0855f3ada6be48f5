"""Shared benchmark infrastructure.

=========================  ==========================================================
module                     what it owns
=========================  ==========================================================
``cli``                    the common command line (``--quick/--full``, ``--data-root``,
                           ``--out``, ``--seed``, ``--threads``, ``--device``, ``--fresh``)
``results``                atomic writers, the resumable :class:`ResultStore`
                           (``results.json``), Markdown tables and ``results.md``
``training``               THE training loop :func:`fit` (checkpoints, resume, DDP)
``timing``                 wall-clock medians, peak memory, fixed thread counts
``plots``                  PNG scatter/line/bar plots, written atomically
``metrics``                task metrics (mIoU, F-measure, ...)
=========================  ==========================================================

The submodules are imported explicitly (``from benchmarks.common.results import
ResultStore``) so that a command only pays for what it uses.
"""
