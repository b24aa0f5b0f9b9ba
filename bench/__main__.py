"""circle-bridge benchmarks. Run: `make bench` (or `python -m bench [--n N] [--runs R]`).

What is compared, in the same run, interleaved, medians of R runs (this box is noisy):
- CPU per request through the bridge (bridge process CPU from /proc, per forwarded
  `circle/enumCircles`) against the baseline: a direct httpx call from an app's own process
  (its CPU per call), both against the same emulator process;
- wall throughput and latency of both, sequential (1 in flight) and with 16 in flight;
- cold start: spawn -> `initialize` reply, against spawning `python -c pass`;
- upstream calls made for 16 identical concurrent reads (coalescing).
Results: printed as a table and written to bench/results/latest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench._stats import summarize
from circle_bridge._config import as_env, emulator_settings
from circle_bridge.client import BridgeClient

ROOT = Path(__file__).resolve().parents[1]
TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def start_emulator() -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen([sys.executable, "-m", "circle_bridge", "emulator"], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    desc: dict[str, Any] = json.loads(proc.stdout.readline())
    return proc, desc


def bridge_env(desc: dict[str, Any]) -> dict[str, str]:
    return {**as_env(emulator_settings(desc)), "CIRCLE_BRIDGE_CONFIG": os.devnull}


async def bridge_run(desc: dict[str, Any], n: int, concurrency: int, operation: str) -> dict[str, float]:
    client = await BridgeClient.spawn(env=bridge_env(desc))
    try:
        await client.initialize("bench")
        for _ in range(50):
            await client.request("circle/enumCircles", {})
        assert client.process is not None
        pid = client.process.pid
        latencies: list[float] = []

        async def worker(count: int) -> None:
            for _ in range(count):
                t0 = time.perf_counter()
                await client.request(f"circle/{operation}", {})
                latencies.append(time.perf_counter() - t0)

        cpu0, wall0 = proc_cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        cpu, wall = proc_cpu_seconds(pid) - cpu0, time.perf_counter() - wall0
    finally:
        await client.close()
    return summarize(latencies, cpu, wall)


def direct_run(desc: dict[str, Any], n: int, concurrency: int, operation: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.direct_httpx", json.dumps(desc), str(n), str(concurrency), operation],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        timeout=300,
    )
    result: dict[str, float] = json.loads(out.stdout)
    return result


async def cold_start(desc: dict[str, Any]) -> tuple[float, float]:
    t0 = time.perf_counter()
    client = await BridgeClient.spawn(env=bridge_env(desc))
    await client.initialize("bench")
    bridge = time.perf_counter() - t0
    await client.close()
    t0 = time.perf_counter()
    empty = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await empty.wait()
    python = time.perf_counter() - t0
    return bridge, python


async def coalescing(desc: dict[str, Any]) -> dict[str, int]:
    import httpx

    client = await BridgeClient.spawn(env=bridge_env(desc))
    try:
        await client.initialize("bench")
        await client.request("circle/enumCircles", {})
        async with httpx.AsyncClient(trust_env=False) as control:
            await control.post(f"{desc['controlUrl']}/faults", json={"serviceDelay": 0.05})
            before = (await control.get(f"{desc['controlUrl']}/state")).json()["stats"]["enumCircles"]
            await asyncio.gather(*(client.request("circle/enumCircles", {}) for _ in range(16)))
            after = (await control.get(f"{desc['controlUrl']}/state")).json()["stats"]["enumCircles"]
            await control.post(f"{desc['controlUrl']}/reset")
    finally:
        await client.close()
    return {"callers": 16, "upstream_calls": after - before}


def median_of(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--n", type=int, default=2000, help="requests per run and configuration")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    emulator, desc = start_emulator()
    try:
        results: dict[str, Any] = {"n": args.n, "runs": args.runs, "configs": {}}
        # enumCircles: POST /v1/enumCircles with a Bearer token (coalesced by the bridge when concurrent);
        # isServiceRunning: GET / (never coalesced), the fair comparison at 16 in flight
        for operation, concurrency in (("enumCircles", 1), ("enumCircles", 16), ("isServiceRunning", 16)):
            bridge_rows, direct_rows = [], []
            for _ in range(args.runs):  # interleaved, so drift hits both sides alike
                direct_rows.append(direct_run(desc, args.n, concurrency, operation))
                bridge_rows.append(asyncio.run(bridge_run(desc, args.n, concurrency, operation)))
            results["configs"][f"{operation} x{concurrency}"] = {"bridge": bridge_rows, "direct_httpx": direct_rows}
        starts = [asyncio.run(cold_start(desc)) for _ in range(args.runs)]
        results["cold_start_s"] = {"bridge": [s[0] for s in starts], "python_c_pass": [s[1] for s in starts]}
        results["coalescing"] = asyncio.run(coalescing(desc))
    finally:
        emulator.terminate()
        emulator.wait(10)

    lines = [
        f"circle-bridge benchmarks: {args.n} requests per run, {args.runs} runs, medians",
        "",
        "| operation x in flight | path | req/s | p50 µs | p99 µs | CPU µs/req | CPU ratio vs direct | req/s ratio |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    summary: dict[str, Any] = {}
    for name, config in results["configs"].items():
        d, b = config["direct_httpx"], config["bridge"]
        cpu_ratio = median_of(b, "cpu_us_per_req") / median_of(d, "cpu_us_per_req")
        rps_ratio = median_of(b, "req_per_s") / median_of(d, "req_per_s")
        summary[name] = {"cpu_ratio": round(cpu_ratio, 2), "throughput_ratio": round(rps_ratio, 2)}
        for label, rows, ratios in (
            ("direct httpx (baseline)", d, ("1.00", "1.00")),
            ("through the bridge", b, (f"{cpu_ratio:.2f}", f"{rps_ratio:.2f}")),
        ):
            lines.append(
                f"| {name} | {label} | {median_of(rows, 'req_per_s'):.0f} | "
                f"{median_of(rows, 'p50_us'):.0f} | {median_of(rows, 'p99_us'):.0f} | "
                f"{median_of(rows, 'cpu_us_per_req'):.0f} | {ratios[0]} | {ratios[1]} |"
            )
    cold_b = statistics.median(results["cold_start_s"]["bridge"])
    cold_p = statistics.median(results["cold_start_s"]["python_c_pass"])
    summary["cold_start_ratio"] = round(cold_b / cold_p, 2)
    lines += [
        "",
        f"cold start (spawn -> initialize reply): {cold_b * 1000:.0f} ms, "
        f"{cold_b / cold_p:.1f}x `python -c pass` ({cold_p * 1000:.0f} ms)",
        f"coalescing: {results['coalescing']['callers']} identical concurrent reads -> "
        f"{results['coalescing']['upstream_calls']} upstream call(s)",
        "",
        "CPU through the bridge is the bridge process's; the direct baseline's is the app process's.",
        "enumCircles x16: the bridge coalesces identical concurrent reads, so it makes fewer upstream calls;",
        "isServiceRunning x16 (GET /, never coalesced) is the like-for-like comparison under concurrency.",
    ]
    results["summary"] = summary
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
