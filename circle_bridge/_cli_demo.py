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
from .unlock_codes import decrypt_unlock_codes, load_private_key

_SENSITIVE_KEYS = {"token", "secret", "signature", "authorization", "unlockcodes"}


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
    print(f"{n}. {title:<{35 - len(str(n))}} {outcome}")


def _masked_code(code: str) -> str:
    """Enough of a code to see it is one, not enough to use it: the demo prints no usable code."""
    return code[:2] + "".join("*" if c.isalnum() else c for c in code[2:])


async def _second_walk(bridge: BridgeClient, private_key: str) -> None:
    """What an app does next: a circle of its own if there is none, a secret kept behind the
    user's keys, and a lock that only the developer's backend can lift."""
    print("\nSecond walk: secrets, and a lock only the backend can lift")
    circles = await bridge.enum_circles()
    if circles:
        circle = circles[0]
        _step(6, "circle/createCircle", f"not needed: using {circle.get('circleName', circle['circleId'])}")
        circle_id = str(circle["circleId"])
    else:
        created = await bridge.request("circle/createCircle", {"circleName": "My app", "workDoneToken": "demo-create"})
        circle_id = str(created["circleId"])
        _step(6, "circle/createCircle", f"created {circle_id}")
    stored = await bridge.request("circle/putSecret", {"name": "demo-api-key", "value": "sk-demo-12345"})
    _step(7, "circle/putSecret demo-api-key", f"stored in topic {stored['topicId']}")
    secret = await bridge.request("circle/getSecret", {"name": "demo-api-key"})
    _step(8, "circle/getSecret demo-api-key", f"found={json.dumps(secret['found'])}, value={secret.get('value')!r}")
    who = await bridge.request("circle/whoAmI", {"circleId": circle_id})
    _step(9, "circle/whoAmI", f"locked={json.dumps(who['locked'])}")
    locked = await bridge.request("circle/lockUser", {"circleId": circle_id, "numberOfCodes": 2})
    codes = locked["encryptedUnlockCodes"]
    _step(10, "circle/lockUser", f"{len(codes)} encrypted unlock codes ({len(codes[0])} base64 chars each)")
    who = await bridge.request("circle/whoAmI", {"circleId": circle_id})
    _step(11, "circle/whoAmI", f"locked={json.dumps(who['locked'])}")
    try:
        await bridge.request("circle/getSecret", {"name": "demo-api-key", "circleId": circle_id})
    except BridgeRPCError as exc:
        _step(12, "circle/getSecret while locked", f"{exc.code} {exc.message}")
    # The backend's part, never the user's machine: `circle-bridge unlock-codes decrypt`.
    plain = decrypt_unlock_codes(load_private_key(private_key.encode()), codes)
    _step(13, "backend: unlock-codes decrypt", "codes " + ", ".join(_masked_code(c) for c in plain) + " (masked)")
    await bridge.request("circle/unlockUser", {"circleId": circle_id, "unlockCodes": plain})
    _step(14, "circle/unlockUser", "accepted")
    who = await bridge.request("circle/whoAmI", {"circleId": circle_id})
    _step(15, "circle/whoAmI", f"locked={json.dumps(who['locked'])}")


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
            await _second_walk(bridge, str(emulator.describe()["privateKey"]))
        finally:
            code = await bridge.close()
        stats = emulator.stats
        print(
            f"\nDone in {time.perf_counter() - started:.2f} s. Bridge exit code {code}; "
            f"{stats.get('tokenRequests', 0)} token request(s), {stats.get('authorize', 0)} authorize call(s)."
        )
        sys.stdout.flush()
        return 0 if code == 0 else 1
