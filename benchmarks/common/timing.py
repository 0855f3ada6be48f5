"""Timing and memory measurement shared by the benchmarks.

* :func:`median_time` -- wall-clock median and inter-quartile range of a callable;
* :func:`peak_memory_bytes` -- peak *extra* memory torch allocates during a callable,
  on CUDA and on CPU;
* :func:`fixed_threads` -- run a block with a given torch thread count.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

__all__ = ["fixed_threads", "interleaved_times", "median_time", "peak_memory_bytes",
           "quiet_native_stderr"]


def _sync(device: torch.device | None) -> None:
    if device is not None and device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device is None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _as_device(device: str | torch.device | None) -> torch.device | None:
    return None if device is None else torch.device(device)


def median_time(
    fn: Callable[[], Any],
    repeats: int = 10,
    warmup: int = 2,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Time ``fn()`` ``repeats`` times after ``warmup`` untimed calls.

    Each call is timed with :func:`time.perf_counter`; on CUDA the device is
    synchronised before the clock starts and before it stops, so asynchronous
    kernels are counted (``device=None`` synchronises whenever CUDA is in use).

    Args:
        fn: a callable without arguments (wrap the work in a closure/lambda;
            use ``torch.no_grad()`` inside it if gradients are not part of what
            is measured).
        repeats: timed calls, ``>= 1``.
        warmup: untimed calls first (allocator, caches, lazy init), ``>= 0``.
        device: the device the work runs on.

    Returns:
        ``{"median": s, "iqr": s, "mean": s, "min": s, "times": [s, ...],
        "repeats": repeats, "warmup": warmup}`` -- all times in seconds; ``iqr``
        is the 75th minus the 25th percentile.
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    if int(repeats) != repeats or repeats < 1:
        raise ValueError(f"repeats must be an integer >= 1, got {repeats!r}")
    if int(warmup) != warmup or warmup < 0:
        raise ValueError(f"warmup must be an integer >= 0, got {warmup!r}")
    dev = _as_device(device)
    for _ in range(int(warmup)):
        fn()
    times = []
    for _ in range(int(repeats)):
        _sync(dev)
        start = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - start)
    arr = np.asarray(times)
    q25, q50, q75 = np.percentile(arr, [25, 50, 75])
    return {
        "median": float(q50),
        "iqr": float(q75 - q25),
        "mean": float(arr.mean()),
        "min": float(arr.min()),
        "times": [float(t) for t in times],
        "repeats": int(repeats),
        "warmup": int(warmup),
    }


def _peak_of_running_sum(deltas: list[int]) -> int:
    """Peak of the prefix sums of allocation deltas (bytes), never below 0."""
    peak = running = 0
    for delta in deltas:
        running += delta
        peak = max(peak, running)
    return peak


def peak_memory_bytes(fn: Callable[[], Any], device: str | torch.device = "cpu") -> int:
    """Peak memory (bytes) that torch allocates *in addition* during ``fn()``.

    The baseline is what is allocated when ``fn`` starts; memory freed by
    ``fn`` that was allocated before does not count as negative.

    * CUDA: :func:`torch.cuda.reset_peak_memory_stats` and
      ``max_memory_allocated() - memory_allocated()`` before the call (the
      caching allocator's *allocated* bytes, not its reserved pool).
    * CPU: the call runs under :class:`torch.profiler.profile` with
      ``profile_memory=True``; its allocation and free events (``[memory]``,
      signed byte counts) are sorted by time and the peak of their running
      sum is returned. Only tensor storage allocated by torch's CPU allocator
      is seen (not Python objects or memory of non-torch libraries), and the
      profiler adds overhead, so do not time the same call. The first profiled
      call in a process takes a few seconds to start the profiler.

    Returns:
        The peak extra bytes as an ``int`` (``0`` if ``fn`` allocates nothing).
    """
    if not callable(fn):
        raise TypeError(f"fn must be callable, got {type(fn).__name__}")
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        base = torch.cuda.memory_allocated(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        fn()
        torch.cuda.synchronize(dev)
        return max(0, int(torch.cuda.max_memory_allocated(dev) - base))
    if dev.type != "cpu":
        raise ValueError(f"device must be a cpu or cuda device, got {dev}")

    from torch.profiler import ProfilerActivity, profile

    prof = profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                   record_shapes=False, with_stack=False)
    with quiet_native_stderr():
        prof.__enter__()
    try:
        fn()
    finally:
        with quiet_native_stderr():
            prof.__exit__(None, None, None)
    try:
        events = prof.profiler.kineto_results.events()
    except AttributeError as exc:  # pragma: no cover - depends on the torch build
        raise RuntimeError("this torch build's profiler exposes no memory events") from exc
    cpu = torch._C._autograd.DeviceType.CPU
    mem = [
        (ev.start_ns(), i, int(ev.nbytes()))
        for i, ev in enumerate(events)
        if ev.name() == "[memory]" and ev.device_type() == cpu
    ]
    mem.sort()
    return _peak_of_running_sum([d for _, _, d in mem])


@contextlib.contextmanager
def quiet_native_stderr(enabled: bool = True) -> Iterator[None]:
    """Send what native code writes to file descriptor 2 to ``/dev/null`` in the block.

    torch's CPU profiler logs two ``USDT: ... profiler_start/stop`` lines per
    use from C++, whatever ``KINETO_LOG_LEVEL`` says; :func:`peak_memory_bytes`
    wraps the profiler's start and stop (not the measured call) in this block.
    Python-level writes to ``sys.stderr`` inside the block are flushed first
    and go to ``/dev/null`` as well. Does nothing when ``enabled`` is false or
    stderr has no file descriptor (e.g. under capture).
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


@contextlib.contextmanager
def fixed_threads(n: int) -> Iterator[int]:
    """Run the block with ``torch.set_num_threads(n)``; restore the old count after.

    Example::

        with fixed_threads(1):
            stats = median_time(lambda: conv(x, edge_index))
    """
    if int(n) != n or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield int(n)
    finally:
        torch.set_num_threads(old)


def interleaved_times(fns: dict[str, Callable[[], Any]], rounds: int,
                      round_s: float) -> dict[str, dict[str, float]]:
    """Time every callable of ``fns`` in ``rounds`` interleaved rounds.

    Each callable is first called twice (warm-up; its second call sets the number
    of timed calls per round, ``round_s`` seconds' worth, between 1 and 200).
    Each round then times every callable back to back with :func:`median_time`,
    so that changes of the machine's load hit them alike and their ratios hold.
    Returns per name the median, inter-quartile range and minimum of all its
    timed calls, in milliseconds, and the number of calls.
    """
    repeats = {}
    for name, fn in fns.items():
        stats = median_time(fn, repeats=1, warmup=1)
        repeats[name] = max(1, min(200, math.ceil(round_s / max(stats["median"], 1e-7))))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name] += median_time(fn, repeats=repeats[name], warmup=0)["times"]
    out = {}
    for name, values in times.items():
        t = torch.tensor(values, dtype=torch.float64)
        q25, q50, q75 = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
        out[name] = {"ms": 1e3 * float(q50), "iqr_ms": 1e3 * float(q75 - q25),
                     "min_ms": 1e3 * float(t.min()), "calls": len(values)}
    return out
