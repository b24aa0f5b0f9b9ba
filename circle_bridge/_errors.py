"""The error catalogue: every JSON-RPC error a client of circle-bridge can see.

Codes are stable. Standard codes come from JSON-RPC 2.0 (-32700..-32600) and LSP (-32002, -32800).
Circle's own codes live in -33099..-33001: outside both the range JSON-RPC reserves
(-32768..-32000) and the one LSP reserves (-32899..-32800).

Hierarchy (all raised inside the bridge, turned into wire errors at exactly one place, the
dispatch boundary in ``_dispatch.py``)::

    BridgeError                   code, message, data (never a secret)
    ├── InvalidParams             -32602, names the bad field in data.field
    ├── ServiceNotRunning         -33001
    ├── TokenRequestFailed        -33002
    ├── AuthorizationRejected     -33003
    ├── CircleOperationFailed     -33004, upstream Status.Message in data.upstreamMessage
    ├── UpstreamMalformed         -33005
    ├── UpstreamTimeout           -33006
    ├── BadConfiguration          -33007, data.missing lists the settings to set
    └── TokenNeeded               -33020, CIRCLE_TOKEN_SOURCE=client and no valid token yet

-33010 (Unauthenticated) is never raised: the TCP admission check (`_admission.py`) answers it
before a connection reaches dispatch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class ErrorSpec:
    """One catalogue entry: what the code means and whether a retry can help."""

    code: int
    name: str
    message: str
    meaning: str
    retryable: bool


PARSE_ERROR = ErrorSpec(
    -32700,
    "ParseError",
    "Parse error",
    "The frame was not valid UTF-8 JSON, or its header was malformed. The id is null.",
    False,
)
INVALID_REQUEST = ErrorSpec(
    -32600,
    "InvalidRequest",
    "Invalid request",
    "Not a JSON-RPC 2.0 request object: wrong `jsonrpc`, bad id type, a batch, a frame "
    "over the size cap, or a request after `shutdown`.",
    False,
)
METHOD_NOT_FOUND = ErrorSpec(
    -32601, "MethodNotFound", "Method not found", "The method is not part of this protocol version.", False
)
INVALID_PARAMS = ErrorSpec(
    -32602,
    "InvalidParams",
    "Invalid params",
    "Params do not match the method's schema; `data.field` names the offending field.",
    False,
)
INTERNAL_ERROR = ErrorSpec(
    -32603,
    "InternalError",
    "Internal error",
    "A bug in circle-bridge. The server logged the details to its log, not to you.",
    True,
)
SERVER_NOT_INITIALIZED = ErrorSpec(
    -32002,
    "ServerNotInitialized",
    "Server not initialized",
    "A request arrived before `initialize` on this connection.",
    False,
)
REQUEST_CANCELLED = ErrorSpec(
    -32800, "RequestCancelled", "Request cancelled", "The client cancelled the request with `$/cancelRequest`.", False
)
SERVICE_NOT_RUNNING = ErrorSpec(
    -33001,
    "ServiceNotRunning",
    "CircleService is not running",
    "No connection to the local CircleService. Start it (or install it) and retry.",
    True,
)
TOKEN_REQUEST_FAILED = ErrorSpec(
    -33002,
    "TokenRequestFailed",
    "Circle token request failed",
    "The Circle cloud token endpoint refused or failed the signed token request. "
    "Check the credentials and the clock; `data.httpStatus` has the status. When the endpoint "
    "rejected the credentials (a bad signature, an unknown app key), `data.retryable` is false "
    "and `data.likelyCause` names the setting to check.",
    True,
)
AUTHORIZATION_REJECTED = ErrorSpec(
    -33003,
    "AuthorizationRejected",
    "CircleService rejected the authorization",
    "CircleService did not accept the token, even after one fresh token.",
    True,
)
CIRCLE_OPERATION_FAILED = ErrorSpec(
    -33004,
    "CircleOperationFailed",
    "Circle operation failed",
    "CircleService answered `Status.Result: false` or an HTTP error; "
    "`data.upstreamMessage` carries its `Status.Message`.",
    False,
)
UPSTREAM_MALFORMED = ErrorSpec(
    -33005,
    "UpstreamMalformed",
    "Malformed reply from upstream",
    "The token endpoint, the token source or CircleService answered with a body of the wrong shape, "
    "one larger than `CIRCLE_BRIDGE_MAX_UPSTREAM_BYTES` (`data.limitBytes`), or broke off its reply.",
    True,
)
UPSTREAM_TIMEOUT = ErrorSpec(
    -33006,
    "UpstreamTimeout",
    "Upstream timed out",
    "The token endpoint or CircleService did not answer within the configured timeout.",
    True,
)
BAD_CONFIGURATION = ErrorSpec(
    -33007,
    "BadConfiguration",
    "circle-bridge is not configured",
    "A required setting is missing or invalid; `data.missing` names the settings.",
    False,
)
UNAUTHENTICATED = ErrorSpec(
    -33010,
    "Unauthenticated",
    "Authentication required",
    "On TCP the first request must be `initialize` with the daemon's token in "
    "`initializationOptions.authToken` (from daemon.json); the connection is closed after this reply.",
    False,
)
TOKEN_NEEDED = ErrorSpec(
    -33020,
    "TokenNeeded",
    "A token is needed from the client",
    "With `CIRCLE_TOKEN_SOURCE=client` the bridge has no valid token: get one from your backend and "
    "send `circle/initialize` with `{token}`. The bridge also sends the `circle/tokenNeeded` "
    "notification; calls fail with this code until a token arrives.",
    True,
)
CATALOGUE: tuple[ErrorSpec, ...] = (
    PARSE_ERROR,
    INVALID_REQUEST,
    METHOD_NOT_FOUND,
    INVALID_PARAMS,
    INTERNAL_ERROR,
    SERVER_NOT_INITIALIZED,
    REQUEST_CANCELLED,
    SERVICE_NOT_RUNNING,
    TOKEN_REQUEST_FAILED,
    AUTHORIZATION_REJECTED,
    CIRCLE_OPERATION_FAILED,
    UPSTREAM_MALFORMED,
    UPSTREAM_TIMEOUT,
    BAD_CONFIGURATION,
    UNAUTHENTICATED,
    TOKEN_NEEDED,
)


class BridgeError(Exception):
    """An error a client may see. ``data`` must never hold a secret, token or signed URL."""

    spec: ClassVar[ErrorSpec] = INTERNAL_ERROR

    def __init__(self, detail: str | None = None, **data: Any) -> None:
        self.detail = detail
        self.data: dict[str, Any] = {k: v for k, v in data.items() if v is not None}
        super().__init__(self.message)

    @property
    def code(self) -> int:
        return self.spec.code

    @property
    def message(self) -> str:
        return f"{self.spec.message}: {self.detail}" if self.detail else self.spec.message

    def wire_data(self) -> dict[str, Any]:
        """``retryable`` defaults to the catalogue's; an error that knows better (bad credentials
        fail the same way every time, an HTTP 500 may pass) sets it in ``data``."""
        return {"retryable": self.spec.retryable, **self.data}


class InvalidParams(BridgeError):
    spec = INVALID_PARAMS


class ServiceNotRunning(BridgeError):
    spec = SERVICE_NOT_RUNNING


class TokenRequestFailed(BridgeError):
    spec = TOKEN_REQUEST_FAILED


class AuthorizationRejected(BridgeError):
    spec = AUTHORIZATION_REJECTED


class CircleOperationFailed(BridgeError):
    spec = CIRCLE_OPERATION_FAILED


class UpstreamMalformed(BridgeError):
    spec = UPSTREAM_MALFORMED


class UpstreamTimeout(BridgeError):
    spec = UPSTREAM_TIMEOUT


class BadConfiguration(BridgeError):
    spec = BAD_CONFIGURATION


class TokenNeeded(BridgeError):
    spec = TOKEN_NEEDED
