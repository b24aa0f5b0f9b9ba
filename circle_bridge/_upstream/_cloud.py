"""The Circle cloud token endpoint (circle-api.md §2): one signed GET, one JWT back."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import quote

import httpx

from .._errors import TokenRequestFailed, UpstreamMalformed, UpstreamTimeout
from .._redaction import REDACTOR
from ._replies import upstream_message
from ._signing import sign, string_to_sign

log = logging.getLogger("circle_bridge.upstream")

_NONCE_RETRIES = 2
DEFAULT_TOKEN_LIFETIME = 600.0  # circle-api.md §2.6: both sample tokens live exactly 10 minutes
NonceUnit = Literal["s", "ms"]


@dataclass(frozen=True)
class Identity:
    """Who a token is for. One shared session exists per identity."""

    customer_id: str
    app_key: str
    end_user_id: str


@dataclass(frozen=True)
class IssuedToken:
    value: str = field(repr=False)
    lifetime: float
    obtained_at: float  # time.monotonic() when it arrived

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.lifetime


def parse_token_body(body: bytes) -> str:
    """Return the JWT from a token endpoint reply.

    The documented body is a JSON *string* whose content is a JSON object (pretty-printed with
    CRLF); a plain object is accepted too. Raises UpstreamMalformed for anything else.
    """
    try:
        outer = json.loads(body)
        inner = json.loads(outer) if isinstance(outer, str) else outer
    except (ValueError, UnicodeDecodeError):
        raise UpstreamMalformed("token endpoint reply is not JSON", upstream="token") from None
    token = inner.get("Token") if isinstance(inner, dict) else None
    if not isinstance(token, str) or not token:
        raise UpstreamMalformed("token endpoint reply has no Token", upstream="token")
    return token


def token_lifetime(token: str, now: float | None = None) -> float:
    """Seconds the JWT is surely still valid for, counted from when it was requested.

    From its own claims, ``exp - iat``, which is immune to clock skew between us and the cloud.
    JWT times are whole seconds and ``iat`` is truncated, so the token may really have been issued
    up to a second after ``iat`` says: one second is taken off. Without ``iat``: ``exp - now``.
    Unreadable: the documented 10 minutes.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
        iat = claims.get("iat")
        if isinstance(iat, int | float) and not isinstance(iat, bool):
            return max(0.0, exp - float(iat) - (1.0 if isinstance(iat, int) else 0.0))
        return max(0.0, exp - (time.time() if now is None else now))
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error, UnicodeDecodeError):
        return DEFAULT_TOKEN_LIFETIME


class TokenEndpoint:
    """Signs and sends token requests. Nonces never repeat for an identity, even within one
    clock tick, because the endpoint may reject a reused nonce."""

    def __init__(
        self, url: str, *, timeout: float, nonce_unit: NonceUnit = "s", verify: ssl.SSLContext | bool = True
    ) -> None:
        self.url = url
        self._nonce_unit = nonce_unit
        self._last_nonce: dict[Identity, int] = {}
        self._client = httpx.AsyncClient(trust_env=True, timeout=httpx.Timeout(timeout), verify=verify)

    def _next_nonce(self, identity: Identity, jump: int = 0) -> int:
        now = time.time()
        nonce = (int(now * 1000) if self._nonce_unit == "ms" else int(now)) + jump
        last = self._last_nonce.get(identity)
        if last is not None and nonce <= last:
            nonce = last + 1
        self._last_nonce[identity] = nonce
        return nonce

    def signed_url(self, identity: Identity, secret: str, jump: int = 0) -> str:
        nonce = str(self._next_nonce(identity, jump))
        signature = sign(secret, string_to_sign(identity.customer_id, identity.app_key, identity.end_user_id, nonce))
        REDACTOR.register(signature)

        def q(value: str) -> str:
            return quote(value, safe="")

        sep = "&" if "?" in self.url else "?"
        return (
            f"{self.url}{sep}customerId={q(identity.customer_id)}&appKey={q(identity.app_key)}"
            f"&endUserId={q(identity.end_user_id)}&nonce={nonce}&signature={q(signature)}"
        )

    async def fetch(self, identity: Identity, secret: str) -> IssuedToken:
        started = time.monotonic()
        reply = await self._get(self.signed_url(identity, secret))
        for _ in range(_NONCE_RETRIES):
            if reply.status_code != 401:
                break
            # Another process (another app's bridge) may have used the same identity and nonce in the
            # same clock tick, and the endpoint may reject a reused nonce. Retrying with a nonce a
            # random step ahead (well inside the endpoint's freshness window) makes a second
            # collision unlikely; bad credentials still fail, after the retries.
            step = (secrets.randbelow(30) + 1) * (1000 if self._nonce_unit == "ms" else 1)
            reply = await self._get(self.signed_url(identity, secret, step))
        if reply.status_code != 200:
            raise TokenRequestFailed(
                f"HTTP {reply.status_code}",
                httpStatus=reply.status_code,
                upstreamMessage=upstream_message(reply.content),
                tokenUrl=self.url,
            )
        token = parse_token_body(reply.content)
        REDACTOR.register(token)
        lifetime = token_lifetime(token)
        log.info("token obtained for endUserId=%s, lifetime %.0fs", identity.end_user_id, lifetime)
        return IssuedToken(token, lifetime, started)

    async def _get(self, url: str) -> httpx.Response:
        try:
            reply = await self._client.get(url, headers={"Accept": "application/json"})
            log.debug("GET %s (signed query not shown) -> HTTP %d", self.url, reply.status_code)
            return reply
        except httpx.TimeoutException:
            raise UpstreamTimeout("the Circle token endpoint did not answer in time", upstream="token") from None
        except httpx.HTTPError as exc:
            raise TokenRequestFailed(
                f"cannot reach the token endpoint ({type(exc).__name__})", tokenUrl=self.url
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()
