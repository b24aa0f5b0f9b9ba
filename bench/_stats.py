"""One summary shape for every benchmark run."""

from __future__ import annotations


def summarize(latencies: list[float], cpu_seconds: float, wall_seconds: float) -> dict[str, float]:
    done = len(latencies)
    ordered = sorted(latencies)
    return {
        "requests": done,
        "cpu_us_per_req": cpu_seconds / done * 1e6,
        "req_per_s": done / wall_seconds,
        "p50_us": ordered[done // 2] * 1e6,
        "p99_us": ordered[int(done * 0.99)] * 1e6,
    }
