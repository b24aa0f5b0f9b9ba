"""Transports move bytes; they know nothing of Circle. This module: stdio, and the shape every
transport shares: a per-connection factory (the composition root in cli.py builds it around the
shared session) that turns a writer into something that serves a reader. Unix socket and TCP
listeners are in `_listeners.py`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Protocol

from ._connection import FrameWriter

log = logging.getLogger("circle_bridge.transports")


class ServedConnection(Protocol):
    """What a transport needs of a connection (`_connection.Connection` is one)."""

    async def feed(self, data: bytes) -> None: ...
    async def run(self, reader: asyncio.StreamReader) -> int: ...
    async def finish(self) -> None: ...


ConnectionFactory = Callable[[FrameWriter], ServedConnection]


def protect_stdout() -> int:
    """Move the protocol stream off fd 1. Returns a private fd for protocol frames; fd 1 (and
    Python's sys.stdout) then point at stderr, so a stray print or a child process that inherits
    stdout cannot corrupt the stream."""
    sys.stdout.flush()
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol_fd


class _BlockingWriter:
    """For a stdout that is a regular file (asyncio pipes only take pipes, sockets and ttys)."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


async def _stdin_reader(loop: asyncio.AbstractEventLoop) -> asyncio.StreamReader:
    # the limit is also where the reader stops pulling from the pipe (2x): keep it small, so a client
    # whose replies back up is throttled by the kernel pipe instead of by our memory
    reader = asyncio.StreamReader(limit=32 * 1024)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    except ValueError:  # a regular file: feed the reader from a thread
        fd = sys.stdin.fileno()

        def pump() -> None:
            while chunk := os.read(fd, 65536):
                loop.call_soon_threadsafe(reader.feed_data, chunk)
            loop.call_soon_threadsafe(reader.feed_eof)

        threading.Thread(target=pump, name="stdin-reader", daemon=True).start()
    return reader


async def _fd_writer(loop: asyncio.AbstractEventLoop, fd: int) -> FrameWriter:
    pipe = os.fdopen(fd, "wb", buffering=0)
    try:
        transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
    except ValueError:
        return _BlockingWriter(fd)
    return asyncio.StreamWriter(transport, protocol, None, loop)


async def serve_stdio(new_connection: ConnectionFactory, protocol_fd: int, *, own_sigterm: bool = True) -> int:
    """Serve one connection on stdin and ``protocol_fd`` until EOF or `exit`; its exit code.
    ``own_sigterm``: SIGTERM drains this connection (off when a daemon owns the signal)."""
    loop = asyncio.get_running_loop()
    reader = await _stdin_reader(loop)
    writer = await _fd_writer(loop, protocol_fd)
    connection = new_connection(writer)
    log.info("serving JSON-RPC on stdio")
    # SIGTERM drains: requests already read are answered (bounded), then the process exits 0
    draining: list[asyncio.Task[None]] = []
    if own_sigterm:
        loop.add_signal_handler(signal.SIGTERM, lambda: draining.append(asyncio.ensure_future(connection.finish())))
    try:
        return await connection.run(reader)
    finally:
        if own_sigterm:
            loop.remove_signal_handler(signal.SIGTERM)
        for task in draining:
            task.cancel()
