"""The daemon: one process, one session, many clients, on a Unix socket and/or loopback TCP (and
stdio, if asked). It writes ``daemon.json`` for clients, answers `status` and `stop` on a control
socket, exits after an idle period if asked, and on SIGTERM/SIGINT or `stop` drains: stops
accepting, answers every request already received, then removes its socket and state file.

With stdio among its transports the process belongs to the app that spawned it: it ends when the
stdio connection ends, draining the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._listeners import Clients, Listener, TcpListener, UnixListener, is_loopback, peer_uid
from ._redaction import REDACTOR
from ._runtime_dir import (
    CONTROL_FILE,
    DaemonState,
    RuntimeDirError,
    check_socket_path,
    ensure_private_dir,
    live_state,
    remove_stale_socket,
    remove_state,
    write_state,
)
from ._session import Session
from ._transports import ConnectionFactory
from ._version import __version__

log = logging.getLogger("circle_bridge.daemon")

DRAIN_SECONDS = 30.0


@dataclass(frozen=True)
class DaemonOptions:
    runtime_dir: Path
    socket_path: Path | None  # None: no Unix socket
    tcp: tuple[str, int] | None  # None: no TCP
    identity: str  # fingerprint for daemon.json
    idle_exit: float | None = None  # seconds without clients, None: never
    log_file: str | None = None
    allowed_uid: int | None = None  # tests only: who may use the socket (default: our euid)


class DaemonError(Exception):
    """The daemon cannot start; the message says why and what to do."""


class Daemon:
    def __init__(self, session: Session, options: DaemonOptions, max_frame_bytes: int) -> None:
        self._session = session
        self._options = options
        self._max_frame_bytes = max_frame_bytes
        self.clients = Clients()
        self._listeners: list[Listener] = []
        self._control: asyncio.AbstractServer | None = None
        self._stop = asyncio.Event()
        self._started = time.monotonic()
        self._started_at = time.time()
        self.auth_token = secrets.token_urlsafe(32)
        REDACTOR.register(self.auth_token)
        self.state: DaemonState | None = None
        self.stdio = False

    # -- start ------------------------------------------------------------------------------
    async def start(self, new_connection: ConnectionFactory) -> DaemonState:
        opts = self._options
        try:
            ensure_private_dir(opts.runtime_dir)
            running = live_state(opts.runtime_dir)
            if running is not None:
                raise DaemonError(
                    f"a circle-bridge daemon already runs (pid {running.pid}, socket {running.socket}); "
                    "`circle-bridge stop` it first, or set CIRCLE_BRIDGE_RUNTIME_DIR for a second one"
                )
            control = check_socket_path(opts.runtime_dir / CONTROL_FILE)
            remove_stale_socket(control)
            if opts.socket_path is not None:
                # a path the user chose: its directory is theirs to protect (it may be /tmp), so
                # only the socket itself is made private (0600) and guarded by the peer-uid check
                remove_stale_socket(check_socket_path(opts.socket_path))
        except RuntimeDirError as exc:
            raise DaemonError(str(exc)) from None
        try:
            if opts.socket_path is not None:
                unix = UnixListener(
                    opts.socket_path, new_connection, self.clients, self._max_frame_bytes, allowed_uid=opts.allowed_uid
                )
                self._listeners.append(await unix.start())
            if opts.tcp is not None:
                host, port = opts.tcp
                if not is_loopback(host):
                    log.warning("TCP on %s is reachable from other machines; only the token protects it", host)
                tcp = TcpListener(host, port, self.auth_token, new_connection, self.clients, self._max_frame_bytes)
                self._listeners.append(await tcp.start())
        except OSError as exc:
            self._close_listeners()
            raise DaemonError(f"cannot listen: {exc}") from None
        old = os.umask(0o177)
        try:
            self._control = await asyncio.start_unix_server(self._serve_control, path=str(control))
        finally:
            os.umask(old)
        self.state = DaemonState(
            pid=os.getpid(),
            version=__version__,
            socket=self._address("socket"),
            tcp=self._address("tcp"),
            authToken=self.auth_token,
            identity=opts.identity,
            control=str(control),
            startedAt=self._started_at,
            log=opts.log_file,
        )
        write_state(opts.runtime_dir, self.state)
        return self.state

    def _address(self, kind: str) -> str | None:
        return next((listener.address for listener in self._listeners if listener.kind == kind), None)

    # -- run --------------------------------------------------------------------------------
    async def run(self, stdio: Callable[[], Awaitable[int]] | None = None) -> int:
        """Serve until a signal, `stop`, the idle timeout, or (with ``stdio``) the end of stdio."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.request_stop, signum)
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stop.wait())]
        stdio_task: asyncio.Task[int] | None = None
        if stdio is not None:
            self.stdio = True
            stdio_task = asyncio.ensure_future(stdio())
            waits.append(stdio_task)
        if self._options.idle_exit is not None:
            waits.append(asyncio.ensure_future(self._exit_when_idle(self._options.idle_exit)))
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiting in waits:
                if waiting is not stdio_task:
                    waiting.cancel()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            await self.shutdown()
        if stdio_task is not None and stdio_task.done() and not stdio_task.cancelled():
            return stdio_task.result()
        return 0

    def request_stop(self, signum: int | None = None) -> None:
        if not self._stop.is_set():
            log.info("stopping (%s): draining", signal.Signals(signum).name if signum else "stop requested")
            self._stop.set()

    async def _exit_when_idle(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self.clients.changed.clear()
            if self.clients.active:
                await self.clients.changed.wait()
                continue
            idle_since = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.clients.changed.wait(), seconds)
            if not self.clients.active and loop.time() - idle_since >= seconds:
                log.info("no clients for %.0f s: exiting", seconds)
                self.request_stop()
                return

    async def shutdown(self) -> None:
        """Drain. First, without yielding to the loop, withdraw: the state file, the control
        socket and the listeners go, so no new client finds or reaches this daemon and a new
        `connect` can start the next one on the same paths at once. Then answer what is in flight."""
        if self.state is not None:
            remove_state(self._options.runtime_dir, self.state.pid)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.state.control)
            self.state = None
        if self._control is not None:
            self._control.close()
        self._close_listeners()
        await self.clients.drain(DRAIN_SECONDS)
        for listener in self._listeners:
            await listener.wait_connections_ended(DRAIN_SECONDS)

    def _close_listeners(self) -> None:
        for listener in self._listeners:
            listener.close()

    # -- control: `circle-bridge status` and `stop` -------------------------------------------
    def status(self) -> dict[str, Any]:
        """Everything `circle-bridge status` shows; no secret (the auth token stays in daemon.json)."""
        counts = self.clients.counts()
        return {
            "pid": os.getpid(),
            "version": __version__,
            "uptime": round(time.monotonic() - self._started, 1),
            "endpoints": {"socket": self._address("socket"), "tcp": self._address("tcp"), "stdio": self.stdio},
            "identity": self._options.identity,
            "clients": {"connected": sum(counts.values()), "byTransport": counts},
            "accepted": dict(self.clients.accepted),
            "refused": dict(self.clients.refused),
            "idleExit": self._options.idle_exit,
            "log": self._options.log_file,
            "session": {**self._session.state(), "serviceUrl": self._session.service_url},
            "upstream": {
                "calls": self._session.counters.service_calls,
                "coalesced": self._session.counters.coalesced,
                "tokenRequests": self._session.counters.token_requests,
            },
        }

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            sock = writer.get_extra_info("socket")
            allowed = os.geteuid() if self._options.allowed_uid is None else self._options.allowed_uid
            if sock is None or peer_uid(sock) != allowed:
                return
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                return  # a liveness probe (`live_state`)
            try:
                command = json.loads(line).get("command")
            except (ValueError, AttributeError):
                command = None
            if command == "status":
                reply: dict[str, Any] = self.status()
            elif command == "stop":
                reply = {"stopping": True, "inFlight": sum(1 for _ in self.clients.active)}
                self.request_stop()
            else:
                reply = {"error": "unknown command; expected status or stop"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, TimeoutError, OSError):
            pass
        finally:
            writer.close()
