"""The asyncio network backend under httpcore, against real loopback sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpcore
import pytest

from circle_bridge._upstream import _asyncio_network
from circle_bridge._upstream._asyncio_network import AsyncioNetwork

Serve = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _server(serve: Serve) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_writes_leave_as_one_send_when_the_reply_is_read_and_reads_respect_max_bytes() -> None:
    received: list[bytes] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await reader.readexactly(len(b"head\r\n\r\nbody")))
        writer.write(b"x" * 100)
        await writer.drain()
        writer.close()

    async def scenario() -> list[bytes]:
        server, port = await _server(serve)
        async with server:
            stream = await AsyncioNetwork().connect_tcp("127.0.0.1", port, timeout=5)
            await stream.write(b"head\r\n\r\n")
            await stream.write(b"body")
            await asyncio.sleep(0.05)
            assert received == []  # held until the reply is read
            chunks = [await stream.read(30, timeout=5)]
            while chunk := await stream.read(30, timeout=5):
                chunks.append(chunk)
            assert stream.get_extra_info("is_readable") is True  # at EOF: not reusable
            await stream.aclose()
            return chunks

    chunks = asyncio.run(scenario())
    assert received == [b"head\r\n\r\nbody"]
    assert b"".join(chunks) == b"x" * 100
    assert max(map(len, chunks)) <= 30


def test_a_large_body_pauses_the_socket_instead_of_filling_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_asyncio_network, "_HIGH_WATER", 64 * 1024)
    total = 8 * 1024 * 1024

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        block = b"y" * 65536
        for _ in range(total // len(block)):
            writer.write(block)
            await writer.drain()
        writer.close()

    async def scenario() -> tuple[int, int]:
        server, port = await _server(serve)
        async with server:
            stream = await AsyncioNetwork().connect_tcp("127.0.0.1", port, timeout=5)
            assert isinstance(stream, _asyncio_network.AsyncioStream)
            got, held = 0, 0
            while chunk := await stream.read(16 * 1024, timeout=5):
                got += len(chunk)
                held = max(held, len(stream._inbox.buffer))
                await asyncio.sleep(0)  # a slow reader
            await stream.aclose()
            return got, held

    got, held = asyncio.run(scenario())
    assert got == total
    assert held <= 64 * 1024 + 256 * 1024  # the high-water mark plus at most one socket read


def test_silence_is_a_read_timeout_and_a_closed_port_a_connect_error() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    async def scenario() -> None:
        server, port = await _server(serve)
        async with server:
            stream = await AsyncioNetwork().connect_tcp("127.0.0.1", port, timeout=5)
            await stream.write(b"GET / HTTP/1.1\r\n\r\n")
            with pytest.raises(httpcore.ReadTimeout):
                await stream.read(1024, timeout=0.1)
            await stream.aclose()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            free = probe.getsockname()[1]
        with pytest.raises(httpcore.ConnectError) as refused:
            await AsyncioNetwork().connect_tcp("127.0.0.1", free, timeout=5)
        assert isinstance(refused.value.__cause__, ConnectionRefusedError)

    asyncio.run(scenario())


def test_a_reset_mid_reply_is_a_read_error_and_writes_after_close_fail() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(10)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST on close
        writer.transport.abort()

    async def scenario() -> None:
        server, port = await _server(serve)
        async with server:
            stream = await AsyncioNetwork().connect_tcp("127.0.0.1", port, timeout=5)
            await stream.write(b"0123456789")
            outcome: bytes | httpcore.ReadError
            try:
                outcome = await stream.read(1024, timeout=5)
            except httpcore.ReadError as exc:
                outcome = exc
            # a reset, or seen as EOF: both a broken-off reply for httpcore
            assert outcome == b"" or isinstance(getattr(outcome, "__cause__", None), ConnectionResetError)
            await stream.aclose()
            with pytest.raises(httpcore.WriteError):
                await stream.write(b"more")

    asyncio.run(scenario())
