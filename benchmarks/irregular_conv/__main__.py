"""``python -m benchmarks.irregular_conv``: see :mod:`benchmarks.irregular_conv`.

Before torch (and with it the OpenMP runtime) is loaded, the OpenMP wait
policy is set to ``PASSIVE`` unless the environment sets one: waiting OpenMP
threads then sleep instead of spinning. On a machine where anything else runs,
spinning threads take the very cores the measured work needs -- measured on the
shared 2-core development machine at load 5, one 2-thread clustering call took
0.17-1.8 s spinning and 0.03-0.05 s passive (1 thread: 0.045 s). The policy in
force is part of the recorded configuration.
"""
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from benchmarks.irregular_conv.command import main

sys.exit(main())
