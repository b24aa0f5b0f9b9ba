"""Shared helpers for tests that drive a real bridge subprocess against a real emulator over HTTP.
Nothing here is mocked.

A bridge is reached over one of `TRANSPORTS`: its stdio (`serve --stdio`), a daemon's Unix socket
or TCP port (`serve --socket --tcp 0`, token from daemon.json), or `circle-bridge connect` (which
starts the daemon itself). Every daemon gets a private runtime dir and is stopped afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, TypeVar

from circle_bridge._config import as_env, emulator_settings
from circle_bridge._runtime_dir import DaemonState, pid_alive, read_state
from circle_bridge.client import BridgeClient, BridgeRPCError
from circle_bridge.emulator import Emulator, EmulatorConfig

T = TypeVar("T")
TIMEOUT = 60.0
STRICT_BY_DEFAULT = os.environ.get("CIRCLE_EMULATOR_STRICT") == "1"
"""`CIRCLE_EMULATOR_STRICT=1 pytest tests/e2e` runs the whole suite against the strict emulator;
test_tokens.py and test_session.py run in both modes anyway (tests/emulator_modes.py)."""
BRIDGE = [sys.executable, "-m", "circle_bridge", "serve", "--stdio"]
DAEMON = [sys.executable, "-m", "circle_bridge", "serve", "--socket", "--tcp", "0"]
CONNECT = [sys.executable, "-m", "circle_bridge", "connect"]
Transport = Literal["stdio", "socket", "tcp", "connect"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "socket", "tcp", "connect")


def run(coro: Awaitable[T], timeout: float = TIMEOUT) -> T:
    """Run a coroutine to completion on a fresh loop, bounded in time."""

    async def bounded() -> T:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def bridge_env(emulator: Emulator, **extra: str) -> dict[str, str]:
    env = as_env(emulator_settings(emulator.describe()))
    env["CIRCLE_BRIDGE_CONFIG"] = os.devnull  # keep the developer's own config file out of tests
    env.update(extra)
    return env


@contextmanager
def emulator_running(**config: Any) -> Iterator[Emulator]:
    config.setdefault("strict", STRICT_BY_DEFAULT)
    with Emulator(EmulatorConfig(**config)) as emulator:
        yield emulator


def private_runtime_dir() -> Path:
    # short and under /tmp: a socket path must fit in 103 bytes, pytest's tmp_path may not
    return Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))


class DaemonProcess:
    """A daemon this test started (or that a `connect` started in ``runtime_dir``)."""

    def __init__(self, runtime_dir: Path, process: asyncio.subprocess.Process | None, log_path: Path) -> None:
        self.runtime_dir = runtime_dir
        self.process = process
        self.log_path = log_path
        self.pids: set[int] = {process.pid} if process is not None else set()
        _UNSTOPPED.add(self)

    def _note_pid(self) -> None:
        state = read_state(self.runtime_dir)
        if state is not None:
            self.pids.add(state.pid)

    @property
    def state(self) -> DaemonState:
        state = read_state(self.runtime_dir)
        assert state is not None, f"no daemon.json in {self.runtime_dir}"
        self.pids.add(state.pid)
        return state

    @property
    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace") if self.log_path.exists() else ""

    def env(self, base: dict[str, str]) -> dict[str, str]:
        return {**base, "CIRCLE_BRIDGE_RUNTIME_DIR": str(self.runtime_dir)}

    async def stop(self) -> int | None:
        """SIGTERM (which drains), wait, clean up; the exit code if this test spawned it."""
        _UNSTOPPED.discard(self)
        state = read_state(self.runtime_dir)
        pid = self.process.pid if self.process is not None else (state.pid if state else None)
        if pid is not None and pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        code: int | None = None
        if self.process is not None:
            code = await asyncio.wait_for(self.process.wait(), 40)
        elif pid is not None:
            await wait_until(lambda: not pid_alive(pid), within=40)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
        return code


_UNSTOPPED: set[DaemonProcess] = set()


def reap_daemons() -> None:
    """Kill every daemon a test started and did not stop (it failed half-way), and remove its
    runtime dir: a test's failure must not leave processes behind for the next ones."""
    while _UNSTOPPED:
        daemon = _UNSTOPPED.pop()
        daemon._note_pid()
        for pid in daemon.pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(daemon.runtime_dir, ignore_errors=True)


async def start_daemon(
    env: dict[str, str], args: Sequence[str] = (), *, runtime_dir: Path | None = None
) -> DaemonProcess:
    """`serve --socket --tcp 0` (plus ``args``) in a private runtime dir, once it listens."""
    directory = runtime_dir or private_runtime_dir()
    log_path = directory / "test-daemon.stderr"
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        process = await asyncio.create_subprocess_exec(
            *DAEMON,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=fd,
            env={**os.environ, **env, "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)},
        )
    finally:
        os.close(fd)
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), TIMEOUT)
    assert line, f"the daemon did not start: {log_path.read_text()}"
    announced = json.loads(line)
    daemon = DaemonProcess(directory, process, log_path)
    assert announced["pid"] == daemon.state.pid == process.pid
    return daemon


class Bridge:
    """A bridge reached over one transport; its log (stderr, or the daemon's) goes to a file the
    test can scan."""

    def __init__(self, client: BridgeClient, stderr_path: Path, daemon: DaemonProcess | None = None) -> None:
        self.client = client
        self.stderr_path = stderr_path
        self.daemon = daemon

    @property
    def stderr(self) -> str:
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace") if self.stderr_path.exists() else ""
        return text + (self.daemon.log if self.daemon is not None else "")

    async def close(self) -> int | None:
        """Close the client and stop the daemon if this bridge has one."""
        code = await self.client.close()
        if self.daemon is not None:
            await self.daemon.stop()
        return code


async def start_bridge(
    env: dict[str, str],
    *,
    initialize: bool = True,
    command: list[str] | None = None,
    transport: Transport = "stdio",
) -> Bridge:
    fd, name = tempfile.mkstemp(prefix="bridge-stderr-", suffix=".log")
    daemon: DaemonProcess | None = None
    try:
        if transport == "stdio":
            client = await BridgeClient.spawn(command or BRIDGE, env=env, stderr=fd)
        elif transport == "connect":
            directory = private_runtime_dir()
            daemon = DaemonProcess(directory, None, directory / "daemon.log")
            client = await BridgeClient.spawn(command or CONNECT, env=daemon.env(env), stderr=fd)
        else:
            daemon = await start_daemon(env)
            state = daemon.state
            if transport == "socket":
                assert state.socket is not None
                client = await BridgeClient.connect_socket(state.socket)
            else:
                assert state.tcp is not None
                host, _, port = state.tcp.rpartition(":")
                client = await BridgeClient.connect_tcp(host, int(port), state.authToken)
    finally:
        os.close(fd)
    bridge = Bridge(client, Path(name), daemon)
    if initialize:
        await client.initialize("pytest")
    return bridge


async def with_bridge(
    env: dict[str, str], body: Callable[[BridgeClient], Awaitable[T]], transport: Transport = "stdio"
) -> T:
    bridge = await start_bridge(env, transport=transport)
    try:
        return await body(bridge.client)
    finally:
        await bridge.close()


async def error_of(call: Awaitable[Any]) -> BridgeRPCError:
    try:
        await call
    except BridgeRPCError as exc:
        return exc
    raise AssertionError("expected a JSON-RPC error reply")


async def wait_until(predicate: Callable[[], bool], within: float = 10.0, step: float = 0.02) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(step)
