"""The shared daemon's figures (issue 7). Run: `python -m bench.daemon` (about a minute).

- memory: the daemon's RSS with 100 initialized connections, each having made a call;
- attach: `circle-bridge connect` to a warm daemon, from spawn to the `initialize` reply;
- sharing: 16 app processes reading circles at once, each through the daemon, against 16 apps
  calling CircleService directly with httpx (each with its own token): upstream calls and
  aggregate throughput. All against one emulator process, interleaved, medians of R runs.
Results: printed, and written to bench/results/daemon.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.__main__ import bridge_env, start_emulator
from circle_bridge._framing import FrameParser, encode_frame
from circle_bridge.client import BridgeClient

ROOT = Path(__file__).resolve().parents[1]
BRIDGE_BIN = str(Path(sys.executable).parent / "circle-bridge")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def emulator_stats(desc: dict[str, Any]) -> dict[str, int]:
    import httpx

    stats: dict[str, int] = httpx.get(f"{desc['controlUrl']}/state", trust_env=False, timeout=10).json()["stats"]
    return stats


def start_daemon(env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "circle_bridge", "serve", "--socket"],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    announced: dict[str, Any] = json.loads(proc.stdout.readline())
    return proc, announced


async def memory(socket_path: str, pid: int, connections: int) -> dict[str, float]:
    idle = rss_mib(pid)
    clients = [await BridgeClient.connect_socket(socket_path) for _ in range(connections)]
    for client in clients:
        await client.initialize("bench-rss")
    await asyncio.gather(*(client.request("circle/enumCircles", {}) for client in clients))
    loaded = rss_mib(pid)
    for client in clients:
        await client.close()
    return {"connections": connections, "rss_mib_idle": idle, "rss_mib_loaded": loaded}


async def attach_once(env: dict[str, str]) -> float:
    init = encode_frame(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}')
    t0 = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        BRIDGE_BIN, "connect", env={**os.environ, **env}, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(init)
    parser = FrameParser(1 << 20)
    while not parser.feed(await proc.stdout.read(65536)):
        pass
    elapsed = time.perf_counter() - t0
    proc.stdin.close()
    await proc.wait()
    return elapsed


def apps(mode: str, target: str, count: int, n: int, desc: dict[str, Any]) -> dict[str, float]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.daemon_app", mode, target, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(count)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    before = emulator_stats(desc)
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    rows = []
    for proc in procs:
        assert proc.stdout is not None
        rows.append(json.loads(proc.stdout.readline()))
        proc.wait(60)
    after = emulator_stats(desc)
    wall = max(r["end"] for r in rows) - min(r["start"] for r in rows)
    return {
        "reads": count * n,
        "errors": sum(r["errors"] for r in rows),
        "upstream_calls": after["enumCircles"] - before["enumCircles"],
        "token_requests": after["tokenRequests"] - before["tokenRequests"],
        "reads_per_s": count * n / wall,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.daemon")
    parser.add_argument("--apps", type=int, default=16)
    parser.add_argument("--n", type=int, default=200, help="reads per app and run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--attaches", type=int, default=20)
    args = parser.parse_args()
    emulator, desc = start_emulator()
    runtime = tempfile.mkdtemp(prefix="cb-bench-", dir="/tmp")
    env = {**bridge_env(desc), "CIRCLE_BRIDGE_RUNTIME_DIR": runtime}
    daemon, announced = start_daemon(env)
    results: dict[str, Any] = {}
    try:
        socket_path = announced["socket"]
        results["memory"] = asyncio.run(memory(socket_path, daemon.pid, args.connections))
        asyncio.run(attach_once(env))  # warm the page cache
        attaches = [asyncio.run(attach_once(env)) for _ in range(args.attaches)]
        results["attach_s"] = {"median": statistics.median(attaches), "max": max(attaches), "runs": attaches}
        shared, direct = [], []
        for _ in range(args.runs):  # interleaved, so drift hits both sides alike
            direct.append(apps("direct", json.dumps(desc), args.apps, args.n, desc))
            shared.append(apps("daemon", socket_path, args.apps, args.n, desc))
        results["sharing"] = {"apps": args.apps, "reads_per_app": args.n, "daemon": shared, "direct": direct}
    finally:
        daemon.terminate()
        daemon.wait(30)
        emulator.terminate()
        emulator.wait(10)
        shutil.rmtree(runtime, ignore_errors=True)

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    mem = results["memory"]
    calls_ratio = med(shared, "upstream_calls") / med(direct, "upstream_calls")
    speedup = med(shared, "reads_per_s") / med(direct, "reads_per_s")
    lines = [
        f"daemon RSS with {mem['connections']} connections: {mem['rss_mib_loaded']:.1f} MiB "
        f"(idle {mem['rss_mib_idle']:.1f} MiB)   target <= 100 MB",
        f"connect to a warm daemon -> initialize reply: median {results['attach_s']['median'] * 1000:.0f} ms, "
        f"max {results['attach_s']['max'] * 1000:.0f} ms   target <= 100 ms",
        f"{args.apps} apps x {args.n} reads at once, medians of {args.runs}:",
        f"  direct: {med(direct, 'reads_per_s'):.0f} reads/s, {med(direct, 'upstream_calls'):.0f} upstream calls, "
        f"{med(direct, 'token_requests'):.0f} token requests, {sum(r['errors'] for r in direct)} errors",
        f"  daemon: {med(shared, 'reads_per_s'):.0f} reads/s, {med(shared, 'upstream_calls'):.0f} upstream calls, "
        f"{med(shared, 'token_requests'):.0f} token requests, {sum(r['errors'] for r in shared)} errors",
        f"  upstream calls daemon / direct: {calls_ratio:.2f} (target <= 0.25); "
        f"throughput daemon / direct: {speedup:.2f}x (target >= 2x)",
    ]
    print("\n".join(lines))
    out = ROOT / "bench" / "results" / "daemon.json"
    out.write_text(json.dumps({**results, "summary": lines}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
