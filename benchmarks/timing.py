"""Shared timing helper of the benchmark scripts (run as ``python benchmarks/<script>.py``)."""
from __future__ import annotations

import time

__all__ = ["best_time"]


def best_time(fn, reps: int, warmup: int = 1) -> float:
    """Best of `reps` timed calls of `fn` after `warmup` untimed calls (seconds)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)
