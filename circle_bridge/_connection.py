"""One client connection: bytes from a transport go through framing and the codec into a fresh
pygls protocol with the lifecycle gate and the circle handlers; replies go back the same way.

Backpressure, so a slow client costs bounded memory and loses nothing: before each message the
loop waits for the writer to drain, and at most ``max_in_flight`` requests run at once; beyond
either limit the loop stops reading and the kernel buffer throttles the client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Protocol, cast

from . import _errors as E
from ._codec import Invalid, Request, decode_message
from ._config import Settings
from ._dispatch import BridgeProtocol, new_server
from ._framing import FrameError, FrameParser
from ._handlers import parse_params, register_circle_methods
from ._lifecycle import Lifecycle, register_lifecycle
from ._openrpc import build_document
from ._protocol import METHODS, PROTOCOL_VERSION, InitializeResult, ServerCapabilities, ServerInfo
from ._session import Session
from ._version import __version__

log = logging.getLogger("circle_bridge.connection")

READ_CHUNK = 64 * 1024


def _initialize_result() -> InitializeResult:
    return InitializeResult(
        server_info=ServerInfo(name="circle-bridge", version=__version__),
        capabilities=ServerCapabilities(methods=[m.name for m in METHODS], cancellation=True, batches=False),
        protocol_version=PROTOCOL_VERSION,
    )


class FrameWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    async def drain(self) -> None: ...
    def is_closing(self) -> bool: ...


# After EOF, requests already received are still answered (a client may pipe in requests and
# close its end at once), for up to this long.
EOF_GRACE_SECONDS = 30.0


Methods = Callable[["Connection"], Callable[[], None]]
"""Registers the request handlers on a connection's server (the composition root decides which)
and subscribes it to what the shared session tells every connection; returns the unsubscribe,
called when the connection ends."""


class Connection:
    """One client: its own framing state, pygls protocol and lifecycle; the methods it serves are
    given by the composition root (the circle handlers on the shared session), so a connection
    neither opens nor closes anything shared."""

    def __init__(
        self,
        settings: Settings,
        writer: FrameWriter,
        methods: Methods,
        *,
        watch_parent: bool = False,
    ) -> None:
        self._writer = writer
        self._closed = asyncio.Event()
        self._reading: asyncio.Task[Any] | None = None
        self.exit_code = 0
        self._parser = FrameParser(settings.max_frame_bytes)
        self._max_in_flight = settings.max_in_flight
        self._slot_freed = asyncio.Event()
        self.lifecycle = Lifecycle(self.close, watch_parent=watch_parent)
        self.server = new_server(
            write_frame=self._write, gate=self.lifecycle.gate, on_request_done=self._slot_freed.set
        )
        protocol = self.server.protocol
        assert isinstance(protocol, BridgeProtocol)
        self.protocol = protocol
        # replies that become ready in one turn of the event loop leave in one write (issue 10: a
        # write syscall per reply was a sixth of a request's CPU)
        self._pending_frames: list[bytes] = []
        register_lifecycle(self.server, self.lifecycle, parse_params, _initialize_result, self._others_answered)
        self._stop_methods = methods(self)
        registered = set(self.server.protocol.fm.features)
        assert registered | {"$/cancelRequest"} == {m.name for m in METHODS}, "protocol and handlers disagree"

    def _write(self, frame: bytes) -> None:
        if not self._pending_frames:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending_frames.append(frame)

    def _flush(self) -> None:
        frames, self._pending_frames = self._pending_frames, []
        if frames and not self._writer.is_closing():
            self._writer.write(frames[0] if len(frames) == 1 else b"".join(frames))

    def close(self, code: int) -> None:
        if not self._closed.is_set():
            self.exit_code = code
            self._closed.set()
            if self._reading is not None:  # `run` waits for input: wake it to end
                self._reading.cancel()

    async def feed(self, data: bytes) -> None:
        for item in self._parser.feed(data):
            if self._closed.is_set():  # `exit` came earlier in this chunk
                return
            # backpressure per message: a client that does not read its replies stops being served
            await self._writer.drain()
            if isinstance(item, FrameError):
                log.debug("bad frame: %s", item.reason)
                self.protocol.send_error(None, E.INVALID_REQUEST if item.oversize else E.PARSE_ERROR, item.reason)
                continue
            message = decode_message(item)
            if isinstance(message, Invalid):
                log.debug("bad message: %s", message.detail)
                self.protocol.send_error(message.id, message.spec, message.detail)
                continue
            # A request beyond the in-flight cap waits for a free slot: reading stops, the client is
            # throttled by its pipe or socket, and no request is refused or lost.
            while type(message) is Request and self.protocol.in_flight >= self._max_in_flight:
                self._slot_freed.clear()
                await self._slot_freed.wait()
            self.protocol.handle_message(message)

    async def run(self, reader: asyncio.StreamReader) -> int:
        """Serve until EOF, `exit`, or the parent process dies; return the exit code."""
        try:
            while not self._closed.is_set():
                await self._writer.drain()
                # read in this task, not in one per read (issue 10: a Task and a wait set per read
                # were a tenth of a request's CPU); `close` cancels only this await
                self._reading = asyncio.current_task()
                try:
                    data = await reader.read(READ_CHUNK)
                except asyncio.CancelledError:
                    if not self._closed.is_set():
                        raise
                    cast("asyncio.Task[Any]", asyncio.current_task()).uncancel()
                    break
                finally:
                    self._reading = None
                if not data:
                    await self._requests_answered()
                    self.close(0)
                    break
                await self.feed(data)
        except (ConnectionError, asyncio.IncompleteReadError):
            self.close(1)
        finally:
            self._stop_methods()
            self.lifecycle.stop()
            unanswered = [cast("asyncio.Future[Any]", f) for f in self.protocol._request_futures.values()]
            for future in unanswered:
                future.cancel()
            if unanswered:
                # their -32800 replies are written by done-callbacks: let those run before the flush
                await asyncio.wait(unanswered, timeout=5)
            self._flush()
            with contextlib.suppress(ConnectionError, TimeoutError):
                await asyncio.wait_for(self._writer.drain(), timeout=5)
        return self.exit_code

    async def finish(self) -> None:
        """Drain: answer every request already received (bounded), then end the connection."""
        await self._requests_answered()
        self.close(0)

    async def _others_answered(self) -> None:
        """Wait (bounded) until every request but the calling one is answered."""
        await self._requests_answered(exclude=asyncio.current_task())

    async def _requests_answered(self, exclude: object = None) -> None:
        # every handler is `async def`, so pygls stored asyncio futures (its annotation says concurrent ones)
        pending = [cast("asyncio.Future[Any]", f) for f in self.protocol._request_futures.values() if f is not exclude]
        if pending:
            await asyncio.wait(pending, timeout=EOF_GRACE_SECONDS)
            await asyncio.sleep(0)  # let done-callbacks write the replies


def circle_methods(session: Session) -> Methods:
    """The protocol's methods, served from ``session`` (shared by every connection)."""

    def register(connection: Connection) -> Callable[[], None]:
        register_circle_methods(connection.server, session, build_document)

        # CIRCLE_TOKEN_SOURCE=client: the session asks every initialized connection for a token
        def token_needed(params: dict[str, Any]) -> None:
            if connection.lifecycle.initialized:
                connection.protocol.notify("circle/tokenNeeded", params)

        return session.on_token_needed(token_needed)

    return register
