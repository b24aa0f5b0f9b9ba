"""Listening transports: a Unix socket and loopback TCP, each serving many clients at once.

Every accepted connection passes admission (`_admission.py`: peer uid on the socket, first bytes a
frame header, and on TCP the auth token) and then gets its own connection from the factory. A
client's disconnect, crash or `exit` ends only its own connection (`Connection.run` cancels its
in-flight requests; reads shared by coalescing go on for the others). Like stdio, they know
nothing of Circle.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import socket
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ._admission import ADMISSION_TIMEOUT_SECONDS, admit
from ._transports import ConnectionFactory, ServedConnection

log = logging.getLogger("circle_bridge.listeners")

# The reader stops pulling from the socket at twice this: the kernel buffer, not our heap, then
# holds a client's backlog (the same backpressure as on stdio).
READ_LIMIT = 32 * 1024
_SOL_LOCAL, _LOCAL_PEERCRED = 0, 0x001  # macOS <sys/un.h>; Python exposes neither


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket: SO_PEERCRED on Linux,
    LOCAL_PEERCRED (what getpeereid reads) on macOS and the BSDs; None if the OS tells neither."""
    if hasattr(socket, "SO_PEERCRED"):
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        _pid, uid, _gid = struct.unpack("3i", creds)
        return int(uid)
    if sys.platform == "darwin" or "bsd" in sys.platform:
        # struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
        raw = sock.getsockopt(_SOL_LOCAL, _LOCAL_PEERCRED, struct.calcsize("IIh16I"))
        _version, uid = struct.unpack_from("II", raw)
        return int(uid)
    return None


@dataclass
class Clients:
    """Every connection being served, by transport: for status, drain and the idle exit."""

    active: dict[ServedConnection, str] = field(default_factory=dict)
    accepted: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, connection: ServedConnection, kind: str) -> None:
        self.active[connection] = kind
        self.accepted[kind] = self.accepted.get(kind, 0) + 1
        self.changed.set()

    def remove(self, connection: ServedConnection) -> None:
        self.active.pop(connection, None)
        self.changed.set()

    def refuse(self, kind: str) -> None:
        self.refused[kind] = self.refused.get(kind, 0) + 1

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for kind in self.active.values():
            out[kind] = out.get(kind, 0) + 1
        return out

    async def drain(self, within: float) -> None:
        """Answer every request already received on every connection, then end them."""
        finishing = [asyncio.ensure_future(c.finish()) for c in list(self.active)]
        if finishing:
            await asyncio.wait(finishing, timeout=within)
            for task in finishing:
                task.cancel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.active and loop.time() < deadline:
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), deadline - loop.time())


async def _lingering_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Close a refused connection so that the peer sees our reply and an orderly EOF: closing a
    socket with unread input makes the kernel send a reset, which may destroy the reply in flight.
    So: send EOF, then read and discard what the peer still sends, briefly."""
    with contextlib.suppress(ConnectionError, OSError, TimeoutError):
        await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        async with asyncio.timeout(1.0):
            discarded = 0
            while discarded < 1 << 20 and (chunk := await reader.read(65536)):
                discarded += len(chunk)


class Listener:
    """One listening endpoint. ``kind`` is "socket" or "tcp"; ``address`` what clients dial."""

    kind = ""

    def __init__(self, new_connection: ConnectionFactory, clients: Clients, max_frame_bytes: int) -> None:
        self._new_connection = new_connection
        self._clients = clients
        self._max_frame_bytes = max_frame_bytes
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.address = ""

    def _admit_peer(self, writer: asyncio.StreamWriter) -> bool:
        return True

    def _auth_token(self) -> str | None:
        return None

    async def _serve_client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        peer = f"{self.kind} client"
        try:
            if not self._admit_peer(writer):
                self._clients.refuse(self.kind)
                return
            prefix = await admit(
                reader,
                writer,
                auth_token=self._auth_token(),
                max_frame_bytes=self._max_frame_bytes,
                within=ADMISSION_TIMEOUT_SECONDS,
                peer=peer,
            )
            if prefix is None:
                self._clients.refuse(self.kind)
                await _lingering_close(reader, writer)
                return
            if self._closing:  # admitted while the daemon began to stop: it takes no new client
                return
            connection = self._new_connection(writer)
            self._clients.add(connection, self.kind)
            try:
                await connection.feed(prefix)
                await connection.run(reader)
            finally:
                self._clients.remove(connection)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("%s went away", peer)
        except Exception:
            log.exception("bug: serving a %s failed", peer)
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()

    def close(self) -> None:
        """Stop accepting (at once, without yielding to the loop); connections already served go
        on until drained."""
        self._closing = True
        if self._server is not None:
            self._server.close()

    async def wait_connections_ended(self, within: float) -> None:
        tasks = list(self._tasks)
        if tasks:
            _done, pending = await asyncio.wait(tasks, timeout=within)
            for task in pending:
                task.cancel()


class UnixListener(Listener):
    """Mode 0600 from the moment it exists (bound under umask 0177), and a peer-uid check."""

    kind = "socket"

    def __init__(
        self,
        path: Path,
        new_connection: ConnectionFactory,
        clients: Clients,
        max_frame_bytes: int,
        *,
        allowed_uid: int | None = None,
    ) -> None:
        super().__init__(new_connection, clients, max_frame_bytes)
        self.path = path
        self.address = str(path)
        self._allowed_uid = os.geteuid() if allowed_uid is None else allowed_uid

    def _admit_peer(self, writer: asyncio.StreamWriter) -> bool:
        sock = writer.get_extra_info("socket")
        try:
            uid = peer_uid(sock) if sock is not None else None
        except OSError:
            uid = None
        if uid != self._allowed_uid:
            log.warning("refused a socket client of uid %s (only uid %d may connect)", uid, self._allowed_uid)
            return False
        return True

    async def start(self) -> UnixListener:
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._serve_client, path=str(self.path), limit=READ_LIMIT)
        finally:
            os.umask(old)
        os.chmod(self.path, 0o600)  # in case the platform ignores umask for sockets
        log.info("listening on %s", self.path)
        return self

    def close(self) -> None:
        super().close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()


def parse_tcp_address(spec: str) -> tuple[str, int]:
    """``[HOST:]PORT`` (``[::1]:PORT`` for IPv6) to (host, port); the host defaults to 127.0.0.1."""
    host, sep, port_text = spec.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]") or "127.0.0.1"
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"--tcp wants [HOST:]PORT, got {spec!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class TcpListener(Listener):
    """Loopback unless the caller allowed otherwise; every client must present ``auth_token``."""

    kind = "tcp"

    def __init__(
        self,
        host: str,
        port: int,
        auth_token: str,
        new_connection: ConnectionFactory,
        clients: Clients,
        max_frame_bytes: int,
    ) -> None:
        super().__init__(new_connection, clients, max_frame_bytes)
        self._host = host
        self._port = port
        self._token = auth_token

    def _auth_token(self) -> str | None:
        return self._token

    async def start(self) -> TcpListener:
        self._server = await asyncio.start_server(self._serve_client, self._host, self._port, limit=READ_LIMIT)
        host, port = self._server.sockets[0].getsockname()[:2]
        self.address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        log.info("listening on tcp %s", self.address)
        return self
