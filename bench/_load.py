"""One load run, in its own process so that it shares no event loop with what it measures:

    python -m bench._load '<spec json>'

prints one JSON line: latency percentiles, wall throughput, this process's CPU per request and, for
the bridge and the reference server, the serving process's CPU per request (from /proc).

Spec keys: ``mode`` (httpx | raw | stdio | socket | connect | ref), ``n`` requests, ``inflight``,
``method`` (a bridge method, ``bench/echo`` for the reference server, ``mixed`` for every kind of
request including errors), ``desc`` (the emulator's description), ``socket`` and ``daemon_pid``
(socket and connect modes), ``params``, ``warm`` requests before the measured ones, sent
``warm_inflight`` at a time (default 1). The bridge's environment comes from this process's.

Both direct clients decode each reply with msgspec, as the bridge's client does, so a ratio
counts only what the bridge adds.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import msgspec

from bench._stats import summarize

TICK = os.sysconf("SC_CLK_TCK")
BRIDGE_BIN = str(Path(sys.executable).parent / "circle-bridge")
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

Call = Callable[[], Awaitable[Any]]


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class RpcError(Exception):
    pass


class RpcClient:
    """A lean JSON-RPC client (Content-Length framing, msgspec): the least an app could do."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter | Any) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Any]] = {}
        self._null_waiters: deque[asyncio.Future[Any]] = deque()  # replies with id null (bad frames)
        self._task = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        reader = self._reader
        while True:
            try:
                header = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(header.split(b"Content-Length:", 1)[1].split(b"\r\n", 1)[0])
            reply = _decode(await reader.readexactly(length))
            msg_id = reply.get("id")
            if msg_id is None:
                if "method" in reply:
                    continue  # a notification from the server
                future = self._null_waiters.popleft()
            else:
                future = self._pending.pop(msg_id)
            if not future.done():
                future.set_result(reply)
        for future in [*self._pending.values(), *self._null_waiters]:
            if not future.done():
                future.set_exception(ConnectionError("the server closed the connection"))

    def _send(self, body: bytes) -> None:
        self._writer.write(b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

    def reply_to(self, message: dict[str, Any]) -> asyncio.Future[Any]:
        msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        self._send(_encode({**message, "jsonrpc": "2.0", "id": msg_id}))
        return future

    async def call(self, method: str, params: Any = None) -> Any:
        reply = await self.reply_to({"method": method, "params": params} if params is not None else {"method": method})
        if "error" in reply:
            raise RpcError(reply["error"])
        return reply["result"]

    def notify(self, method: str, params: Any) -> None:
        self._send(_encode({"jsonrpc": "2.0", "method": method, "params": params}))

    def send_bad_frame(self) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._null_waiters.append(future)
        self._send(b'{"jsonrpc": "2.0", "id": 7, "method": ')
        return future

    def next_id(self) -> int:
        return next(self._ids)

    async def close(self) -> None:
        self._writer.close()
        await asyncio.wait_for(self._task, 10)


async def _token(desc: dict[str, Any]) -> str:
    import httpx

    from circle_bridge._upstream import parse_token_body, sign, string_to_sign

    ids = (desc["customerId"], desc["appKey"], desc["endUserId"])
    for attempt in range(20):  # ms nonces: a strict emulator refuses a reused one
        nonce = str(int(time.time() * 1000) + attempt * 7919)
        sig = sign(desc["secret"], string_to_sign(*ids, nonce))
        query = "&".join(
            f"{k}={quote(v, safe='')}"
            for k, v in zip(
                ("customerId", "appKey", "endUserId", "nonce", "signature"), (*ids, nonce, sig), strict=True
            )
        )
        async with httpx.AsyncClient(trust_env=False, timeout=10) as cloud:
            reply = await cloud.get(f"{desc['tokenUrl']}?{query}")
        if reply.status_code == 200:
            return parse_token_body(reply.content)
    raise SystemExit(f"no token: HTTP {reply.status_code}")


def _headers(desc: dict[str, Any], token: str) -> dict[str, str]:
    return {
        "x-circle-appkey": desc["appKey"],
        "Content-Type": "application/json; charset=utf-8",
        "Authorization": f"Bearer {token}",
    }


async def _httpx_calls(desc: dict[str, Any], inflight: int) -> tuple[list[Call], Callable[[], Awaitable[None]]]:
    import httpx

    token = await _token(desc)
    service = httpx.AsyncClient(
        base_url=desc["serviceUrl"], trust_env=False, timeout=60, limits=httpx.Limits(max_connections=inflight)
    )
    headers = _headers(desc, token)
    (await service.post("/v1/authorize", json={"Token": token}, headers=headers)).raise_for_status()

    async def read() -> Any:
        reply = await service.post("/v1/enumCircles", content=b"{}", headers=headers)
        return _decode(reply.content)["CircleMeta"]

    return [read] * inflight, service.aclose


async def _raw_calls(desc: dict[str, Any], inflight: int) -> tuple[list[Call], Callable[[], Awaitable[None]]]:
    """A raw asyncio HTTP/1.1 client: one keep-alive connection per worker, a request written as
    one byte string, the reply read by its Content-Length: what no HTTP library can undercut."""
    import httpx

    token = await _token(desc)
    async with httpx.AsyncClient(base_url=desc["serviceUrl"], trust_env=False, timeout=60) as service:
        (await service.post("/v1/authorize", json={"Token": token}, headers=_headers(desc, token))).raise_for_status()
    url = urlsplit(desc["serviceUrl"])
    host, port = url.hostname or "127.0.0.1", url.port or 80
    lines = ["POST /v1/enumCircles HTTP/1.1", f"Host: {host}:{port}", "Content-Length: 2"]
    lines += [f"{k}: {v}" for k, v in _headers(desc, token).items()]
    request = ("\r\n".join(lines) + "\r\n\r\n{}").encode()
    writers: list[asyncio.StreamWriter] = []

    async def worker() -> Call:
        reader, writer = await asyncio.open_connection(host, port)
        writers.append(writer)

        async def read() -> Any:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:", 1)[1].split(b"\r\n", 1)[0])
            return _decode(await reader.readexactly(length))["CircleMeta"]

        return read

    calls = [await worker() for _ in range(inflight)]

    async def close() -> None:
        for writer in writers:
            writer.close()

    return calls, close


async def _spawn(argv: list[str]) -> tuple[RpcClient, asyncio.subprocess.Process]:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 26
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    return RpcClient(proc.stdout, proc.stdin), proc


async def open_bridge(spec: dict[str, Any]) -> tuple[RpcClient, list[int], asyncio.subprocess.Process | None]:
    """A client of the bridge (or the reference server) and the pids whose CPU serves it."""
    mode = spec["mode"]
    if mode == "socket":
        reader, writer = await asyncio.open_unix_connection(spec["socket"], limit=1 << 26)
        return RpcClient(reader, writer), [spec["daemon_pid"]], None
    if mode == "ref":
        client, proc = await _spawn([sys.executable, "-m", "bench._refserver"])
        return client, [proc.pid], proc
    argv = [BRIDGE_BIN, "connect"] if mode == "connect" else [BRIDGE_BIN, "serve", "--stdio"]
    client, proc = await _spawn(argv)
    return client, [proc.pid] + ([spec["daemon_pid"]] if mode == "connect" else []), proc


def _mixed(client: RpcClient, circle_id: str) -> list[Call]:
    """Every kind of request, errors included: forwarded reads, a cached call, unknown methods,
    invalid params, a bad frame, a stray notification, a request cancelled while in flight."""

    async def cancelled() -> Any:
        msg_id = client.next_id()
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        client._pending[msg_id] = future
        client._send(
            _encode({"jsonrpc": "2.0", "id": msg_id, "method": "circle/enumTopics", "params": {"circleId": circle_id}})
        )
        client.notify("$/cancelRequest", {"id": msg_id})
        return await future

    def call(method: str, params: Any = None) -> Call:
        return lambda: client.reply_to({"method": method, "params": params or {}})

    def stray() -> Awaitable[Any]:
        client.notify("$/setTrace", {"value": "off"})
        return client.reply_to({"method": "circle/isServiceRunning"})

    return [
        call("circle/enumCircles"),
        call("circle/enumTopics", {"circleId": circle_id}),
        call("circle/initialize"),
        call("circle/noSuchMethod"),
        call("circle/enumTopics", {"circleId": 42}),
        call("circle/whoAmI", {"circleId": "no-such-circle"}),
        client.send_bad_frame,
        stray,
        cancelled,
    ]


async def _bounded(work: Awaitable[Any], spec: dict[str, Any], client: RpcClient | None, phase: str) -> None:
    """``work``, or exit saying which replies never came."""
    try:
        await asyncio.wait_for(work, spec.get("timeout", 300))
    except TimeoutError:
        stuck = (list(client._pending)[:20], len(client._null_waiters)) if client else None
        raise SystemExit(f"{spec['mode']} {spec['method']} {phase}: no reply in time; ids, null-id: {stuck}") from None


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    mode, n, inflight, method = spec["mode"], spec["n"], spec["inflight"], spec["method"]
    server_pids: list[int] = []
    proc = None
    client: RpcClient | None = None
    if mode == "httpx":
        calls, close = await _httpx_calls(spec["desc"], inflight)
    elif mode == "raw":
        calls, close = await _raw_calls(spec["desc"], inflight)
    else:
        client, server_pids, proc = await open_bridge(spec)
        if mode != "ref":  # the reference server has no lifecycle
            await client.call("initialize", {"clientInfo": {"name": "bench"}})
            await client.call("circle/initialize", {})
        params = spec.get("params")
        bound = client
        if method == "mixed":
            kinds = _mixed(client, spec["circle_id"])
            counter = itertools.count()
            calls = [lambda: kinds[next(counter) % len(kinds)]()] * inflight
        else:
            message = {"method": method, "params": params}
            errors_expected = method == "circle/noSuchMethod"

            async def one() -> Any:
                reply = await bound.reply_to(message)
                if ("error" in reply) != errors_expected:
                    raise RpcError(f"unexpected reply to {method}: {reply}")
                return reply

            calls = [one] * inflight
        close = client.close

    async def warm() -> None:  # connections, caches, allocator arenas
        # ``warm_inflight``: the memory figures warm up at the run's own concurrency; one at a time
        # left the buffers and tasks of 64 concurrent requests to be first allocated inside the
        # measured run, which the RSS growth then counted (most of a 1.57 MiB figure)
        workers = calls[: spec.get("warm_inflight", 1)]
        rounds = max(1, spec.get("warm", min(n, 50)) // len(workers))

        async def one(call: Call) -> None:
            for _ in range(rounds):
                await call()

        await asyncio.gather(*(one(c) for c in workers))

    await _bounded(warm(), spec, client, "warm-up")
    rss_warm = rss_mib(server_pids[0]) if server_pids else 0.0
    rss_mid = rss_warm
    latencies: list[float] = []
    per_worker = max(1, n // inflight)
    half = per_worker * len(calls) // 2

    async def worker(call: Call) -> None:
        nonlocal rss_mid
        for _ in range(per_worker):
            t0 = time.perf_counter()
            await call()
            latencies.append(time.perf_counter() - t0)
            if len(latencies) == half and server_pids:
                rss_mid = rss_mib(server_pids[0])  # growth in each half: a plateau from a leak

    server0 = sum(proc_cpu_seconds(p) for p in server_pids)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await _bounded(asyncio.gather(*(worker(c) for c in calls)), spec, client, "run")
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    server_cpu = sum(proc_cpu_seconds(p) for p in server_pids) - server0
    result: dict[str, Any] = summarize(latencies, cpu, wall)
    if server_pids:
        result["server_cpu_us_per_req"] = server_cpu / len(latencies) * 1e6
        result["rss_mib_warm"] = rss_warm
        result["rss_mib_mid"] = rss_mid
        result["rss_mib_end"] = rss_mib(server_pids[0])
    await close()
    if proc is not None:
        await asyncio.wait_for(proc.wait(), 30)
    return result


if __name__ == "__main__":
    outcome = asyncio.run(run(json.loads(sys.argv[1])))
    sys.stdout.write(json.dumps(outcome) + "\n")
