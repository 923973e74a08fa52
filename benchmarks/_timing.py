"""Latency sampling shared by the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def latencies_ms(call: Callable[[T], object], inputs: Sequence[T], warmup: int = 50) -> list[float]:
    """Milliseconds of `call(x)` for each of `inputs`, after `warmup` untimed calls."""
    for item in inputs[:warmup]:
        call(item)
    timings = []
    for item in inputs:
        started = time.perf_counter()
        call(item)
        timings.append((time.perf_counter() - started) * 1_000)
    return timings
