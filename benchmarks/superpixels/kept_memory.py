r"""The batch-scaling timings again, in a child process whose C library keeps the
memory it frees.

The batched module's outputs grow with the batch (most of their bytes are the
tiled assignment and its coordinate form). glibc hands every block above its
mmap threshold (which it raises to at most 32 MB) back to the system when it is
freed, and returns the top of the heap when it exceeds its trim threshold, so
once a batch's tensors pass that size every call maps them afresh and the kernel
page-faults them in while it writes them; a smaller batch's tensors come back
from the heap, already mapped.
That cost is the allocator's, not more work per image, and any op that makes
tensors of that size meets it.

:func:`measure_batch_scaling_keeping_memory` repeats
:func:`~benchmarks.superpixels.graphs.measure_batch_scaling` on the same images
in a child process started with :data:`KEPT_MEMORY_ENV` (glibc reads these
variables when it starts, so the parent cannot set them for itself): the
difference between the two measurements is what the fresh pages cost. The same
setting is how a user keeps that cost away (or an allocator that caches, such as
jemalloc or tcmalloc). Only glibc reads the variables; elsewhere the function
returns ``None``.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["KEPT_MEMORY_ENV", "keeps_memory_here", "measure_batch_scaling_keeping_memory"]

#: glibc's thresholds fixed far above any tensor of the benchmark: freed blocks
#: stay in the heap and the heap is not trimmed
KEPT_MEMORY_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 30),
                   "MALLOC_TRIM_THRESHOLD_": str(1 << 31)}
_REPO = Path(__file__).resolve().parents[2]


def keeps_memory_here() -> bool:
    """Whether this process's C library is glibc (the only one that reads
    :data:`KEPT_MEMORY_ENV`)."""
    return platform.libc_ver()[0] == "glibc"


def measure_batch_scaling_keeping_memory(
        data_root: str | os.PathLike, limit: int, threads: int, rounds: int,
        batch_sizes: tuple[int, ...], sizes: tuple[tuple[int, int], ...],
        timeout_s: float = 1800.0) -> list[dict[str, Any]] | None:
    """:func:`~benchmarks.superpixels.graphs.measure_batch_scaling` on the first
    ``limit`` test digits of ``data_root``, run in a child process with
    :data:`KEPT_MEMORY_ENV` set: the same records, or ``None`` where the C
    library is not glibc.

    Raises:
        RuntimeError: the child failed (its standard error is quoted).
    """
    if not keeps_memory_here():
        return None
    request = {"data_root": str(data_root), "limit": int(limit), "threads": int(threads),
               "rounds": int(rounds), "batch_sizes": [int(b) for b in batch_sizes],
               "sizes": [[int(h), int(w)] for h, w in sizes]}
    path = os.pathsep.join(filter(None, [str(_REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, **KEPT_MEMORY_ENV, "PYTHONPATH": path}
    child = subprocess.run([sys.executable, "-m", __name__], input=json.dumps(request),
                           capture_output=True, text=True, env=env, timeout=timeout_s,
                           check=False)
    if child.returncode != 0:
        raise RuntimeError(f"the batch-scaling child process failed ({child.returncode}):\n"
                           f"{child.stderr[-4000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def _child() -> None:
    """Read a request from standard input, print the records as one JSON line."""
    import warnings

    from benchmarks.superpixels.graphs import image_split, measure_batch_scaling

    request = json.loads(sys.stdin.read())
    images = image_split("test", request["data_root"], request["limit"]).images
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        records = measure_batch_scaling(images, request["threads"], request["rounds"],
                                        tuple(request["batch_sizes"]),
                                        tuple(tuple(s) for s in request["sizes"]))
    print(json.dumps(records), flush=True)


if __name__ == "__main__":
    _child()
