"""`circle-bridge connect`: a stdio <-> daemon forwarder, so any client that spawns a command (an
editor, vim.lsp.rpc, LSP4J, the TS and Go clients' spawn) shares the daemon's session by changing
its command line.

It attaches to the daemon named in ``daemon.json``, or starts one (detached, exiting after an idle
period) under a lock, so that racing `connect`s start exactly one. It imports neither pygls nor
httpx, and uses blocking sockets and one thread instead of asyncio: attaching to a warm daemon
costs little more than the interpreter's start.

Identity: a daemon serves one Circle identity. `connect` computes the fingerprint of its own
settings and refuses, with a message saying what to do, to attach to a daemon whose fingerprint
differs; a second identity gets its own daemon through its own CIRCLE_BRIDGE_RUNTIME_DIR. A
`connect` with no identity configured at all attaches to whichever daemon runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ._config import SETTINGS, Settings
from ._framing import FrameParser
from ._runtime_dir import (
    LOG_FILE,
    DaemonState,
    RuntimeDirError,
    ensure_private_dir,
    identity_fingerprint,
    live_state,
    pid_alive,
    read_state,
    socket_answers,
    start_lock,
)

START_TIMEOUT_SECONDS = 30.0


class ConnectError(Exception):
    """`connect` cannot attach; the message is for the user (it goes to stderr)."""


def _identity_conflict(state: DaemonState, identity: str) -> ConnectError:
    return ConnectError(
        f"the running daemon (pid {state.pid}) serves another Circle identity ({state.identity or 'none'}; "
        f"yours is {identity}). Stop it with `circle-bridge stop`, or give this identity its own daemon "
        "with a different CIRCLE_BRIDGE_RUNTIME_DIR."
    )


def _usable(state: DaemonState, identity: str) -> DaemonState:
    if identity and state.identity != identity:
        raise _identity_conflict(state, identity)
    if not state.socket:
        raise ConnectError(f"the running daemon (pid {state.pid}) has no Unix socket (started with --tcp only)")
    return state


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def identity_of(settings: Settings) -> str:
    """The fingerprint of the configured identity, "" when none is configured."""
    parts = (settings.customer_id or "", settings.app_key or "", settings.end_user_id or "")
    if not any(parts):
        return ""
    source = settings.effective_token_source
    # where the tokens come from is part of whose session it is (a command or backend picks the user)
    origin = {"command": settings.token_command, "url": settings.token_backend_url}.get(source) or ""
    return identity_fingerprint(*parts, settings.token_url, settings.service_url, source, origin)


def daemon_argv(flags: Mapping[str, Any], log_file: str) -> list[str]:
    """The command that starts a daemon for `connect`: socket only, exiting when idle, with the
    settings flags `connect` was given (the secret travels in the environment, never in argv)."""
    argv = [sys.executable, "-m", "circle_bridge", "serve", "--socket", "--exit-when-idle"]
    secret = {setting.name for setting in SETTINGS if setting.secret}
    for name, value in flags.items():
        if value is not None and name != "log_file" and name not in secret:
            argv += ["--" + name.replace("_", "-"), str(value)]
    return [*argv, "--log-file", log_file]


def _spawn_daemon(directory: Path, argv: Sequence[str], log_file: str | None, env: Mapping[str, str] | None) -> int:
    """Start the daemon detached and return its pid. A shell in a new session starts it in the
    background and exits at once, so the daemon is nobody's child (init reaps it): an app that
    attaches and lives on never collects a zombie, and the terminal's signals never reach it."""
    import subprocess  # here: attaching to a running daemon never spawns (issue 10: attach time)

    log_path = Path(log_file) if log_file else directory / LOG_FILE
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        launcher = subprocess.Popen(
            ["/bin/sh", "-c", '"$@" </dev/null >/dev/null & echo $!', "sh", *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=fd,
            start_new_session=True,
            close_fds=True,
            env=None if env is None else dict(env),
        )
    finally:
        os.close(fd)
    out, _ = launcher.communicate(timeout=START_TIMEOUT_SECONDS)
    try:
        return int(out)
    except ValueError:
        raise ConnectError(f"could not start the daemon: {' '.join(argv[:5])} ...") from None


def attach_or_start(
    directory: Path,
    identity: str,
    argv: Sequence[str],
    log_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> DaemonState:
    """The state of a live daemon for ``identity``, starting one if none runs."""
    try:
        ensure_private_dir(directory)
        state = live_state(directory)
        if state is not None:
            return _usable(state, identity)
        with start_lock(directory):
            state = live_state(directory)  # someone may have started one while we waited
            if state is not None:
                return _usable(state, identity)
            pid = _spawn_daemon(directory, argv, log_file, env)
            deadline = time.monotonic() + START_TIMEOUT_SECONDS
            while time.monotonic() < deadline:
                state = read_state(directory)
                # the control socket, not the JSON-RPC one: a probe there would count as a refused client
                if state is not None and state.pid == pid and socket_answers(state.control):
                    return _usable(state, identity)
                if not pid_alive(pid):
                    tail = _log_tail(Path(log_file) if log_file else directory / LOG_FILE)
                    raise ConnectError(f"the daemon exited at start; the end of its log:\n{tail}")
                time.sleep(0.02)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            raise ConnectError(f"the daemon did not start within {START_TIMEOUT_SECONDS:.0f} s")
    except RuntimeDirError as exc:
        raise ConnectError(str(exc)) from None


class _ClientWatch:
    """Notices `shutdown` and `exit` in what the client sends, so the exit code is what `serve
    --stdio` would give: 0 after shutdown+exit, 1 after exit alone."""

    def __init__(self) -> None:
        self._parser = FrameParser(1 << 30)
        self.shutdown = False
        self.exit = False

    def feed(self, data: bytes) -> None:
        for frame in self._parser.feed(data):
            if isinstance(frame, bytes) and (b'"shutdown"' in frame or b'"exit"' in frame):
                with contextlib.suppress(ValueError):
                    method = json.loads(frame).get("method")
                    self.shutdown = self.shutdown or method == "shutdown"
                    self.exit = self.exit or method == "exit"


def forward(sock: socket.socket, stdin_fd: int = 0, stdout_fd: int = 1) -> int:
    """Copy stdin to the socket and the socket to stdout until the daemon closes the connection.
    Returns the exit code: 0 after EOF on stdin or shutdown+exit, 1 after exit alone or when the
    daemon went away (then a line on stderr says so)."""
    watch = _ClientWatch()
    stdin_closed = threading.Event()

    def upstream() -> None:
        try:
            while chunk := os.read(stdin_fd, 65536):
                watch.feed(chunk)
                sock.sendall(chunk)
        except OSError:
            pass
        finally:
            stdin_closed.set()
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)  # the daemon answers what it has, then closes

    threading.Thread(target=upstream, name="stdin-to-daemon", daemon=True).start()
    lost = False
    try:
        while chunk := sock.recv(65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(stdout_fd, view) :]
    except BrokenPipeError:
        return 0  # our client is gone; the daemon notices the closed socket
    except OSError:
        lost = True
    if watch.exit:
        return 0 if watch.shutdown else 1
    if stdin_closed.is_set() and not lost:
        return 0
    sys.stderr.write("circle-bridge connect: the daemon closed the connection\n")
    return 1


def run_connect(directory: Path, identity: str, daemon_argv: Sequence[str], log_file: str | None) -> int:
    # Twice: a daemon found in the state file may be exiting (idle) just as we dial it; by then it
    # has withdrawn its state file, so the second round starts a new one.
    for attempt in range(2):
        try:
            state = attach_or_start(directory, identity, daemon_argv, log_file)
        except ConnectError as exc:
            sys.stderr.write(f"circle-bridge connect: {exc}\n")
            return 2
        assert state.socket is not None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(state.socket)
        except OSError as exc:
            sock.close()
            if attempt == 0:
                continue
            sys.stderr.write(f"circle-bridge connect: cannot reach the daemon at {state.socket}: {exc}\n")
            return 2
        with sock:
            return forward(sock)
    return 2
