"""No secret, token, signature or signed URL in logs, traces, errors or the protocol stream."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from circle_bridge._upstream import sign, string_to_sign
from circle_bridge.client import BridgeClient
from circle_bridge.emulator import DEMO_CREDENTIALS, Emulator
from tests.bridge_harness import TRANSPORTS, Transport, bridge_env, run, start_bridge


def forbidden_strings(started: float, ended: float) -> list[str]:
    """The secret in its forms, and every signature the bridge could have made in the time window
    (nonces are epoch seconds or milliseconds near now)."""
    creds = DEMO_CREDENTIALS
    out = [creds.secret, creds.secret.strip(), quote(creds.secret, safe=""), "eyJ", "signature=", "Bearer "]
    for second in range(int(started) - 2, int(ended) + 8):
        for nonce in (second, second * 1000):
            sig = sign(creds.secret, string_to_sign(creds.customer_id, creds.app_key, creds.end_user_id, str(nonce)))
            out += [sig, quote(sig, safe="")]
    return out


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_debug_session_leaks_nothing(emulator: Emulator, transport: Transport) -> None:
    received: list[str] = []
    daemon_token: list[str] = []

    def record(direction: str, message: dict[str, object]) -> None:
        received.append(repr(message))

    async def scenario() -> str:
        env = bridge_env(emulator, CIRCLE_BRIDGE_LOG_LEVEL="DEBUG")
        bridge = await start_bridge(env, transport=transport)
        if bridge.daemon is not None:
            daemon_token.append(bridge.daemon.state.authToken)
        client: BridgeClient = bridge.client
        client._trace = record
        await client.circle_initialize()
        await client.enum_circles()
        emulator.revoke()  # 401 path: new token, authorize, retry
        await client.enum_circles()
        try:
            await client.enum_topics("no-such-circle")
        except Exception as exc:
            received.append(str(exc))
        emulator.set_faults(tokenRefuse=True)
        emulator.revoke()
        try:
            await client.enum_circles()
        except Exception as exc:
            received.append(str(exc))
        emulator.set_faults(tokenRefuse=False)
        emulator.set_faults(serviceDown=True)
        try:
            await client.enum_circles()
        except Exception as exc:
            received.append(str(exc))
        emulator.set_faults(serviceDown=False)
        await client.close()
        stderr = bridge.stderr
        await bridge.close()
        return stderr

    started = time.time()
    stderr = run(scenario())
    ended = time.time()
    assert "DEBUG" in stderr  # the log level took effect, so the scan below saw debug output
    assert emulator.stats["tokenRequests"] >= 2
    haystacks = {"stderr": stderr, "protocol stream": "\n".join(received)}
    creds = DEMO_CREDENTIALS
    # the app key is masked too, and no 8-character piece of the Secret or app key shows anywhere
    pieces = [value[i : i + 8] for value in (creds.secret.strip(), creds.app_key) for i in range(len(value) - 7)]
    for name, text in haystacks.items():
        for needle in [*forbidden_strings(started, ended), *pieces]:
            assert needle not in text, f"{needle[:6]}… leaked into {name}"
    for token in daemon_token:  # a daemon's TCP token stays in daemon.json
        assert token not in stderr


def test_wrong_secret_error_path_leaks_nothing(emulator: Emulator) -> None:
    wrong = "Wr0ng+Secret/Value=="

    async def scenario() -> tuple[str, str]:
        bridge = await start_bridge(bridge_env(emulator, CIRCLE_SECRET=wrong, CIRCLE_BRIDGE_LOG_LEVEL="DEBUG"))
        try:
            await bridge.client.circle_initialize()
        except Exception as exc:
            message = repr(exc) + repr(getattr(exc, "data", ""))
        await bridge.client.close()
        return bridge.stderr, message

    stderr, message = run(scenario())
    assert "-33002" in message
    for text in (stderr, message):
        assert wrong not in text
        assert quote(wrong, safe="") not in text
        assert "signature=" not in text


def test_demo_with_trace_shows_messages_but_no_secrets() -> None:
    started = time.time()
    demo = subprocess.run(
        [sys.executable, "-m", "circle_bridge", "demo", "--trace"], capture_output=True, text=True, timeout=120
    )
    ended = time.time()
    assert demo.returncode == 0, demo.stderr
    assert '"method": "circle/enumTopics"' in demo.stdout  # the trace is there
    assert "Family Vault" in demo.stdout
    assert "-33004" in demo.stdout
    for needle in forbidden_strings(started, ended):
        assert needle not in demo.stdout
        assert needle not in demo.stderr


def test_config_doctor_masks_the_secret() -> None:
    env = {"CIRCLE_SECRET": DEMO_CREDENTIALS.secret, "CIRCLE_CUSTOMER_ID": "c", "PATH": "/usr/bin:/bin"}
    doctor = subprocess.run(
        [sys.executable, "-m", "circle_bridge", "doctor"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "CIRCLE_BRIDGE_CONFIG": "/nonexistent/config.toml"},
    )
    assert doctor.returncode == 1  # app key and end user still missing
    assert '"secret": "(set)"' in doctor.stdout
    assert "CIRCLE_APP_KEY" in doctor.stdout
    assert DEMO_CREDENTIALS.secret not in doctor.stdout + doctor.stderr


def test_stderr_capture_sees_the_bridge_log() -> None:
    # guard for the scans above: they are meaningless if stderr capture did not work at all
    async def scenario() -> str:
        bridge = await start_bridge({"CIRCLE_BRIDGE_LOG_LEVEL": "INFO", "CIRCLE_BRIDGE_CONFIG": "/nonexistent"})
        await bridge.client.close()
        return bridge.stderr

    assert "serving JSON-RPC on stdio" in run(scenario())


def test_bad_settings_stop_serve_with_a_clean_message_naming_them(tmp_path: Path) -> None:
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "CIRCLE_BRIDGE_CONFIG": str(tmp_path / "none.toml")}
    unwritable = tmp_path / "no-such-dir" / "bridge.log"
    for extra, name in (
        ({"CIRCLE_SERVICE_URL": "http://127.0.0.1:31415\r\nX: 1"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_SERVICE_URL": "http://[::1"}, "CIRCLE_SERVICE_URL"),
        ({"CIRCLE_TOKEN_URL": ":::"}, "CIRCLE_TOKEN_URL"),
        ({"CIRCLE_SERVICE_TIMEOUT": "nan"}, "CIRCLE_SERVICE_TIMEOUT"),
        ({"CIRCLE_BRIDGE_LOG_FILE": str(unwritable)}, "CIRCLE_BRIDGE_LOG_FILE"),
    ):
        serve = subprocess.run(
            [sys.executable, "-m", "circle_bridge", "serve", "--stdio"],
            input=b"",
            capture_output=True,
            timeout=60,
            env={**base, **extra},
        )
        stderr = serve.stderr.decode()
        assert serve.returncode == 2, (name, stderr)
        assert name in stderr
        assert "Traceback" not in stderr
        assert serve.stdout == b""


def test_log_file_is_created_private(shared_emulator: Emulator, tmp_path: Path) -> None:
    log_file = tmp_path / "bridge.log"

    async def scenario() -> None:
        env = bridge_env(shared_emulator, CIRCLE_BRIDGE_LOG_FILE=str(log_file), CIRCLE_BRIDGE_LOG_LEVEL="DEBUG")
        bridge = await start_bridge(env)
        await bridge.client.circle_initialize()
        await bridge.client.close()

    run(scenario())
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600
    text = log_file.read_text()
    assert "DEBUG" in text
    assert DEMO_CREDENTIALS.app_key not in text
    assert DEMO_CREDENTIALS.secret not in text
