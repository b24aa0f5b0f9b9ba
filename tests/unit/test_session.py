"""The session's timing and sharing rules, in memory: fake token sources and a fake CircleService,
an injectable clock, no sockets, no timers, no sleeps."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import pytest

from circle_bridge._errors import AuthorizationRejected, BadConfiguration, ServiceNotRunning, TokenNeeded
from circle_bridge._session import Session, TokenProvider
from circle_bridge._upstream import EncodedList, Identity, ServiceClient, ServiceProbe, Unauthorized

T = TypeVar("T")
LIFETIME = 100.0  # soft refresh at 20 s left (t = 80), hard at 10 s left (t = 90)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def jwt(serial: int, lifetime: float = LIFETIME, subject: str = "userman", issued: float = 0.5) -> str:
    def part(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    # float iat: no one-second truncation margin, so the lifetime is exactly `lifetime`
    claims = {"iat": issued, "exp": issued + lifetime, "primarysid": subject, "n": serial}
    return f"{part({'alg': 'HS256'})}.{part(claims)}.sig{serial}"


class FakeSource:
    name = "secret"
    issues_fresh = True

    def __init__(self) -> None:
        self.fetches = 0
        self.gate: asyncio.Event | None = None  # when set to an unset Event, fetches wait for it
        self.fail: Exception | None = None

    async def fetch(self) -> str:
        self.fetches += 1
        serial = self.fetches
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        return jwt(serial)

    async def aclose(self) -> None:
        return None


class FakeService:
    base_url = "http://127.0.0.1:31415"

    def __init__(self) -> None:
        self.running = True
        self.probes = 0
        self.authorized: list[str] = []
        self.reject_authorize: int = 0  # how many authorize calls to reject
        self.unauthorized: int = 0  # how many enumCircles calls answer 401
        self.calls = 0
        self.gate: asyncio.Event | None = None
        self.cancelled = 0

    async def probe(self) -> ServiceProbe:
        self.probes += 1
        return ServiceProbe(running=self.running)

    async def authorize(self, token: str) -> None:
        if self.reject_authorize:
            self.reject_authorize -= 1
            raise AuthorizationRejected("Token signature is invalid", httpStatus=401)
        self.authorized.append(token)

    async def enum_circles(self, token: str) -> EncodedList:
        self.calls += 1
        if self.unauthorized:
            self.unauthorized -= 1
            raise Unauthorized("enumCircles")
        assert token in self.authorized
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        return EncodedList.of([{"circleId": "c1"}])

    async def aclose(self) -> None:
        return None


def make_session(clock: FakeClock, source: FakeSource, service: FakeService) -> Session:
    return Session(Identity("cust", "app", "userman"), source, cast(ServiceClient, service), clock=clock)


def run(body: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(body(), 10)

    return asyncio.run(bounded())


async def settle() -> None:
    """Let every ready task run until nothing changes (no timers involved)."""
    for _ in range(20):
        await asyncio.sleep(0)


# -- single flight and refresh ahead ----------------------------------------------------------


def test_concurrent_callers_share_one_fetch() -> None:
    async def body() -> None:
        source = FakeSource()
        source.gate = asyncio.Event()
        provider = TokenProvider(source, clock=FakeClock())
        callers = [asyncio.ensure_future(provider.token()) for _ in range(50)]
        await settle()
        assert source.fetches == 1
        source.gate.set()
        tokens = await asyncio.gather(*callers)
        assert {t.value for t in tokens} == {jwt(1)}
        assert tokens[0].lifetime == LIFETIME

    run(body)


def test_refresh_starts_in_the_background_below_a_fifth_and_callers_wait_only_below_a_tenth() -> None:
    async def body() -> None:
        clock, source = FakeClock(), FakeSource()
        provider = TokenProvider(source, clock=clock)
        first = await provider.token()
        clock.now += 79.9  # 20.1 s left: no refresh yet
        assert await provider.token() is first
        assert source.fetches == 1

        source.gate = asyncio.Event()
        clock.now += 0.2  # 19.9 s left: refresh ahead, the caller is not kept waiting
        assert await provider.token() is first
        await settle()
        assert source.fetches == 2  # exactly one background fetch, however many callers come
        assert await provider.token() is first
        assert source.fetches == 2

        clock.now += 10.0  # 9.9 s left: now callers wait for the new token
        waiting = asyncio.ensure_future(provider.token())
        await settle()
        assert not waiting.done()
        source.gate.set()
        second = await waiting
        assert second.value == jwt(2)
        assert second.obtained_at == pytest.approx(1000.0 + 80.1)  # stamped when it was requested

    run(body)


def test_refresh_thresholds_are_capped_for_long_tokens() -> None:
    async def body() -> None:
        clock, source = FakeClock(), FakeSource()
        provider = TokenProvider(source, clock=clock)
        source_long = jwt(1, lifetime=3600.0)

        async def long_fetch() -> str:
            source.fetches += 1
            return source_long

        source.fetch = long_fetch  # type: ignore[method-assign]
        await provider.token()
        clock.now += 3600 - 121  # 121 s left: a fifth would be 720 s, but the cap is 2 minutes
        await provider.token()
        assert source.fetches == 1
        clock.now += 2  # 119 s left
        await provider.token()
        await settle()
        assert source.fetches == 2

    run(body)


def test_a_failed_background_refresh_keeps_the_current_token_and_is_tried_again() -> None:
    async def body() -> None:
        clock, source = FakeClock(), FakeSource()
        provider = TokenProvider(source, clock=clock)
        first = await provider.token()
        clock.now += 85
        source.fail = RuntimeError("token endpoint down")
        assert await provider.token() is first
        await settle()
        assert source.fetches == 2
        assert await provider.token() is first  # the next caller starts another attempt
        await settle()
        assert source.fetches == 3
        source.fail = None
        await provider.token()
        await settle()
        assert provider.current is not None
        assert provider.current.value == jwt(4)

    run(body)


def test_a_cancelled_caller_does_not_cancel_the_fetch_others_wait_for() -> None:
    async def body() -> None:
        source = FakeSource()
        source.gate = asyncio.Event()
        provider = TokenProvider(source, clock=FakeClock())
        leaving = asyncio.ensure_future(provider.token())
        staying = asyncio.ensure_future(provider.token())
        await settle()
        leaving.cancel()
        await settle()
        source.gate.set()
        assert (await staying).value == jwt(1)
        assert source.fetches == 1

    run(body)


# -- the session: authorization, 401, coalescing ----------------------------------------------


def test_service_is_checked_before_any_token_is_fetched() -> None:
    async def body() -> None:
        source, service = FakeSource(), FakeService()
        service.running = False
        session = make_session(FakeClock(), source, service)
        with pytest.raises(ServiceNotRunning):
            await session.ensure_authorized()
        assert source.fetches == 0
        service.running = True
        auth = await session.ensure_authorized()
        assert auth.end_user_id == "userman"
        assert auth.expires_in == LIFETIME
        assert source.fetches == 1

    run(body)


def test_a_token_rejected_at_authorize_is_dropped_and_one_fresh_token_tried() -> None:
    async def body() -> None:
        source, service = FakeSource(), FakeService()
        session = make_session(FakeClock(), source, service)
        service.reject_authorize = 1
        await session.ensure_authorized()
        assert source.fetches == 2
        assert service.authorized == [jwt(2)]  # the rejected token was never sent again

        service.reject_authorize = 2
        session._tokens.drop_current()
        with pytest.raises(AuthorizationRejected, match="fresh token"):
            await session.ensure_authorized()
        assert source.fetches == 4  # one fresh token, not a loop

    run(body)


def test_401_takes_a_new_token_authorizes_and_retries_once() -> None:
    async def body() -> None:
        source, service = FakeSource(), FakeService()
        session = make_session(FakeClock(), source, service)
        await session.enum_circles()
        service.unauthorized = 1
        assert (await session.enum_circles()).items() == [{"circleId": "c1"}]
        assert source.fetches == 2
        assert service.authorized == [jwt(1), jwt(2)]
        service.unauthorized = 2
        with pytest.raises(AuthorizationRejected) as raised:
            await session.enum_circles()
        assert raised.value.data["httpStatus"] == 401
        assert source.fetches == 3

    run(body)


def test_identical_reads_share_one_call_until_the_last_waiter_leaves() -> None:
    async def body() -> None:
        source, service = FakeSource(), FakeService()
        session = make_session(FakeClock(), source, service)
        await session.ensure_authorized()
        service.gate = asyncio.Event()
        first = asyncio.ensure_future(session.enum_circles())
        second = asyncio.ensure_future(session.enum_circles())
        await settle()
        assert service.calls == 1
        first.cancel()
        await settle()
        assert service.cancelled == 0  # the other waiter still wants it
        service.gate.set()
        assert (await second).items() == [{"circleId": "c1"}]
        assert service.calls == 1

        service.gate = asyncio.Event()
        only = asyncio.ensure_future(session.enum_circles())
        await settle()
        assert service.calls == 2  # a new call, not the finished one
        only.cancel()
        await settle()
        assert service.cancelled == 1  # its last waiter left: the upstream call is cancelled
        service.gate.set()
        assert (await session.enum_circles()).items() == [{"circleId": "c1"}]
        assert service.calls == 3  # a later read never joins the abandoned call

    run(body)


# -- client-supplied tokens ------------------------------------------------------------------


def test_client_tokens_ask_for_a_token_when_missing_and_again_near_expiry() -> None:
    async def body() -> None:
        clock, service = FakeClock(), FakeService()
        session = Session.for_client_tokens(Identity("", "app", ""), cast(ServiceClient, service), clock=clock)
        heard: list[dict[str, Any]] = []
        remove = session.on_token_needed(heard.append)
        assert session.token_source == "client"

        with pytest.raises(TokenNeeded):
            await session.enum_circles()
        with pytest.raises(TokenNeeded):
            await session.enum_circles()
        assert heard == [{"reason": "missing", "expiresIn": 0.0}]  # told once, not per call

        # A client's token may be older than this moment, so its lifetime also counts from the wall
        # clock (minus a second of margin): these are issued now, by the wall clock.
        auth = await session.accept_client_token(jwt(1, subject="alice", issued=time.time()))
        assert auth.end_user_id == "alice"  # from the token's primarysid: no CIRCLE_END_USER_ID needed
        assert (await session.enum_circles()).items() == [{"circleId": "c1"}]

        clock.now += 85  # 15 s left: below the refresh-ahead point
        assert (await session.enum_circles()).items() == [{"circleId": "c1"}]  # still served meanwhile
        await settle()
        assert heard[-1]["reason"] == "expiring"
        assert 13.0 < heard[-1]["expiresIn"] <= 15.0
        assert len(heard) == 2

        second = jwt(2, subject="alice", issued=time.time())
        await session.accept_client_token(second)
        assert service.authorized[-1] == second
        clock.now += 200  # the new token expired too, and no one brought another
        with pytest.raises(TokenNeeded):
            await session.enum_circles()
        assert heard[-1]["reason"] == "expired"
        remove()
        await session.aclose()

    run(body)


def test_a_token_in_initialize_is_refused_unless_the_source_is_client() -> None:
    async def body() -> None:
        session = make_session(FakeClock(), FakeSource(), FakeService())
        with pytest.raises(BadConfiguration, match="CIRCLE_TOKEN_SOURCE=client"):
            await session.accept_client_token(jwt(1))

    run(body)


def test_a_client_token_with_a_line_break_is_refused_before_it_reaches_a_header() -> None:
    async def body() -> None:
        session = Session.for_client_tokens(Identity("", "app", ""), cast(ServiceClient, FakeService()))
        with pytest.raises(Exception, match="control or non-ASCII") as raised:
            await session.accept_client_token("abc\r\nX-Evil: 1")
        assert getattr(raised.value, "code", None) == -33005

    run(body)
