"""The dispatch boundary, in memory: an unexpected exception becomes -32603 with no traceback."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec

from circle_bridge._config import Settings
from circle_bridge._connection import Connection, circle_methods
from circle_bridge._framing import FrameParser, encode_frame
from circle_bridge._session import open_session


class MemoryWriter:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


def test_unexpected_exception_becomes_bare_internal_error() -> None:
    async def scenario() -> list[Any]:
        settings = Settings(service_url="http://127.0.0.1:9")
        writer = MemoryWriter()
        connection = Connection(settings, writer, circle_methods(open_session(settings)))

        @connection.server.feature("test/explode")
        async def explode(params: Any) -> None:
            raise ValueError("internal detail /home/secret/path")

        await connection.feed(encode_frame(b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}'))
        await connection.feed(encode_frame(b'{"jsonrpc":"2.0","id":2,"method":"test/explode"}'))
        for _ in range(10):
            await asyncio.sleep(0)
        return [msgspec.json.decode(f) for f in FrameParser(1 << 20).feed(bytes(writer.data)) if isinstance(f, bytes)]

    replies = asyncio.run(scenario())
    error = replies[1]["error"]
    assert replies[1]["id"] == 2
    assert error == {"code": -32603, "message": "Internal error", "data": {"retryable": True}}
