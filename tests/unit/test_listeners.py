"""Listeners in one process with a fake connection: peer-uid refusal, replay of admitted bytes,
client bookkeeping, drain, and address parsing."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from circle_bridge._connection import FrameWriter
from circle_bridge._framing import encode_frame
from circle_bridge._listeners import Clients, TcpListener, UnixListener, is_loopback, parse_tcp_address
from circle_bridge._transports import ServedConnection

FRAME = encode_frame(b'{"jsonrpc":"2.0","id":1,"method":"rpc.discover"}')


class FakeConnection:
    """Records what it is fed; runs until EOF or until finished."""

    made: list[FakeConnection] = []

    def __init__(self, writer: FrameWriter) -> None:
        self.writer = writer
        self.fed = b""
        self.finished = asyncio.Event()
        self.running = asyncio.Event()
        FakeConnection.made.append(self)

    async def feed(self, data: bytes) -> None:
        self.fed += data

    async def run(self, reader: asyncio.StreamReader) -> int:
        self.running.set()
        read = asyncio.ensure_future(reader.read())
        finished = asyncio.ensure_future(self.finished.wait())
        await asyncio.wait({read, finished}, return_when=asyncio.FIRST_COMPLETED)
        read.cancel()
        finished.cancel()
        return 0

    async def finish(self) -> None:
        self.finished.set()


def new_fake(writer: FrameWriter) -> ServedConnection:
    return FakeConnection(writer)


def in_short_dir(body: object) -> None:
    directory = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    try:
        asyncio.run(asyncio.wait_for(body(directory / "s.sock"), 20))  # type: ignore[operator]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_a_peer_of_another_uid_is_closed_without_reaching_a_connection() -> None:
    async def body(path: Path) -> None:
        clients = Clients()
        FakeConnection.made.clear()
        listener = await UnixListener(path, new_fake, clients, 1 << 20, allowed_uid=os.geteuid() + 1).start()
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(FRAME)
        with contextlib.suppress(ConnectionResetError):  # closed with our frame unread: also a refusal
            assert await reader.read() == b""
        assert clients.refused == {"socket": 1}
        assert FakeConnection.made == []
        writer.close()
        listener.close()
        assert not await asyncio.to_thread(path.exists)

    in_short_dir(body)


def test_admitted_bytes_are_replayed_and_clients_are_counted_and_drained() -> None:
    async def body(path: Path) -> None:
        clients = Clients()
        FakeConnection.made.clear()
        listener = await UnixListener(path, new_fake, clients, 1 << 20).start()
        assert (await asyncio.to_thread(path.stat)).st_mode & 0o777 == 0o600
        streams = []
        for _ in range(3):
            reader, writer = await asyncio.open_unix_connection(str(path))
            writer.write(FRAME)
            streams.append((reader, writer))
        while clients.counts() != {"socket": 3}:
            clients.changed.clear()
            await clients.changed.wait()
        for connection in FakeConnection.made:
            await connection.running.wait()
        assert all(c.fed == FRAME for c in FakeConnection.made)
        assert clients.counts() == {"socket": 3}
        streams[0][1].close()  # one client leaves: only its connection ends
        while clients.counts() != {"socket": 2}:
            clients.changed.clear()
            await clients.changed.wait()
        listener.close()
        await clients.drain(within=5)
        assert clients.active == {}
        assert [c.finished.is_set() for c in FakeConnection.made] == [False, True, True]
        assert clients.accepted == {"socket": 3}
        for _, writer in streams:
            writer.close()

    in_short_dir(body)


def test_junk_first_bytes_on_the_socket_are_refused() -> None:
    async def body(path: Path) -> None:
        clients = Clients()
        FakeConnection.made.clear()
        listener = await UnixListener(path, new_fake, clients, 1 << 20).start()
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await reader.read() == b""
        assert clients.refused == {"socket": 1}
        assert FakeConnection.made == []
        writer.close()
        listener.close()

    in_short_dir(body)


def test_tcp_port_zero_reports_the_port_it_picked() -> None:
    async def body() -> None:
        listener = await TcpListener("127.0.0.1", 0, "token", new_fake, Clients(), 1 << 20).start()
        host, _, port = listener.address.rpartition(":")
        assert host == "127.0.0.1"
        assert int(port) > 0
        listener.close()

    asyncio.run(asyncio.wait_for(body(), 20))


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("4711", ("127.0.0.1", 4711)),
        ("0", ("127.0.0.1", 0)),
        ("localhost:80", ("localhost", 80)),
        ("[::1]:9000", ("::1", 9000)),
        ("0.0.0.0:1", ("0.0.0.0", 1)),
    ],
)
def test_tcp_addresses(spec: str, expected: tuple[str, int]) -> None:
    assert parse_tcp_address(spec) == expected


@pytest.mark.parametrize("spec", ["x", "127.0.0.1:", "1:70000", "a:b"])
def test_bad_tcp_addresses(spec: str) -> None:
    with pytest.raises(ValueError, match=r"port|PORT"):
        parse_tcp_address(spec)


def test_only_loopback_counts_as_loopback() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.2", "example.com"))
