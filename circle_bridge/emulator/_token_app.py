"""The "cloud" port: ``GET /api/token`` (docs/circle-api.md §2) and the ``/_emulator/*`` control API.

How the token query is read
---------------------------
By default the query must hold ``customerId, appKey, endUserId, nonce, signature``, each
non-empty, in any order; other parameters and empty pairs (``token?&customerId=…``) are ignored,
and the first of a repeated name counts. With ``exact_query`` (strict) it must be exactly those
five, in that order, each once; anything else is a 400.

``token_query`` says how values are decoded: ``percent`` (default) decodes ``%XX`` only, as
``urllib.parse.unquote`` does but strict UTF-8, never form-decoding, so a raw ``+`` stays a ``+``
and both raw (every public sample) and percent-encoded clients verify; ``raw`` decodes nothing (a
server that compares the query text as sent: only raw clients verify); ``form`` is a standard
form parser (``+`` is a space: a raw ``+`` in a signature breaks it, percent-encoding survives).

The signature is standard base64 of HMAC-SHA256, keyed by the UTF-8 of the stripped secret, over
``customerId=<c>&appKey=<a>&endUserId=<u>&nonce=<n>`` built from the decoded values; with
``signed_string`` ``either`` (default) the same string with a leading ``?`` verifies too,
``plain`` and ``question`` accept one form only.

The nonce must be an integer (Circle's ForgeRock node sends a random int). With
``check_nonce_freshness`` it must be an epoch timestamp in seconds or milliseconds (above 1e11 it
is read as milliseconds) within ``nonce_window`` of now; with ``reject_nonce_reuse`` the same
(customerId, appKey, endUserId, nonce) is accepted once. Circle documents neither rule.

Errors are ``{"Message": "..."}``: 400 malformed query, 401 unknown identity, bad signature,
stale or reused nonce (``token_error_status`` replaces 400/401, e.g. by 200, as a server that
reports errors in the body), 403 when the ``tokenRefuse`` fault is on, 405 for a method other
than GET. With ``token_redirect``, ``/api/token`` answers 307 to ``/api/v2/token`` with the same
query. No reply or log line ever holds the secret, the signature or the query string.
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
from urllib.parse import unquote_plus, unquote_to_bytes

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
        control_token: str,
    ) -> None:
        self._authority = authority
        self._faults = faults
        self._stats = stats
        self._control = control
        self._string_body = config.token_body == "string"  # noqa: S105
        self._window = config.nonce_window
        self._config = config
        self._secrets: dict[tuple[str, str], bytes] = {}
        for cred in config.credentials:
            self._secrets.setdefault((cred.customer_id, cred.app_key), cred.secret.strip().encode("utf-8"))
        # (customerId, appKey, endUserId, nonce) -> epoch second after which the nonce is stale
        # anyway, so the entry can go.
        self._seen: dict[tuple[str, str, str, str], float] = {}
        self._next_prune = 0.0
        self._control_prefix = f"/_emulator/{control_token}"
        self._control_routes: dict[str, Callable[[Receive], Awaitable[Reply]]] = {
            f"{self._control_prefix}/faults": self._set_faults,
            f"{self._control_prefix}/revoke": self._revoke,
            f"{self._control_prefix}/reset": self._reset,
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path == "/api/token" and self._config.token_redirect:
            query: bytes = scope["query_string"]
            location = b"/api/v2/token" + (b"?" + query if query else b"")
            reply = Reply(307, b"", extra=((b"location", location),))
        elif path == "/api/token" or (path == "/api/v2/token" and self._config.token_redirect):
            reply = await self._token(scope)
        elif path.startswith("/_emulator/") and (refusal := _control_refusal(scope)) is not None:
            reply = refusal
        elif path == f"{self._control_prefix}/state":
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
            return Reply.json(self._config.token_error_status or exc.status, {"Message": exc.message})
        if self._string_body:
            # The documented shape: a JSON string whose content is a pretty-printed JSON object
            # with CRLF line breaks (what json.dumps(indent=2) on Windows-style text gives).
            return Reply(200, encode_json('{\r\n  "Token": "' + token + '"\r\n}'))
        return Reply.json(200, {"Token": token})

    def _issue(self, query: bytes, now: float) -> str:
        config = self._config
        parse = _parse_exact_query if config.exact_query else _parse_query
        customer_id, app_key, end_user_id, nonce, signature = parse(query, config.token_query)
        if _NONCE.fullmatch(nonce) is None:
            raise _Rejected(400, "nonce must be an integer (an epoch timestamp in seconds or milliseconds)")
        key = self._secrets.get((customer_id, app_key))
        if key is None:
            raise _Rejected(401, "Unknown customerId or appKey")
        message = f"customerId={customer_id}&appKey={app_key}&endUserId={end_user_id}&nonce={nonce}"
        forms = {"plain": (message,), "question": ("?" + message,), "either": (message, "?" + message)}
        given = signature.encode("utf-8")
        if not any(
            hmac.compare_digest(base64.b64encode(hmac.new(key, form.encode("utf-8"), hashlib.sha256).digest()), given)
            for form in forms[config.signed_string]
        ):
            raise _Rejected(401, "Invalid signature")
        stamp = int(nonce)
        seconds = stamp / 1000 if stamp > _MS_THRESHOLD else float(stamp)
        if config.check_nonce_freshness and abs(now - seconds) > self._window:
            raise _Rejected(401, "Stale nonce: it must be the current epoch time in seconds or milliseconds")
        if config.reject_nonce_reuse:
            self._prune(now)
            seen_key = (customer_id, app_key, end_user_id, nonce)
            if seen_key in self._seen:
                raise _Rejected(401, "Nonce reused")
            self._seen[seen_key] = max(seconds, now) + self._window
        return self._authority.issue(customer_id, app_key, end_user_id, now)

    def _prune(self, now: float) -> None:
        if now < self._next_prune:
            return
        self._next_prune = now + _PRUNE_EVERY
        self._seen = {k: until for k, until in self._seen.items() if until >= now}

    # -- control API -----------------------------------------------------------------------
    # Guarded like a local developer API should be against the browser on the same machine: a
    # per-run secret path (see Emulator.control_token), a JSON content type on every POST (a page
    # cannot send one cross-origin without a CORS preflight, which is never granted), and no
    # request that names another origin.

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


def _control_refusal(scope: Scope) -> Reply | None:
    headers = {k.lower(): v for k, v in scope.get("headers", [])}
    origin = headers.get(b"origin")
    if origin is not None:
        server = scope.get("server") or ("", 0)
        own = {f"http://{server[0]}:{server[1]}".encode(), f"http://localhost:{server[1]}".encode()}
        if origin not in own:
            return Reply.json(403, {"Message": "the control API refuses requests from other origins"})
    if scope["method"] == "POST":
        media = headers.get(b"content-type", b"").split(b";", 1)[0].strip().lower()
        if media != b"application/json":
            return Reply.json(415, {"Message": "the control API takes Content-Type: application/json"})
    return None


def _decode(raw: bytes, name: str, mode: str) -> str:
    try:
        if mode == "raw":
            return raw.decode("utf-8")
        if mode == "form":
            return unquote_plus(raw.decode("ascii"), errors="strict")
        return unquote_to_bytes(raw).decode("utf-8")
    except UnicodeError:
        raise _Rejected(400, f"{name} is not valid UTF-8 after decoding") from None


def _parse_exact_query(query: bytes, mode: str) -> tuple[str, str, str, str, str]:
    pairs = query.split(b"&")
    if len(pairs) != len(_NAMES):
        raise _Rejected(400, f"expected exactly the query parameters {_ORDER}, in this order")
    values: list[str] = []
    for pair, expected in zip(pairs, _NAMES, strict=True):
        name, sep, raw = pair.partition(b"=")
        if name != expected or not sep:
            raise _Rejected(400, f"expected exactly the query parameters {_ORDER}, in this order")
        value = _decode(raw, expected.decode(), mode)
        if not value:
            raise _Rejected(400, f"{expected.decode()} is empty")
        values.append(value)
    return values[0], values[1], values[2], values[3], values[4]


def _parse_query(query: bytes, mode: str) -> tuple[str, str, str, str, str]:
    found: dict[bytes, bytes] = {}
    for pair in query.split(b"&"):
        name, _, raw = pair.partition(b"=")
        if name in _NAMES and name not in found:
            found[name] = raw
    values: list[str] = []
    for expected in _NAMES:
        given = found.get(expected)
        value = _decode(given, expected.decode(), mode) if given is not None else ""
        if not value:
            raise _Rejected(400, f"the query parameter {expected.decode()} is missing or empty (need {_ORDER})")
        values.append(value)
    return values[0], values[1], values[2], values[3], values[4]
