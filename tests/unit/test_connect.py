"""`connect`'s forwarder and identity rule, with a socketpair standing in for the daemon."""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

from circle_bridge._config import Settings
from circle_bridge._connect import ConnectError, _usable, daemon_argv, forward, identity_of
from circle_bridge._framing import encode_frame
from circle_bridge._runtime_dir import DaemonState


def frame(message: dict[str, object]) -> bytes:
    return encode_frame(json.dumps(message).encode())


SHUTDOWN = frame({"jsonrpc": "2.0", "id": 9, "method": "shutdown"})
EXIT = frame({"jsonrpc": "2.0", "method": "exit"})


@contextmanager
def wired() -> Iterator[tuple[socket.socket, socket.socket, int, int, int, int]]:
    """(forwarder's socket, daemon's socket, client writes stdin, forwarder reads stdin,
    forwarder writes stdout, client reads stdout)."""
    ours, daemon = socket.socketpair()
    stdin_r, stdin_w = os.pipe()
    stdout_r, stdout_w = os.pipe()
    try:
        yield ours, daemon, stdin_w, stdin_r, stdout_w, stdout_r
    finally:
        # EOF on stdin first, and wait for the forwarder's stdin thread to see it: a thread still
        # reading when stdin_r is closed would, once the next test's os.pipe() reuses the number,
        # read (steal) that test's stdin
        with suppress(OSError):
            os.close(stdin_w)
        for thread in threading.enumerate():
            if thread.name == "stdin-to-daemon":
                thread.join(10)
        for fd in (stdin_r, stdout_r, stdout_w):
            with suppress(OSError):
                os.close(fd)
        ours.close()
        daemon.close()


def run_forward(ours: socket.socket, stdin_r: int, stdout_w: int) -> tuple[threading.Thread, list[int]]:
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(forward(ours, stdin_r, stdout_w)))
    thread.start()
    return thread, codes


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk
        data += chunk
    return data


def test_bytes_flow_both_ways_and_shutdown_then_exit_is_code_0() -> None:
    with wired() as (ours, daemon, stdin_w, stdin_r, stdout_w, stdout_r):
        daemon.settimeout(10)
        thread, codes = run_forward(ours, stdin_r, stdout_w)
        os.write(stdin_w, SHUTDOWN)
        assert recv_exactly(daemon, len(SHUTDOWN)) == SHUTDOWN
        reply = frame({"jsonrpc": "2.0", "id": 9, "result": None})
        daemon.sendall(reply)
        assert os.read(stdout_r, 65536) == reply
        os.write(stdin_w, EXIT)
        assert recv_exactly(daemon, len(EXIT)) == EXIT
        daemon.shutdown(socket.SHUT_RDWR)  # the daemon ends the connection after `exit`
        thread.join(10)
        assert codes == [0]


def test_exit_without_shutdown_is_code_1() -> None:
    with wired() as (ours, daemon, stdin_w, stdin_r, stdout_w, _stdout_r):
        daemon.settimeout(10)
        thread, codes = run_forward(ours, stdin_r, stdout_w)
        os.write(stdin_w, EXIT)
        assert recv_exactly(daemon, len(EXIT)) == EXIT
        daemon.shutdown(socket.SHUT_RDWR)
        thread.join(10)
        assert codes == [1]


def test_stdin_eof_half_closes_and_waits_for_the_daemon_then_code_0() -> None:
    with wired() as (ours, daemon, stdin_w, stdin_r, stdout_w, stdout_r):
        daemon.settimeout(10)
        thread, codes = run_forward(ours, stdin_r, stdout_w)
        os.close(stdin_w)
        assert daemon.recv(10) == b""  # the forwarder half-closed: the daemon sees EOF
        late = frame({"jsonrpc": "2.0", "id": 1, "result": {}})
        daemon.sendall(late)  # and may still answer what it had
        daemon.close()
        thread.join(10)
        assert codes == [0]
        assert os.read(stdout_r, 65536) == late


def test_the_daemon_going_away_is_code_1_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with wired() as (ours, daemon, _stdin_w, stdin_r, stdout_w, _stdout_r):
        thread, codes = run_forward(ours, stdin_r, stdout_w)
        daemon.close()
        thread.join(10)
        assert codes == [1]
    assert "the daemon closed the connection" in capsys.readouterr().err


def _state(identity: str, socket_path: str | None = "/run/x/bridge.sock") -> DaemonState:
    return DaemonState(
        pid=1,
        version="0.1.0",
        socket=socket_path,
        tcp=None,
        authToken="t",
        identity=identity,
        control="/run/x/control.sock",
        startedAt=0.0,
        log=None,
    )


def test_identity_rule() -> None:
    mine = identity_of(Settings(customer_id="c", app_key="k", end_user_id="u"))
    other = identity_of(Settings(customer_id="c", app_key="k", end_user_id="someone-else"))
    assert mine != other
    assert identity_of(Settings()) == ""
    assert _usable(_state(mine), mine).identity == mine
    assert _usable(_state(mine), "").identity == mine  # no identity configured: any daemon
    with pytest.raises(ConnectError, match="another Circle identity"):
        _usable(_state(other), mine)
    with pytest.raises(ConnectError, match="another Circle identity"):
        _usable(_state(""), mine)  # a daemon without credentials is not silently used either
    with pytest.raises(ConnectError, match="no Unix socket"):
        _usable(_state(mine, socket_path=None), mine)


def test_where_tokens_come_from_is_part_of_the_identity() -> None:
    base = Settings(app_key="k", customer_id="c", end_user_id="u")
    signed = identity_of(base)
    backend_a = identity_of(dataclasses.replace(base, token_source="url", token_backend_url="https://a.example/t"))
    backend_b = identity_of(dataclasses.replace(base, token_source="url", token_backend_url="https://b.example/t"))
    client = identity_of(dataclasses.replace(base, token_source="client"))
    assert len({signed, backend_a, backend_b, client}) == 4
    command = identity_of(dataclasses.replace(base, token_source="command", token_command="get-token --user alice"))
    assert "alice" not in command


def test_the_daemon_command_carries_flags_but_never_the_secret(tmp_path: Path) -> None:
    flags = {"service_url": "http://127.0.0.1:1", "secret": "s3cr3t-value", "log_file": "x", "app_key": None}
    argv = daemon_argv(flags, str(tmp_path / "l"))
    assert argv[3:] == [
        "serve",
        "--socket",
        "--exit-when-idle",
        "--service-url",
        "http://127.0.0.1:1",
        "--log-file",
        str(tmp_path / "l"),
    ]
