"""Shared timing helper of the benchmark scripts (run as ``python benchmarks/<script>.py``)."""
from __future__ import annotations

import time

import numpy as np

__all__ = ["best_time", "interleaved"]


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


def interleaved(fns: dict, repeats: int, inner: int = 1, warmup: int = 1) -> dict:
    """Median seconds per call of each function in ``fns`` (name → callable): after
    ``warmup`` untimed calls each, ``repeats`` rounds that call every function in turn
    (``inner`` calls timed together), so machine noise hits all of them alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            times[k].append((time.perf_counter() - t0) / inner)
    return {k: float(np.median(v)) for k, v in times.items()}
