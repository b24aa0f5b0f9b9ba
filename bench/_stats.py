"""One summary shape for every load run, and the median-and-spread of ratios between runs."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def summarize(latencies: list[float], cpu_seconds: float, wall_seconds: float) -> dict[str, float]:
    done = len(latencies)
    ordered = sorted(latencies)
    return {
        "requests": done,
        "cpu_us_per_req": cpu_seconds / done * 1e6,
        "req_per_s": done / wall_seconds,
        "p50_us": ordered[done // 2] * 1e6,
        "p99_us": ordered[min(done - 1, int(done * 0.99))] * 1e6,
    }


def spread(values: Sequence[float]) -> tuple[float, float, float]:
    """(median, min, max)."""
    return statistics.median(values), min(values), max(values)


def ratios(subject: Sequence[float], reference: Sequence[float]) -> tuple[float, float, float]:
    """Per-run ratios subject / reference (the runs were interleaved, so run i of each shares its
    drift), as (median, min, max)."""
    return spread([s / r if r else float("nan") for s, r in zip(subject, reference, strict=True)])
