"""The shared Circle session: one per identity, used by every connection.

It owns the token (single-flight acquisition, refresh before expiry), the service authorization,
and the one retry after an HTTP 401. Identical concurrent reads are coalesced into one upstream
call. Everything here runs on one event loop, so plain asyncio primitives suffice.
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
from ._errors import AuthorizationRejected, BadConfiguration
from ._upstream import (
    Identity,
    IssuedToken,
    OperationReply,
    ServiceClient,
    TokenEndpoint,
    Unauthorized,
    parse_service_paths,
)

log = logging.getLogger("circle_bridge.session")

T = TypeVar("T")

# Refresh ahead: when less than 20 % of a token's lifetime is left (at most 2 minutes), a new one
# is fetched in the background while callers keep using the current one; only when less than 10 %
# (at most 1 minute) is left do callers wait for the new token. A 10-minute token is renewed
# 2 minutes early without any caller waiting, unless the token endpoint takes over a minute.
_SOFT_SHARE, _SOFT_CAP = 0.2, 120.0
_HARD_SHARE, _HARD_CAP = 0.1, 60.0


@dataclass(frozen=True)
class Authorization:
    """What a client may learn about the session: never the token itself."""

    end_user_id: str
    expires_in: float


@dataclass
class _Shared:
    future: asyncio.Future[Any]
    waiters: int = 0


class TokenProvider:
    """Hands out a valid token. N concurrent callers cause at most one token request."""

    def __init__(self, endpoint: TokenEndpoint, identity: Identity, secret: str) -> None:
        self._endpoint = endpoint
        self._identity = identity
        self._secret = secret
        self._current: IssuedToken | None = None
        self._pending: asyncio.Task[IssuedToken] | None = None

    @staticmethod
    def _left_above(token: IssuedToken, share: float, cap: float) -> bool:
        return time.monotonic() < token.expires_at - min(cap, token.lifetime * share)

    async def token(self) -> IssuedToken:
        current = self._current
        if current is not None and self._left_above(current, _SOFT_SHARE, _SOFT_CAP):
            return current
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._endpoint.fetch(self._identity, self._secret))
            self._pending.add_done_callback(self._settle)
        if current is not None and self._left_above(current, _HARD_SHARE, _HARD_CAP):
            return current  # the refresh runs ahead, in the background
        # shield: one caller being cancelled must not cancel the fetch the others wait for
        return await asyncio.shield(self._pending)

    def _settle(self, task: asyncio.Task[IssuedToken]) -> None:
        self._pending = None
        if task.cancelled():
            return
        if task.exception() is None:
            self._current = task.result()
        elif self._current is not None:
            # a failed background refresh: the next caller tries again; the failure is logged here
            # because no caller may be waiting to see it
            log.warning("background token refresh failed: %s", task.exception())

    def invalidate(self, token: IssuedToken) -> None:
        if self._current is token:
            self._current = None


class Session:
    def __init__(
        self,
        identity: Identity,
        secret: str,
        endpoint: TokenEndpoint,
        service: ServiceClient,
        config_error: BadConfiguration | None = None,
    ) -> None:
        self.identity = identity
        self._config_error = config_error
        self._tokens = TokenProvider(endpoint, identity, secret)
        self._service = service
        self._endpoint = endpoint
        self._authorized: IssuedToken | None = None
        self._authorizing: dict[str, asyncio.Task[None]] = {}
        self._coalesced: dict[tuple[Any, ...], _Shared] = {}

    @property
    def service_url(self) -> str:
        return self._service.base_url

    async def is_service_running(self) -> bool:
        return await self._service.is_running()

    async def _authorized_token(self) -> IssuedToken:
        if self._config_error is not None:
            raise self._config_error
        token = await self._tokens.token()
        if self._authorized is token:
            return token
        task = self._authorizing.get(token.value)
        if task is None:
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

    async def ensure_authorized(self) -> Authorization:
        token = await self._authorized_token()
        return Authorization(
            end_user_id=self.identity.end_user_id,
            expires_in=max(0.0, token.expires_at - time.monotonic()),
        )

    async def _with_token(self, call: Callable[[str], Awaitable[T]]) -> T:
        """Run ``call`` with an authorized token; on HTTP 401 take a new token, authorize, retry once."""
        token = await self._authorized_token()
        try:
            return await call(token.value)
        except Unauthorized:
            log.info("CircleService answered 401; taking a new token and retrying once")
            self._tokens.invalidate(token)
            if self._authorized is token:
                self._authorized = None
        token = await self._authorized_token()
        try:
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

    async def enum_circles(self) -> list[dict[str, Any]]:
        return await self._coalesce(("enumCircles",), lambda: self._with_token(self._service.enum_circles))

    async def enum_topics(self, circle_id: str) -> list[dict[str, Any]]:
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
        the machine (createCircle, circle-api.md §3.5)."""

        def once(token: str) -> Awaitable[OperationReply]:
            body = dict(fields)
            if as_customer:
                body["customerId"] = self.identity.customer_id
                body["customerToken"] = token
            return self._service.call(token, operation, body, extra_time=extra_time)

        return await self._with_token(once)

    async def aclose(self) -> None:
        await self._service.aclose()
        await self._endpoint.aclose()


def _verify(settings: Settings) -> ssl.SSLContext | bool:
    if not settings.ca_file:
        return True
    try:
        return ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise BadConfiguration(
            f"cannot load CIRCLE_CA_FILE {settings.ca_file}: {exc}", invalid=["CIRCLE_CA_FILE"]
        ) from None


def _service_paths(settings: Settings) -> dict[str, str]:
    try:
        return parse_service_paths(settings.service_paths)
    except ValueError as exc:
        raise BadConfiguration(f"CIRCLE_SERVICE_PATHS: {exc}", invalid=["CIRCLE_SERVICE_PATHS"]) from None


def open_session(settings: Settings) -> Session:
    """The process-wide session. Missing credentials do not stop the server: calls that need them
    fail with BadConfiguration naming the missing settings, `circle/isServiceRunning` still works."""
    config_error: BadConfiguration | None = None
    paths: dict[str, str] = {}
    try:
        customer_id, app_key, end_user_id, secret = settings.require_credentials()
        verify = _verify(settings)
        paths = _service_paths(settings)
    except BadConfiguration as exc:
        config_error = exc
        customer_id = settings.customer_id or ""
        app_key = settings.app_key or ""
        end_user_id = settings.end_user_id or ""
        secret = settings.secret or ""
        verify = True
    identity = Identity(customer_id, app_key, end_user_id)
    endpoint = TokenEndpoint(settings.token_url, timeout=settings.token_timeout, nonce_unit=settings.nonce_unit)
    service = ServiceClient(settings.service_url, app_key, timeout=settings.service_timeout, verify=verify, paths=paths)
    return Session(identity, secret, endpoint, service, config_error)
