"""A Python client for circle-bridge, used by the demo and the tests, and usable by any asyncio app.

    async with await BridgeClient.spawn() as bridge:      # runs `circle-bridge serve --stdio`
        await bridge.initialize()
        circles = await bridge.enum_circles()

To share one session with every other app of this user, attach to the daemon instead:
``BridgeClient.attach()`` (its socket; starts a daemon if none runs, as `circle-bridge connect`
does), ``BridgeClient.connect_socket()`` or ``BridgeClient.connect_tcp()`` (the address and the
token come from daemon.json).

Errors from the bridge raise `BridgeRPCError` with the catalogue `code` and `data`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any

import msgspec

from ._framing import FrameError, FrameParser, encode_frame

__all__ = ["BridgeClient", "BridgeRPCError"]

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class BridgeRPCError(Exception):
    """A JSON-RPC error reply. ``code`` is from the catalogue in protocol/README.md."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"[{code}] {message}")
        self.code = code
        self.message = message
        self.data = data


Trace = Callable[[str, dict[str, Any]], None]


def _params(**params: Any) -> dict[str, Any]:
    """By-name params without the ones left out: the bridge's schemas forbid explicit nulls where
    a member is optional, and the bridge's default then applies."""
    return {name: value for name, value in params.items() if value is not None}


class BridgeClient:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        process: asyncio.subprocess.Process | None = None,
        trace: Trace | None = None,
        auth_token: str | None = None,
    ) -> None:
        self._auth_token = auth_token
        self._reader = reader
        self._writer = writer
        self.process = process
        self._trace = trace
        self._ids = itertools.count(1)
        self._pending: dict[int | str, asyncio.Future[Any]] = {}
        self.unsolicited: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        """Messages that answer no pending request: notifications, and errors with id null."""
        self._parser = FrameParser(64 * 1024 * 1024)
        self._read_task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def spawn(
        cls,
        command: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        trace: Trace | None = None,
        stderr: int | None = None,
    ) -> BridgeClient:
        """Start ``circle-bridge serve --stdio`` (or ``command``) and return a client on its stdio.
        ``env`` is added to this process's environment."""
        argv = list(command or [sys.executable, "-m", "circle_bridge", "serve", "--stdio"])
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, **(env or {})},
        )
        assert process.stdin is not None
        assert process.stdout is not None
        return cls(process.stdout, process.stdin, process, trace)

    @classmethod
    async def connect_socket(
        cls, path: str | os.PathLike[str] | None = None, trace: Trace | None = None
    ) -> BridgeClient:
        """Attach to a daemon's Unix socket: ``path``, else the one daemon.json names (in
        ``$CIRCLE_BRIDGE_RUNTIME_DIR`` or the default runtime dir). Raises ConnectionError if no
        daemon runs there."""
        from ._runtime_dir import SOCKET_FILE, read_state, runtime_dir

        if path is None:
            state = read_state(runtime_dir())
            path = state.socket if state is not None and state.socket else runtime_dir() / SOCKET_FILE
        reader, writer = await asyncio.open_unix_connection(os.fspath(path), limit=1 << 20)
        return cls(reader, writer, trace=trace)

    @classmethod
    async def connect_tcp(
        cls,
        host: str | None = None,
        port: int | None = None,
        auth_token: str | None = None,
        trace: Trace | None = None,
    ) -> BridgeClient:
        """Attach to a daemon over TCP. Missing pieces come from daemon.json: the address, and the
        token that `initialize` then sends in ``initializationOptions.authToken``."""
        from ._runtime_dir import read_state, runtime_dir

        if host is None or port is None or auth_token is None:
            state = read_state(runtime_dir())
            if state is None or state.tcp is None:
                raise ConnectionError(f"no daemon listening on TCP is recorded in {runtime_dir()}")
            state_host, _, state_port = state.tcp.rpartition(":")
            host = host or state_host.strip("[]")
            port = port or int(state_port)
            auth_token = auth_token or state.authToken
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        return cls(reader, writer, trace=trace, auth_token=auth_token)

    @classmethod
    async def attach(cls, env: Mapping[str, str] | None = None, trace: Trace | None = None) -> BridgeClient:
        """Attach to this user's daemon, starting one (detached, exiting when idle) if none runs:
        what `circle-bridge connect` does, without the forwarding process. ``env`` (added to this
        process's environment) configures the identity; a daemon serving another identity is
        refused with ConnectionError, never silently used."""
        from ._config import load_settings
        from ._connect import ConnectError, attach_or_start, daemon_argv, identity_of
        from ._runtime_dir import LOG_FILE, runtime_dir

        environment = {**os.environ, **(env or {})}
        settings = load_settings(env=environment)
        directory = runtime_dir(environment)
        log_file = settings.log_file or str(directory / LOG_FILE)
        try:
            state = await asyncio.to_thread(
                attach_or_start, directory, identity_of(settings), daemon_argv({}, log_file), log_file, environment
            )
        except ConnectError as exc:
            raise ConnectionError(str(exc)) from None
        return await cls.connect_socket(state.socket, trace)

    async def __aenter__(self) -> BridgeClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- plumbing ---------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        try:
            while data := await self._reader.read(65536):
                for frame in self._parser.feed(data):
                    if isinstance(frame, FrameError):
                        continue
                    message = _decode(frame)
                    if self._trace is not None:
                        self._trace("recv", message)
                    msg_id = message.get("id") if isinstance(message, dict) else None
                    future = self._pending.pop(msg_id, None) if isinstance(msg_id, int | str) else None
                    if future is not None and not future.done():
                        future.set_result(message)
                    elif isinstance(message, dict):
                        self.unsolicited.put_nowait(message)
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the bridge closed the connection"))
            self._pending.clear()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (tests use this for malformed frames)."""
        self._writer.write(data)

    def _send(self, message: dict[str, Any]) -> None:
        if self._trace is not None:
            self._trace("send", message)
        self._writer.write(encode_frame(_encode(message)))

    async def request(self, method: str, params: Any = None, *, msg_id: int | str | None = None) -> Any:
        """Send a request and return its result, or raise BridgeRPCError."""
        reply = await self.request_raw(method, params, msg_id=msg_id)
        if "error" in reply:
            err = reply["error"]
            raise BridgeRPCError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply.get("result")

    async def request_raw(self, method: str, params: Any = None, *, msg_id: int | str | None = None) -> dict[str, Any]:
        """Send a request and return the whole reply object."""
        if self._read_task.done():  # nothing could ever answer: fail now instead of waiting forever
            raise ConnectionError("the bridge closed the connection")
        if msg_id is None:
            msg_id = next(self._ids)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = future
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)
        await self._writer.drain()
        reply: dict[str, Any] = await future
        return reply

    def notify(self, method: str, params: Any = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        self._send(message)

    def cancel(self, msg_id: int | str) -> None:
        self.notify("$/cancelRequest", {"id": msg_id})

    # -- the protocol -----------------------------------------------------------------------
    async def initialize(self, client_name: str = "circle-bridge-python") -> dict[str, Any]:
        params: dict[str, Any] = {"processId": os.getpid(), "clientInfo": {"name": client_name}}
        if self._auth_token is not None:
            params["initializationOptions"] = {"authToken": self._auth_token}
        result: dict[str, Any] = await self.request("initialize", params)
        self.notify("initialized", {})
        return result

    async def is_service_running(self) -> bool:
        result = await self.request("circle/isServiceRunning", {})
        return bool(result["running"])

    async def circle_initialize(self, token: str | None = None) -> dict[str, Any]:
        """`circle/initialize`; ``token`` is the app's own token under ``CIRCLE_TOKEN_SOURCE=client``
        (send it again whenever the bridge notifies `circle/tokenNeeded`)."""
        result: dict[str, Any] = await self.request("circle/initialize", _params(token=token))
        return result

    async def enum_circles(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.request("circle/enumCircles", {}))["circles"]
        return result

    async def enum_topics(self, circle_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = (await self.request("circle/enumTopics", {"circleId": circle_id}))["topics"]
        return result

    async def create_circle(
        self, circle_name: str, circle_description: str | None = None, *, work_done_token: int | str | None = None
    ) -> dict[str, Any]:
        """`circle/createCircle`. With ``work_done_token`` the bridge sends `$/progress`
        notifications (read them from `unsolicited`)."""
        return await self._call(
            "circle/createCircle",
            circleName=circle_name,
            circleDescription=circle_description,
            workDoneToken=work_done_token,
        )

    async def who_am_i(self, circle_id: str) -> dict[str, Any]:
        return await self._call("circle/whoAmI", circleId=circle_id)

    async def add_message(self, circle_id: str, topic_id: str, message: str, **fields: Any) -> dict[str, Any]:
        """`circle/addMessage`; ``fields`` are its optional wire params by name (``messageType``,
        ``messageSubType``, ``context``, ``objectPath``, ``base64Data``, ``additionalJson``)."""
        return await self._call("circle/addMessage", circleId=circle_id, topicId=topic_id, message=message, **fields)

    async def get_messages(
        self, circle_id: str, topic_id: str, msg_type_filters: Sequence[int] | None = None
    ) -> list[dict[str, Any]]:
        result = await self._call(
            "circle/getMessages",
            circleId=circle_id,
            topicId=topic_id,
            msgTypeFilters=None if msg_type_filters is None else list(msg_type_filters),
        )
        messages: list[dict[str, Any]] = result["messages"]
        return messages

    async def decrypt(self, circle_id: str, topic_id: str, to_decrypt: str) -> str:
        """`circle/decrypt`: the decrypted data."""
        result = await self._call("circle/decrypt", circleId=circle_id, topicId=topic_id, toDecrypt=to_decrypt)
        decrypted: str = result["decryptedData"]
        return decrypted

    async def lock_user(self, circle_id: str, number_of_codes: int | None = None) -> dict[str, Any]:
        return await self._call("circle/lockUser", circleId=circle_id, numberOfCodes=number_of_codes)

    async def unlock_user(self, circle_id: str, unlock_codes: Sequence[str]) -> dict[str, Any]:
        return await self._call("circle/unlockUser", circleId=circle_id, unlockCodes=list(unlock_codes))

    async def put_secret(
        self, name: str, value: str, *, circle_id: str | None = None, topic_id: str | None = None
    ) -> dict[str, Any]:
        return await self._call("circle/putSecret", name=name, value=value, circleId=circle_id, topicId=topic_id)

    async def get_secret(
        self, name: str, *, circle_id: str | None = None, topic_id: str | None = None
    ) -> dict[str, Any]:
        """`circle/getSecret`: ``{"found": bool, "value"?: str, ...}``; not found is no error."""
        return await self._call("circle/getSecret", name=name, circleId=circle_id, topicId=topic_id)

    # Experimental upstream paths (protocol/README.md, "x-experimental"): may change in any release.
    async def gen_invite(self, circle_id: str, is_add_device: bool | None = None) -> dict[str, Any]:
        return await self._call("circle/genInvite", circleId=circle_id, isAddDevice=is_add_device)

    async def process_invite(
        self, invite_id: str, auth_code: str, wait_20_second: bool | None = None
    ) -> dict[str, Any]:
        return await self._call(
            "circle/processInvite", inviteId=invite_id, authCode=auth_code, wait20Second=wait_20_second
        )

    async def enum_files(self, circle_id: str, topic_id: str) -> list[dict[str, Any]]:
        files: list[dict[str, Any]] = (await self._call("circle/enumFiles", circleId=circle_id, topicId=topic_id))[
            "files"
        ]
        return files

    async def add_file(
        self, circle_id: str, topic_id: str, file_path: str, description: str | None = None
    ) -> dict[str, Any]:
        return await self._call(
            "circle/addFile", circleId=circle_id, topicId=topic_id, filePath=file_path, description=description
        )

    async def _call(self, method: str, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(method, _params(**params))
        return result

    async def discover(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("rpc.discover")
        return result

    async def close(self, wait_seconds: float = 10.0) -> int | None:
        """`shutdown`, `exit`, and wait for the process; returns its exit code (None when attached
        to a daemon, which goes on serving the others)."""
        with contextlib.suppress(ConnectionError, BridgeRPCError, TimeoutError):
            if not self._writer.is_closing():
                await asyncio.wait_for(self.request("shutdown"), wait_seconds)
                self.notify("exit")
                await self._writer.drain()
        with contextlib.suppress(ConnectionError, TimeoutError):
            self._writer.close()
            if self.process is None:  # a socket: let its transport close before the loop does
                await asyncio.wait_for(self._writer.wait_closed(), wait_seconds)
        code: int | None = None
        if self.process is not None:
            try:
                code = await asyncio.wait_for(self.process.wait(), wait_seconds)
            except TimeoutError:
                self.process.kill()
                code = await self.process.wait()
        self._read_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._read_task
        return code
