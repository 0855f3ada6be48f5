"""Benchmark commands of pyg-hgconv (run from the repository root).

Every command is a module run with ``python -m benchmarks.<name>`` and shares the
infrastructure in :mod:`benchmarks.common`: one command-line layer
(:mod:`~benchmarks.common.cli`), one training loop
(:mod:`~benchmarks.common.training`), one results/report layer
(:mod:`~benchmarks.common.results`), one plotting layer
(:mod:`~benchmarks.common.plots`) and one timing layer
(:mod:`~benchmarks.common.timing`).
"""
