"""The happy path and the lifecycle, through a real bridge subprocess and the emulator over HTTP.
Every test runs twice: against the emulator in its default mode and in its strict mode."""

from __future__ import annotations

import asyncio
import unicodedata

import pytest

from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from tests.bridge_harness import (
    TRANSPORTS,
    Transport,
    bridge_env,
    error_of,
    run,
    start_bridge,
    wait_until,
    with_bridge,
)
from tests.emulator_modes import emulator, shared_emulator, strict_mode


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_first_app_flow(shared_emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        assert await bridge.is_service_running() is True
        auth = await bridge.circle_initialize()
        assert auth["authorized"] is True
        assert auth["endUserId"] == shared_emulator.credentials.end_user_id
        assert 500 < auth["expiresIn"] <= 600
        circles = await bridge.enum_circles()
        assert [c["circleId"] for c in circles] == [c["CircleId"] for c in SEED_CIRCLES]
        for circle in circles:
            topics = await bridge.enum_topics(circle["circleId"])
            assert all(isinstance(t["topicId"], str) for t in topics)

    run(with_bridge(bridge_env(shared_emulator), body, transport))


def test_every_upstream_field_reaches_the_client_camelcased(shared_emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        circles = await bridge.enum_circles()
        for got, seed in zip(circles, SEED_CIRCLES, strict=True):
            expected = {k[0].lower() + k[1:]: v for k, v in seed.items() if k not in ("Topics", "Member")}
            assert got == expected
        names = [c["circleName"] for c in circles]
        assert any(any(ord(ch) > 127 for ch in n) for n in names)  # non-ASCII survives both hops
        assert all(unicodedata.is_normalized("NFC", n) for n in names)
        topics = await bridge.enum_topics(circles[1]["circleId"])
        seed_topics = SEED_CIRCLES[1]["Topics"]
        assert isinstance(seed_topics, list)
        assert [t["topicName"] for t in topics] == [t["TopicName"] for t in seed_topics]
        assert set(topics[0]) == {k[0].lower() + k[1:] for k in seed_topics[0]}

    run(with_bridge(bridge_env(shared_emulator), body))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_circle_calls_initialize_the_session_on_demand(emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        assert emulator.stats["tokenRequests"] == 0
        assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)
        assert emulator.stats["tokenRequests"] == 1
        assert emulator.stats["authorize"] == 1
        again = await bridge.circle_initialize()  # idempotent: no new token, no new authorize
        assert again["authorized"] is True
        assert emulator.stats["tokenRequests"] == 1
        assert emulator.stats["authorize"] == 1

    run(with_bridge(bridge_env(emulator), body, transport))


def test_lifecycle_gate_and_exit_codes(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator), initialize=False)
        client = bridge.client
        early = await error_of(client.request("circle/enumCircles", {}))
        assert early.code == -32002
        discovered = await client.discover()  # allowed before initialize
        assert discovered["openrpc"].startswith("1.")
        info = await client.initialize()
        assert info["serverInfo"]["name"] == "circle-bridge"
        assert info["protocolVersion"] == "1.1"  # 1.1: the Circle API beyond listing
        twice = await error_of(client.request("initialize", {}))
        assert twice.code == -32600
        assert await client.request("shutdown") is None
        late = await error_of(client.request("circle/enumCircles", {}))
        assert late.code == -32600
        client.notify("exit")
        assert client.process is not None
        assert await asyncio.wait_for(client.process.wait(), 10) == 0

    run(scenario())


def test_exit_without_shutdown_exits_1(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        bridge.client.notify("exit")
        assert bridge.client.process is not None
        assert await asyncio.wait_for(bridge.client.process.wait(), 10) == 1

    run(scenario())


def test_eof_answers_requests_already_sent_then_exits_0(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        pending = asyncio.ensure_future(client.request("circle/enumCircles", {}))
        await asyncio.sleep(0)  # the request is written before stdin closes
        client._writer.close()
        result = await asyncio.wait_for(pending, 20)
        assert len(result["circles"]) == len(SEED_CIRCLES)
        assert client.process is not None
        assert await asyncio.wait_for(client.process.wait(), 10) == 0

    run(scenario())


def test_lsp_clients_extra_initialize_fields_are_accepted(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator), initialize=False)
        result = await bridge.client.request(
            "initialize",
            {"processId": None, "rootUri": None, "capabilities": {}, "trace": "off", "clientInfo": {"name": "nvim"}},
        )
        assert "circle/enumTopics" in result["capabilities"]["methods"]
        await bridge.client.close()

    run(scenario())


def test_several_clients_share_nothing_but_work_concurrently(shared_emulator: Emulator) -> None:
    async def one() -> int:
        async def body(bridge: BridgeClient) -> int:
            return len(await bridge.enum_circles())

        return await with_bridge(bridge_env(shared_emulator), body)

    async def scenario() -> list[int]:
        return list(await asyncio.gather(*(one() for _ in range(3))))

    assert run(scenario()) == [len(SEED_CIRCLES)] * 3


def test_a_token_rejected_at_authorize_is_replaced_by_one_fresh_token(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        emulator.set_faults(serviceDelay=2.0)  # ample time to revoke while the first authorize waits
        pending = asyncio.ensure_future(bridge.circle_initialize())
        await wait_until(lambda: emulator.stats["authorize"] == 1)  # the first token is at the service
        emulator.revoke()  # ... and is no longer valid when the service checks it
        emulator.set_faults(serviceDelay=0.0)
        result = await pending
        assert result["authorized"] is True
        assert emulator.stats["tokenRequests"] == 2
        assert emulator.stats["authorize"] == 2
        assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)

    run(with_bridge(bridge_env(emulator), body))


def test_no_token_is_requested_while_the_service_is_not_running(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        emulator.set_faults(serviceDown=True)
        err = await error_of(bridge.circle_initialize())
        assert err.code == -33001
        assert emulator.stats["tokenRequests"] == 0  # as Circle.initialize: service first
        emulator.set_faults(serviceDown=False)
        assert (await bridge.circle_initialize())["authorized"] is True
        assert emulator.stats["tokenRequests"] == 1

    run(with_bridge(bridge_env(emulator), body))


__all__ = ["emulator", "shared_emulator", "strict_mode"]  # fixtures: every test here runs in both emulator modes
