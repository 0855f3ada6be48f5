"""Fixtures of the task benchmark tests (the repository root is on ``sys.path``
through pytest's ``pythonpath`` setting in pyproject.toml)."""
import pytest

from pyg_hgconv.datasets import data_root as _data_root
from pyg_hgconv.datasets import has_dataset

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
