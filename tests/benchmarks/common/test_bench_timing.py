"""Wall-clock statistics, peak memory and thread pinning."""
import time

import pytest
import torch

from benchmarks.common.timing import (
    _peak_of_running_sum,
    fixed_threads,
    median_time,
    peak_memory_bytes,
)

MiB = 2**20


def test_peak_memory_cpu_detects_allocation_and_frees():
    def allocate_64mib():
        x = torch.empty(64 * MiB, dtype=torch.uint8)
        x.fill_(1)

    def alloc_free_loop():  # 10 x 4 MiB, each freed before the next: peak is one of them
        for _ in range(10):
            y = torch.ones(MiB)  # 4 MiB of float32
            del y

    peak = peak_memory_bytes(allocate_64mib, "cpu")
    assert 64 * MiB <= peak < 65 * MiB
    loop = peak_memory_bytes(alloc_free_loop, "cpu")
    assert 4 * MiB <= loop < 8 * MiB
    assert peak_memory_bytes(lambda: None, "cpu") == 0


def test_peak_memory_ignores_frees_of_older_tensors():
    keep = [torch.empty(16 * MiB, dtype=torch.uint8)]
    assert peak_memory_bytes(keep.clear, "cpu") == 0


def test_running_sum_peak():
    assert _peak_of_running_sum([5, -5, 3, 4, -7, 1]) == 7
    assert _peak_of_running_sum([-5, 2]) == 0


def test_median_time_statistics():
    stats = median_time(lambda: time.sleep(0.002), repeats=5, warmup=1)
    assert len(stats["times"]) == 5 and stats["repeats"] == 5 and stats["warmup"] == 1
    assert 0.002 <= stats["min"] <= stats["median"] <= max(stats["times"])
    assert stats["iqr"] >= 0
    calls = []
    median_time(lambda: calls.append(1), repeats=3, warmup=2)
    assert len(calls) == 5
    with pytest.raises(ValueError, match="repeats"):
        median_time(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="warmup"):
        median_time(lambda: None, warmup=-1)


def test_fixed_threads_restores():
    old = torch.get_num_threads()
    with fixed_threads(1) as n:
        assert n == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == old
    with pytest.raises(ValueError, match="n must"):
        with fixed_threads(0):
            pass
