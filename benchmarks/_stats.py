"""Latency summaries shared by the benchmarks (nearest-rank percentiles)."""

from __future__ import annotations

import statistics


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
