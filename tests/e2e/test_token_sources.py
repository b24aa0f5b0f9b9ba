"""Each token source end to end: a real bridge, the real emulator, and a stand-in for the
developer's backend (the only place that holds the Secret). With `command`, `url` and `client` the
Secret is nowhere in the bridge's environment, logs or state files."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from circle_bridge._upstream import sign, string_to_sign
from circle_bridge.client import BridgeClient
from circle_bridge.emulator import DEMO_CREDENTIALS, SEED_CIRCLES, Emulator
from tests.bridge_harness import bridge_env, emulator_running, error_of, run, start_bridge

BACKEND_KEY = "backend-api-key-0f9e8d7c6b5a"
_nonces = itertools.count()


class Backend:
    """The developer's backend: holds the Secret, signs token requests to Circle, and hands out
    tokens to callers that present its own API key (as Circle's demos' `/tokengen`)."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        self.requests = 0
        self.refused = 0
        self._http = httpx.Client(timeout=10)
        backend = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.headers.get("X-Backend-Key") != BACKEND_KEY:
                    backend.refused += 1
                    self._reply(403, b'{"Message": "who are you?"}')
                    return
                backend.requests += 1
                token = backend.token()
                body = token.encode() if self.path == "/bare" else json.dumps({"Token": token}).encode()
                self._reply(200, body)

            def _reply(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def token(self) -> str:
        creds = DEMO_CREDENTIALS
        nonce = str(int(time.time()) + next(_nonces))  # unique, so a strict emulator accepts each
        signature = sign(creds.secret, string_to_sign(creds.customer_id, creds.app_key, creds.end_user_id, nonce))
        reply = self._http.get(
            self.emulator.token_url,
            params={
                "customerId": creds.customer_id,
                "appKey": creds.app_key,
                "endUserId": creds.end_user_id,
                "nonce": nonce,
                "signature": signature,
            },
        )
        assert reply.status_code == 200, reply.text
        body = json.loads(reply.text)
        token = (json.loads(body) if isinstance(body, str) else body)["Token"]
        assert isinstance(token, str)
        return token

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._http.close()


@pytest.fixture(params=["default", "strict"])
def emulator(request: pytest.FixtureRequest) -> Iterator[Emulator]:
    # 6 s tokens: about 5 s usable, refreshed (or asked for) with about 1 s left, which leaves room
    # for a loaded machine between the notification and the expiry
    with emulator_running(token_ttl=6, strict=request.param == "strict") as emulator:
        yield emulator


@pytest.fixture
def backend(emulator: Emulator) -> Iterator[Backend]:
    backend = Backend(emulator)
    yield backend
    backend.close()


def secretless_env(emulator: Emulator, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = bridge_env(emulator, CIRCLE_BRIDGE_LOG_LEVEL="DEBUG", **extra)
    for name in ("CIRCLE_SECRET", "CIRCLE_CUSTOMER_ID", "CIRCLE_END_USER_ID", "CIRCLE_TOKEN_URL"):
        del env[name]
    env["CIRCLE_BRIDGE_LOG_FILE"] = str(tmp_path / "state" / "bridge.log")
    env["CIRCLE_BRIDGE_RUNTIME_DIR"] = str(tmp_path / "state")
    (tmp_path / "state").mkdir()
    return env


def assert_secret_nowhere(client: BridgeClient, stderr: str, tmp_path: Path) -> None:
    """The Secret (in every form) is not in the bridge's environment, its stderr, or any file it
    wrote; neither is the backend's key."""
    secret = DEMO_CREDENTIALS.secret
    assert client.process is not None
    environ = Path(f"/proc/{client.process.pid}/environ").read_bytes().decode("utf-8", "replace")
    haystacks = {"environment": environ, "stderr": stderr}
    for path in (tmp_path / "state").rglob("*"):
        if path.is_file():
            haystacks[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    assert "DEBUG" in haystacks[str(tmp_path / "state" / "bridge.log")]  # the scan saw a debug log
    for where, text in haystacks.items():
        for needle in (secret, secret.strip(), "Bearer ", "signature="):
            assert needle not in text, f"{needle[:6]}… found in {where}"
        if where != "environment":  # the key is in the bridge's env by design (url source)
            assert BACKEND_KEY not in text, f"the backend key leaked into {where}"


async def keep_calling_until(predicate: Any, bridge: BridgeClient, within: float = 30.0) -> int:
    calls = 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)
        calls += 1
        await asyncio.sleep(0.05)
    return calls


def test_command_source_runs_the_command_for_each_token(emulator: Emulator, backend: Backend, tmp_path: Path) -> None:
    fetch = "import sys, urllib.request as u; print(u.urlopen(u.Request(sys.argv[1], headers={'X-Backend-Key': sys.argv[2]})).read().decode())"  # noqa: E501
    command = shlex.join([sys.executable, "-c", fetch, backend.url + "/bare", BACKEND_KEY])
    env = secretless_env(emulator, tmp_path, CIRCLE_TOKEN_SOURCE="command", CIRCLE_TOKEN_COMMAND=command)

    async def scenario() -> tuple[BridgeClient, str]:
        bridge = await start_bridge(env)
        auth = await bridge.client.circle_initialize()
        assert auth["authorized"] is True
        assert auth["endUserId"] == DEMO_CREDENTIALS.end_user_id  # read from the token: no setting
        await keep_calling_until(lambda: backend.requests >= 3, bridge.client)  # re-run to refresh
        assert emulator.stats["unauthorized"] == 0
        assert_secret_nowhere(bridge.client, bridge.stderr, tmp_path)
        await bridge.client.close()
        return bridge.client, bridge.stderr

    run(scenario(), timeout=90)
    assert emulator.stats["tokenRequests"] == backend.requests  # every token came through the backend


def test_command_failure_is_a_token_error_with_its_exit_status(emulator: Emulator, tmp_path: Path) -> None:
    command = shlex.join([sys.executable, "-c", "import sys; sys.stderr.write('backend unreachable\\n'); sys.exit(3)"])
    env = secretless_env(emulator, tmp_path, CIRCLE_TOKEN_SOURCE="command", CIRCLE_TOKEN_COMMAND=command)

    async def scenario() -> None:
        bridge = await start_bridge(env)
        err = await error_of(bridge.client.circle_initialize())
        assert err.code == -33002
        assert err.data["exitCode"] == 3
        assert err.data["upstreamMessage"] == "backend unreachable"
        await bridge.client.close()

    run(scenario())


def test_url_source_gets_tokens_from_the_backend_with_its_header(
    emulator: Emulator, backend: Backend, tmp_path: Path
) -> None:
    env = secretless_env(
        emulator,
        tmp_path,
        CIRCLE_TOKEN_SOURCE="url",
        CIRCLE_TOKEN_BACKEND_URL=backend.url + "/token",
        CIRCLE_TOKEN_BACKEND_HEADER=f"X-Backend-Key: {BACKEND_KEY}",
    )

    async def scenario() -> None:
        bridge = await start_bridge(env)
        assert (await bridge.client.circle_initialize())["authorized"] is True
        await keep_calling_until(lambda: backend.requests >= 3, bridge.client)
        assert emulator.stats["unauthorized"] == 0
        assert_secret_nowhere(bridge.client, bridge.stderr, tmp_path)
        await bridge.client.close()

    run(scenario(), timeout=90)
    assert backend.refused == 0


def test_url_source_refused_by_the_backend_names_the_header(
    emulator: Emulator, backend: Backend, tmp_path: Path
) -> None:
    env = secretless_env(
        emulator,
        tmp_path,
        CIRCLE_TOKEN_SOURCE="url",
        CIRCLE_TOKEN_BACKEND_URL=backend.url + "/token",
        CIRCLE_TOKEN_BACKEND_HEADER="X-Backend-Key: wrong-key-123456",
    )

    async def scenario() -> None:
        bridge = await start_bridge(env)
        err = await error_of(bridge.client.circle_initialize())
        assert err.code == -33002
        assert err.data["httpStatus"] == 403
        assert err.data["retryable"] is False
        assert "CIRCLE_TOKEN_BACKEND_HEADER" in err.data["likelyCause"]
        assert err.data["upstreamMessage"] == "who are you?"
        await bridge.client.close()

    run(scenario())
    assert backend.refused == 1


def test_client_source_asks_for_tokens_and_refreshes_through_the_notification(
    emulator: Emulator, backend: Backend, tmp_path: Path
) -> None:
    env = secretless_env(emulator, tmp_path, CIRCLE_TOKEN_SOURCE="client")

    async def next_notification(client: BridgeClient) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(client.unsolicited.get(), 20)
            if message.get("method") == "circle/tokenNeeded":
                return message

    async def scenario() -> None:
        bridge = await start_bridge(env)
        client = bridge.client
        early = await error_of(client.enum_circles())
        assert early.code == -33020
        assert early.data["retryable"] is True
        missing = await next_notification(client)
        assert missing["params"] == {"reason": "missing", "expiresIn": 0.0}

        auth = await client.request("circle/initialize", {"token": backend.token()})
        assert auth["authorized"] is True
        assert auth["endUserId"] == DEMO_CREDENTIALS.end_user_id
        assert len(await client.enum_circles()) == len(SEED_CIRCLES)

        for _ in range(2):  # two refreshes, each asked for by the bridge without any call from us
            expiring = await next_notification(client)
            assert expiring["params"]["reason"] == "expiring"
            assert 0 < expiring["params"]["expiresIn"] < 6
            await client.request("circle/initialize", {"token": backend.token()})
            assert len(await client.enum_circles()) == len(SEED_CIRCLES)
        assert emulator.stats["unauthorized"] == 0
        assert emulator.stats["authorize"] == 3
        assert_secret_nowhere(client, bridge.stderr, tmp_path)
        await client.close()

    run(scenario(), timeout=90)


def test_a_token_in_initialize_is_refused_with_the_secret_source(emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(emulator))
        err = await error_of(bridge.client.request("circle/initialize", {"token": "a.b.c"}))
        assert err.code == -33007
        assert "CIRCLE_TOKEN_SOURCE=client" in err.message
        await bridge.client.close()

    run(scenario())


def test_doctor_shows_the_source_but_never_its_contents(tmp_path: Path) -> None:
    command = "fetch-circle-token --profile prod-secret-profile"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CIRCLE_BRIDGE_CONFIG": str(tmp_path / "none.toml"),
        "CIRCLE_TOKEN_SOURCE": "command",
        "CIRCLE_TOKEN_COMMAND": command,
        "CIRCLE_APP_KEY": DEMO_CREDENTIALS.app_key,
    }
    doctor = subprocess.run(
        [sys.executable, "-m", "circle_bridge", "doctor"], capture_output=True, text=True, timeout=60, env=env
    )
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "token source: command" in doctor.stdout
    assert "credentials: complete" in doctor.stdout
    assert "prod-secret-profile" not in doctor.stdout + doctor.stderr
    assert DEMO_CREDENTIALS.app_key not in doctor.stdout  # the app key shows as a prefix and a length
    assert DEMO_CREDENTIALS.app_key[:4] in doctor.stdout
