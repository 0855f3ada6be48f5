"""Make the repository root importable so that ``import benchmarks`` works.

``benchmarks`` is not part of the installed package (it is run as
``python -m benchmarks.<name>`` from the repository root); ``python -m pytest``
puts the working directory on ``sys.path`` but plain ``pytest`` does not.
"""
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))
