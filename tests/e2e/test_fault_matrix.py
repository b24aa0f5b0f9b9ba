"""The fault matrix (issue 11): every upstream fault kind, injected by a real HTTP proxy in front of
the emulator, gets a documented error code, and the bridge recovers once the fault clears.

The proxy is a small HTTP/1.1 server on loopback that forwards to the emulator and, while a fault
is on, answers in its place: refusing connections, stalling, a 500, garbage, a body over the
cap, a reply cut off mid-body, JSON nested 100,000 deep, an `authorize` refusal, or a token that
is not a JWT or has expired. The bridge is a real `serve --stdio` process."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from circle_bridge.emulator import Emulator
from tests.bridge_harness import bridge_env, run, start_bridge
from tests.conformance.test_openrpc import SPEC

RECOVERY_SECONDS = 20.0
DEEP = 100_000
CAP = 1024 * 1024  # the bridge's CIRCLE_BRIDGE_MAX_UPSTREAM_BYTES in these tests

Handler = Callable[[asyncio.StreamWriter, str], Awaitable[bool]]
"""Answers one request in the proxy's place; returns False when it closed the connection."""


def _reply(status: int, body: bytes, content_type: bytes = b"application/json") -> bytes:
    return b"HTTP/1.1 %d X\r\nContent-Type: %b\r\nContent-Length: %d\r\n\r\n%b" % (
        status,
        content_type,
        len(body),
        body,
    )


def _jwt(claims: dict[str, Any]) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


async def _answer(status: int, body: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(_reply(status, body))
    await writer.drain()
    return True


async def _stall(writer: asyncio.StreamWriter, path: str) -> bool:
    await asyncio.sleep(3)
    return await _answer(200, b"{}", writer)


async def _error_500(writer: asyncio.StreamWriter, path: str) -> bool:
    return await _answer(500, b"Internal Server Error", writer)


async def _garbage(writer: asyncio.StreamWriter, path: str) -> bool:
    return await _answer(200, b"\x00\xffnot json at all<html>", writer)


async def _huge(writer: asyncio.StreamWriter, path: str) -> bool:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % (8 * CAP))
    try:
        for _ in range(64):  # the bridge stops reading at the cap and hangs up; stop when it does
            writer.write(b" " * (CAP // 8))
            await writer.drain()
    except ConnectionError:
        pass
    return False


async def _cut_off(writer: asyncio.StreamWriter, path: str) -> bool:
    writer.write(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"Status": {')
    await writer.drain()
    return False


async def _deep(writer: asyncio.StreamWriter, path: str) -> bool:
    return await _answer(200, b"[" * DEEP + b"]" * DEEP, writer)


async def _refuse_authorize(writer: asyncio.StreamWriter, path: str) -> bool:
    if path != "/v1/authorize":
        return await _answer(401, b'{"Status": {"Result": false, "Message": "Unauthorized"}}', writer)
    return await _answer(200, b'{"Status": {"Result": false, "Message": "token not accepted"}}', writer)


async def _not_a_jwt(writer: asyncio.StreamWriter, path: str) -> bool:
    return await _answer(200, json.dumps(json.dumps({"Token": "not-a-jwt-at-all"})).encode(), writer)


async def _expired(writer: asyncio.StreamWriter, path: str) -> bool:
    now = int(time.time())
    token = _jwt({"primarysid": "userman", "iat": now - 1200, "nbf": now - 1200, "exp": now - 600})
    return await _answer(200, json.dumps(json.dumps({"Token": token})).encode(), writer)


class FaultProxy:
    """Forwards HTTP/1.1 to ``target``; ``fault`` answers instead while set; ``down`` refuses
    connections (the listener is closed, then reopened on the same port)."""

    def __init__(self, target: str) -> None:
        self._target = httpx.AsyncClient(base_url=target, trust_env=False, timeout=30)
        self.fault: Handler | None = None
        self.heads: list[str] = []  # the head (request line and headers) of every request received
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()
        self._server = None

    async def aclose(self) -> None:
        if self._server is not None:
            await self.down()
        await self._target.aclose()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                self.heads.append(head)
                lines = head.split("\r\n")
                method, path = lines[0].split(" ")[:2]
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                length = int(next((v for k, v in headers.items() if k.lower() == "content-length"), "0"))
                body = await reader.readexactly(length) if length else b""
                if self.fault is not None:
                    if not await self.fault(writer, path.split("?")[0]):
                        return
                    continue
                keep = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
                answer = await self._target.request(method, path, content=body, headers=keep)
                writer.write(
                    _reply(answer.status_code, answer.content, answer.headers.get("content-type", "").encode())
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()


def documented(method: str) -> set[int]:
    entry = next(m for m in SPEC["methods"] if m["name"] == method)
    names = {ref["$ref"].rsplit("/", 1)[1] for ref in entry.get("errors", [])}
    return {SPEC["components"]["errors"][name]["code"] for name in names}


# (fault kind, which upstream, handler or "down", the code it must be answered with)
SERVICE_FAULTS: list[tuple[str, Handler | None, int]] = [
    ("service down", None, -33001),
    ("slow past the timeout", _stall, -33006),
    ("HTTP 500", _error_500, -33004),
    ("garbage body", _garbage, -33005),
    ("body over the cap", _huge, -33005),
    ("closed mid-reply", _cut_off, -33005),
    ("JSON nested 100,000 deep", _deep, -33005),
    ("authorize refused", _refuse_authorize, -33003),
]
TOKEN_FAULTS: list[tuple[str, Handler | None, int]] = [
    ("token endpoint down", None, -33002),
    ("token endpoint slow", _stall, -33006),
    ("token endpoint 500", _error_500, -33002),
    ("token reply not JSON", _garbage, -33005),
    ("token that is not a JWT", _not_a_jwt, -33003),
    ("expired token", _expired, -33003),
]


@pytest.mark.parametrize("side", ["service", "token"])
def test_every_fault_gets_a_documented_code_and_the_bridge_recovers(emulator: Emulator, side: str) -> None:
    faults = SERVICE_FAULTS if side == "service" else TOKEN_FAULTS
    codes = documented("circle/enumCircles")
    answered: dict[str, int] = {}
    recovered_in: dict[str, float] = {}

    async def scenario() -> None:
        target = emulator.service_url if side == "service" else emulator.token_url.rsplit("/api/token", 1)[0]
        proxy = FaultProxy(target)
        await proxy.start()
        base = f"http://127.0.0.1:{proxy.port}"
        settings = {
            "CIRCLE_SERVICE_TIMEOUT": "1",
            "CIRCLE_TOKEN_TIMEOUT": "1",
            "CIRCLE_BRIDGE_MAX_UPSTREAM_BYTES": str(CAP),
            "CIRCLE_BRIDGE_LOG_LEVEL": "DEBUG",
        }
        if side == "service":
            settings["CIRCLE_SERVICE_URL"] = base
        else:
            settings["CIRCLE_TOKEN_URL"] = f"{base}/api/token"
        try:
            for kind, handler, code in faults:
                # a token fault shows on the next token fetch: each gets a fresh bridge (a fresh session)
                bridge = await start_bridge(bridge_env(emulator, **settings))
                client = bridge.client
                if side == "service":
                    assert await client.enum_circles(), kind  # healthy before
                if handler is None:
                    await proxy.down()
                else:
                    proxy.fault = handler
                reply = await client.request_raw("circle/enumCircles", {})
                assert "error" in reply, (kind, reply)
                error = reply["error"]
                answered[kind] = error["code"]
                assert error["code"] == code, (kind, error)
                assert error["code"] in codes, (kind, error)
                assert isinstance(error["data"]["retryable"], bool), (kind, error)
                # the fault clears: the next calls succeed within the bound
                if handler is None:
                    await proxy.start()
                proxy.fault = None
                cleared = time.monotonic()
                while True:
                    again = await client.request_raw("circle/enumCircles", {})
                    if "result" in again:
                        break
                    assert time.monotonic() - cleared < RECOVERY_SECONDS, (kind, again)
                    await asyncio.sleep(0.2)
                recovered_in[kind] = time.monotonic() - cleared
                assert client.process is not None
                assert client.process.returncode is None, kind
                await client.close()
                assert "Traceback" not in bridge.stderr, (kind, bridge.stderr[-2000:])
        finally:
            await proxy.aclose()

    run(scenario(), timeout=240)
    assert set(answered) == {kind for kind, _, _ in faults}
    assert all(seconds < RECOVERY_SECONDS for seconds in recovered_in.values()), recovered_in


def test_upstreams_that_echo_what_they_receive_leak_no_piece_of_a_secret(emulator: Emulator) -> None:
    """Both upstreams answer errors that repeat the request: the signed query (signature included),
    the app key header, the Bearer token, the token in authorize's body. No 8-character piece of
    any of them may reach a reply or the bridge's debug log."""
    service = FaultProxy(emulator.service_url)
    token = FaultProxy(emulator.token_url.rsplit("/api/token", 1)[0])

    def echo(proxy: FaultProxy, status: int) -> Handler:
        async def handler(writer: asyncio.StreamWriter, path: str) -> bool:
            return await _answer(status, json.dumps({"Message": f"you sent {proxy.heads[-1]}"}).encode(), writer)

        return handler

    async def scenario() -> tuple[list[dict[str, Any]], str]:
        await service.start()
        await token.start()
        replies: list[dict[str, Any]] = []
        try:
            env = bridge_env(
                emulator,
                CIRCLE_SERVICE_URL=f"http://127.0.0.1:{service.port}",
                CIRCLE_TOKEN_URL=f"http://127.0.0.1:{token.port}/api/token",
                CIRCLE_BRIDGE_LOG_LEVEL="DEBUG",
            )
            bridge = await start_bridge(env)
            client = bridge.client
            replies.append(await client.request_raw("circle/enumCircles", {}))  # healthy: a real token
            service.fault = echo(service, 500)
            replies.append(await client.request_raw("circle/enumCircles", {}))
            service.fault = echo(service, 200)
            replies.append(await client.request_raw("circle/enumTopics", {"circleId": "x"}))
            await client.close()
            token.fault = echo(token, 401)
            fresh = await start_bridge(env)
            replies.append(await fresh.client.request_raw("circle/initialize", {}))
            await fresh.client.close()
            return replies, bridge.stderr + fresh.stderr
        finally:
            await service.aclose()
            await token.aclose()

    replies, logs = run(scenario())
    assert "result" in replies[0]
    assert all("error" in reply for reply in replies[1:]), replies
    creds = emulator.credentials
    secrets = {creds.secret.strip(), creds.app_key}
    for head in service.heads + token.heads:  # what actually crossed the wire: the signature, the Bearer token
        for line in head.split("\r\n"):
            if line.lower().startswith("authorization: bearer "):
                secrets.add(line.split(" ", 2)[2])
            if "signature=" in line:
                secrets.add(line.split("signature=", 1)[1].split(" ", 1)[0].split("&", 1)[0])
    assert len(secrets) >= 4, secrets  # secret, app key, a signature, a token
    pieces = {value[i : i + 8] for value in secrets for i in range(len(value) - 7)}
    outputs = json.dumps(replies) + logs
    leaked = sorted(piece for piece in pieces if piece in outputs)
    assert leaked == [], leaked
