"""Every catalogue code provoked through a real bridge, and the session still works afterwards."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from circle_bridge._framing import encode_frame
from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from tests.bridge_harness import (
    TRANSPORTS,
    Transport,
    bridge_env,
    emulator_running,
    error_of,
    run,
    start_bridge,
    wait_until,
    with_bridge,
)


async def still_works(bridge: BridgeClient) -> None:
    assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)


async def next_unsolicited(bridge: BridgeClient) -> dict[str, Any]:
    return await asyncio.wait_for(bridge.unsolicited.get(), 10)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_malformed_frames_and_envelopes(shared_emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        cases: list[tuple[bytes, int]] = [
            (encode_frame(b"{oops"), -32700),
            (encode_frame(b'{"jsonrpc":"2.0","id":1,"method":"x","params":{"a":"\xff\xfe"}}'), -32700),
            (b"Content-Lenght: 2\r\n\r\n{}", -32700),
            (encode_frame(b'[{"jsonrpc":"2.0","id":1,"method":"circle/enumCircles"}]'), -32600),
            (encode_frame(b'{"jsonrpc":"2.0","id":true,"method":"circle/enumCircles"}'), -32600),
            (encode_frame(b'{"jsonrpc":"2.0","id":{"x":1},"method":"circle/enumCircles"}'), -32600),
            (encode_frame(b"x" * (2 * 1024 * 1024)), -32600),  # over CIRCLE_BRIDGE_MAX_FRAME_BYTES
        ]
        for raw, code in cases:
            bridge.send_raw(raw)
            reply = await next_unsolicited(bridge)
            assert reply["id"] is None
            assert reply["error"]["code"] == code, (raw[:60], reply)
            await still_works(bridge)
        wrong_version = await bridge.request_raw("circle/enumCircles", {}, msg_id="v")
        assert wrong_version["result"]["circles"]  # control: same call, right version
        bridge.send_raw(encode_frame(b'{"jsonrpc":"1.0","id":"w","method":"circle/enumCircles"}'))
        reply = await next_unsolicited(bridge)
        assert reply == {"jsonrpc": "2.0", "id": "w", "error": reply["error"]}
        assert reply["error"]["code"] == -32600

    env = bridge_env(shared_emulator, CIRCLE_BRIDGE_MAX_FRAME_BYTES=str(1024 * 1024))
    run(with_bridge(env, body, transport))


def test_frames_split_and_joined_arbitrarily(shared_emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        frames = b"".join(
            encode_frame(
                b'{"jsonrpc":"2.0","id":%d,"method":"circle/enumTopics","params":{"circleId":"%s"}}'
                % (100 + i, SEED_CIRCLES[i % 3]["CircleId"].encode())
            )
            for i in range(9)
        ).replace(b"Content-Length", b"content-length")
        futures = {}
        loop = asyncio.get_running_loop()
        for i in range(9):
            futures[100 + i] = loop.create_future()
            bridge._pending[100 + i] = futures[100 + i]
        for start in range(0, len(frames), 37):  # chunks that cut headers and bodies anywhere
            bridge.send_raw(frames[start : start + 37])
            await bridge._writer.drain()
        replies = await asyncio.wait_for(asyncio.gather(*futures.values()), 20)
        assert all("topics" in r["result"] for r in replies)

    run(with_bridge(bridge_env(shared_emulator), body))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_method_and_params_errors(shared_emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        unknown = await error_of(bridge.request("circle/nope", {}))
        assert unknown.code == -32601
        missing = await error_of(bridge.request("circle/enumTopics", {}))
        assert missing.code == -32602
        assert missing.data["field"] == "circleId"
        wrong_type = await error_of(bridge.request("circle/enumTopics", {"circleId": 7}))
        assert wrong_type.code == -32602
        assert wrong_type.data["field"] == "circleId"
        typo = await error_of(bridge.request("circle/enumTopics", {"circleID": "x"}))
        assert typo.data["field"] == "circleID"
        empty = await error_of(bridge.request("circle/enumTopics", {"circleId": ""}))
        assert empty.data["field"] == "circleId"
        positional = await error_of(bridge.request("circle/enumTopics", ["x"]))
        assert positional.code == -32602
        assert "traceback" not in str(positional.data).lower()
        await still_works(bridge)

    run(with_bridge(bridge_env(shared_emulator), body, transport))


def test_unknown_circle_carries_upstream_message(shared_emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        err = await error_of(bridge.enum_topics("no-such-circle"))
        assert err.code == -33004
        assert err.data["upstreamMessage"] == "Circle not found"
        assert err.data["operation"] == "enumTopics"
        await still_works(bridge)

    run(with_bridge(bridge_env(shared_emulator), body))


def test_service_faults(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        await still_works(bridge)
        emulator.set_faults(serviceDown=True)
        assert await bridge.is_service_running() is False
        down = await error_of(bridge.enum_circles())
        assert down.code == -33001
        assert down.data["retryable"] is True
        emulator.set_faults(serviceDown=False)
        assert await bridge.is_service_running() is True
        emulator.set_faults(serviceError500=True)
        http500 = await error_of(bridge.enum_circles())
        assert http500.code == -33004
        assert http500.data["httpStatus"] == 500
        emulator.set_faults(serviceError500=False, serviceMalformed=True)
        malformed = await error_of(bridge.enum_circles())
        assert malformed.code == -33005
        emulator.set_faults(serviceMalformed=False, serviceDelay=3.0)
        slow = await error_of(bridge.enum_circles())
        assert slow.code == -33006
        emulator.set_faults(serviceDelay=0.0)
        await still_works(bridge)

    run(with_bridge(bridge_env(emulator, CIRCLE_SERVICE_TIMEOUT="0.5"), body))


def test_token_endpoint_refusing(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        emulator.set_faults(tokenRefuse=True)
        refused = await error_of(bridge.circle_initialize())
        assert refused.code == -33002
        assert refused.data["httpStatus"] == 403
        emulator.set_faults(tokenRefuse=False)
        assert (await bridge.circle_initialize())["authorized"] is True

    run(with_bridge(bridge_env(emulator), body))


def test_wrong_secret_is_a_token_error(shared_emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        err = await error_of(bridge.circle_initialize())
        assert err.code == -33002
        assert err.data["httpStatus"] == 401

    run(with_bridge(bridge_env(shared_emulator, CIRCLE_SECRET="not-the-secret"), body))


def test_authorization_rejected_by_a_service_that_does_not_trust_the_token() -> None:
    # tokens from one emulator's cloud, presented to another emulator's service: a real rejection
    with emulator_running() as cloud, emulator_running() as service:

        async def body(bridge: BridgeClient) -> None:
            err = await error_of(bridge.circle_initialize())
            assert err.code == -33003
            assert await bridge.is_service_running() is True

        run(with_bridge(bridge_env(cloud, CIRCLE_SERVICE_URL=service.service_url), body))


def test_missing_configuration_names_the_settings(shared_emulator: Emulator) -> None:
    env = bridge_env(shared_emulator)
    del env["CIRCLE_SECRET"]
    env["CIRCLE_APP_KEY"] = ""

    async def scenario() -> None:
        saved = os.environ.pop("CIRCLE_SECRET", None)
        try:
            bridge = await start_bridge(env)
        finally:
            if saved is not None:
                os.environ["CIRCLE_SECRET"] = saved
        err = await error_of(bridge.client.circle_initialize())
        assert err.code == -33007
        assert err.data["missing"] == ["CIRCLE_APP_KEY", "CIRCLE_SECRET"]
        assert "CIRCLE_SECRET" in err.message
        assert await bridge.client.is_service_running() is True  # needs no credentials
        await bridge.client.close()

    run(scenario())


def test_requests_beyond_the_in_flight_cap_wait_instead_of_failing(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> float:
        await still_works(bridge)
        emulator.set_faults(serviceDelay=1.0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        calls = [bridge.request_raw("circle/enumTopics", {"circleId": c["CircleId"]}) for c in SEED_CIRCLES]
        replies = await asyncio.gather(*calls)
        elapsed = loop.time() - started
        assert all("result" in r for r in replies), replies
        emulator.set_faults(serviceDelay=0.0)
        await still_works(bridge)
        return elapsed

    elapsed = run(with_bridge(bridge_env(emulator, CIRCLE_BRIDGE_MAX_IN_FLIGHT="2"), body))
    # three 1-second calls through two slots: the third ran after a slot freed, not alongside
    assert elapsed >= 1.9


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_cancel_request(emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        await still_works(bridge)
        emulator.set_faults(serviceDelay=5.0)
        before = emulator.stats["enumCircles"]
        slow = asyncio.ensure_future(bridge.request_raw("circle/enumCircles", {}, msg_id="slow-1"))
        await wait_until(lambda: emulator.stats["enumCircles"] == before + 1)  # it reached the service
        bridge.cancel("slow-1")
        reply = await asyncio.wait_for(slow, 3)  # well before the 5 s the service would take
        assert reply["error"]["code"] == -32800
        bridge.cancel("never-existed")  # ignored, no reply, no harm
        emulator.set_faults(serviceDelay=0.0)
        await still_works(bridge)

    run(with_bridge(bridge_env(emulator), body, transport))


def test_a_read_started_after_a_cancel_does_not_join_the_abandoned_call(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        await still_works(bridge)
        before = emulator.stats["enumCircles"]
        emulator.set_faults(serviceDelay=5.0)
        slow = asyncio.ensure_future(bridge.request_raw("circle/enumCircles", {}, msg_id="abandoned"))
        await wait_until(lambda: emulator.stats["enumCircles"] == before + 1)
        bridge.cancel("abandoned")
        assert (await asyncio.wait_for(slow, 3))["error"]["code"] == -32800
        emulator.set_faults(serviceDelay=0.0)
        assert len(await asyncio.wait_for(bridge.enum_circles(), 3)) == len(SEED_CIRCLES)
        assert emulator.stats["enumCircles"] == before + 2  # a new upstream call, not the abandoned one

    run(with_bridge(bridge_env(emulator), body))


def test_shutdown_answers_only_after_earlier_requests(emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(emulator))
        await still_works(bridge.client)
        emulator.set_faults(serviceDelay=0.5)
        pending = asyncio.ensure_future(bridge.client.request("circle/enumCircles", {}))
        await wait_until(lambda: emulator.stats["enumCircles"] == 2)
        assert await bridge.client.request("shutdown") is None
        assert pending.done()  # its reply came before the shutdown reply
        assert len(pending.result()["circles"]) == len(SEED_CIRCLES)
        bridge.client.notify("exit")
        assert bridge.client.process is not None
        assert await asyncio.wait_for(bridge.client.process.wait(), 10) == 0

    run(scenario())
