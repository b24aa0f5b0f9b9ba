"""Token handling through a real bridge: expiry, 401 recovery, single flight, body shapes, https.
Every test runs twice: against the emulator in its default mode and in its strict mode."""

from __future__ import annotations

import asyncio

import pytest

from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from tests.bridge_harness import TRANSPORTS, Transport, bridge_env, error_of, run, wait_until, with_bridge
from tests.emulator_modes import emulator, emulator_running, shared_emulator, strict_mode


def test_token_expiring_mid_session_is_refreshed_unnoticed() -> None:
    with emulator_running(token_ttl=2) as emulator:

        async def body(bridge: BridgeClient) -> int:
            first = await bridge.circle_initialize()
            assert first["expiresIn"] <= 2
            calls = 0

            async def keep_calling() -> None:
                nonlocal calls
                while emulator.stats["authorize"] < 3:  # two refreshes put to use: it outlived 2 tokens
                    assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)
                    calls += 1
                    await asyncio.sleep(0.05)

            await asyncio.wait_for(keep_calling(), 15)
            return calls

        calls = run(with_bridge(bridge_env(emulator), body))
        assert calls > 10
        # proactive refresh before expiry: the service never had to answer 401
        assert emulator.stats["unauthorized"] == 0
        # every token was authorized once, except perhaps one fetched ahead and not yet used
        assert emulator.stats["tokenRequests"] - emulator.stats["authorize"] in (0, 1)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_service_401_gets_new_token_authorize_and_one_retry(emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)
        assert emulator.stats["tokenRequests"] == 1
        emulator.revoke()  # the service forgets every token: next call gets 401
        assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)
        assert emulator.stats["unauthorized"] == 1
        assert emulator.stats["tokenRequests"] == 2
        assert emulator.stats["authorize"] == 2

    run(with_bridge(bridge_env(emulator), body, transport))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_concurrent_callers_share_one_token_request(emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        emulator.set_faults(tokenDelay=0.3)  # all callers arrive while the first fetch is in flight
        calls = [bridge.circle_initialize() for _ in range(10)] + [bridge.enum_circles() for _ in range(10)]
        results = await asyncio.gather(*calls)
        assert all(r for r in results)
        assert emulator.stats["tokenRequests"] == 1
        assert emulator.stats["authorize"] == 1

    run(with_bridge(bridge_env(emulator), body, transport))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_identical_concurrent_reads_are_coalesced(emulator: Emulator, transport: Transport) -> None:
    async def body(bridge: BridgeClient) -> None:
        await bridge.circle_initialize()
        emulator.set_faults(serviceDelay=0.3)
        results = await asyncio.gather(*(bridge.enum_circles() for _ in range(8)))
        assert all(len(r) == len(SEED_CIRCLES) for r in results)
        assert emulator.stats["enumCircles"] < 8
        before = emulator.stats["enumCircles"]
        await bridge.enum_circles()  # not concurrent: a fresh call, never a stale cached answer
        assert emulator.stats["enumCircles"] == before + 1

    run(with_bridge(bridge_env(emulator), body, transport))


def test_plain_object_token_body_and_millisecond_nonces() -> None:
    with emulator_running(token_body="object") as emulator:

        async def body(bridge: BridgeClient) -> None:
            assert (await bridge.circle_initialize())["authorized"] is True

        run(with_bridge(bridge_env(emulator, CIRCLE_NONCE_UNIT="ms"), body))
        assert emulator.stats["tokenRequests"] == 1


def test_https_service_with_ca_file() -> None:
    with emulator_running(https=True) as emulator:
        assert emulator.service_url.startswith("https://127.0.0.1:")

        async def body(bridge: BridgeClient) -> None:
            assert await bridge.is_service_running() is True
            assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)

        run(with_bridge(bridge_env(emulator), body))


def test_https_service_without_trusting_its_ca_is_a_configuration_error() -> None:
    with emulator_running(https=True) as emulator:
        env = bridge_env(emulator)
        del env["CIRCLE_CA_FILE"]

        async def body(bridge: BridgeClient) -> None:
            err = None
            try:
                await bridge.enum_circles()
            except Exception as exc:
                err = exc
            assert err is not None
            assert getattr(err, "code", None) == -33007
            assert "CIRCLE_CA_FILE" in str(err)

        run(with_bridge(env, body))


def test_wait_until_is_bounded() -> None:
    async def never() -> None:
        await wait_until(lambda: False, within=0.1)

    with pytest.raises(AssertionError, match="in time"):
        run(never())


def test_refresh_runs_ahead_so_no_call_waits_for_the_token_endpoint() -> None:
    # a 10 s token (9 s usable): the refresh starts with 1.8 s left, in the background; a slow
    # token endpoint (0.6 s) finishes it with 1.2 s left, before callers would have to wait (0.9 s)
    with emulator_running(token_ttl=10) as emulator:

        async def body(bridge: BridgeClient) -> float:
            await bridge.circle_initialize()
            emulator.set_faults(tokenDelay=0.6)
            loop = asyncio.get_running_loop()
            slowest = 0.0
            while emulator.stats["authorize"] < 2:  # until the refreshed token was put to use
                started = loop.time()
                await bridge.enum_circles()
                slowest = max(slowest, loop.time() - started)
                await asyncio.sleep(0.05)
            return slowest

        slowest = run(with_bridge(bridge_env(emulator), body), timeout=30)
        assert emulator.stats["tokenRequests"] == 2
        assert emulator.stats["unauthorized"] == 0
        assert slowest < 0.5  # no call sat through the 0.6 s token request


def test_wrong_secret_fails_at_once_not_retryable_and_names_the_cause(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        err = await error_of(bridge.circle_initialize())
        assert err.code == -33002
        assert err.data["httpStatus"] == 401
        assert err.data["retryable"] is False
        assert "CIRCLE_SECRET" in err.data["likelyCause"]
        assert emulator.stats["tokenRequests"] == 1  # no nonce-retry loop for bad credentials

    run(with_bridge(bridge_env(emulator, CIRCLE_SECRET="not-the-secret"), body))


def test_wrong_app_key_fails_at_once_and_names_it(emulator: Emulator) -> None:
    async def body(bridge: BridgeClient) -> None:
        err = await error_of(bridge.circle_initialize())
        assert err.code == -33002
        assert err.data["retryable"] is False
        assert "CIRCLE_APP_KEY" in err.data["likelyCause"]
        assert emulator.stats["tokenRequests"] == 1

    run(with_bridge(bridge_env(emulator, CIRCLE_APP_KEY="appkey-nobody-knows"), body))


# -- Circle's disputed details: each bridge setting against the emulator mode that reads it so ------


def test_raw_query_encoding_against_a_server_that_decodes_nothing() -> None:
    with emulator_running(token_query="raw", strict=True) as emulator:

        async def body(bridge: BridgeClient) -> None:
            assert (await bridge.circle_initialize())["authorized"] is True

        run(with_bridge(bridge_env(emulator, CIRCLE_TOKEN_QUERY_ENCODING="raw"), body))

        async def percent(bridge: BridgeClient) -> None:
            # control: a percent-encoded signature (it always ends in %3D) fails on such a server
            err = await error_of(bridge.circle_initialize())
            assert err.code == -33002
            assert err.data["retryable"] is False

        run(with_bridge(bridge_env(emulator), percent))


def test_percent_encoding_against_a_standard_form_parser() -> None:
    with emulator_running(token_query="form") as emulator:

        async def body(bridge: BridgeClient) -> None:
            assert (await bridge.circle_initialize())["authorized"] is True
            for _ in range(2):  # each revoke costs a 401, a new token and so a new signature
                emulator.revoke()
                assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)

        run(with_bridge(bridge_env(emulator), body))
        assert emulator.stats["tokenRequests"] == 3  # three signatures; a raw '+' would have broken any
        assert emulator.stats["tokenRejected"] == 0


def test_question_mark_signed_string_variant() -> None:
    with emulator_running(signed_string="question") as emulator:

        async def body(bridge: BridgeClient) -> None:
            assert (await bridge.circle_initialize())["authorized"] is True

        run(with_bridge(bridge_env(emulator, CIRCLE_SIGN_QUESTION_MARK="true"), body))

        async def plain(bridge: BridgeClient) -> None:
            err = await error_of(bridge.circle_initialize())
            assert err.data["upstreamMessage"] == "Invalid signature"
            assert "CIRCLE_SIGN_QUESTION_MARK" in err.data["likelyCause"]

        run(with_bridge(bridge_env(emulator), plain))


def test_token_url_with_a_trailing_question_mark_sends_exactly_five_parameters() -> None:
    with emulator_running(exact_query=True) as emulator:  # extra or empty parameters are a 400 here

        async def body(bridge: BridgeClient) -> None:
            assert (await bridge.circle_initialize())["authorized"] is True

        run(with_bridge(bridge_env(emulator, CIRCLE_TOKEN_URL=emulator.token_url + "?"), body))
        assert emulator.stats["tokenRejected"] == 0


def test_numeric_status_result_is_success() -> None:
    with emulator_running(status_result="number") as emulator:

        async def body(bridge: BridgeClient) -> None:
            assert (await bridge.circle_initialize())["authorized"] is True
            assert len(await bridge.enum_circles()) == len(SEED_CIRCLES)
            err = await error_of(bridge.enum_topics("no-such-circle"))  # Result: 0 is still a failure
            assert err.code == -33004
            assert err.data["upstreamMessage"] == "Circle not found"

        run(with_bridge(bridge_env(emulator), body))


def test_token_endpoint_redirect_is_followed() -> None:
    with emulator_running(token_redirect=True) as emulator:

        async def body(bridge: BridgeClient) -> None:
            assert (await bridge.circle_initialize())["authorized"] is True

        run(with_bridge(bridge_env(emulator), body))
        assert emulator.stats["tokenRequests"] == 1  # the redirect itself is not a token request


def test_an_error_object_in_a_200_reply_keeps_the_upstream_message() -> None:
    with emulator_running(token_error_status=200) as emulator:

        async def body(bridge: BridgeClient) -> None:
            err = await error_of(bridge.circle_initialize())
            assert err.code == -33002
            assert err.data["httpStatus"] == 200
            assert err.data["upstreamMessage"] == "Invalid signature"
            assert err.data["retryable"] is False

        run(with_bridge(bridge_env(emulator, CIRCLE_SECRET="not-the-secret"), body))


__all__ = ["emulator", "shared_emulator", "strict_mode"]  # fixtures: every test here runs in both emulator modes
