"""Atomic file writes: a file is either its old or its complete new version.

Everything this project writes for a user (results, reports, checkpoints,
figures) goes through :func:`atomic_open`: the data goes to a temporary file in
the same directory, is flushed and fsynced, and only then replaces the target
with :func:`os.replace`. An interrupted run (an exception, ``KeyboardInterrupt``,
a crash) never leaves a half-written file.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

PathLike = str | os.PathLike


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry to disk (best effort: not every OS/filesystem allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """Open a temporary file next to ``path`` that replaces ``path`` on success.

    The data is written to ``<dir>/.<name>.<random>.tmp``, flushed and fsynced;
    only when the ``with`` block exits without an exception is the temporary
    file moved over ``path`` with :func:`os.replace` (atomic on POSIX and
    Windows). On any exception -- including ``KeyboardInterrupt`` -- the
    temporary file is removed and the previous ``path`` is left untouched.

    Args:
        path: the final file; parent directories are created.
        mode: ``"wb"`` or ``"w"``.
        encoding: text encoding for ``mode="w"`` (default UTF-8).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # mkstemp creates 0600 files; keep the mode of the file we replace, else 0644.
        try:
            os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o644)
        except OSError:
            pass
        if mode == "w":
            handle: IO = os.fdopen(fd, "w", encoding=encoding or "utf-8", newline="")
        else:
            handle = os.fdopen(fd, "wb")
        with handle as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open`); return the path."""
    with atomic_open(path, "wb") as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`); return the path."""
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    with atomic_open(path, "w", encoding=encoding) as f:
        f.write(text)
    return Path(path)
