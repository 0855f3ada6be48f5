"""``python -m benchmarks.irregular_conv``: see :mod:`benchmarks.irregular_conv`.

The OpenMP wait policy (``PASSIVE`` unless the environment sets one) is set by
:mod:`benchmarks` before torch loads; the policy in force is part of the
recorded configuration.
"""
import sys

from benchmarks.irregular_conv.command import main

sys.exit(main())
