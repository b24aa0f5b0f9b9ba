"""The runtime dir, daemon.json, stale-state cleanup, the start lock and the identity fingerprint."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from circle_bridge._runtime_dir import (
    DaemonState,
    RuntimeDirError,
    check_socket_path,
    ensure_private_dir,
    identity_fingerprint,
    live_state,
    read_state,
    remove_stale_socket,
    runtime_dir,
    start_lock,
    write_state,
)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="cb-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _state(directory: Path, pid: int) -> DaemonState:
    return DaemonState(
        pid=pid,
        version="0.1.0",
        socket=str(directory / "bridge.sock"),
        tcp=None,
        authToken="t" * 43,
        identity="sha256:" + "0" * 32,
        control=str(directory / "control.sock"),
        startedAt=0.0,
        log=None,
    )


def test_runtime_dir_precedence() -> None:
    assert runtime_dir({"CIRCLE_BRIDGE_RUNTIME_DIR": "/x", "XDG_RUNTIME_DIR": "/run/user/1"}) == Path("/x")
    assert runtime_dir({"XDG_RUNTIME_DIR": "/run/user/1"}) == Path("/run/user/1/circle-bridge")
    fallback = runtime_dir({})
    if sys.platform != "darwin":
        assert fallback == Path(f"/tmp/circle-bridge-{os.geteuid()}")


def test_private_dir_is_created_0700_and_tightened(short_dir: Path) -> None:
    created = ensure_private_dir(short_dir / "rt")
    assert created.stat().st_mode & 0o777 == 0o700
    created.chmod(0o755)
    ensure_private_dir(created)
    assert created.stat().st_mode & 0o777 == 0o700


def test_a_symlink_or_a_file_is_refused(short_dir: Path) -> None:
    target = short_dir / "elsewhere"
    target.mkdir()
    (short_dir / "link").symlink_to(target)
    with pytest.raises(RuntimeDirError, match="not a directory"):
        ensure_private_dir(short_dir / "link")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a directory of another user")
def test_a_directory_of_another_user_is_refused(short_dir: Path) -> None:
    foreign = short_dir / "foreign"
    foreign.mkdir(mode=0o700)
    os.chown(foreign, 65534, 65534)
    with pytest.raises(RuntimeDirError, match="belongs to uid 65534"):
        ensure_private_dir(foreign)


def test_state_file_round_trip_is_0600(short_dir: Path) -> None:
    state = _state(short_dir, os.getpid())
    path = write_state(short_dir, state)
    assert path.stat().st_mode & 0o777 == 0o600
    assert read_state(short_dir) == state
    assert list(short_dir.iterdir()) == [path]  # no temporary file left behind


def test_unreadable_state_counts_as_none(short_dir: Path) -> None:
    (short_dir / "daemon.json").write_text("{half")
    assert read_state(short_dir) is None
    assert live_state(short_dir) is None
    assert not (short_dir / "daemon.json").exists()


def test_stale_state_of_a_dead_pid_is_removed_with_its_sockets(short_dir: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state = _state(short_dir, int(dead.stdout))
    write_state(short_dir, state)
    for name in ("bridge.sock", "control.sock"):
        leftover = socket.socket(socket.AF_UNIX)
        leftover.bind(str(short_dir / name))
        leftover.close()
    assert live_state(short_dir) is None
    assert sorted(p.name for p in short_dir.iterdir()) == []


def test_state_of_a_live_pid_nobody_answers_for_is_stale(short_dir: Path) -> None:
    write_state(short_dir, _state(short_dir, os.getpid()))  # alive, but no control socket
    assert live_state(short_dir) is None
    assert read_state(short_dir) is None


def test_state_of_a_live_daemon_is_kept(short_dir: Path) -> None:
    state = _state(short_dir, os.getpid())
    with socket.socket(socket.AF_UNIX) as control:
        control.bind(state.control)
        control.listen()
        write_state(short_dir, state)
        assert live_state(short_dir) == state


def test_a_listening_socket_or_a_regular_file_is_never_removed(short_dir: Path) -> None:
    path = short_dir / "s.sock"
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(path))
        listening.listen()
        with pytest.raises(RuntimeDirError, match="already listens"):
            remove_stale_socket(path)
    regular = short_dir / "file"
    regular.write_text("keep me")
    with pytest.raises(RuntimeDirError, match="not a socket"):
        remove_stale_socket(regular)
    assert regular.read_text() == "keep me"


def test_a_socket_path_too_long_for_the_os_is_refused() -> None:
    with pytest.raises(RuntimeDirError, match="CIRCLE_BRIDGE_RUNTIME_DIR"):
        check_socket_path(Path("/tmp/" + "x" * 120))


def test_the_start_lock_is_exclusive_across_holders(short_dir: Path) -> None:
    inside = 0
    most = 0
    guard = threading.Lock()

    def contender() -> None:
        nonlocal inside, most
        with start_lock(short_dir):
            with guard:
                inside += 1
                most = max(most, inside)
            threading.Event().wait(0.02)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=contender) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert most == 1
    assert (short_dir / "daemon.lock").stat().st_mode & 0o777 == 0o600


def test_identity_fingerprint_names_the_identity_without_revealing_it() -> None:
    one = identity_fingerprint("cust", "app-key-value-1234", "user", "https://t", "http://s")
    assert one == identity_fingerprint("cust", "app-key-value-1234", "user", "https://t", "http://s")
    assert one.startswith("sha256:")
    assert len(one) == len("sha256:") + 32
    assert "app-key-value-1234" not in one
    others = {
        identity_fingerprint("cust", "app-key-value-1234", "other-user", "https://t", "http://s"),
        identity_fingerprint("cust", "another-app-key", "user", "https://t", "http://s"),
        identity_fingerprint("cust", "app-key-value-1234", "user", "https://t", "http://other"),
    }
    assert one not in others
    assert len(others) == 3
