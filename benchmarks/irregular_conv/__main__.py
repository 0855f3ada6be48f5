"""``python -m benchmarks.irregular_conv``: see :mod:`benchmarks.irregular_conv`.

The OpenMP wait policy is the environment's (``OMP_WAIT_POLICY``, see
:mod:`benchmarks`); the policy in force is part of the recorded configuration.
"""
import sys

from benchmarks.irregular_conv.command import main

sys.exit(main())
