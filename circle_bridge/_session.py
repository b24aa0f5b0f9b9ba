"""The shared Circle session: one per identity, used by every connection.

It owns the token (single-flight acquisition, refresh ahead of expiry), the service authorization,
the one fresh token after a rejected ``authorize`` and the one retry after an HTTP 401. Identical
concurrent reads are coalesced into one upstream call. Everything here runs on one event loop, so
plain asyncio primitives suffice. Time comes from an injectable clock (``time.monotonic`` by
default) so the timing rules can be tested in memory.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from ._config import Settings
from ._errors import AuthorizationRejected, BadConfiguration, ServiceNotRunning, TokenNeeded
from ._redaction import REDACTOR
from ._upstream import (
    BackendTokenSource,
    CommandTokenSource,
    EncodedList,
    Identity,
    IssuedToken,
    OperationReply,
    ServiceClient,
    ServiceProbe,
    SignedTokenSource,
    TokenEndpoint,
    TokenSource,
    Unauthorized,
    check_bearer,
    parse_service_paths,
    token_lifetime,
    token_subject,
    trust_context,
)

log = logging.getLogger("circle_bridge.session")

T = TypeVar("T")
Clock = Callable[[], float]

# Refresh ahead: when less than 20 % of a token's lifetime is left (at most 2 minutes), a new one
# is fetched in the background while callers keep using the current one; only when less than 10 %
# (at most 1 minute) is left do callers wait for the new token. A 10-minute token is renewed
# 2 minutes early without any caller waiting, unless the token endpoint takes over a minute.
SOFT_SHARE, SOFT_CAP = 0.2, 120.0
HARD_SHARE, HARD_CAP = 0.1, 60.0


def refresh_margin(token: IssuedToken, share: float, cap: float) -> float:
    return min(cap, token.lifetime * share)


@dataclass(frozen=True)
class Authorization:
    """What a client may learn about the session: never the token itself."""

    end_user_id: str
    expires_in: float


@dataclass
class SessionCounters:
    """Upstream traffic since the session opened, for `circle-bridge status`: what sharing saved."""

    service_calls: int = 0  # requests to CircleService (reads, writes, authorize, liveness probes)
    coalesced: int = 0  # reads that joined an identical call in flight instead of making one
    token_requests: int = 0  # token fetches started from the source (each may retry a nonce)


@dataclass
class _Shared:
    future: asyncio.Future[Any]
    waiters: int = 0


class TokenProvider:
    """Hands out a valid token. N concurrent callers cause at most one fetch from the source.

    ``before_fetch`` runs first in every fetch (the session checks that CircleService runs, as
    Circle's ``initialize`` does); ``on_token`` sees each token that arrives.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        clock: Clock = time.monotonic,
        before_fetch: Callable[[], Awaitable[None]] | None = None,
        on_token: Callable[[IssuedToken], None] | None = None,
        counters: SessionCounters | None = None,
    ) -> None:
        self.counters = counters or SessionCounters()
        self._source = source
        self._clock = clock
        self._before_fetch = before_fetch
        self._on_token = on_token
        self._current: IssuedToken | None = None
        self._pending: asyncio.Task[IssuedToken] | None = None

    @property
    def current(self) -> IssuedToken | None:
        return self._current

    def expires_in(self, token: IssuedToken) -> float:
        return max(0.0, token.expires_at - self._clock())

    def _left_above(self, token: IssuedToken, share: float, cap: float) -> bool:
        return self._clock() < token.expires_at - refresh_margin(token, share, cap)

    async def _fetch(self) -> IssuedToken:
        if self._before_fetch is not None:
            await self._before_fetch()
        started = self._clock()
        value = check_bearer(await self._source.fetch(), self._source.name)
        REDACTOR.register_transient(value)
        return IssuedToken(value, token_lifetime(value, fresh=self._source.issues_fresh), started)

    async def token(self) -> IssuedToken:
        current = self._current
        if current is not None and self._left_above(current, SOFT_SHARE, SOFT_CAP):
            return current
        if self._pending is None:
            self.counters.token_requests += 1
            self._pending = asyncio.ensure_future(self._fetch())
            self._pending.add_done_callback(self._settle)
        if current is not None and self._left_above(current, HARD_SHARE, HARD_CAP):
            return current  # the refresh runs ahead, in the background
        # shield: one caller being cancelled must not cancel the fetch the others wait for
        return await asyncio.shield(self._pending)

    def _settle(self, task: asyncio.Task[IssuedToken]) -> None:
        self._pending = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self._current = task.result()
            if self._on_token is not None:
                self._on_token(self._current)
        elif self._current is not None:
            # a failed background refresh: the next caller tries again; the failure is logged here
            # because no caller may be waiting to see it
            level = logging.INFO if isinstance(exc, TokenNeeded) else logging.WARNING
            log.log(level, "background token refresh failed: %s", exc)

    def invalidate(self, token: IssuedToken) -> None:
        """Drop ``token`` if it is still the current one: the next caller fetches a new one."""
        if self._current is token:
            self._current = None

    def drop_current(self) -> None:
        self._current = None

    async def aclose(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()


TokenNeededListener = Callable[[dict[str, Any]], None]


class ClientTokenSource:
    """``CIRCLE_TOKEN_SOURCE=client``: the app brings tokens from its own backend, with
    ``circle/initialize {token}``. Asked for a token it has not been given, it tells the listeners
    (the connections send ``circle/tokenNeeded``) and fails with TokenNeeded."""

    name = "client"
    issues_fresh = False  # the app's backend may hand out a token it made minutes ago

    def __init__(self) -> None:
        self._offered: str | None = None
        self.on_needed: Callable[[], None] = lambda: None  # the Session binds its own

    def offer(self, token: str) -> None:
        self._offered = token

    async def fetch(self) -> str:
        token, self._offered = self._offered, None
        if token is None:
            self.on_needed()
            raise TokenNeeded(
                "send circle/initialize with a token from your backend (CIRCLE_TOKEN_SOURCE=client)",
                tokenSource="client",
            )
        return token

    async def aclose(self) -> None:
        return None


class Session:
    """The process-wide Circle session, shared by every connection.

    Calls raise the catalogue's errors: BadConfiguration (missing or invalid settings),
    ServiceNotRunning, TokenRequestFailed / TokenNeeded (no token), AuthorizationRejected (even a
    fresh token was refused), CircleOperationFailed, UpstreamMalformed, UpstreamTimeout.
    """

    def __init__(
        self,
        identity: Identity,
        source: TokenSource,
        service: ServiceClient,
        config_error: BadConfiguration | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        self.identity = identity
        self._config_error = config_error
        self._clock = clock
        self._source = source
        self._listeners: list[TokenNeededListener] = []
        self._needed_sent: str | None = None  # the reason last told to listeners, so each is told once
        self._expiry_timer: asyncio.TimerHandle | None = None
        self.counters = SessionCounters()
        self._tokens = TokenProvider(
            source, clock=clock, before_fetch=self._require_service, on_token=self._on_token, counters=self.counters
        )
        self._service = service
        self._authorized: IssuedToken | None = None
        self._authorizing: dict[str, asyncio.Task[None]] = {}
        self._coalesced: dict[tuple[Any, ...], _Shared] = {}
        if isinstance(source, ClientTokenSource):
            source.on_needed = self._token_needed

    @classmethod
    def for_client_tokens(
        cls,
        identity: Identity,
        service: ServiceClient,
        config_error: BadConfiguration | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> Session:
        """A session whose tokens come from the clients (``CIRCLE_TOKEN_SOURCE=client``)."""
        return cls(identity, ClientTokenSource(), service, config_error, clock=clock)

    @property
    def service_url(self) -> str:
        return self._service.base_url

    @property
    def token_source(self) -> str:
        """The name of the token source (``secret``, ``command``, ``url``, ``client``), never its contents."""
        return self._source.name

    async def is_service_running(self) -> bool:
        self.counters.service_calls += 1
        return (await self._service.probe()).running

    async def probe_service(self) -> ServiceProbe:
        """Is CircleService there, and is its certificate trusted (https)?"""
        self.counters.service_calls += 1
        return await self._service.probe()

    async def _require_service(self) -> None:
        """Circle's own ``initialize`` checks the service before it asks for a token: no token
        request (and, with a backend source, no backend call) for a service that is not there."""
        self.counters.service_calls += 1
        probe = await self._service.probe()
        if probe.tls_problem is not None:
            raise BadConfiguration(probe.tls_problem, invalid=["CIRCLE_CA_FILE", "CIRCLE_SERVICE_URL"])
        if not probe.running:
            raise ServiceNotRunning(
                f"no answer from {self._service.base_url}; start CircleService", serviceUrl=self._service.base_url
            )

    # -- client-supplied tokens and circle/tokenNeeded ------------------------------------------

    def on_token_needed(self, listener: TokenNeededListener) -> Callable[[], None]:
        """Call ``listener(params)`` whenever the session needs a token from the clients (only with
        ``CIRCLE_TOKEN_SOURCE=client``). ``params`` are the ``circle/tokenNeeded`` params. Returns
        a function that removes the listener."""
        self._listeners.append(listener)

        def remove() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return remove

    def _token_needed(self) -> None:
        current = self._tokens.current
        expires_in = self._tokens.expires_in(current) if current is not None else 0.0
        reason = "missing" if current is None else ("expiring" if expires_in > 0 else "expired")
        if reason == self._needed_sent:
            return
        self._needed_sent = reason
        params = {"reason": reason, "expiresIn": round(expires_in, 3)}
        log.info("asking clients for a token (%s)", reason)
        for listener in list(self._listeners):
            try:
                listener(params)
            except Exception:  # one broken connection must not keep the others from hearing it
                log.exception("a circle/tokenNeeded listener failed")

    def _on_token(self, token: IssuedToken) -> None:
        if not isinstance(self._source, ClientTokenSource):
            return
        self._needed_sent = None
        # Ask ahead, at the same point where a signing source would start its background refresh,
        # even if no call comes along to notice it.
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        delay = token.expires_at - refresh_margin(token, SOFT_SHARE, SOFT_CAP) - self._clock()
        self._expiry_timer = asyncio.get_running_loop().call_later(max(0.0, delay), self._token_needed)

    async def accept_client_token(self, token: str) -> Authorization:
        """Use ``token``, brought by a client (``circle/initialize {token}``), from now on."""
        if not isinstance(self._source, ClientTokenSource):
            raise BadConfiguration(
                f"this bridge gets its tokens from its {self._source.name!r} source; a token in "
                "circle/initialize is accepted only with CIRCLE_TOKEN_SOURCE=client",
                invalid=["CIRCLE_TOKEN_SOURCE"],
            )
        check_bearer(token, "client")
        current = self._tokens.current
        if current is None or current.value != token:
            self._source.offer(token)
            self._tokens.drop_current()
        return await self.ensure_authorized()

    # -- authorization --------------------------------------------------------------------------

    async def _authorize(self, token: IssuedToken) -> IssuedToken:
        if self._authorized is token:
            return token
        task = self._authorizing.get(token.value)
        if task is None:
            self.counters.service_calls += 1
            task = asyncio.ensure_future(self._service.authorize(token.value))
            self._authorizing[token.value] = task
            key = token.value

            def forget(done: asyncio.Task[None]) -> None:
                self._authorizing.pop(key, None)
                if not done.cancelled():
                    done.exception()  # retrieved: every waiter may have gone; they got it if not

            task.add_done_callback(forget)
        await asyncio.shield(task)
        self._authorized = token
        return token

    async def _authorized_token(self) -> IssuedToken:
        if self._config_error is not None:
            # the same instance each time: without resetting its traceback, every raise would add
            # frames to it, and each request of a misconfigured bridge would leak a few objects
            raise self._config_error.with_traceback(None)
        token = await self._tokens.token()
        try:
            return await self._authorize(token)
        except AuthorizationRejected:
            # The rejected token is never sent again (issue 11 item 5). A token the client brought
            # cannot be replaced here: the client hears it at once.
            self._tokens.invalidate(token)
            if isinstance(self._source, ClientTokenSource):
                raise
            log.info("CircleService rejected a token at authorize; trying one fresh token")
        try:
            return await self._authorize(await self._tokens.token())
        except AuthorizationRejected as exc:
            raise AuthorizationRejected(
                f"{exc.detail} (also with a fresh token)" if exc.detail else "also with a fresh token", **exc.data
            ) from None

    async def ensure_authorized(self) -> Authorization:
        token = await self._authorized_token()
        return Authorization(
            end_user_id=self.identity.end_user_id or token_subject(token.value) or "",
            expires_in=self._tokens.expires_in(token),
        )

    async def _with_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        """Run ``call`` with an authorized token; on HTTP 401 take a new token, authorize, retry once."""
        token = await self._authorized_token()
        try:
            self.counters.service_calls += 1
            return await call(token.value)
        except Unauthorized:
            log.info("CircleService answered 401; taking a new token and retrying once")
            self._tokens.invalidate(token)
            if self._authorized is token:
                self._authorized = None
        token = await self._authorized_token()
        try:
            self.counters.service_calls += 1
            return await call(token.value)
        except Unauthorized:
            raise AuthorizationRejected("CircleService answered 401 even with a fresh token", httpStatus=401) from None

    async def _coalesce(self, key: tuple[Any, ...], make: Callable[[], Awaitable[T]]) -> T:
        """Concurrent identical reads share one upstream call and its result (or error). The call
        is cancelled when every caller waiting on it is, so a later caller never joins a call that
        nobody wanted any more."""
        entry = self._coalesced.get(key)
        if entry is None:
            shared = asyncio.ensure_future(make())
            entry = self._coalesced[key] = _Shared(shared)

            def forget(done: asyncio.Future[Any]) -> None:
                if self._coalesced.get(key) is entry:
                    del self._coalesced[key]
                if not done.cancelled():
                    done.exception()  # retrieved: waiters that left must not leave a loop warning

            shared.add_done_callback(forget)
        else:
            self.counters.coalesced += 1
        entry.waiters += 1
        try:
            result: T = await asyncio.shield(entry.future)
            return result
        except asyncio.CancelledError:
            if not entry.future.done() and entry.waiters == 1:
                entry.future.cancel()
                self._coalesced.pop(key, None)
            raise
        finally:
            entry.waiters -= 1

    async def enum_circles(self) -> EncodedList:
        return await self._coalesce(("enumCircles",), lambda: self._with_token(self._service.enum_circles))

    async def enum_topics(self, circle_id: str) -> EncodedList:
        return await self._coalesce(
            ("enumTopics", circle_id),
            lambda: self._with_token(lambda token: self._service.enum_topics(token, circle_id)),
        )

    async def call(
        self,
        operation: str,
        fields: Mapping[str, Any],
        *,
        extra_time: float = 0.0,
        as_customer: bool = False,
    ) -> OperationReply:
        """Any other CircleService operation, authorized, with the one retry after a 401. Never
        coalesced: a read must see every write that finished before it started.

        ``as_customer`` adds ``customerId`` (the configured CustomerCode) and ``customerToken``: the
        bearer token of this very call, which CircleService already holds, so nothing new leaves
        the machine (createCircle, docs/circle-api.md §3.5)."""

        def once(token: str) -> Awaitable[OperationReply]:
            body = dict(fields)
            if as_customer:
                body["customerId"] = self.identity.customer_id
                body["customerToken"] = token
            return self._service.call(token, operation, body, extra_time=extra_time)

        return await self._with_token(once)

    def state(self) -> dict[str, Any]:
        """For `circle-bridge status`: whether the session is usable and for how long, no secret."""
        token = self._authorized
        left = None if token is None else self._tokens.expires_in(token)
        return {
            "configured": self._config_error is None,
            "authorized": left is not None and left > 0,
            "tokenExpiresIn": None if left is None else round(left, 1),
            "endUserId": self.identity.end_user_id or None,
            "tokenSource": self._source.name,
        }

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._expiry_timer is not None:
            self._expiry_timer.cancel()
        await self._tokens.aclose()
        await self._service.aclose()
        await self._source.aclose()


def _service_paths(settings: Settings) -> dict[str, str]:
    try:
        return parse_service_paths(settings.service_paths)
    except ValueError as exc:
        raise BadConfiguration(f"CIRCLE_SERVICE_PATHS: {exc}", invalid=["CIRCLE_SERVICE_PATHS"]) from None


def _verify_context(settings: Settings) -> ssl.SSLContext:
    """The OS trust store (plus CA files) when anything is reached over https, or CIRCLE_CA_FILE is
    set (so a bad one is still reported); otherwise a context that trusts no CA, never used: every
    URL is plain http. Loading the store and $SSL_CERT_FILE cost ~35 ms of every cold start (issue 10)."""
    urls = (settings.service_url, settings.token_url, settings.token_backend_url or "")
    if settings.ca_file or any(u.lower().startswith("https:") for u in urls):
        return trust_context(settings.ca_file)
    return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies certificates, and trusts no CA


def open_session(settings: Settings, *, clock: Clock = time.monotonic) -> Session:
    """The process-wide session. Missing credentials do not stop the server: calls that need them
    fail with BadConfiguration naming the missing settings, `circle/isServiceRunning` still works."""
    config_error: BadConfiguration | None = None
    paths: dict[str, str] = {}
    try:
        customer_id, app_key, end_user_id, secret = settings.require_credentials()
        verify: ssl.SSLContext | bool = _verify_context(settings)
        paths = _service_paths(settings)
    except BadConfiguration as exc:
        config_error = exc
        customer_id = settings.customer_id or ""
        app_key = settings.app_key or ""
        end_user_id = settings.end_user_id or ""
        secret = settings.secret or ""
        verify = True
    identity = Identity(customer_id, app_key, end_user_id)
    service = ServiceClient(
        settings.service_url,
        app_key,
        timeout=settings.service_timeout,
        verify=verify,
        max_body=settings.max_upstream_bytes,
        paths=paths,
    )
    kind = settings.effective_token_source
    if kind == "client":
        return Session.for_client_tokens(identity, service, config_error, clock=clock)
    source: TokenSource
    if kind == "command" and settings.token_command:
        source = CommandTokenSource(
            settings.token_command, timeout=settings.token_timeout, max_output=settings.max_upstream_bytes
        )
    elif kind == "url" and settings.token_backend_url:
        source = BackendTokenSource(
            settings.token_backend_url,
            header=settings.token_backend_header,
            timeout=settings.token_timeout,
            verify=verify,
            max_body=settings.max_upstream_bytes,
        )
    else:
        endpoint = TokenEndpoint(
            settings.token_url,
            timeout=settings.token_timeout,
            nonce_unit=settings.nonce_unit,
            verify=verify,
            query_encoding=settings.token_query_encoding,
            sign_question_mark=settings.sign_question_mark,
            max_body=settings.max_upstream_bytes,
        )
        source = SignedTokenSource(endpoint, identity, secret)
    return Session(identity, source, service, config_error, clock=clock)
