"""The local CircleService REST API (docs/circle-api.md §3): ``GET /`` and ``POST /v1/<method>``.

PascalCase stays in this module; replies leave it camelCased, with every upstream field kept.
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import httpcore
import msgspec

from .._errors import (
    AuthorizationRejected,
    BadConfiguration,
    CircleOperationFailed,
    ServiceNotRunning,
    UpstreamMalformed,
    UpstreamTimeout,
)
from ._asyncio_network import AsyncioNetwork
from ._casing import FlatListRenamer, camelize
from ._replies import DEFAULT_MAX_BODY, read_capped_chunks, upstream_message, upstream_message_of

log = logging.getLogger("circle_bridge.upstream")


def _tls_verification_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


_NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


def tls_problem(exc: BaseException, base_url: str) -> str | None:
    """What went wrong verifying the service's certificate, in words a user can act on; None when
    ``exc`` is not a certificate verification failure."""
    error = _tls_verification_error(exc)
    if error is None:
        return None
    reason = error.verify_message or error.reason or str(error)
    if error.verify_code in _NAME_MISMATCH:
        return (
            f"the certificate of {base_url} is trusted but names another host ({reason}); use the host "
            "name the certificate was made for in CIRCLE_SERVICE_URL (usually 127.0.0.1)"
        )
    return (
        f"{base_url} presented a certificate this machine does not trust ({reason}); CircleService's "
        "installer adds its certificate to the OS trust store: export it to a PEM file and set "
        "CIRCLE_CA_FILE to it (see the README, 'TLS')"
    )


# Errors after the connection was made: the service is there, it just did not finish its reply.
_BROKE_OFF = (httpcore.RemoteProtocolError, httpcore.ReadError, httpcore.WriteError)
# Everything httpcore raises for a request that did not get its reply (they share no base class).
_HTTP_ERRORS = (
    httpcore.TimeoutException,
    httpcore.NetworkError,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


@dataclass(frozen=True)
class ServiceProbe:
    """The answer to ``GET /``. ``running`` is true for any HTTP answer and for a TLS handshake that
    failed only because the certificate is not trusted here: the service is there (docs/circle-api.md §7)."""

    running: bool
    tls_problem: str | None = None


class Unauthorized(Exception):
    """CircleService answered HTTP 401: the token expired or the service forgot the authorization."""


class _Status(msgspec.Struct):
    # Every documented caller tests truthiness only (`if (r.Status.Result)`, docs/circle-api.md §7), so
    # `1` or `"true"` is success too; JavaScript's falsy values are failure.
    Result: Any = None
    Message: Any = None

    @property
    def ok(self) -> bool:
        return is_truthy(self.Result)

    @property
    def message(self) -> str | None:
        return self.Message if isinstance(self.Message, str) and self.Message else None


def is_truthy(value: object) -> bool:
    """JavaScript's truthiness: false, null, 0, NaN and "" are false; everything else (including
    an empty list or object) is true."""
    if value is None or value is False or value == "":
        return False
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value == value and value != 0
    return True


class _Reply(msgspec.Struct):
    Status: _Status


class _CircleMeta(msgspec.Struct):
    CircleId: str


class _EnumCirclesReply(_Reply):
    CircleMeta: list[_CircleMeta] | None = None


class _Topic(msgspec.Struct):
    TopicId: str


class _EnumTopicsReply(_Reply):
    Topics: list[_Topic] | None = None


_JSON = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder().decode


@dataclass(frozen=True)
class _ListKind:
    """A list reply: the field holding its items, its fully typed shape for the dict path, and the
    fast path's renamer."""

    field: str
    shape: type[_Reply]
    renamer: FlatListRenamer


_CIRCLES = _ListKind("CircleMeta", _EnumCirclesReply, FlatListRenamer(_Reply, "CircleMeta", "CircleId"))
_TOPICS = _ListKind("Topics", _EnumTopicsReply, FlatListRenamer(_Reply, "Topics", "TopicId"))


@dataclass(frozen=True, slots=True, eq=False)
class EncodedList:
    """The items of a list reply, camelCased and encoded to JSON once: every caller sharing the read
    (coalesced, issue 10) embeds the same bytes in its reply, as msgspec writes a Raw verbatim."""

    json: msgspec.Raw

    @classmethod
    def of(cls, items: list[Any]) -> EncodedList:
        return cls(msgspec.Raw(_JSON.encode(items)))

    def items(self) -> list[dict[str, Any]]:
        """Decoded, for the rare caller that looks inside (a default circle or topic)."""
        decoded: list[dict[str, Any]] = _DECODE(self.json)
        return decoded


class _OpenReply(msgspec.Struct):
    """Any reply of the generic call path. `Status` may be absent: Circle's callers never read it on
    whoAmI, createCircle or addMessage, so its presence there is not documented (§3.4)."""

    Status: _Status | None = None


R = TypeVar("R", bound=msgspec.Struct)


@dataclass(frozen=True)
class OperationReply:
    """A reply of the generic call path: its fields without ``Status``, and the fields ``Status``
    held besides ``Result`` and ``Message`` (decrypt's ``DecryptedData`` may sit there, §3.4);
    both camelCased."""

    fields: dict[str, Any]
    status_fields: dict[str, Any]


EXPERIMENTAL_OPERATIONS = ("genInvite", "processInvite", "enumFiles", "addFile")
"""Documented for C# only; their REST paths are inferred as ``/v1/<name>`` (docs/circle-api.md §3.6)."""


def parse_service_paths(text: str | None) -> dict[str, str]:
    """``CIRCLE_SERVICE_PATHS``: ``genInvite=/v1/invite,addFile=/v1/files/add`` -> a path per
    operation. Only the experimental operations can be moved. Raises ValueError naming the problem."""
    paths: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, path = (part.strip() for part in item.partition("="))
        if not sep or name not in EXPERIMENTAL_OPERATIONS:
            raise ValueError(f"expected <operation>=/path with an operation of {', '.join(EXPERIMENTAL_OPERATIONS)}")
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ValueError(f"the path for {name} must start with / and hold no spaces")
        paths[name] = path
    return paths


def pascal_key(key: str) -> str:
    """``circleId`` -> ``CircleId``, ``wait20Second`` -> ``Wait20Second``: our wire names are
    Circle's field names with a lower-case first letter."""
    return key[:1].upper() + key[1:]


# One connection pool serialises on its lock under concurrency (httpx#3215, docs/pygls.md §4):
# several small pools, picked round-robin, keep CPU per call flat as callers are added.
_SHARDS = 4
_CONNECTIONS_PER_SHARD = 4
_KEEPALIVE_SECONDS = 5.0  # httpx's default
_NETWORK = AsyncioNetwork()


class RequestSender(Protocol):
    """What ServiceClient sends through: an ``httpcore.AsyncConnectionPool``, or an in-memory fake."""

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response: ...


def _timeouts(seconds: float) -> dict[str, dict[str, float]]:
    return {"timeout": {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}}


def _ssl_context(verify: ssl.SSLContext | bool) -> ssl.SSLContext | None:
    if isinstance(verify, ssl.SSLContext):
        return verify
    if verify:
        return None  # httpcore's default (certifi), built only if an https connection is made
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _host_header(base_url: str) -> bytes:
    parts = urlsplit(base_url)
    host = parts.netloc.rpartition("@")[2]
    default = {"http": ":80", "https": ":443"}.get(parts.scheme.lower())
    if default and host.endswith(default):
        host = host[: -len(default)]
    return host.encode("ascii")


@dataclass(frozen=True)
class Answer:
    """An HTTP reply whose body was read within the cap."""

    status: int
    body: bytes | bytearray


class ServiceClient:
    """CircleService's REST API. Every method raises the catalogue's errors: ServiceNotRunning (no
    connection), UpstreamTimeout, UpstreamMalformed (a body of the wrong shape, too large, or cut
    off), CircleOperationFailed (``Status.Result`` falsy, HTTP errors), BadConfiguration (an https
    certificate this machine does not trust); ``Unauthorized`` for an HTTP 401 the session handles.

    It speaks through httpcore, httpx's own transport layer, directly: every call is one POST of a
    JSON body to a fixed loopback origin, so httpx's request and response models, URL handling,
    cookies, auth and event hooks bought nothing, and cost about 350 µs of CPU per call here, a
    third of the whole call (issue 10, docs/design.md "Performance")."""

    def __init__(
        self,
        base_url: str,
        app_key: str,
        *,
        timeout: float,
        verify: ssl.SSLContext | bool = True,
        max_body: int = DEFAULT_MAX_BODY,
        transport: RequestSender | None = None,  # tests: an in-memory CircleService
        paths: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._app_key = app_key
        self._max_body = max_body
        self.timeout = timeout
        self._paths = dict(paths or {})
        self._timeouts = _timeouts(timeout)
        self._pools: list[RequestSender] = (
            [transport]
            if transport is not None
            else [
                httpcore.AsyncConnectionPool(
                    ssl_context=_ssl_context(verify),
                    max_connections=_CONNECTIONS_PER_SHARD,
                    max_keepalive_connections=_CONNECTIONS_PER_SHARD,
                    keepalive_expiry=_KEEPALIVE_SECONDS,
                    http1=True,
                    http2=False,
                    network_backend=_NETWORK,
                )
                for _ in range(_SHARDS)
            ]
        )
        self._next = itertools.cycle(self._pools)
        host = _host_header(self.base_url)
        self._probe_headers = [(b"Host", host), (b"Accept", b"*/*")]
        self._base_headers = [
            (b"Host", host),
            (b"x-circle-appkey", app_key.encode()),
            (b"Accept", b"application/json"),
            (b"Accept-Encoding", b"identity"),  # the cap counts the bytes we hold: no decompression bombs
            (b"Content-Type", b"application/json; charset=utf-8"),
        ]

    async def probe(self) -> ServiceProbe:
        """``GET /``: any HTTP answer means running (docs/circle-api.md §3.2)."""
        request = httpcore.Request("GET", self.base_url + "/", headers=self._probe_headers, extensions=self._timeouts)
        try:
            reply = await next(self._next).handle_async_request(request)
            await reply.aclose()  # the status and body are ignored, as Circle's SDK does
        except _HTTP_ERRORS as exc:
            problem = tls_problem(exc, self.base_url)
            if problem is None and isinstance(exc, _BROKE_OFF):
                return ServiceProbe(running=True)  # it accepted the connection, then broke off
            return ServiceProbe(running=problem is not None, tls_problem=problem)
        return ServiceProbe(running=True)

    async def is_running(self) -> bool:
        return (await self.probe()).running

    async def _post(
        self, path: str, body: dict[str, Any], token: str | None, read_timeout: float | None = None
    ) -> Answer:
        content = _JSON.encode(body)
        headers = [*self._base_headers, (b"Content-Length", b"%d" % len(content))]
        if token is not None:
            headers.append((b"Authorization", b"Bearer " + token.encode()))
        request = httpcore.Request(
            "POST",
            self.base_url + path,
            headers=headers,
            content=content,
            extensions=self._timeouts if read_timeout is None else _timeouts(read_timeout),
        )
        try:
            reply = await next(self._next).handle_async_request(request)
            try:
                declared = next((v for k, v in reply.headers if k.lower() == b"content-length"), None)
                received = await read_capped_chunks(
                    reply.aiter_stream(), declared, reply.status, self._max_body, "service"
                )
                answer = Answer(reply.status, received)
            finally:
                await reply.aclose()
            log.debug("POST %s -> HTTP %d", path, answer.status)
            return answer
        except httpcore.TimeoutException:
            raise UpstreamTimeout(f"CircleService did not answer {path} in time", upstream="service") from None
        except _HTTP_ERRORS as exc:
            problem = tls_problem(exc, self.base_url)
            if problem is not None:
                raise BadConfiguration(problem, invalid=["CIRCLE_CA_FILE", "CIRCLE_SERVICE_URL"]) from None
            if isinstance(exc, _BROKE_OFF):
                # The service accepted the connection and then broke off (closed or reset mid-reply,
                # or an unreadable reply): it runs, so this is not -33001.
                raise UpstreamMalformed(
                    f"CircleService broke off its reply to {path} ({type(exc).__name__})",
                    upstream="service",
                    operation=path.rsplit("/", 1)[-1],
                ) from None
            raise ServiceNotRunning(
                f"no connection to {self.base_url} ({type(exc).__name__})", serviceUrl=self.base_url
            ) from None

    async def authorize(self, token: str) -> None:
        reply = await self._post("/v1/authorize", {"Token": token}, None)
        if reply.status == 401:
            raise AuthorizationRejected(
                "CircleService answered 401 to authorize",
                httpStatus=401,
                upstreamMessage=upstream_message(reply.body),
            )
        _, decoded = self._decode(reply, "authorize", _Reply)
        if not decoded.Status.ok:
            message = decoded.Status.message
            raise AuthorizationRejected(
                message or "Status.Result is false", upstreamMessage=upstream_message_of(message)
            )

    async def enum_circles(self, token: str) -> EncodedList:
        return await self._list("enumCircles", {}, token, _CIRCLES)

    async def enum_topics(self, token: str, circle_id: str) -> EncodedList:
        return await self._list("enumTopics", {"CircleId": circle_id}, token, _TOPICS)

    async def _list(self, method: str, body: dict[str, Any], token: str, kind: _ListKind) -> EncodedList:
        reply = await self._post(f"/v1/{method}", body, token)
        if reply.status == 401:
            raise Unauthorized(method)
        if reply.status < 400:  # the fast path: one parse, no dict per item (FlatListRenamer)
            fitted = kind.renamer.fit(reply.body)
            if fitted is not None and fitted.Status.ok:
                return EncodedList(msgspec.Raw(kind.renamer.to_json(fitted)))
        # the dict path: every check and error of every other call; it teaches the fast path the shape
        raw = self._checked(reply, method, kind.shape)
        items = raw.get(kind.field) or []
        kind.renamer.learn(items)
        return EncodedList.of(camelize(items))

    async def _call(self, method: str, body: dict[str, Any], token: str, shape: type[_Reply]) -> dict[str, Any]:
        reply = await self._post(f"/v1/{method}", body, token)
        if reply.status == 401:
            raise Unauthorized(method)
        return self._checked(reply, method, shape)

    def _checked(self, reply: Answer, method: str, shape: type[_Reply]) -> dict[str, Any]:
        raw, typed = self._decode(reply, method, shape)
        status = typed.Status
        if not status.ok:
            message = upstream_message_of(status.message)
            raise CircleOperationFailed(
                message or f"{method} returned Status.Result false",
                operation=method,
                upstreamMessage=message,
            )
        return raw

    def path_of(self, operation: str) -> str:
        return self._paths.get(operation, f"/v1/{operation}")

    async def call(
        self, token: str, operation: str, fields: Mapping[str, Any], *, extra_time: float = 0.0
    ) -> OperationReply:
        """The one call path of every other ``/v1/*`` operation: ``fields`` (camelCase) become the
        PascalCase body; the reply comes back camelCased without ``Status``, every field kept.
        ``extra_time`` is added to the configured timeout, for operations known to take long.

        Raises Unauthorized on HTTP 401, CircleOperationFailed when ``Status.Result`` is falsy or on
        another HTTP error, UpstreamMalformed, UpstreamTimeout, ServiceNotRunning."""
        body = {pascal_key(k): v for k, v in fields.items()}
        timeout = self.timeout + extra_time if extra_time else None
        reply = await self._post(self.path_of(operation), body, token, timeout)
        if reply.status == 401:
            raise Unauthorized(operation)
        raw, typed = self._decode(reply, operation, _OpenReply)
        status = typed.Status
        if status is not None and not status.ok:
            # masked, then bounded, like every upstream text that reaches a client
            message = upstream_message_of(status.message)
            raise CircleOperationFailed(
                message or f"{operation} returned Status.Result false",
                operation=operation,
                upstreamMessage=message,
            )
        raw_status = raw.get("Status")
        status_fields = raw_status if isinstance(raw_status, dict) else {}
        return OperationReply(
            fields=camelize({k: v for k, v in raw.items() if k != "Status"}),
            status_fields=camelize({k: v for k, v in status_fields.items() if k not in ("Result", "Message")}),
        )

    def _decode(self, reply: Answer, method: str, shape: type[R]) -> tuple[dict[str, Any], R]:
        """The raw reply (every field, for pass-through) and its typed view (for checks)."""
        if reply.status >= 400:
            raise CircleOperationFailed(
                f"{method}: HTTP {reply.status}",
                operation=method,
                httpStatus=reply.status,
                upstreamMessage=upstream_message(reply.body),
                # a server error may pass on a later try; a 4xx will not
                retryable=reply.status >= 500 or reply.status in (408, 429),
            )
        try:
            raw = _DECODE(reply.body)
        except (msgspec.DecodeError, RecursionError):
            raise UpstreamMalformed(
                f"{method} reply is not JSON (or nested too deeply)",
                upstream="service",
                operation=method,
                httpStatus=reply.status,
            ) from None
        if not isinstance(raw, dict):
            raise UpstreamMalformed(f"{method} reply is not a JSON object", upstream="service", operation=method)
        try:
            return raw, msgspec.convert(raw, shape)
        except msgspec.ValidationError as exc:
            # A 200 whose body is an error object ({"Message": "An error has occurred."}) keeps its text.
            raise UpstreamMalformed(
                f"{method} reply: {exc}",
                upstream="service",
                operation=method,
                upstreamMessage=upstream_message(reply.body),
            ) from None

    async def aclose(self) -> None:
        for pool in self._pools:
            if isinstance(pool, httpcore.AsyncConnectionPool):
                await pool.aclose()
