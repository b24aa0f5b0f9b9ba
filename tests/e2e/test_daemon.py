"""One session for every app: the daemon, its listeners, `connect`, `status` and `stop`, through
real processes, real sockets and the emulator over HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from circle_bridge._framing import encode_frame
from circle_bridge._runtime_dir import pid_alive, read_state
from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from tests.bridge_harness import (
    CONNECT,
    DaemonProcess,
    bridge_env,
    private_runtime_dir,
    run,
    start_daemon,
    wait_until,
)

HERE = Path(__file__).parent
BRIDGE_BIN = str(Path(sys.executable).parent / "circle-bridge")
CLI = [sys.executable, "-m", "circle_bridge"]


def _frame(message: dict[str, object]) -> bytes:
    return encode_frame(json.dumps(message).encode())


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60, check=False
    )


async def _read_to_eof(reader: asyncio.StreamReader) -> bytes:
    data = b""
    while chunk := await asyncio.wait_for(reader.read(65536), 30):
        data += chunk
    return data


SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")  # one another uid may run (not under /root)


# -- the headline: 16 clients, 3 languages, 1 token request ------------------------------------


def test_sixteen_clients_in_three_languages_share_one_session(emulator: Emulator) -> None:
    """Python (connect, attach, socket), Go (`Attach` with TransportConnect) and Neovim (its
    'connect' transport) at once on a cold machine: racing starters make one daemon, the
    token endpoint sees one request, and no client gets an error."""
    go_bin = shutil.which("go")
    nvim_bin = shutil.which("nvim")
    assert go_bin is not None, "the e2e suite needs go (as the Go client's tests do)"
    assert nvim_bin is not None, "the e2e suite needs nvim (clients/neovim/install-nvim.sh)"
    directory = private_runtime_dir()
    env = {**bridge_env(emulator), "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)}
    go_exe = directory / "goclients"
    subprocess.run([go_bin, "build", "-o", str(go_exe), "."], cwd=HERE / "daemon_clients" / "go", check=True)
    daemon = DaemonProcess(directory, None, directory / "daemon.log")

    async def python_client(how: str) -> int:
        if how == "connect":
            client = await BridgeClient.spawn(CONNECT, env=env)
        elif how == "attach":
            client = await BridgeClient.attach(env=env)
        else:
            await wait_until(lambda: read_state(directory) is not None, within=30)
            state = daemon.state
            if how == "socket":
                client = await BridgeClient.connect_socket(state.socket)
            else:
                assert state.tcp is not None
                host, _, port = state.tcp.rpartition(":")
                client = await BridgeClient.connect_tcp(host, int(port), state.authToken)
        async with client:
            await client.initialize(f"python-{how}")
            await client.circle_initialize()
            return len(await client.enum_circles())

    async def go_clients(count: int) -> list[str]:
        process = await asyncio.create_subprocess_exec(
            str(go_exe), BRIDGE_BIN, str(count), env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE
        )
        out, _ = await process.communicate()
        assert process.returncode == 0
        return out.decode().split()

    async def nvim_client(index: int) -> str:
        result = directory / f"nvim-{index}.txt"
        process = await asyncio.create_subprocess_exec(
            nvim_bin,
            "--headless",
            "-u",
            "NONE",
            "-i",
            "NONE",
            "--cmd",
            f"set rtp+={HERE.parents[1] / 'clients' / 'neovim'}",
            "-c",
            f"luafile {HERE / 'daemon_clients' / 'nvim_list.lua'}",
            env={**os.environ, **env, "CIRCLE_BRIDGE_BIN": BRIDGE_BIN, "RESULT_FILE": str(result)},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await process.wait()
        return result.read_text()

    async def scenario() -> None:
        try:
            # TCP is opt-in, so a daemon that `connect` starts has none: TCP clients are in the harness
            python = [python_client(how) for how in ("connect", "attach", "socket") * 2 + ("connect", "attach")]
            results = await asyncio.gather(*python, go_clients(4), *(nvim_client(i) for i in range(4)))
            python_counts, go_lines, nvim_lines = results[:8], results[8], results[9:]
            assert python_counts == [len(SEED_CIRCLES)] * 8
            assert go_lines == ["ok", str(len(SEED_CIRCLES))] * 4
            assert nvim_lines == [f"ok {len(SEED_CIRCLES)}"] * 4
            assert emulator.stats["tokenRequests"] == 1
            assert emulator.stats["authorize"] == 1
            status = json.loads(_cli(["status", "--json"], env).stdout)
            assert sum(status["accepted"].values()) == 16  # one daemon served them all
            assert status["upstream"]["tokenRequests"] == 1
        finally:
            await daemon.stop()

    run(scenario(), timeout=180)


# -- security: who can connect -------------------------------------------------------------------


def test_browser_post_with_a_frame_in_its_body_executes_nothing(emulator: Emulator) -> None:
    """Even with the right token inside, an HTTP request's body is never parsed: the connection
    is closed on its first byte, with no reply, and CircleService and the token endpoint see
    nothing (their counters prove it)."""

    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        try:
            state = daemon.state
            token = state.authToken
            body = _frame(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {"initializationOptions": {"authToken": token}},
                }
            ) + _frame({"jsonrpc": "2.0", "id": 2, "method": "circle/enumCircles"})
            post = (
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)
            ) + body
            host, _, port = (state.tcp or "").rpartition(":")
            for kind in ("tcp", "socket"):
                if kind == "tcp":
                    reader, writer = await asyncio.open_connection(host, int(port))
                else:
                    reader, writer = await asyncio.open_unix_connection(state.socket)
                writer.write(post)
                await writer.drain()
                assert await _read_to_eof(reader) == b""
                writer.close()
            assert emulator.stats["tokenRequests"] == 0
            assert emulator.stats["serviceRequests"] == 0
            assert emulator.stats["enumCircles"] == 0
            status = json.loads(_cli(["status", "--json"], daemon.env({})).stdout)
            assert status["refused"] == {"tcp": 1, "socket": 1}
            assert status["upstream"] == {"calls": 0, "coalesced": 0, "tokenRequests": 0}
        finally:
            assert await daemon.stop() == 0

    run(scenario())


@pytest.mark.parametrize("token", [None, "wrong-token", "first-request-is-not-initialize"])
def test_tcp_client_without_the_token_gets_nothing(emulator: Emulator, token: str | None) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        try:
            host, _, port = (daemon.state.tcp or "").rpartition(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            if token == "first-request-is-not-initialize":
                first = _frame({"jsonrpc": "2.0", "id": 1, "method": "circle/enumCircles"})
            else:
                options = {} if token is None else {"initializationOptions": {"authToken": token}}
                first = _frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": options})
            # pipelined behind it: must never run
            writer.write(first + _frame({"jsonrpc": "2.0", "id": 2, "method": "circle/enumCircles"}))
            await writer.drain()
            replies = await _read_to_eof(reader)
            writer.close()
            frames = replies.split(b"Content-Length:")
            assert len(frames) == 2, replies  # one reply, then the connection was closed
            reply = json.loads(replies.split(b"\r\n\r\n", 1)[1])
            assert reply["id"] == 1
            assert reply["error"]["code"] == -33010
            assert reply["error"]["data"] == {"retryable": False}
            assert daemon.state.authToken not in replies.decode()
            assert emulator.stats["tokenRequests"] == 0
            assert emulator.stats["serviceRequests"] == 0
        finally:
            await daemon.stop()

    run(scenario())


@pytest.mark.skipif(os.geteuid() != 0 or SYSTEM_PYTHON is None, reason="needs root to act as a second uid")
def test_a_second_uid_cannot_use_the_socket(emulator: Emulator) -> None:
    """Another user is stopped twice: by the 0700 runtime dir, and, with the file system opened
    up on purpose, by the peer-uid check, which closes the connection without a reply."""
    probe = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX)\n"
        "try:\n"
        "    s.connect(sys.argv[1])\n"
        "except PermissionError:\n"
        "    print('denied'); sys.exit()\n"
        "try:\n"  # the daemon may close before, while or after we write: any of them is a refusal
        "    s.sendall(sys.argv[2].encode())\n"
        "    data = s.recv(65536)\n"
        "except (BrokenPipeError, ConnectionResetError):\n"
        "    data = b''\n"
        "print('reply:' + data.decode())\n"
    )
    frame = _frame({"jsonrpc": "2.0", "id": 1, "method": "rpc.discover"}).decode()

    def as_nobody(path: str) -> str:
        done = subprocess.run(
            [str(SYSTEM_PYTHON), "-c", probe, path, frame], user=65534, capture_output=True, text=True, timeout=30
        )
        return done.stdout.strip()

    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        try:
            path = daemon.state.socket
            assert path is not None
            assert await asyncio.to_thread(as_nobody, path) == "denied"
            daemon.runtime_dir.chmod(0o755)
            os.chmod(path, 0o666)  # noqa: S103 - opened up on purpose, to reach the peer-uid check
            assert await asyncio.to_thread(as_nobody, path) == "reply:"  # closed, nothing answered
            status = json.loads(_cli(["status", "--json"], daemon.env({})).stdout)
            assert status["refused"] == {"socket": 1}
            assert "refused a socket client of uid 65534" in daemon.log
        finally:
            await daemon.stop()

    run(scenario())


def test_runtime_dir_state_file_and_socket_are_private(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(shared_emulator))
        try:
            state = daemon.state
            assert state.socket is not None
            paths = (daemon.runtime_dir, daemon.runtime_dir / "daemon.json", state.socket, state.control)
            modes = await asyncio.to_thread(lambda: [os.stat(path).st_mode & 0o777 for path in paths])
            assert modes == [0o700, 0o600, 0o600, 0o600]
            raw = json.loads(await asyncio.to_thread((daemon.runtime_dir / "daemon.json").read_bytes))
            assert {"pid", "version", "socket", "tcp", "authToken", "identity"} <= set(raw)
            assert raw["tcp"].startswith("127.0.0.1:")
            assert not raw["tcp"].endswith(":0")
            assert raw["identity"].startswith("sha256:")
            for secret in (shared_emulator.credentials.secret, shared_emulator.credentials.app_key):
                assert secret not in json.dumps(raw)
        finally:
            await daemon.stop()

    run(scenario())


def test_tcp_refuses_a_non_loopback_address_unless_allowed(shared_emulator: Emulator) -> None:
    directory = private_runtime_dir()
    env = {**bridge_env(shared_emulator), "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)}
    refused = _cli(["serve", "--tcp", "0.0.0.0:0"], env)
    shutil.rmtree(directory)
    assert refused.returncode == 2
    assert "--allow-non-loopback" in refused.stderr


# -- isolation, drain, stop, status ------------------------------------------------------------


def test_one_client_leaving_ends_only_its_connection(emulator: Emulator) -> None:
    """A client that crashes mid-call and one that says shutdown+exit leave; a third, sharing the
    crashed client's call through coalescing, still gets its reply; the daemon serves on."""

    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        try:
            socket_path = daemon.state.socket
            clients = [await BridgeClient.connect_socket(socket_path) for _ in range(3)]
            for client in clients:
                await client.initialize()
            crashing, polite, staying = clients
            await staying.enum_circles()  # warm: token and authorization done
            emulator.set_faults(serviceDelay=1.0)
            before = emulator.stats["enumTopics"]
            doomed = asyncio.ensure_future(crashing.enum_topics(SEED_CIRCLES[0]["CircleId"]))
            shared = asyncio.ensure_future(staying.enum_topics(SEED_CIRCLES[0]["CircleId"]))
            await wait_until(lambda: emulator.stats["enumTopics"] == before + 1)
            crashing._writer.transport.abort()  # a crash: no shutdown, no exit, a reset socket
            with pytest.raises(ConnectionError):
                await doomed
            assert await polite.close() is None
            topics = await shared
            assert len(topics) == len(SEED_CIRCLES[0]["Topics"])
            assert emulator.stats["enumTopics"] == before + 1  # one upstream call for both
            emulator.set_faults(serviceDelay=0.0)
            assert len(await staying.enum_circles()) == len(SEED_CIRCLES)
            status = json.loads(_cli(["status", "--json"], daemon.env({})).stdout)
            assert status["clients"]["connected"] == 1
            assert status["upstream"]["coalesced"] >= 1
            await staying.close()
        finally:
            assert await daemon.stop() == 0

    run(scenario())


@pytest.mark.parametrize("how", ["sigterm", "stop-command"])
def test_stopping_drains_in_flight_calls_then_removes_its_files(emulator: Emulator, how: str) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        state = daemon.state
        client = await BridgeClient.connect_socket(state.socket)
        await client.initialize()
        await client.circle_initialize()
        emulator.set_faults(serviceDelay=1.0)
        before = emulator.stats["enumCircles"]
        call = asyncio.ensure_future(client.enum_circles())
        await wait_until(lambda: emulator.stats["enumCircles"] == before + 1)
        if how == "sigterm":
            os.kill(state.pid, signal.SIGTERM)
        else:
            stopped = await asyncio.to_thread(_cli, ["stop"], daemon.env({}))
            assert stopped.returncode == 0, stopped.stdout + stopped.stderr
            assert f"stopped the daemon (pid {state.pid})" in stopped.stdout
        assert len(await call) == len(SEED_CIRCLES)  # answered, not dropped
        assert daemon.process is not None
        assert await asyncio.wait_for(daemon.process.wait(), 40) == 0
        for leftover in (daemon.runtime_dir / "daemon.json", Path(state.socket or ""), Path(state.control)):
            assert not leftover.exists(), leftover
        with pytest.raises(ConnectionError):
            await client.enum_circles()
        await client.close()
        await daemon.stop()

    run(scenario())


def test_status_shows_endpoints_clients_session_and_counters_without_secrets(emulator: Emulator) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        try:
            state = daemon.state
            clients = [await BridgeClient.connect_socket(state.socket) for _ in range(4)]
            for client in clients:
                await client.initialize()
            emulator.set_faults(serviceDelay=2.0)  # long enough for all four to join the first, even on a busy box
            await asyncio.gather(*(client.enum_circles() for client in clients))
            emulator.set_faults(serviceDelay=0.0)
            status = json.loads(_cli(["status", "--json"], daemon.env({})).stdout)
            assert status["running"] is True
            assert status["pid"] == state.pid
            assert status["endpoints"] == {"socket": state.socket, "tcp": state.tcp, "stdio": False}
            assert status["clients"] == {"connected": 4, "byTransport": {"socket": 4}}
            assert status["session"]["authorized"] is True
            assert 500 < status["session"]["tokenExpiresIn"] <= 600
            upstream = status["upstream"]
            assert upstream["tokenRequests"] == emulator.stats["tokenRequests"] == 1
            assert upstream["coalesced"] == 3  # four identical reads, one upstream call
            assert upstream["calls"] == emulator.stats["serviceRequests"]
            human = _cli(["status"], daemon.env({})).stdout
            assert "4 connected (socket 4)" in human
            assert "1 token requests" in human
            for text in (json.dumps(status), human):
                assert state.authToken not in text
                assert emulator.credentials.secret not in text
                assert emulator.credentials.app_key not in text
            for client in clients:
                await client.close()
        finally:
            await daemon.stop()

    run(scenario())


def test_status_and_stop_without_a_daemon() -> None:
    directory = private_runtime_dir()
    env = {"CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)}
    missing = _cli(["status", "--json"], env)
    stopped = _cli(["stop"], env)
    shutil.rmtree(directory)
    assert missing.returncode == 1
    assert json.loads(missing.stdout) == {"running": False}
    assert stopped.stdout.strip() == "no circle-bridge daemon is running"


def test_a_second_daemon_in_the_same_runtime_dir_is_refused(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(shared_emulator))
        try:
            second = await asyncio.to_thread(_cli, ["serve", "--socket"], daemon.env(bridge_env(shared_emulator)))
            assert second.returncode == 2
            assert f"already runs (pid {daemon.state.pid}" in second.stderr
        finally:
            await daemon.stop()

    run(scenario())


# -- connect ---------------------------------------------------------------------------------


def test_connect_starts_one_daemon_for_racing_clients_and_reuses_it(emulator: Emulator) -> None:
    directory = private_runtime_dir()
    env = {**bridge_env(emulator), "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)}
    daemon = DaemonProcess(directory, None, directory / "daemon.log")

    async def one() -> int:
        client = await BridgeClient.spawn(CONNECT, env=env)
        await client.initialize()
        assert len(await client.enum_circles()) == len(SEED_CIRCLES)
        code = await client.close()
        assert code == 0  # shutdown + exit, as on stdio
        return daemon.state.pid

    async def scenario() -> None:
        try:
            pids = await asyncio.gather(*(one() for _ in range(4)))
            assert len(set(pids)) == 1
            assert await one() == pids[0]  # warm: attached, not started
            assert emulator.stats["tokenRequests"] == 1
        finally:
            await daemon.stop()

    run(scenario())


def test_connect_refuses_a_daemon_of_another_identity(emulator: Emulator) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        try:
            other = daemon.env(bridge_env(emulator, CIRCLE_END_USER_ID="someone-else"))
            refused = await asyncio.to_thread(
                subprocess.run,
                CONNECT,
                input=_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}),
                env={**os.environ, **other},
                capture_output=True,
                timeout=60,
            )
            assert refused.returncode == 2
            assert refused.stdout == b""
            message = refused.stderr.decode()
            assert "serves another Circle identity" in message
            assert "CIRCLE_BRIDGE_RUNTIME_DIR" in message
            with pytest.raises(ConnectionError, match="another Circle identity"):
                await BridgeClient.attach(env=other)
            status = json.loads(_cli(["status", "--json"], daemon.env({})).stdout)
            assert status["accepted"] == {}  # nothing was forwarded
        finally:
            await daemon.stop()

    run(scenario())


def test_connect_imports_neither_pygls_nor_httpx(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(shared_emulator))
        try:
            log = daemon.runtime_dir / "importtime.txt"
            fd = os.open(log, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                command = [sys.executable, "-X", "importtime", "-m", "circle_bridge", "connect"]
                client = await BridgeClient.spawn(command, env=daemon.env(bridge_env(shared_emulator)), stderr=fd)
            finally:
                os.close(fd)
            info = await client.initialize()
            assert info["serverInfo"]["name"] == "circle-bridge"
            assert await client.close() == 0
            imported = {line.split("|")[-1].strip() for line in log.read_text().splitlines() if "|" in line}
            assert "circle_bridge._connect" in imported
            heavy = {name for name in imported if name.split(".")[0] in {"pygls", "lsprotocol", "httpx", "httpcore"}}
            assert heavy == set()
        finally:
            await daemon.stop()

    run(scenario())


def test_stale_state_is_cleaned_and_a_new_daemon_started(emulator: Emulator) -> None:
    directory = private_runtime_dir()
    env = {**bridge_env(emulator), "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)}
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = {
        "pid": int(dead.stdout),
        "version": "0.0.0",
        "socket": str(directory / "bridge.sock"),
        "tcp": None,
        "authToken": "x",
        "identity": "",
        "control": str(directory / "control.sock"),
    }
    directory.chmod(0o700)
    (directory / "daemon.json").write_text(json.dumps(stale))
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(directory / "bridge.sock"))  # a socket file nobody listens on
    leftover.close()
    daemon = DaemonProcess(directory, None, directory / "daemon.log")

    async def scenario() -> None:
        try:
            client = await BridgeClient.spawn(CONNECT, env=env)
            await client.initialize()
            assert len(await client.enum_circles()) == len(SEED_CIRCLES)
            assert daemon.state.pid != stale["pid"]
            assert await client.close() == 0
        finally:
            await daemon.stop()

    run(scenario())


def test_killing_the_daemon_mid_call_is_a_clean_error_and_the_next_connect_starts_a_new_one(
    emulator: Emulator,
) -> None:
    directory = private_runtime_dir()
    env = {**bridge_env(emulator), "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)}
    daemon = DaemonProcess(directory, None, directory / "daemon.log")

    async def scenario() -> None:
        try:
            fd = os.open(directory / "connect.stderr", os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                client = await BridgeClient.spawn(CONNECT, env=env, stderr=fd)
            finally:
                os.close(fd)
            await client.initialize()
            await client.circle_initialize()
            first_pid = daemon.state.pid
            emulator.set_faults(serviceDelay=2.0)
            before = emulator.stats["enumCircles"]
            call = asyncio.ensure_future(client.enum_circles())
            await wait_until(lambda: emulator.stats["enumCircles"] == before + 1)
            os.kill(first_pid, signal.SIGKILL)
            with pytest.raises(ConnectionError):
                await call
            assert client.process is not None
            assert await asyncio.wait_for(client.process.wait(), 20) == 1
            assert "the daemon closed the connection" in (directory / "connect.stderr").read_text()
            await wait_until(lambda: not pid_alive(first_pid))
            emulator.set_faults(serviceDelay=0.0)
            again = await BridgeClient.spawn(CONNECT, env=env)
            await again.initialize()
            assert len(await again.enum_circles()) == len(SEED_CIRCLES)
            assert daemon.state.pid != first_pid
            assert await again.close() == 0
        finally:
            await daemon.stop()

    run(scenario())


def test_a_daemon_started_by_connect_exits_when_idle(shared_emulator: Emulator) -> None:
    directory = private_runtime_dir()
    env = {**bridge_env(shared_emulator), "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory), "CIRCLE_BRIDGE_IDLE_EXIT": "0.5"}

    async def scenario() -> None:
        client = await BridgeClient.spawn(CONNECT, env=env)
        await client.initialize()
        state = read_state(directory)
        assert state is not None
        assert await client.close() == 0
        await wait_until(lambda: not pid_alive(state.pid), within=30)
        assert read_state(directory) is None
        assert state.socket is not None
        assert not await asyncio.to_thread(os.path.exists, state.socket)
        shutil.rmtree(directory, ignore_errors=True)

    run(scenario())


def test_restarting_circleservice_costs_daemon_clients_no_failed_call(emulator: Emulator) -> None:
    """CircleService forgets every token (as after a restart): the next calls of every client
    get a 401 upstream, and the shared session re-authorizes once for all of them."""

    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(emulator))
        try:
            clients = [await BridgeClient.connect_socket(daemon.state.socket) for _ in range(4)]
            for client in clients:
                await client.initialize()
            await asyncio.gather(*(client.enum_circles() for client in clients))
            tokens_before = emulator.stats["tokenRequests"]
            emulator.revoke()
            results = await asyncio.gather(*(client.enum_circles() for client in clients))
            assert all(len(circles) == len(SEED_CIRCLES) for circles in results)
            assert emulator.stats["tokenRequests"] == tokens_before + 1
            for client in clients:
                await client.close()
        finally:
            await daemon.stop()

    run(scenario())


def test_one_process_serves_stdio_socket_and_tcp_at_once(emulator: Emulator) -> None:
    """`serve --stdio --socket --tcp 0`: the app that spawned it and two attached clients share
    one session; when the stdio side ends, the process drains the others and removes its files."""
    directory = private_runtime_dir()
    env = {**bridge_env(emulator), "CIRCLE_BRIDGE_RUNTIME_DIR": str(directory)}

    async def scenario() -> None:
        command = [*CLI, "serve", "--stdio", "--socket", "--tcp", "0"]
        owner = await BridgeClient.spawn(command, env=env)
        await owner.initialize("owner")
        state = read_state(directory)
        assert state is not None
        assert state.pid == (owner.process.pid if owner.process else None)
        by_socket = await BridgeClient.connect_socket(state.socket)
        assert state.tcp is not None
        host, _, port = state.tcp.rpartition(":")
        by_tcp = await BridgeClient.connect_tcp(host, int(port), state.authToken)
        for client in (by_socket, by_tcp):
            await client.initialize()
        counts = await asyncio.gather(*(c.enum_circles() for c in (owner, by_socket, by_tcp)))
        assert [len(c) for c in counts] == [len(SEED_CIRCLES)] * 3
        assert emulator.stats["tokenRequests"] == 1
        assert await by_tcp.close() is None  # an attached client's exit ends only its connection
        assert len(await by_socket.enum_circles()) == len(SEED_CIRCLES)
        assert await owner.close() == 0
        with pytest.raises(ConnectionError):
            await by_socket.enum_circles()
        await by_socket.close()
        assert read_state(directory) is None
        shutil.rmtree(directory, ignore_errors=True)

    run(scenario())


def test_python_client_finds_the_daemon_from_daemon_json(
    shared_emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(shared_emulator))
        monkeypatch.setenv("CIRCLE_BRIDGE_RUNTIME_DIR", str(daemon.runtime_dir))
        try:
            for client in (await BridgeClient.connect_socket(), await BridgeClient.connect_tcp()):
                info = await client.initialize()
                assert info["serverInfo"]["name"] == "circle-bridge"
                assert len(await client.enum_circles()) == len(SEED_CIRCLES)
                assert await client.close() is None
        finally:
            await daemon.stop()
        with pytest.raises(ConnectionError, match="no daemon listening on TCP"):
            await BridgeClient.connect_tcp()

    run(scenario())


def test_a_socket_path_of_your_choice_leaves_its_directory_alone(shared_emulator: Emulator) -> None:
    """`serve --socket PATH`: the socket is 0600 and named in daemon.json; the directory holding
    it (which may be /tmp) keeps its mode."""
    chosen_dir = private_runtime_dir()
    chosen_dir.chmod(0o755)
    chosen = chosen_dir / "my.sock"

    async def scenario() -> None:
        daemon = await start_daemon(bridge_env(shared_emulator), ["--socket", str(chosen)])
        try:
            assert daemon.state.socket == str(chosen)
            modes = await asyncio.to_thread(lambda: [os.stat(p).st_mode & 0o777 for p in (chosen_dir, chosen)])
            assert modes == [0o755, 0o600]
            client = await BridgeClient.spawn(CONNECT, env=daemon.env(bridge_env(shared_emulator)))
            await client.initialize()
            assert len(await client.enum_circles()) == len(SEED_CIRCLES)
            assert await client.close() == 0
        finally:
            await daemon.stop()
        assert not await asyncio.to_thread(chosen.exists)
        shutil.rmtree(chosen_dir, ignore_errors=True)

    run(scenario())
