"""``python -m benchmarks.superpixels``: see :mod:`benchmarks.superpixels`."""
import sys

from benchmarks.superpixels.command import main

sys.exit(main())
