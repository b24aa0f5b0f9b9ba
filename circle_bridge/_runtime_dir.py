"""Where a daemon leaves what its clients need: the per-user runtime dir, the `daemon.json` state
file, the default socket, the start lock, and the identity fingerprint.

The runtime dir is ``$CIRCLE_BRIDGE_RUNTIME_DIR``, else ``$XDG_RUNTIME_DIR/circle-bridge`` (Linux
sessions), else ``$TMPDIR/circle-bridge`` on macOS (launchd gives every user a private TMPDIR),
else ``/tmp/circle-bridge-<uid>``. It must be a directory owned by this user; it is made 0700.
The state file and sockets are 0600. Like ssh-agent's socket, the file system is the first gate:
another user cannot even reach the socket; the peer-uid check on accept is the second.

Deliberately light (stdlib only, no pygls or httpx): `circle-bridge connect` imports it on the path
where attaching must take well under 0.1 s.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import stat
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

STATE_FILE = "daemon.json"
SOCKET_FILE = "bridge.sock"
CONTROL_FILE = "control.sock"
LOCK_FILE = "daemon.lock"
LOG_FILE = "daemon.log"

# sun_path is 108 bytes on Linux and 104 on macOS, both including the NUL
MAX_SOCKET_PATH_BYTES = 103


class RuntimeDirError(Exception):
    """The runtime dir or a path in it cannot be used safely; the message says what to do."""


def runtime_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("CIRCLE_BRIDGE_RUNTIME_DIR"):
        return Path(env["CIRCLE_BRIDGE_RUNTIME_DIR"])
    if env.get("XDG_RUNTIME_DIR"):
        return Path(env["XDG_RUNTIME_DIR"]) / "circle-bridge"
    if sys.platform == "darwin" and env.get("TMPDIR"):
        return Path(env["TMPDIR"]) / "circle-bridge"
    return Path("/tmp") / f"circle-bridge-{os.geteuid()}"  # noqa: S108 - private: 0700 and owner-checked below


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` 0700, or check that it is ours and tighten it. Refuses a symlink or a
    directory of another user (someone could read our socket's traffic or swap the state file)."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = path.lstat()
    except OSError as exc:
        raise RuntimeDirError(f"cannot create the runtime dir {path}: {exc.strerror}") from None
    if not stat.S_ISDIR(info.st_mode):
        raise RuntimeDirError(f"the runtime dir {path} is not a directory (a symlink?); remove it")
    if info.st_uid != os.geteuid():
        raise RuntimeDirError(
            f"the runtime dir {path} belongs to uid {info.st_uid}, not to you; set CIRCLE_BRIDGE_RUNTIME_DIR"
        )
    if stat.S_IMODE(info.st_mode) != 0o700:
        path.chmod(0o700)
    return path


def check_socket_path(path: Path) -> Path:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH_BYTES:
        raise RuntimeDirError(
            f"socket path {path} is longer than {MAX_SOCKET_PATH_BYTES} bytes (an OS limit); "
            "choose a shorter CIRCLE_BRIDGE_RUNTIME_DIR"
        )
    return path


def identity_fingerprint(*parts: str) -> str:
    """Names the identity a daemon serves without revealing it: a hash, never a secret (the app
    key goes in only hashed, with the rest; the Circle secret not at all)."""
    digest = hashlib.sha256("\0".join(parts).encode())
    return "sha256:" + digest.hexdigest()[:32]


@dataclass(frozen=True)
class DaemonState:
    """The contents of ``daemon.json``. Clients in every language read these keys; they are
    documented in README.md ("One session for all your apps") and must not be renamed."""

    pid: int
    version: str
    socket: str | None  # path of the JSON-RPC Unix socket
    tcp: str | None  # "127.0.0.1:PORT" when listening on TCP
    authToken: str
    identity: str  # identity_fingerprint(); "" when the daemon has no credentials
    control: str  # path of the control socket that `status` and `stop` use
    startedAt: float
    log: str | None  # where the daemon logs, if to a file

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DaemonState:
        return cls(
            pid=int(data["pid"]),
            version=str(data["version"]),
            socket=data.get("socket"),
            tcp=data.get("tcp"),
            authToken=str(data["authToken"]),
            identity=str(data.get("identity", "")),
            control=str(data["control"]),
            startedAt=float(data.get("startedAt", 0.0)),
            log=data.get("log"),
        )


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only from the first byte."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        raise


def write_state(directory: Path, state: DaemonState) -> Path:
    path = directory / STATE_FILE
    write_private(path, json.dumps(state.to_json(), indent=2).encode() + b"\n")
    return path


def read_state(directory: Path) -> DaemonState | None:
    """The state file, or None if there is none or it is unreadable (a half-written or foreign file
    counts as no daemon: the caller then cleans it up)."""
    try:
        data = json.loads((directory / STATE_FILE).read_bytes())
        return DaemonState.from_json(data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_state(directory: Path, pid: int | None = None) -> None:
    """Remove the state file; with ``pid``, only if it still names that process."""
    path = directory / STATE_FILE
    if pid is not None:
        current = read_state(directory)
        if current is not None and current.pid != pid:
            return
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def socket_answers(path: str | Path, timeout: float = 1.0) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(os.fspath(path))
        except OSError:
            return False
    return True


def live_state(directory: Path) -> DaemonState | None:
    """The state of a daemon that is really there: its pid alive and its control socket answering.
    A stale file (dead pid, or nobody answering) is removed, and None returned."""
    state = read_state(directory)
    if state is None:
        if (directory / STATE_FILE).exists():
            remove_state(directory)
        return None
    if pid_alive(state.pid) and socket_answers(state.control):
        return state
    remove_state(directory, state.pid)
    for leftover in (state.control, state.socket):
        if leftover and Path(leftover).parent == directory:
            remove_stale_socket(Path(leftover))
    return None


def remove_stale_socket(path: Path) -> None:
    """Unlink a socket file nobody answers on; refuse to touch anything else."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise RuntimeDirError(f"{path} exists and is not a socket; remove it or choose another path")
    if socket_answers(path):
        raise RuntimeDirError(f"something already listens on {path}")
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@contextlib.contextmanager
def start_lock(directory: Path, timeout: float = 60.0) -> Iterator[None]:
    """Held while checking for a daemon and starting one, so two racing `connect`s start exactly
    one. flock is released by the kernel if the holder dies, so a crash cannot wedge it."""
    fd = os.open(directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN) or time.monotonic() > deadline:
                    raise RuntimeDirError(f"cannot take the start lock {directory / LOCK_FILE}: {exc}") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def control_request(control_path: str, command: str, timeout: float = 10.0) -> dict[str, Any]:
    """Send one control command to a daemon (blocking; used by the CLI, which has no loop)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(control_path)
        sock.sendall(json.dumps({"command": command}).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    reply: dict[str, Any] = json.loads(data)
    return reply
