"""The `circle/*` methods and `rpc.discover`: validate params, call the shared session, shape
the result. Params are checked with msgspec against the protocol structs; a mismatch is a
-32602 whose `data.field` names the offending field."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from pygls.server import JsonRPCServer

from ._errors import InvalidParams
from ._protocol import (
    CircleInitializeParams,
    CircleInitializeResult,
    EnumTopicsParams,
    IsServiceRunningResult,
    NoParams,
)
from ._session import Session

S = TypeVar("S", bound=msgspec.Struct)

_AT = re.compile(r" - at `\$\.?(?P<path>[^`]*)`$")
_FIELD = re.compile(r"field `(?P<name>[^`]+)`")


def parse_params(params: Any, shape: type[S]) -> S:
    """``params`` (object, null or absent) as ``shape``, or InvalidParams naming the field."""
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise InvalidParams("params must be an object (by-name), not an array", field="params")
    try:
        return msgspec.convert(params, shape)
    except msgspec.ValidationError as exc:
        text = str(exc)
        at = _AT.search(text)
        named = _FIELD.search(text)
        path = at.group("path") if at else ""
        if named:
            path = f"{path}.{named.group('name')}" if path else named.group("name")
        raise InvalidParams(_AT.sub("", text), field=path or "params") from None


def register_circle_methods(server: JsonRPCServer, session: Session, discover: Callable[[], dict[str, Any]]) -> None:
    @server.feature("rpc.discover")
    async def rpc_discover(params: Any) -> dict[str, Any]:
        parse_params(params, NoParams)
        return discover()

    @server.feature("circle/isServiceRunning")
    async def is_service_running(params: Any) -> IsServiceRunningResult:
        parse_params(params, NoParams)
        probe = await session.probe_service()
        return IsServiceRunningResult(
            running=probe.running,
            service_url=session.service_url,
            tls_problem=probe.tls_problem if probe.tls_problem is not None else msgspec.UNSET,
        )

    @server.feature("circle/initialize")
    async def circle_initialize(params: Any) -> CircleInitializeResult:
        p = parse_params(params, CircleInitializeParams)
        if p.token:
            auth = await session.accept_client_token(p.token)
        else:
            auth = await session.ensure_authorized()
        return CircleInitializeResult(
            authorized=True, end_user_id=auth.end_user_id, expires_in=round(auth.expires_in, 3)
        )

    @server.feature("circle/enumCircles")
    async def enum_circles(params: Any) -> dict[str, Any]:
        parse_params(params, NoParams)
        # dicts, not CircleInfo: every upstream field is passed on, not only the typed ones
        circles = await session.enum_circles()
        return {"circles": circles}

    @server.feature("circle/enumTopics")
    async def enum_topics(params: Any) -> dict[str, Any]:
        p = parse_params(params, EnumTopicsParams)
        return {"topics": await session.enum_topics(p.circle_id)}
