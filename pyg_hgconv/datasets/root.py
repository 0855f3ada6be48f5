"""The one setting that locates the real data sets.

Tests and benchmarks read the image data sets (CamVid, roads, ECSSD, DRIVE,
ORL faces, MNIST) from a single root directory laid out as described in
``../shared/data/README.md``:

* the environment variable ``PYG_HGCONV_DATA`` when it is set;
* otherwise ``<repo>/../shared/data`` (relative to the repository root).

Every loader also takes an explicit ``root=`` so users can point it at the full
original data sets.
"""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "PYG_HGCONV_DATA"

#: repository root when the package is used from a checkout (editable install)
REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """Return the data root: ``$PYG_HGCONV_DATA`` or ``<repo>/../shared/data``."""
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser().resolve()
    return (REPO_ROOT.parent / "shared" / "data").resolve()


def dataset_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """Return ``root/name`` (``root`` defaults to :func:`data_root`)."""
    base = Path(root).expanduser() if root is not None else data_root()
    return base / name


def has_dataset(name: str, root: str | os.PathLike | None = None) -> bool:
    """Whether ``root/name`` exists and is a non-empty directory."""
    path = dataset_dir(name, root)
    return path.is_dir() and any(path.iterdir())
