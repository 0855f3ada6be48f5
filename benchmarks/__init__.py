"""Benchmark commands of pyg-hgconv (run from the repository root).

Every command is a module run with ``python -m benchmarks.<name>`` and shares the
infrastructure in :mod:`benchmarks.common`: one command-line layer
(:mod:`~benchmarks.common.cli`), one training loop
(:mod:`~benchmarks.common.training`), one results/report layer
(:mod:`~benchmarks.common.results`), one plotting layer
(:mod:`~benchmarks.common.plots`) and one timing layer
(:mod:`~benchmarks.common.timing`).
"""

import os as _os

# OpenMP threads sleep between parallel regions instead of spinning: on a
# shared or loaded machine spinning threads wait for descheduled peers in
# every one of the many small ops of the clustering (measured here: one
# 2-thread clustering call 0.17-1.8 s spinning, 0.03-0.05 s sleeping). Must be
# set before torch starts OpenMP; a value set by the user wins. Every command
# records it in its environment.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

