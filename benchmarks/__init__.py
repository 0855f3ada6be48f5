"""Benchmark commands of pyg-hgconv (run from the repository root).

Every command is a module run with ``python -m benchmarks.<name>`` and shares the
infrastructure in :mod:`benchmarks.common`: one command-line layer
(:mod:`~benchmarks.common.cli`), one training loop
(:mod:`~benchmarks.common.training`), one results/report layer
(:mod:`~benchmarks.common.results`), one plotting layer
(:mod:`~benchmarks.common.plots`) and one timing layer
(:mod:`~benchmarks.common.timing`).
"""

# The OpenMP wait policy is left to the environment (libgomp's default: a
# thread spins briefly after a parallel region, then sleeps), which is what a
# PyTorch user gets and the fastest on an idle machine. Forcing PASSIVE makes
# every parallel op wake a sleeping thread, a cost that dominates code made of
# many small ops such as the clustering; on a shared or loaded machine, where
# spinning threads wait for descheduled peers, run with OMP_WAIT_POLICY=PASSIVE.
# Every command records the policy in force in its environment.
