"""httpcore's network layer on asyncio's own transports, for the calls to CircleService.

httpcore (httpx's transport layer) takes a pluggable network backend. Its default goes through anyio,
which adds a cancel scope, a checkpoint and a lock per read and per write: about a quarter of the
CPU of a forwarded call here (issue 10, docs/design.md "Performance"). This backend reads through an
``asyncio.Protocol`` and keeps httpcore's contract: ``read`` returns at most ``max_bytes`` and
``b""`` at EOF, errors are httpcore's (the cause chained, so a TLS verification failure stays
recognisable), and a body larger than ``_HIGH_WATER`` pauses the socket instead of filling memory.

A request's writes (headers, then body) are held and sent as one segment when the reply is first
read: HTTP/1.1 always reads after it writes, and one ``send`` instead of two spares a syscall here
and a wake-up of the service.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore

_HIGH_WATER = 256 * 1024  # bytes read ahead of httpcore before the socket is paused


class _Inbox(asyncio.Protocol):
    """What the socket delivered and httpcore has not read yet."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # the transport closes itself

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def arrival(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def take(self, max_bytes: int) -> bytes:
        buffer = self.buffer
        if len(buffer) <= max_bytes:
            data = bytes(buffer)
            buffer.clear()
        else:
            data = bytes(buffer[:max_bytes])
            del buffer[:max_bytes]
        if self._paused and len(buffer) <= _HIGH_WATER // 4 and self.transport is not None:
            self._paused = False
            self.transport.resume_reading()
        return data


class AsyncioStream(httpcore.AsyncNetworkStream):
    def __init__(self, transport: asyncio.Transport, inbox: _Inbox) -> None:
        self._transport = transport
        self._inbox = inbox
        self._outbox: list[bytes] = []

    def _send_held(self) -> None:
        if self._outbox:
            data = b"".join(self._outbox) if len(self._outbox) > 1 else self._outbox[0]
            self._outbox.clear()
            self._transport.write(data)

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109 (httpcore's API)
        self._send_held()
        inbox = self._inbox
        if not inbox.buffer and not inbox.eof:
            try:
                async with asyncio.timeout(timeout):
                    while not inbox.buffer and not inbox.eof:
                        await inbox.arrival()
            except TimeoutError:
                raise httpcore.ReadTimeout(f"no data within {timeout} s") from None
        if inbox.buffer:
            return inbox.take(max_bytes)
        if inbox.error is not None:
            raise httpcore.ReadError(str(inbox.error) or type(inbox.error).__name__) from inbox.error
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109 (httpcore's API)
        if self._transport.is_closing():
            raise httpcore.WriteError("the connection is closed")
        if buffer:
            self._outbox.append(bytes(buffer))

    async def aclose(self) -> None:
        self._outbox.clear()
        self._transport.close()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's API)
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport = await loop.start_tls(
                    self._transport, self._inbox, ssl_context, server_hostname=server_hostname
                )
        except TimeoutError:
            self._transport.close()
            raise httpcore.ConnectTimeout(f"no TLS handshake within {timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            self._transport.close()
            raise httpcore.ConnectError(str(exc)) from exc  # the cause tells a certificate problem apart
        assert transport is not None
        self._inbox.transport = transport
        return AsyncioStream(transport, self._inbox)

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # httpcore: an idle keep-alive connection the service closed
            return bool(self._inbox.buffer) or self._inbox.eof
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        return self._transport.get_extra_info(info)  # "ssl_object", "socket"


class AsyncioNetwork(httpcore.AsyncNetworkBackend):
    """TCP only: CircleService is reached by host and port (docs/circle-api.md §3.1)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's API)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                transport, inbox = await loop.create_connection(
                    _Inbox, host, port, local_addr=(local_address, 0) if local_address else None
                )
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout} s") from None
        except OSError as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        sock = transport.get_extra_info("socket")
        if sock is not None:
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return AsyncioStream(transport, inbox)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
