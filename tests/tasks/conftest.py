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

import pytest  # noqa: E402

from pyg_hgconv.datasets import data_root as _data_root  # noqa: E402
from pyg_hgconv.datasets import has_dataset  # noqa: E402

#: the real data sets the task tests read
TASK_DATASETS = ("camvid", "roads", "ecssd")


@pytest.fixture(scope="session")
def data_root():
    """The shared data root; tests marked ``data`` are skipped without the data sets."""
    root = _data_root()
    missing = [name for name in TASK_DATASETS if not has_dataset(name, root)]
    if missing:
        pytest.skip(f"data sets {missing} not found under {root}")
    return root
