"""A Python client for circle-bridge, used by the demo and the tests, and usable by any asyncio app.

    async with await BridgeClient.spawn() as bridge:      # runs `circle-bridge serve --stdio`
        await bridge.initialize()
        circles = await bridge.enum_circles()

Errors from the bridge raise `BridgeRPCError` with the catalogue `code` and `data`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import msgspec

from ._framing import FrameError, FrameParser, encode_frame

__all__ = ["BridgeClient", "BridgeRPCError"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class BridgeRPCError(Exception):
    """A JSON-RPC error reply. ``code`` is from the catalogue in protocol/README.md."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.data = data


Trace = Callable[[str, dict[str, Any]], None]


class BridgeClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        process: asyncio.subprocess.Process | None = None,
        trace: Trace | None = None,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.process = process
        self._trace = trace
        self._ids = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Any]] = {}
        self.unsolicited: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        """Messages that answer no pending request: notifications, and errors with id null."""
        self._parser = FrameParser(64 * 1024 * 1024)
        self._read_task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def spawn(
        cls,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        trace: Trace | None = None,
        stderr: int | None = None,
    ) -> BridgeClient:
        """Start ``circle-bridge serve --stdio`` (or ``command``) and return a client on its stdio.
        ``env`` is added to this process's environment."""
        argv = list(command or [sys.executable, "-m", "circle_bridge", "serve", "--stdio"])
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
        assert process.stdin is not None
        assert process.stdout is not None
        return cls(process.stdout, process.stdin, process, trace)

    async def __aenter__(self) -> BridgeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- plumbing ---------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while data := await self._reader.read(65536):
                for frame in self._parser.feed(data):
                    if isinstance(frame, FrameError):
                        continue
                    message = _decode(frame)
                    if self._trace is not None:
                        self._trace("recv", message)
                    msg_id = message.get("id") if isinstance(message, dict) else None
                    future = self._pending.pop(msg_id, None) if isinstance(msg_id, int | str) else None
                    if future is not None and not future.done():
                        future.set_result(message)
                    elif isinstance(message, dict):
                        self.unsolicited.put_nowait(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the bridge closed the connection"))
            self._pending.clear()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use this for malformed frames)."""
        self._writer.write(data)

    def _send(self, message: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace("send", message)
        self._writer.write(encode_frame(_encode(message)))

    async def request(self, method: str, params: Any = None, *, msg_id: int | str | None = None) -> Any:
        """Send a request and return its result, or raise BridgeRPCError."""
        reply = await self.request_raw(method, params, msg_id=msg_id)
        if "error" in reply:
            err = reply["error"]
            raise BridgeRPCError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply.get("result")

    async def request_raw(self, method: str, params: Any = None, *, msg_id: int | str | None = None) -> dict[str, Any]:
        """Send a request and return the whole reply object."""
        if msg_id is None:
            msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)
        await self._writer.drain()
        reply: dict[str, Any] = await future
        return reply

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def cancel(self, msg_id: int | str) -> None:
        self.notify("$/cancelRequest", {"id": msg_id})

    # -- the protocol -----------------------------------------------------------------------
    async def initialize(self, client_name: str = "circle-bridge-python") -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "initialize", {"processId": os.getpid(), "clientInfo": {"name": client_name}}
        )
        self.notify("initialized", {})
        return result

    async def is_service_running(self) -> bool:
        result = await self.request("circle/isServiceRunning", {})
        return bool(result["running"])

    async def circle_initialize(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("circle/initialize", {})
        return result

    async def enum_circles(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.request("circle/enumCircles", {}))["circles"]
        return result

    async def enum_topics(self, circle_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.request("circle/enumTopics", {"circleId": circle_id}))["topics"]
        return result

    async def discover(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("rpc.discover")
        return result

    async def close(self, wait_seconds: float = 10.0) -> int | None:
        """`shutdown`, `exit`, and wait for the process; returns its exit code."""
        with contextlib.suppress(ConnectionError, BridgeRPCError):
            if not self._writer.is_closing():
                await asyncio.wait_for(self.request("shutdown"), wait_seconds)
                self.notify("exit")
                await self._writer.drain()
        with contextlib.suppress(ConnectionError):
            self._writer.close()
        code: int | None = None
        if self.process is not None:
            try:
                code = await asyncio.wait_for(self.process.wait(), wait_seconds)
            except TimeoutError:
                self.process.kill()
                code = await self.process.wait()
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
        return code
