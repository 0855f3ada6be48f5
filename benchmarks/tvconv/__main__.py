"""``python -m benchmarks.tvconv``: see :mod:`benchmarks.tvconv.command`."""
import sys

from benchmarks.tvconv.command import main

sys.exit(main())
