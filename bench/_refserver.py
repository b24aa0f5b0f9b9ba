"""The hand-written reference JSON-RPC server: asyncio.Protocol + Content-Length framing + msgspec, no
pygls. Copied (stdio and the async/sync handlers only, typed) from the project's own baseline script
shared/bench-baselines/ref_server.py, so `make bench` measures the bridge against it in the same run.

    python -m bench._refserver [--handler async|sync]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec


class Request(msgspec.Struct, omit_defaults=True):
    method: str
    jsonrpc: str = "2.0"
    id: int | str | None = None
    params: Any = None


class Response(msgspec.Struct):
    id: int | str | None
    result: Any
    jsonrpc: str = "2.0"


class ErrorObj(msgspec.Struct, omit_defaults=True):
    code: int
    message: str
    data: Any = None


class ErrorResponse(msgspec.Struct):
    id: int | str | None
    error: ErrorObj
    jsonrpc: str = "2.0"


async def echo(params: Any) -> Any:
    return params


METHODS: dict[str, Callable[[Any], Awaitable[Any]]] = {"bench/echo": echo}
SYNC_METHODS: dict[str, Callable[[Any], Any]] = {"bench/echo": lambda p: p}

_decode = msgspec.json.Decoder(Request).decode
_encode = msgspec.json.Encoder().encode


class RpcProtocol(asyncio.Protocol):
    def __init__(self, handler_kind: str, write: Callable[[bytes], None], on_lost: Callable[[], None]) -> None:
        self.buf = bytearray()
        self.handler_kind = handler_kind
        self._write = write
        self.on_lost = on_lost
        self.tasks: set[asyncio.Task[Any]] = set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.on_lost()

    def eof_received(self) -> bool | None:
        self.on_lost()
        return None

    def write(self, obj: Any) -> None:
        body = _encode(obj)
        self._write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = -1
            for line in bytes(buf[:end]).split(b"\r\n"):
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v)
            start = end + 4
            if length < 0:  # unrecoverable framing error: drop the header
                del buf[:start]
                continue
            if len(buf) < start + length:
                return
            body = bytes(buf[start : start + length])
            del buf[: start + length]
            self.dispatch(body)

    def dispatch(self, body: bytes) -> None:
        try:
            req = _decode(body)
        except msgspec.DecodeError as exc:
            self.write(ErrorResponse(id=None, error=ErrorObj(-32700, f"Parse error: {exc}")))
            return
        if self.handler_kind == "sync":
            sync = SYNC_METHODS.get(req.method)
            if sync is None:
                if req.id is not None:
                    self.write(ErrorResponse(id=req.id, error=ErrorObj(-32601, "Method not found")))
                return
            result = sync(req.params)
            if req.id is not None:
                self.write(Response(id=req.id, result=result))
            return
        fn = METHODS.get(req.method)
        if fn is None:
            if req.id is not None:
                self.write(ErrorResponse(id=req.id, error=ErrorObj(-32601, "Method not found")))
            return
        task = asyncio.ensure_future(fn(req.params))
        self.tasks.add(task)
        task.add_done_callback(functools.partial(self._done, rid=req.id))

    def _done(self, task: asyncio.Task[Any], rid: int | str | None) -> None:
        self.tasks.discard(task)
        if rid is None:
            return
        if task.cancelled():
            self.write(ErrorResponse(id=rid, error=ErrorObj(-32800, "Request cancelled")))
        elif task.exception() is not None:
            self.write(ErrorResponse(id=rid, error=ErrorObj(-32603, "Internal error")))
        else:
            self.write(Response(id=rid, result=task.result()))


class _ReadShim(asyncio.Protocol):
    def __init__(self, proto: RpcProtocol) -> None:
        self.proto = proto

    def data_received(self, data: bytes) -> None:
        self.proto.data_received(data)

    def eof_received(self) -> bool | None:
        return self.proto.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self.proto.connection_lost(exc)


async def serve_stdio(handler_kind: str) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def lost() -> None:
        if not done.done():
            done.set_result(None)

    wt, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout.buffer)
    proto = RpcProtocol(handler_kind, wt.write, lost)
    await loop.connect_read_pipe(lambda: _ReadShim(proto), sys.stdin.buffer)
    await done


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--handler", choices=["async", "sync"], default="async")
    asyncio.run(serve_stdio(parser.parse_args().handler))
