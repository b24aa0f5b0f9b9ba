"""The local CircleService port (docs/circle-api.md §3).

``GET /`` answers 200 with a short text (any answer means "running", §3.2; the seed says "a
simple text message"). Every ``/v1/*`` call is a POST with a
JSON object body (§3.3) and is checked in this order:

1. unknown path 404, other method 405 (``Allow: POST``);
2. fault switches: ``serviceDelay``, then ``serviceError500`` / ``serviceMalformed``;
3. ``x-circle-appkey`` missing or not a configured appKey: 401;
4. except ``/v1/authorize``: ``Authorization: Bearer <token>`` must carry a token that
   ``/v1/authorize`` accepted for this appKey and that has not expired: else 401
   ``{"Status": {"Result": false, "Message": "Unauthorized"}}``;
5. body not a JSON object: 400;
6. the call itself, on the emulator's state (``_state.py``: circles, messages, lock, invites,
   files). Logical failures (unknown circle, missing ``CircleId``, "User is locked") are 200
   with ``Status.Result == false``, as callers check ``Status.Result`` on every reply (§3.8).
   ``/v1/createCircle`` takes ``create_delay`` seconds first; ``/v1/processInvite`` with
   ``Wait20Second: true`` waits ``invite_wait`` seconds (20, as documented).

The C#-only operations are served on their inferred paths ``/v1/genInvite``,
``/v1/processInvite``, ``/v1/enumFiles`` and ``/v1/addFile`` (docs/circle-api.md §3.6).

``Content-Type`` and ``Accept`` are not checked: the docs show what clients send, not what the
service demands.

Replies that do not depend on the request are encoded once, at construction; the
``enumCircles`` reply is encoded again only when the circles change.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ._asgi import JSON, TEXT, Receive, Reply, Scope, Send, decode_json, header, read_body
from ._config import EmulatorConfig, Faults
from ._seed import seed_circles
from ._state import Failure, ServiceState
from ._tokens import TokenAuthority, TokenError
from ._unlock_key import demo_unlock_key

VERSION = "emulator-1.0"

_OK = {"Result": True, "Message": ""}


def _status(message: str) -> dict[str, object]:
    return {"Result": False, "Message": message}


_RUNNING = Reply(200, f"CircleService is running ({VERSION})".encode(), TEXT)
_NOT_FOUND = Reply.json(404, {"Status": _status("Not found")})
_POST_ONLY = Reply.json(405, {"Status": _status("Method not allowed")}, extra=((b"allow", b"POST"),))
_GET_ONLY = Reply.json(405, {"Status": _status("Method not allowed")}, extra=((b"allow", b"GET"),))
_UNAUTHORIZED = Reply.json(401, {"Status": _status("Unauthorized")})
_NO_APPKEY = Reply.json(401, {"Status": _status("Missing x-circle-appkey header")})
_BAD_APPKEY = Reply.json(401, {"Status": _status("Unknown x-circle-appkey")})
_BAD_BODY = Reply.json(400, {"Status": _status("The body must be a JSON object")})
_TOO_LARGE = Reply.json(413, {"Status": _status("The body is too large")})
_NO_TOKEN = Reply.json(400, {"Status": _status("Token is required")})
_AUTHORIZED = Reply.json(200, {"Status": _OK})
_ERROR_500 = Reply(500, b"Internal Server Error (emulated fault)", TEXT)
_MALFORMED = Reply(200, b"<!DOCTYPE html><html><body>CircleService: unexpected error</body></html>")

_Body = dict[str, Any]
_Operation = Callable[[_Body], Awaitable[Reply]]


def _ok(payload: Mapping[str, Any]) -> Reply:
    return Reply.json(200, {"Status": _OK, **payload})


def _failed(message: str, empty: Mapping[str, Any]) -> Reply:
    return Reply.json(200, {"Status": _status(message), **empty})


class ServiceApp:
    """ASGI app of the service port."""

    def __init__(
        self, config: EmulatorConfig, authority: TokenAuthority, faults: Faults, stats: dict[str, int]
    ) -> None:
        self._authority = authority
        self._faults = faults
        self._stats = stats
        self._app_keys = frozenset(c.app_key.encode("utf-8") for c in config.credentials)
        self._numeric_result = config.status_result == "number"
        self._config = config
        self.state = ServiceState(
            seed_circles(config.circles), demo_unlock_key().public_key(), invite_ttl=config.invite_ttl
        )
        self._cached: dict[str, tuple[int, Reply]] = {}
        s = self.state
        # path -> (stats counter, operation); None marks /v1/authorize, which needs no Bearer.
        self._routes: dict[str, tuple[str, _Operation | None]] = {
            "/v1/authorize": ("authorize", None),
            "/v1/enumCircles": ("enumCircles", self._enum_circles),
            "/v1/enumTopics": ("enumTopics", self._operation(s.enum_topics, empty={"Topics": []})),
            "/v1/whoAmI": ("whoAmI", self._operation(s.who_am_i)),
            "/v1/createCircle": ("createCircle", self._create_circle),
            "/v1/addMessage": ("addMessage", self._operation(s.add_message)),
            "/v1/getMessages": ("getMessages", self._operation(s.get_messages, empty={"Messages": []})),
            "/v1/decrypt": ("decrypt", self._decrypt),
            "/v1/lockUser": ("lockUser", self._operation(s.lock_user)),
            "/v1/unlockUser": ("unlockUser", self._operation(s.unlock_user)),
            "/v1/genInvite": ("genInvite", self._operation(s.gen_invite)),
            "/v1/processInvite": ("processInvite", self._process_invite),
            "/v1/enumFiles": ("enumFiles", self._operation(s.enum_files, empty={"Files": []})),
            "/v1/addFile": ("addFile", self._operation(s.add_file)),
        }

    @staticmethod
    def _operation(run: Callable[[_Body], Mapping[str, Any]], empty: Mapping[str, Any] | None = None) -> _Operation:
        async def operation(body: _Body) -> Reply:
            try:
                return _ok(run(body))
            except Failure as exc:
                return _failed(str(exc), empty or {})

        return operation

    async def _enum_circles(self, body: _Body) -> Reply:
        # the most frequent call: its reply is encoded again only when the circles change
        cached = self._cached.get("enumCircles")
        if cached is None or cached[0] != self.state.version:
            cached = self._cached["enumCircles"] = (self.state.version, _ok(self.state.enum_circles()))
        return cached[1]

    async def _create_circle(self, body: _Body) -> Reply:
        # Circle's own client shows a spinner: "It may take a few seconds" (docs/circle-api.md §3.5)
        if self._config.create_delay > 0:
            await asyncio.sleep(self._config.create_delay)
        return await self._operation(self.state.create_circle)(body)

    async def _decrypt(self, body: _Body) -> Reply:
        try:
            data = self.state.decrypt(body)
        except Failure as exc:
            return _failed(str(exc), {})
        # where Circle's only client reads it (docs/circle-api.md §3.4)
        return Reply.json(200, {"Status": {**_OK, "DecryptedData": data}})

    async def _process_invite(self, body: _Body) -> Reply:
        if body.get("Wait20Second") is True and self._config.invite_wait > 0:
            await asyncio.sleep(self._config.invite_wait)
        return await self._operation(self.state.process_invite)(body)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self._stats["serviceRequests"] += 1
        path: str = scope["path"]
        route = self._routes.get(path)
        if route is not None:
            reply = await self._call(scope, receive, *route) if scope["method"] == "POST" else _POST_ONLY
        elif path == "/":
            reply = _RUNNING if scope["method"] == "GET" else _GET_ONLY
        else:
            reply = _NOT_FOUND
        if reply.status == 401:
            self._stats["unauthorized"] += 1
        if self._numeric_result and reply.content_type == JSON:
            reply = _with_numeric_result(reply)
        await reply.send(send)

    async def _call(self, scope: Scope, receive: Receive, counter: str, handler: _Operation | None) -> Reply:
        self._stats[counter] += 1
        raw = await read_body(receive)
        faults = self._faults
        if faults.service_delay > 0:
            await asyncio.sleep(faults.service_delay)
        if faults.service_error_500:
            return _ERROR_500
        if faults.service_malformed:
            return _MALFORMED
        app_key = header(scope, b"x-circle-appkey")
        if app_key is None:
            return _NO_APPKEY
        if app_key not in self._app_keys:
            return _BAD_APPKEY
        now = time.time()
        if handler is not None and not self._authority.is_authorized(_bearer(scope), app_key, now):
            return _UNAUTHORIZED
        if raw is None:
            return _TOO_LARGE
        try:
            body = decode_json(raw)
        except ValueError:
            return _BAD_BODY
        if not isinstance(body, dict):
            return _BAD_BODY
        if handler is not None:
            return await handler(body)
        token = body.get("Token")
        if not isinstance(token, str) or not token:
            return _NO_TOKEN
        try:
            self._authority.authorize(token, app_key, now)
        except TokenError as exc:
            return Reply.json(401, {"Status": _status(str(exc))})
        return _AUTHORIZED


def _with_numeric_result(reply: Reply) -> Reply:
    """``status_result="number"``: ``Status.Result`` as 1 or 0, a truthy value that is not a JSON
    boolean (docs/circle-api.md §7: callers test truthiness only)."""
    try:
        body = decode_json(reply.body)
    except ValueError:  # the serviceMalformed fault: left as it is
        return reply
    status = body.get("Status") if isinstance(body, dict) else None
    if isinstance(status, dict) and isinstance(status.get("Result"), bool):
        body = {**body, "Status": {**status, "Result": int(status["Result"])}}
    return Reply.json(reply.status, body)


def _bearer(scope: Scope) -> bytes:
    value = header(scope, b"authorization")
    if value is None:
        return b""
    scheme, _, token = value.partition(b" ")
    return token.strip() if scheme.lower() == b"bearer" else b""
