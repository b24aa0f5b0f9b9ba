"""Shared helpers for tests that drive a real `circle-bridge serve --stdio` subprocess against a real
emulator over HTTP. Nothing here is mocked."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from circle_bridge._config import as_env, emulator_settings
from circle_bridge.client import BridgeClient, BridgeRPCError
from circle_bridge.emulator import Emulator, EmulatorConfig

T = TypeVar("T")
TIMEOUT = 60.0
STRICT_BY_DEFAULT = os.environ.get("CIRCLE_EMULATOR_STRICT") == "1"
"""`CIRCLE_EMULATOR_STRICT=1 pytest tests/e2e` runs the whole suite against the strict emulator;
test_tokens.py and test_session.py run in both modes anyway (tests/emulator_modes.py)."""
BRIDGE = [sys.executable, "-m", "circle_bridge", "serve", "--stdio"]


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


class Bridge:
    """A spawned bridge whose stderr goes to a file the test can scan."""

    def __init__(self, client: BridgeClient, stderr_path: Path) -> None:
        self.client = client
        self.stderr_path = stderr_path

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")


async def start_bridge(env: dict[str, str], *, initialize: bool = True, command: list[str] | None = None) -> Bridge:
    fd, name = tempfile.mkstemp(prefix="bridge-stderr-", suffix=".log")
    try:
        client = await BridgeClient.spawn(command or BRIDGE, env=env, stderr=fd)
    finally:
        os.close(fd)
    bridge = Bridge(client, Path(name))
    if initialize:
        await client.initialize("pytest")
    return bridge


async def with_bridge(env: dict[str, str], body: Callable[[BridgeClient], Awaitable[T]]) -> T:
    bridge = await start_bridge(env)
    try:
        return await body(bridge.client)
    finally:
        await bridge.client.close()


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
