"""No per-request residue: thousands of requests of every kind through an in-memory Connection
leave the object count where it was (issue 10: each unknown method once left a handler entry)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

from circle_bridge._config import Settings
from circle_bridge._connection import Connection, circle_methods
from circle_bridge._framing import FrameParser, encode_frame
from circle_bridge._session import open_session


class MemoryWriter:
    def __init__(self) -> None:
        self.frames = 0
        self._parser = FrameParser(1 << 20)

    def write(self, data: bytes) -> None:
        self.frames += sum(1 for f in self._parser.feed(data) if isinstance(f, bytes))

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


def one_round(n: int) -> list[bytes]:
    """Every kind of message that needs no upstream, errors included; REPLIES_PER_ROUND replies
    (two notifications and a stray response get none)."""
    return [
        b'{"jsonrpc":"2.0","id":%d,"method":"circle/noSuchMethod","params":{}}' % n,
        b'{"jsonrpc":"2.0","id":%d,"method":"circle/enumTopics","params":{"circleId":42}}' % n,
        b'{"jsonrpc":"2.0","id":"c%d","method":"circle/initialize","params":{}}' % n,  # no credentials
        b'{"jsonrpc":"2.0","id":"i%d","method":"initialize","params":{}}' % n,  # a second one: refused
        b'{"jsonrpc":"2.0","id":"slow-%d","method":"test/slow"}' % n,  # cancelled next
        b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":"slow-%d"}}' % n,
        b'{"jsonrpc":"2.0","method":"$/setTrace","params":{"value":"off"}}',
        b'{"jsonrpc":"2.0","id":"x%d","method":' % n,  # not JSON
        b'{"jsonrpc":"1.0","id":"v%d","method":"x"}' % n,  # not JSON-RPC 2.0
        b'{"jsonrpc":"2.0","id":"r%d","result":null}' % n,  # a stray response: dropped
        b'{"jsonrpc":"2.0","id":"p%d","method":"circle/enumCircles","params":[1]}' % n,  # invalid params
    ]


REPLIES_PER_ROUND = 8


def test_thousands_of_mixed_requests_leave_no_objects_behind() -> None:
    async def scenario() -> tuple[int, int, int, int]:
        settings = Settings(service_url="http://127.0.0.1:9")
        writer = MemoryWriter()
        connection = Connection(settings, writer, circle_methods(open_session(settings)))
        release = asyncio.Event()

        @connection.server.feature("test/slow")
        async def slow(params: Any) -> None:
            await release.wait()

        await connection.feed(encode_frame(b'{"jsonrpc":"2.0","id":"init","method":"initialize","params":{}}'))
        sequence = 0

        async def rounds(count: int) -> None:
            nonlocal sequence
            for _ in range(count):
                sequence += 1
                for body in one_round(sequence):
                    await connection.feed(encode_frame(body))
                for _ in range(5):
                    await asyncio.sleep(0)

        async def settled() -> int:
            for _ in range(20):
                await asyncio.sleep(0)
            gc.collect()
            return len(gc.get_objects())

        await rounds(300)  # warm: caches, interned strings, free lists
        before, replies_before = await settled(), writer.frames
        await rounds(3000)
        after = await settled()
        return before, after, writer.frames - replies_before, connection.protocol.in_flight

    before, after, replies, in_flight = asyncio.run(scenario())
    assert replies == 3000 * REPLIES_PER_ROUND  # every request answered, cancelled ones included
    assert in_flight == 0
    # 33,000 messages: a per-request leak of even one object would add thousands
    assert after - before < 300, f"{after - before} objects more after 33,000 messages"
