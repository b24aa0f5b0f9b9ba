"""The "cloud" port: ``GET /api/token`` (circle-api.md §2) and the ``/_emulator/*`` control API.

How the token query is read
---------------------------
The query must hold exactly ``customerId, appKey, endUserId, nonce, signature``, in that order,
each once and non-empty; anything else is a 400. Values are **percent-decoded only** (as
``urllib.parse.unquote`` does, but strict UTF-8), never form-decoded: a ``+`` stays a ``+``.
Documented clients do not URL-encode anything, so a base64 signature arrives with raw ``+``,
``/`` and ``=``; a client that encodes (``%2B``) verifies just as well. ``unquote_plus`` would
turn a raw ``+`` into a space and reject every signature holding one.

The signature is standard base64 of HMAC-SHA256, keyed by the UTF-8 of the stripped secret, over
``customerId=<c>&appKey=<a>&endUserId=<u>&nonce=<n>`` built from the decoded values.

The nonce must be an integer epoch timestamp, in seconds or milliseconds (above 1e11 it is read
as milliseconds), within ``nonce_window`` of now; the same (customerId, appKey, endUserId, nonce)
is accepted once. The real endpoint's rules are unknown (circle-api.md §5.2): these are the
strictest reading that every documented timestamp-based client satisfies.

Errors are ``{"Message": "..."}``: 400 malformed query, 401 unknown identity, bad signature,
stale or reused nonce, 403 when the ``tokenRefuse`` fault is on, 405 for a method other than GET.
No reply or log line ever holds the secret, the signature or the query string.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol
from urllib.parse import unquote_to_bytes

from ._asgi import Receive, Reply, Scope, Send, decode_json, encode_json, read_body
from ._config import EmulatorConfig, Faults
from ._tokens import TokenAuthority

log = logging.getLogger("circle_bridge.emulator")

_NAMES = (b"customerId", b"appKey", b"endUserId", b"nonce", b"signature")
_ORDER = "customerId, appKey, endUserId, nonce, signature"
_NONCE = re.compile(r"-?[0-9]{1,19}")
_MS_THRESHOLD = 1e11
_PRUNE_EVERY = 10.0

_REFUSED = Reply.json(403, {"Message": "refused"})
_NOT_FOUND = Reply.json(404, {"Message": "Not found"})
_GET_ONLY = Reply.json(405, {"Message": "Method not allowed"}, extra=((b"allow", b"GET"),))
_POST_ONLY = Reply.json(405, {"Message": "Method not allowed"}, extra=((b"allow", b"POST"),))


class Control(Protocol):
    """What the control API drives; the ``Emulator`` implements it on its event loop."""

    def state(self) -> dict[str, object]: ...
    async def apply_faults(self, changes: Mapping[str, object]) -> None: ...
    async def reset(self) -> None: ...
    def revoke(self) -> None: ...


class _Rejected(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class TokenApp:
    """ASGI app of the token port."""

    def __init__(
        self,
        config: EmulatorConfig,
        authority: TokenAuthority,
        faults: Faults,
        stats: dict[str, int],
        control: Control,
    ) -> None:
        self._authority = authority
        self._faults = faults
        self._stats = stats
        self._control = control
        self._string_body = config.token_body == "string"  # noqa: S105
        self._window = config.nonce_window
        self._secrets: dict[tuple[str, str], bytes] = {}
        for cred in config.credentials:
            self._secrets.setdefault((cred.customer_id, cred.app_key), cred.secret.strip().encode("utf-8"))
        # (customerId, appKey, endUserId, nonce) -> epoch second after which the nonce is stale
        # anyway, so the entry can go.
        self._seen: dict[tuple[str, str, str, str], float] = {}
        self._next_prune = 0.0
        self._control_routes: dict[str, Callable[[Receive], Awaitable[Reply]]] = {
            "/_emulator/faults": self._set_faults,
            "/_emulator/revoke": self._revoke,
            "/_emulator/reset": self._reset,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/api/token":
            reply = await self._token(scope)
        elif path == "/_emulator/state":
            reply = Reply.json(200, self._control.state()) if scope["method"] == "GET" else _GET_ONLY
        elif (handler := self._control_routes.get(path)) is not None:
            reply = await handler(receive) if scope["method"] == "POST" else _POST_ONLY
        else:
            reply = _NOT_FOUND
        await reply.send(send)

    # -- token endpoint --------------------------------------------------------------------

    async def _token(self, scope: Scope) -> Reply:
        self._stats["tokenRequests"] += 1
        if scope["method"] != "GET":
            self._stats["tokenRejected"] += 1
            return _GET_ONLY
        if self._faults.token_delay > 0:
            await asyncio.sleep(self._faults.token_delay)
        if self._faults.token_refuse:
            self._stats["tokenRejected"] += 1
            return _REFUSED
        try:
            token = self._issue(scope["query_string"], time.time())
        except _Rejected as exc:
            self._stats["tokenRejected"] += 1
            log.debug("token request rejected: %d %s", exc.status, exc.message)
            return Reply.json(exc.status, {"Message": exc.message})
        if self._string_body:
            # The documented shape: a JSON string whose content is a pretty-printed JSON object
            # with CRLF line breaks (what json.dumps(indent=2) on Windows-style text gives).
            return Reply(200, encode_json('{\r\n  "Token": "' + token + '"\r\n}'))
        return Reply.json(200, {"Token": token})

    def _issue(self, query: bytes, now: float) -> str:
        customer_id, app_key, end_user_id, nonce, signature = _parse_query(query)
        if _NONCE.fullmatch(nonce) is None:
            raise _Rejected(400, "nonce must be an integer epoch timestamp in seconds or milliseconds")
        key = self._secrets.get((customer_id, app_key))
        if key is None:
            raise _Rejected(401, "Unknown customerId or appKey")
        message = f"customerId={customer_id}&appKey={app_key}&endUserId={end_user_id}&nonce={nonce}"
        expected = base64.b64encode(hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, signature.encode("utf-8")):
            raise _Rejected(401, "Invalid signature")
        stamp = int(nonce)
        seconds = stamp / 1000 if stamp > _MS_THRESHOLD else float(stamp)
        if abs(now - seconds) > self._window:
            raise _Rejected(401, "Stale nonce: it must be the current epoch time in seconds or milliseconds")
        self._prune(now)
        seen_key = (customer_id, app_key, end_user_id, nonce)
        if seen_key in self._seen:
            raise _Rejected(401, "Nonce reused")
        self._seen[seen_key] = seconds + self._window
        return self._authority.issue(customer_id, app_key, end_user_id, now)

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY
        self._seen = {k: until for k, until in self._seen.items() if until >= now}

    # -- control API -----------------------------------------------------------------------

    async def _set_faults(self, receive: Receive) -> Reply:
        body = await read_body(receive)
        try:
            changes = decode_json(body) if body is not None else None
        except ValueError:
            changes = None
        if not isinstance(changes, dict):
            return Reply.json(400, {"Message": "the body must be a JSON object of fault switches"})
        try:
            await self._control.apply_faults(changes)
        except ValueError as exc:
            return Reply.json(400, {"Message": str(exc)})
        except OSError as exc:  # the service port could not be bound again
            return Reply.json(500, {"Message": f"cannot listen on the service port again: {exc}"})
        return Reply.json(200, self._control.state())

    async def _revoke(self, receive: Receive) -> Reply:
        self._control.revoke()
        return Reply.json(200, self._control.state())

    async def _reset(self, receive: Receive) -> Reply:
        await self._control.reset()
        return Reply.json(200, self._control.state())


def _parse_query(query: bytes) -> tuple[str, str, str, str, str]:
    pairs = query.split(b"&")
    if len(pairs) != len(_NAMES):
        raise _Rejected(400, f"expected exactly the query parameters {_ORDER}, in this order")
    values: list[str] = []
    for pair, expected in zip(pairs, _NAMES, strict=True):
        name, sep, raw = pair.partition(b"=")
        if name != expected or not sep:
            raise _Rejected(400, f"expected exactly the query parameters {_ORDER}, in this order")
        try:
            value = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise _Rejected(400, f"{expected.decode()} is not valid UTF-8 after percent-decoding") from None
        if not value:
            raise _Rejected(400, f"{expected.decode()} is empty")
        values.append(value)
    return values[0], values[1], values[2], values[3], values[4]
