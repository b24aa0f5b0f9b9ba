"""The Circle cloud token endpoint (docs/circle-api.md §2): one signed GET, one JWT back."""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import secrets
import ssl
import time
from dataclasses import dataclass, field
from typing import Literal, Protocol
from urllib.parse import quote

import httpx

from .._errors import TokenRequestFailed, UpstreamMalformed, UpstreamTimeout
from .._redaction import REDACTOR
from ._replies import DEFAULT_MAX_BODY, read_capped, upstream_message
from ._signing import sign, string_to_sign

log = logging.getLogger("circle_bridge.upstream")

DEFAULT_TOKEN_LIFETIME = 600.0  # docs/circle-api.md §2.6: both sample tokens live exactly 10 minutes
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
    obtained_at: float  # the session clock (time.monotonic()) when it was requested

    @property
    def expires_at(self) -> float:
        return self.obtained_at + self.lifetime


class TokenSource(Protocol):
    """Where tokens come from: signed here with the Secret, or obtained from the developer's backend
    (a command, a URL) or from the client itself. ``fetch`` returns the raw token."""

    name: str
    """``secret``, ``command``, ``url`` or ``client``; shown by ``doctor`` and ``status``."""
    issues_fresh: bool
    """True when every fetch makes a new token (its lifetime is ``exp - iat``); False when the token
    may have been issued earlier (a backend cache): then the lifetime also counts from now."""

    async def fetch(self) -> str: ...
    async def aclose(self) -> None: ...


_BEARER = re.compile(r"[!-~]+")  # printable ASCII, no blanks: what an Authorization header can carry


def check_bearer(token: str, origin: str) -> str:
    """``token`` if it can travel in an ``Authorization: Bearer`` header, else UpstreamMalformed.
    A CRLF or a non-ASCII character would otherwise fail deep in the HTTP client, as "not running"
    or a bug."""
    if not _BEARER.fullmatch(token):
        raise UpstreamMalformed(
            f"the token from {origin} holds blanks, control or non-ASCII characters", upstream=origin
        )
    return token


def parse_token_body(body: bytes | bytearray, origin: str = "token", *, bare: bool = False) -> str:
    """Return the JWT from a token reply.

    The documented body is a JSON *string* whose content is a JSON object (pretty-printed with
    CRLF); a plain ``{"Token": ...}`` object is accepted too, and with ``bare`` (a developer's
    backend or command) the token itself as plain text or a JSON string. A 200 whose object has no
    ``Token`` but an error message is a refusal (TokenRequestFailed, with ``upstreamMessage``);
    anything else is UpstreamMalformed.
    """
    text = bytes(body).strip()
    try:
        outer = json.loads(text)
        inner = json.loads(outer) if isinstance(outer, str) and outer.lstrip().startswith(("{", '"')) else outer
    except RecursionError:
        raise UpstreamMalformed(f"the reply from {origin} is nested too deeply", upstream=origin) from None
    except (ValueError, UnicodeDecodeError):
        if bare and text and b"\n" not in text:
            return text.decode("utf-8", "replace")
        raise UpstreamMalformed(f"the reply from {origin} is not JSON", upstream=origin) from None
    if bare and isinstance(inner, str) and inner:
        return inner
    token = None
    if isinstance(inner, dict):
        # Circle's field is `Token`; a developer's own backend may well spell it `token`
        token = inner.get("Token") or (inner.get("token") if bare else None)
    if isinstance(token, str) and token:
        return token
    message = upstream_message(body) if isinstance(inner, dict) else None
    if message is not None:
        raise TokenRequestFailed(
            f"{origin} answered without a token: {message}",
            httpStatus=200,
            upstreamMessage=message,
            retryable=False,
            likelyCause=classify_message(message),
        )
    raise UpstreamMalformed(f"the reply from {origin} has no Token", upstream=origin)


def token_lifetime(token: str, now: float | None = None, *, fresh: bool = True) -> float:
    """Seconds the JWT is surely still valid for, counted from when it was requested.

    A fresh token: from its own claims, ``exp - iat``, which is immune to clock skew between us and
    the cloud. JWT times are whole seconds and ``iat`` is truncated, so the token may really have
    been issued up to a second after ``iat`` says: one second is taken off. A token that may be
    older (``fresh=False``: a backend may cache tokens) or has no ``iat``: ``exp - now`` as well.
    Unreadable: the documented 10 minutes.
    """
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        exp = float(claims["exp"])
        iat = claims.get("iat")
        by_clock = exp - (time.time() if now is None else now)
        if isinstance(iat, int | float) and not isinstance(iat, bool):
            by_claims = exp - float(iat) - (1.0 if isinstance(iat, int) else 0.0)
            return max(0.0, by_claims if fresh else min(by_claims, by_clock - 1.0))
        return max(0.0, by_clock)
    except (IndexError, KeyError, TypeError, ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return DEFAULT_TOKEN_LIFETIME


def token_subject(token: str) -> str | None:
    """The end user a Circle token is for: its ``primarysid`` claim (docs/circle-api.md §2.6), if readable."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        subject = claims.get("primarysid") if isinstance(claims, dict) else None
    except (IndexError, ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        return None
    return subject if isinstance(subject, str) and subject else None


@dataclass(frozen=True)
class Refusal:
    """Why the token endpoint said no, and whether trying again can help."""

    status: int
    message: str | None
    retryable: bool
    likely_cause: str | None = None
    retry_with_new_nonce: bool = False

    def error(self, token_url: str) -> TokenRequestFailed:
        detail = f"HTTP {self.status}" + (f": {self.likely_cause}" if self.likely_cause else "")
        return TokenRequestFailed(
            detail,
            httpStatus=self.status,
            upstreamMessage=self.message,
            likelyCause=self.likely_cause,
            retryable=self.retryable,
            tokenUrl=token_url,
        )


_BAD_SIGNATURE = (
    "the token endpoint rejected the signature: CIRCLE_SECRET is wrong for this CIRCLE_CUSTOMER_ID and "
    "CIRCLE_APP_KEY (or the endpoint signs differently: see CIRCLE_SIGN_QUESTION_MARK and "
    "CIRCLE_TOKEN_QUERY_ENCODING)"
)
_BAD_IDENTITY = "the token endpoint does not know this CIRCLE_CUSTOMER_ID or CIRCLE_APP_KEY"
_BAD_NONCE = "the token endpoint refused the nonce as stale: check this machine's clock, and CIRCLE_NONCE_UNIT"
_BAD_CREDENTIALS = (
    "the token endpoint rejected the credentials: check CIRCLE_CUSTOMER_ID, CIRCLE_APP_KEY and CIRCLE_SECRET, "
    "and this machine's clock"
)


def classify_message(message: str) -> str:
    """The likely cause of a refusal whose only clue is its text (a 200 with an error object)."""
    refusal = classify_refusal(401, message)
    assert refusal is not None
    return refusal.likely_cause or _BAD_CREDENTIALS


def classify_refusal(status: int, message: str | None) -> Refusal | None:
    """None for a 200 (its body decides); otherwise what the refusal means.

    Circle does not document its error replies (docs/circle-api.md §2.7), so the upstream message is read
    for the few words that tell a retry apart from a credential problem. Only a nonce the endpoint
    calls reused is worth one retry; bad credentials never are, and an unknown 401 is treated as
    bad credentials: retrying would only cost more token requests.
    """
    if status == 200:
        return None
    text = (message or "").lower()
    if status in (401, 403):
        if "nonce" in text and any(word in text for word in ("reuse", "used", "replay", "duplicate")):
            return Refusal(status, message, retryable=True, retry_with_new_nonce=True)
        if "nonce" in text:
            return Refusal(status, message, retryable=False, likely_cause=_BAD_NONCE)
        if "signature" in text:
            return Refusal(status, message, retryable=False, likely_cause=_BAD_SIGNATURE)
        if "appkey" in text or "app key" in text or "customer" in text:
            return Refusal(status, message, retryable=False, likely_cause=_BAD_IDENTITY)
        if status == 401:
            return Refusal(status, message, retryable=False, likely_cause=_BAD_CREDENTIALS)
        return Refusal(status, message, retryable=False, likely_cause="the token endpoint refused this identity")
    return Refusal(status, message, retryable=status >= 500 or status in (408, 429))


_REDIRECTS = (301, 302, 303, 307, 308)
_MAX_REDIRECTS = 5
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def redirect_allowed(target: httpx.URL) -> bool:
    """Token requests follow redirects to https only (the signed query must not travel in clear),
    or within this machine (an emulator or a local proxy on loopback)."""
    return target.scheme == "https" or (target.scheme == "http" and target.host in _LOOPBACK)


class TokenEndpoint:
    """Signs and sends token requests. Nonces never repeat for an identity, even within one
    clock tick, so the bridge depends on neither the endpoint accepting nor rejecting reuse.

    ``query_encoding`` is ``percent`` (every value percent-encoded: safe under standard query
    parsing) or ``raw`` (as every public Circle sample sends it); ``sign_question_mark`` signs
    ``?customerId=…`` instead of ``customerId=…`` (a variant in one of Circle's pages). A token URL
    that ends in ``?`` (as Circle's docs write it) gets no second separator.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        nonce_unit: NonceUnit = "s",
        verify: ssl.SSLContext | bool = True,
        query_encoding: Literal["percent", "raw"] = "percent",
        sign_question_mark: bool = False,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.url = url
        self._nonce_unit = nonce_unit
        self._raw = query_encoding == "raw"
        self._question_mark = sign_question_mark
        self._max_body = max_body
        self._last_nonce: dict[Identity, int] = {}
        self._client = httpx.AsyncClient(
            trust_env=True, timeout=httpx.Timeout(timeout), verify=verify, follow_redirects=False
        )

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
        message = string_to_sign(identity.customer_id, identity.app_key, identity.end_user_id, nonce)
        signature = sign(secret, "?" + message if self._question_mark else message)
        REDACTOR.register_transient(signature)

        def q(value: str) -> str:
            return value if self._raw else quote(value, safe="")

        sep = "" if self.url.endswith(("?", "&")) else "&" if "?" in self.url else "?"
        return (
            f"{self.url}{sep}customerId={q(identity.customer_id)}&appKey={q(identity.app_key)}"
            f"&endUserId={q(identity.end_user_id)}&nonce={nonce}&signature={q(signature)}"
        )

    async def fetch(self, identity: Identity, secret: str) -> str:
        """A new token for ``identity``, signed with ``secret``. Raises TokenRequestFailed,
        UpstreamMalformed or UpstreamTimeout."""
        status, body = await self._get(self.signed_url(identity, secret))
        refusal = classify_refusal(status, upstream_message(body))
        if refusal is not None and refusal.retry_with_new_nonce:
            # The endpoint says this nonce was used already: another process (another app's bridge)
            # signed for the same identity in the same clock tick. One retry with a nonce a random
            # step ahead makes a second collision unlikely. Nothing else is retried: a bad
            # signature or app key fails the same way every time.
            step = (secrets.randbelow(30) + 1) * (1000 if self._nonce_unit == "ms" else 1)
            status, body = await self._get(self.signed_url(identity, secret, step))
            refusal = classify_refusal(status, upstream_message(body))
        if refusal is not None:
            raise refusal.error(self.url)
        token = check_bearer(parse_token_body(body), "token")
        REDACTOR.register_transient(token)
        log.info("token obtained for endUserId=%s", identity.end_user_id)
        return token

    async def _get(self, url: str) -> tuple[int, bytes | bytearray]:
        try:
            target = httpx.URL(url)
            for _ in range(_MAX_REDIRECTS + 1):
                request = self._client.build_request("GET", target, headers=_TOKEN_HEADERS)
                reply = await self._client.send(request, stream=True)
                try:
                    if reply.status_code in _REDIRECTS and "location" in reply.headers:
                        target = target.join(reply.headers["location"])
                        if not redirect_allowed(target):
                            raise TokenRequestFailed(
                                f"the token endpoint redirected to {target.scheme}://{target.host}, "
                                "which is neither https nor this machine; not followed",
                                httpStatus=reply.status_code,
                                tokenUrl=self.url,
                                retryable=False,
                            )
                        log.debug("token endpoint redirected (HTTP %d) to %s", reply.status_code, target.host)
                        continue
                    body = await read_capped(reply, self._max_body, "token")
                    log.debug("GET %s (signed query not shown) -> HTTP %d", self.url, reply.status_code)
                    return reply.status_code, body
                finally:
                    await reply.aclose()
            raise TokenRequestFailed(
                f"the token endpoint redirected more than {_MAX_REDIRECTS} times", tokenUrl=self.url, retryable=False
            )
        except httpx.TimeoutException:
            raise UpstreamTimeout("the Circle token endpoint did not answer in time", upstream="token") from None
        except httpx.RemoteProtocolError:
            raise UpstreamMalformed("the token endpoint broke off its reply", upstream="token") from None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            raise TokenRequestFailed(
                f"cannot reach the token endpoint ({type(exc).__name__})", tokenUrl=self.url
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()


_TOKEN_HEADERS = {"Accept": "application/json", "Accept-Encoding": "identity"}


class SignedTokenSource:
    """``CIRCLE_TOKEN_SOURCE=secret``: sign token requests here, with the developer's Secret."""

    name = "secret"
    issues_fresh = True

    def __init__(self, endpoint: TokenEndpoint, identity: Identity, secret: str) -> None:
        self._endpoint = endpoint
        self._identity = identity
        self._secret = secret

    async def fetch(self) -> str:
        return await self._endpoint.fetch(self._identity, self._secret)

    async def aclose(self) -> None:
        await self._endpoint.aclose()
