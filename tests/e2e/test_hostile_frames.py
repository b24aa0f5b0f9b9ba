"""Targeted hostile inputs (issue 11) against a real bridge process: none may crash it, stall it,
or cost a later request, and a request in flight when they arrive is still answered."""

from __future__ import annotations

import asyncio
from typing import Any

from circle_bridge._framing import encode_frame
from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from tests.bridge_harness import bridge_env, run, start_bridge, wait_until

DEEP = 100_000


def frame(text: str | bytes) -> bytes:
    return encode_frame(text.encode() if isinstance(text, str) else text)


HOSTILE: list[tuple[str, bytes, int | None]] = [
    # (what, bytes, the error code answered with id null, or None when nothing is answered)
    ("Content-Length of 5000 digits", b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n{}", -32700),
    ("Content-Length of 20 nines", b"Content-Length: 99999999999999999999\r\n\r\n", -32700),
    ("JSON nested 100,000 deep", frame(b"[" * DEEP + b"]" * DEEP), -32600),
    (
        "params nested 100,000 deep",
        frame(b'{"jsonrpc":"2.0","method":"circle/enumTopics","params":{"a":' + b"[" * DEEP + b"]" * DEEP + b"}}"),
        -32600,
    ),
    ("cancel with an array id", frame('{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":[1]}}'), None),
    ("cancel with an object id", frame('{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":{"a":1}}}'), None),
    ("a response to the slow request's id", frame('{"jsonrpc":"2.0","id":"slow","result":42}'), None),
    ("an error response to it", frame('{"jsonrpc":"2.0","id":"slow","error":{"code":1,"message":"x"}}'), None),
    ("a stray CRLF", b"\r\n", None),
    ("bytes glued before a header", b"junk", -32700),
]


async def expect_unsolicited(bridge: BridgeClient, code: int) -> None:
    reply = await asyncio.wait_for(bridge.unsolicited.get(), 10)
    assert reply["id"] is None
    assert reply["error"]["code"] == code
    assert isinstance(reply["error"]["data"]["retryable"], bool)


def test_hostile_frames_crash_nothing_and_lose_nothing(emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(emulator))
        client = bridge.client
        emulator.set_faults(serviceDelay=1.0)
        topics_before = emulator.stats["enumTopics"]
        circle_id = SEED_CIRCLES[0]["CircleId"]
        slow = asyncio.ensure_future(client.request_raw("circle/enumTopics", {"circleId": circle_id}, msg_id="slow"))
        await wait_until(lambda: emulator.stats["enumTopics"] == topics_before + 1)
        for what, raw, code in HOSTILE:
            client.send_raw(raw)
            # the very next valid frame is answered: nothing swallowed it
            echo = await client.request_raw("rpc.discover", None, msg_id=f"after {what}")
            assert "result" in echo, what
            if code is not None:
                await expect_unsolicited(client, code)
            assert client.unsolicited.empty(), (what, client.unsolicited)
        emulator.set_faults(serviceDelay=0.0)
        reply: dict[str, Any] = await slow
        assert reply["result"]["topics"], reply
        assert client.process is not None
        assert client.process.returncode is None
        assert "Traceback" not in bridge.stderr
        await client.close()

    run(scenario())


def test_requests_sent_as_notifications_never_fill_the_in_flight_cap(shared_emulator: Emulator) -> None:
    """A request method without an id has nobody to answer; it must not hold a slot of the cap."""

    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator, CIRCLE_BRIDGE_MAX_IN_FLIGHT="4"))
        client = bridge.client
        client.send_raw(b"".join(frame('{"jsonrpc":"2.0","method":"circle/enumCircles"}') for _ in range(300)))
        assert len(await client.enum_circles()) == len(SEED_CIRCLES)
        assert client.unsolicited.empty()
        await client.close()

    run(scenario())


def test_lf_only_frames_typed_by_a_person_are_answered(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        body = b'{"jsonrpc":"2.0","id":"typed","method":"circle/enumCircles"}'
        typed = asyncio.ensure_future(client.request_raw("rpc.discover", None, msg_id="next"))
        client.send_raw(b"Content-Length: %d\n\n%b" % (len(body), body))
        reply = await asyncio.wait_for(client.unsolicited.get(), 10)  # an id the client did not send
        assert reply["id"] == "typed"
        assert len(reply["result"]["circles"]) == len(SEED_CIRCLES)
        assert "result" in await typed
        await client.close()

    run(scenario())


def test_unknown_methods_and_stock_lsp_notifications_are_quiet(shared_emulator: Emulator) -> None:
    """-32601 in the catalogue's shape; VS Code's stock notifications log nothing at the default
    level; a notification method sent with an id is refused, not run."""

    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        for method in ("$/setTrace", "$/logTrace", "workspace/didChangeConfiguration"):
            client.notify(method, {"value": "verbose"})
        reply = await client.request_raw("circle/nope", {})
        assert reply["error"] == {
            "code": -32601,
            "message": "Method not found: circle/nope",
            "data": {"retryable": False},
        }
        exit_as_request = await client.request_raw("exit", None)
        assert exit_as_request["error"]["code"] == -32600
        assert len(await client.enum_circles()) == len(SEED_CIRCLES)  # `exit` did not run
        await client.close()
        assert bridge.stderr.strip() == "", bridge.stderr

    run(scenario())
