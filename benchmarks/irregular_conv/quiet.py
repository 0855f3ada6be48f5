"""Keep the profiler's native log lines out of the benchmark's output."""
from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["quiet_native_stderr"]


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to ``/dev/null`` in the block.

    torch's CPU profiler (behind
    :func:`benchmarks.common.timing.peak_memory_bytes`) logs two
    ``USDT: ... profiler_start/stop`` lines per call from C++, whatever
    ``KINETO_LOG_LEVEL`` says; a benchmark that measures memory in every cell
    would bury its progress bars and tables under them. Python-level writes to
    ``sys.stderr`` inside the block are flushed first and go to ``/dev/null``
    as well, so keep the block to the measurement itself. Does nothing when
    ``enabled`` is false or stderr has no file descriptor (e.g. under capture).
    """
    if not enabled:
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), fd)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
    finally:
        os.close(saved)
