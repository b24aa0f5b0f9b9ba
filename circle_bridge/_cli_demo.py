"""`circle-bridge demo`: the flow a first Circle app makes, through a real bridge subprocess on
stdio, against the embedded emulator over HTTP."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ._config import as_env, emulator_settings
from ._redaction import REDACTOR
from .client import BridgeClient, BridgeRPCError
from .emulator import Emulator

_SENSITIVE_KEYS = {"token", "secret", "signature", "authorization"}


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("***" if k.lower() in _SENSITIVE_KEYS else _masked(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def _trace(direction: str, message: dict[str, Any]) -> None:
    arrow = "-->" if direction == "send" else "<--"
    text = REDACTOR.redact(json.dumps(_masked(message), ensure_ascii=False))
    print(f"    {arrow} {text}")


def _step(n: int, title: str, outcome: str) -> None:
    print(f"{n}. {title:<34} {outcome}")


async def run_demo(trace: bool = False) -> int:
    started = time.perf_counter()
    with Emulator() as emulator:
        REDACTOR.register(emulator.credentials.secret)
        env = as_env(emulator_settings(emulator.describe()))
        print("circle-bridge demo: a real `circle-bridge serve --stdio` subprocess, driven over JSON-RPC,")
        print("talking HTTP to the embedded Circle emulator.")
        print(f"   token endpoint  {emulator.token_url}")
        print(f"   CircleService   {emulator.service_url}\n")
        bridge = await BridgeClient.spawn(env=env, trace=_trace if trace else None)
        try:
            info = await bridge.initialize("circle-bridge-demo")
            server = info["serverInfo"]
            _step(
                1, "initialize (handshake)", f"{server['name']} {server['version']}, protocol {info['protocolVersion']}"
            )
            running = await bridge.is_service_running()
            _step(2, "circle/isServiceRunning", "yes" if running else "NO: install and start CircleService")
            if not running:
                return 1
            auth = await bridge.circle_initialize()
            _step(3, "circle/initialize", f"authorized as {auth['endUserId']}; token valid {auth['expiresIn']:.0f} s")
            circles = await bridge.enum_circles()
            _step(4, "circle/enumCircles", f"{len(circles)} circle(s)")
            for circle in circles:
                extras = ", ".join(
                    f"{k}={v if isinstance(v, str) else json.dumps(v)}"
                    for k, v in circle.items()
                    if k not in ("circleId", "circleName")
                )
                print(f"   * {circle.get('circleName', '(unnamed)')}  [{circle['circleId']}]")
                if extras:
                    print(f"     {extras}")
                topics = await bridge.enum_topics(circle["circleId"])
                names = ", ".join(str(t.get("topicName", t["topicId"])) for t in topics) or "(no topics)"
                print(f"     circle/enumTopics -> {len(topics)} topic(s): {names}")
            try:
                await bridge.enum_topics("no-such-circle")
            except BridgeRPCError as exc:
                _step(5, "errors are typed, too:", f"enumTopics(no-such-circle) -> {exc.code} {exc.message}")
        finally:
            code = await bridge.close()
        stats = emulator.stats
        print(
            f"\nDone in {time.perf_counter() - started:.2f} s. Bridge exit code {code}; "
            f"{stats.get('tokenRequests', 0)} token request(s), {stats.get('authorize', 0)} authorize call(s)."
        )
        sys.stdout.flush()
        return 0 if code == 0 else 1
