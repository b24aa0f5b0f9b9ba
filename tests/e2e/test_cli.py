"""The command line, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import circle_bridge
import circle_bridge.client
from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from tests.bridge_harness import bridge_env, run, wait_until, with_bridge


def test_public_surface_is_deliberate() -> None:
    assert circle_bridge.__all__ == ["__version__"]
    assert circle_bridge.client.__all__ == ["BridgeClient", "BridgeRPCError"]


def test_version_flag() -> None:
    out = subprocess.run([sys.executable, "-m", "circle_bridge", "--version"], capture_output=True, text=True)
    assert out.returncode == 0
    assert out.stdout.strip() == f"circle-bridge {circle_bridge.__version__}"


def test_serve_with_embedded_emulator_needs_no_configuration() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIRCLE_")}
    env["CIRCLE_BRIDGE_CONFIG"] = os.devnull

    async def scenario() -> int:
        bridge = await BridgeClient.spawn([sys.executable, "-m", "circle_bridge", "serve", "--emulator"], env=env)
        await bridge.initialize()
        circles = await bridge.enum_circles()
        await bridge.close()
        return len(circles)

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("CIRCLE_")}
    try:
        assert run(scenario()) == len(SEED_CIRCLES)
    finally:
        os.environ.update(saved)


def test_log_file_gets_the_logs_and_stderr_stays_quiet(shared_emulator: Emulator, tmp_path: Path) -> None:
    log_file = tmp_path / "bridge.log"

    async def body(bridge: BridgeClient) -> None:
        await bridge.enum_circles()

    env = bridge_env(shared_emulator, CIRCLE_BRIDGE_LOG_FILE=str(log_file), CIRCLE_BRIDGE_LOG_LEVEL="INFO")
    run(with_bridge(env, body))
    text = log_file.read_text(encoding="utf-8")
    assert "serving JSON-RPC on stdio" in text
    assert "token obtained" in text


def test_bad_configuration_value_fails_fast_with_its_name(shared_emulator: Emulator) -> None:
    env = {**os.environ, **bridge_env(shared_emulator, CIRCLE_SERVICE_TIMEOUT="soon")}
    out = subprocess.run(
        [sys.executable, "-m", "circle_bridge", "serve"], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 2
    assert "CIRCLE_SERVICE_TIMEOUT" in out.stderr
    assert out.stdout == ""


def test_spec_command_prints_the_committed_document() -> None:
    out = subprocess.run([sys.executable, "-m", "circle_bridge", "spec"], capture_output=True, text=True, timeout=60)
    committed = Path(__file__).resolve().parents[2] / "protocol" / "circle-bridge.openrpc.json"
    assert json.loads(out.stdout) == json.loads(committed.read_text(encoding="utf-8"))


def test_emulator_command_prints_one_json_line_and_serves() -> None:
    import httpx

    with subprocess.Popen(
        [sys.executable, "-m", "circle_bridge", "emulator", "--token-ttl", "5"], stdout=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            described = json.loads(proc.stdout.readline())
            assert described["tokenTtl"] == 5
            assert described["serviceUrl"].startswith("http://127.0.0.1:")
            assert httpx.get(described["serviceUrl"] + "/", timeout=10).status_code == 200
        finally:
            proc.terminate()
        assert proc.wait(10) == 0


def test_emulator_env_format_sources_into_a_shell(tmp_path: Path) -> None:
    """`--format env` prints `export` lines that a shell can source, the quoting surviving the demo
    secret's `+/=`; the bridge then works from those variables alone."""
    env_file = tmp_path / "emulator.env"
    with env_file.open("w") as out:
        emulator = subprocess.Popen(
            [sys.executable, "-m", "circle_bridge", "emulator", "--format", "env"], stdout=out, stderr=subprocess.PIPE
        )
    try:

        async def ready() -> None:
            await wait_until(lambda: "CIRCLE_EMULATOR_TOKEN_TTL" in env_file.read_text(), within=30)

        run(ready())
        shown = subprocess.run(
            ["bash", "-c", f". {env_file} && env"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
        variables = dict(line.split("=", 1) for line in shown if line.startswith("CIRCLE_"))
        assert {"CIRCLE_TOKEN_URL", "CIRCLE_SERVICE_URL", "CIRCLE_SECRET", "CIRCLE_EMULATOR_CONTROL_URL"} <= set(
            variables
        )
        assert variables["CIRCLE_SECRET"].endswith("+/=kq4Xv9Tz")

        async def scenario() -> int:
            bridge = await BridgeClient.spawn(
                [sys.executable, "-m", "circle_bridge", "serve"], env={**variables, "CIRCLE_BRIDGE_CONFIG": os.devnull}
            )
            await bridge.initialize()
            circles = await bridge.enum_circles()
            await bridge.close()
            return len(circles)

        assert run(scenario()) == len(SEED_CIRCLES)
    finally:
        emulator.terminate()
        emulator.communicate(timeout=30)


def test_doctor_names_the_config_file_it_searched(tmp_path: Path) -> None:
    config = tmp_path / "bridge.toml"
    env = {"PATH": os.environ["PATH"], "CIRCLE_BRIDGE_CONFIG": str(config)}
    out = subprocess.run([sys.executable, "-m", "circle_bridge", "doctor"], capture_output=True, text=True, env=env)
    assert f"config file: {config} (not found)" in out.stdout
    help_text = subprocess.run(
        [sys.executable, "-m", "circle_bridge", "serve", "--help"], capture_output=True, text=True, env=env
    ).stdout
    unwrapped = "".join(help_text.split())  # argparse wraps long lines anywhere, even inside a path
    assert "CIRCLE_SECRET" in unwrapped
    assert str(config) in unwrapped


def test_serve_in_a_terminal_says_what_it_is_waiting_for(shared_emulator: Emulator) -> None:
    import pty

    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "circle_bridge", "serve"],
            stdin=terminal,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=bridge_env(shared_emulator),
        )
        assert process.stderr is not None
        line = process.stderr.readline().decode()
        assert "serving JSON-RPC on stdin/stdout" in line
        process.terminate()
        process.communicate(timeout=30)
    finally:
        os.close(controller)
        os.close(terminal)
