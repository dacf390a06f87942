"""Latency summaries shared by the benchmarks (nearest-rank percentiles), and the line
that says when and on what machine a result was measured."""

from __future__ import annotations

import os
import statistics
import time

from citewise.cpu import cpu_name


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0..100) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def latency_ms(values: list[float], digits: int = 1) -> dict[str, float]:
    """Median, p95 and p99 of latencies in milliseconds."""
    return {
        "p50": round(statistics.median(values), digits),
        "p95": round(percentile(values, 95), digits),
        "p99": round(percentile(values, 99), digits),
    }


def measured_on() -> str:
    """``2026-12-06, 2 cores, Intel(R) Xeon(R) Processor``: results from different runs
    are compared only when this says they came from the same kind of machine."""
    return f"{time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores, {cpu_name()}"
