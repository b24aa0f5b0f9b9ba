"""The local CircleService REST API (circle-api.md §3): ``GET /`` and ``POST /v1/<method>``.

PascalCase stays in this module; replies leave it camelCased, with every upstream field kept.
"""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec

from .._errors import (
    AuthorizationRejected,
    BadConfiguration,
    CircleOperationFailed,
    ServiceNotRunning,
    UpstreamMalformed,
    UpstreamTimeout,
)
from .._redaction import REDACTOR
from ._casing import camelize
from ._replies import upstream_message

log = logging.getLogger("circle_bridge.upstream")


def _tls_verification_failed(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Unauthorized(Exception):
    """CircleService answered HTTP 401: the token expired or the service forgot the authorization."""


class _Status(msgspec.Struct):
    Result: bool
    Message: str | None = None


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


class _AnyStatus(msgspec.Struct):
    # Circle's callers test `Status.Result` for truthiness only (circle-api.md §7)
    Result: Any = None
    Message: Any = None


class _OpenReply(msgspec.Struct):
    """Any reply of the generic call path. `Status` may be absent: Circle's callers never read it on
    whoAmI, createCircle or addMessage, so its presence there is not documented (§3.4)."""

    Status: _AnyStatus | None = None


R = TypeVar("R", bound=msgspec.Struct)


@dataclass(frozen=True)
class OperationReply:
    """A reply of the generic call path: its fields without ``Status``, and the fields ``Status``
    held besides ``Result`` and ``Message`` (decrypt's ``DecryptedData`` may sit there, §3.4);
    both camelCased."""

    fields: dict[str, Any]
    status_fields: dict[str, Any]


EXPERIMENTAL_OPERATIONS = ("genInvite", "processInvite", "enumFiles", "addFile")
"""Documented for C# only; their REST paths are inferred as ``/v1/<name>`` (circle-api.md §3.6)."""


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


_JSON = msgspec.json.Encoder()
_DECODE = msgspec.json.Decoder().decode
# One AsyncClient serialises on its pool lock under concurrency (httpx#3215, pygls-notes §3.3):
# several small clients, picked round-robin, keep CPU per call flat as callers are added.
_SHARDS = 4
_CONNECTIONS_PER_SHARD = 4


class ServiceClient:
    def __init__(
        self,
        base_url: str,
        app_key: str,
        *,
        timeout: float,
        verify: ssl.SSLContext | bool = True,
        paths: Mapping[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._app_key = app_key
        self.timeout = timeout
        self._paths = dict(paths or {})
        limits = httpx.Limits(max_connections=_CONNECTIONS_PER_SHARD, max_keepalive_connections=_CONNECTIONS_PER_SHARD)
        self._clients = [
            httpx.AsyncClient(
                base_url=self.base_url,
                trust_env=False,
                timeout=httpx.Timeout(timeout),
                limits=limits,
                verify=verify,
            )
            for _ in range(_SHARDS)
        ]
        self._next = itertools.cycle(self._clients)
        self._base_headers = {
            "x-circle-appkey": app_key,
            "Accept": "application/json",
            "Content-Type": "application/json; charset=utf-8",
        }

    async def is_running(self) -> bool:
        """Any HTTP answer on ``GET /`` means running (circle-api.md §3.2)."""
        try:
            await next(self._next).get("/")
        except httpx.HTTPError:
            return False
        return True

    async def _post(
        self, path: str, body: dict[str, Any], token: str | None, read_timeout: float | None = None
    ) -> httpx.Response:
        headers = self._base_headers if token is None else {**self._base_headers, "Authorization": f"Bearer {token}"}
        try:
            client = next(self._next)
            if read_timeout is None:
                reply = await client.post(path, content=_JSON.encode(body), headers=headers)
            else:
                reply = await client.post(
                    path, content=_JSON.encode(body), headers=headers, timeout=httpx.Timeout(read_timeout)
                )
            log.debug("POST %s -> HTTP %d", path, reply.status_code)
            return reply
        except httpx.TimeoutException:
            raise UpstreamTimeout(f"CircleService did not answer {path} in time", upstream="service") from None
        except httpx.HTTPError as exc:
            if _tls_verification_failed(exc):
                raise BadConfiguration(
                    f"{self.base_url} presented a certificate this bridge does not trust; "
                    "set CIRCLE_CA_FILE to the CA that CircleService installed",
                    invalid=["CIRCLE_CA_FILE"],
                ) from None
            raise ServiceNotRunning(
                f"no connection to {self.base_url} ({type(exc).__name__})", serviceUrl=self.base_url
            ) from None

    async def authorize(self, token: str) -> None:
        reply = await self._post("/v1/authorize", {"Token": token}, None)
        if reply.status_code == 401:
            raise AuthorizationRejected(
                "CircleService answered 401 to authorize",
                httpStatus=401,
                upstreamMessage=upstream_message(reply.content),
            )
        _, decoded = self._decode(reply, "authorize", _Reply)
        if not decoded.Status.Result:
            raise AuthorizationRejected(
                decoded.Status.Message or "Status.Result is false", upstreamMessage=decoded.Status.Message
            )

    async def enum_circles(self, token: str) -> list[dict[str, Any]]:
        raw = await self._call("enumCircles", {}, token, _EnumCirclesReply)
        return [camelize(c) for c in raw.get("CircleMeta") or []]

    async def enum_topics(self, token: str, circle_id: str) -> list[dict[str, Any]]:
        raw = await self._call("enumTopics", {"CircleId": circle_id}, token, _EnumTopicsReply)
        return [camelize(t) for t in raw.get("Topics") or []]

    async def _call(self, method: str, body: dict[str, Any], token: str, shape: type[_Reply]) -> dict[str, Any]:
        reply = await self._post(f"/v1/{method}", body, token)
        if reply.status_code == 401:
            raise Unauthorized(method)
        raw, typed = self._decode(reply, method, shape)
        status = typed.Status
        if not status.Result:
            raise CircleOperationFailed(
                status.Message or f"{method} returned Status.Result false",
                operation=method,
                upstreamMessage=status.Message,
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
        if reply.status_code == 401:
            raise Unauthorized(operation)
        raw, typed = self._decode(reply, operation, _OpenReply)
        status = typed.Status
        if status is not None and not status.Result:
            # bounded and masked like every upstream text that reaches a client
            message = REDACTOR.redact(status.Message[:500]) if isinstance(status.Message, str) else None
            message = message or None
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

    def _decode(self, reply: httpx.Response, method: str, shape: type[R]) -> tuple[dict[str, Any], R]:
        """The raw reply (every field, for pass-through) and its typed view (for checks)."""
        if reply.status_code >= 400:
            raise CircleOperationFailed(
                f"{method}: HTTP {reply.status_code}",
                operation=method,
                httpStatus=reply.status_code,
                upstreamMessage=upstream_message(reply.content),
            )
        try:
            raw = _DECODE(reply.content)
        except msgspec.DecodeError:
            raise UpstreamMalformed(
                f"{method} reply is not JSON",
                upstream="service",
                operation=method,
                httpStatus=reply.status_code,
            ) from None
        if not isinstance(raw, dict):
            raise UpstreamMalformed(f"{method} reply is not a JSON object", upstream="service", operation=method)
        try:
            return raw, msgspec.convert(raw, shape)
        except msgspec.ValidationError as exc:
            raise UpstreamMalformed(f"{method} reply: {exc}", upstream="service", operation=method) from None

    async def aclose(self) -> None:
        for client in self._clients:
            await client.aclose()
