"""The circle-bridge protocol: the single source of truth.

Wire types are msgspec Structs; the method table below names each method's params, result,
errors and examples. The OpenRPC document (``protocol/circle-bridge.openrpc.json``), the
``rpc.discover`` reply, and the TypeScript and Go client types are all generated from this
module (``python -m tools.codegen``); CI regenerates them and fails on any diff.

Why the structs generate the spec and not the reverse: the structs are what actually validates
params at run time, so a spec derived from them cannot drift from the server's behaviour, and
msgspec emits JSON Schema from them directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from msgspec import UNSET, Meta, Struct, UnsetType

from . import _errors as E

PROTOCOL_VERSION = "1.0"
"""Bumped in its minor part when methods or optional fields are added, in its major part when
anything is removed or changes meaning. See protocol/README.md, "Versioning"."""

NonEmpty = Annotated[str, Meta(min_length=1)]
Observed = Annotated[
    str,
    Meta(
        description="Observed from CircleService, not documented by Circle: may be absent.",
        extra_json_schema={"x-observed": True},
    ),
]
"""A field CircleService was seen to send but Circle does not document (circle-api.md §7): the
schema marks it `"x-observed": true` so generated types can say "not guaranteed"."""


class ClientInfo(Struct, rename="camel", omit_defaults=True):
    """Who the client is; logged, never required."""

    name: str
    version: str | UnsetType = UNSET


class InitializeParams(Struct, rename="camel", omit_defaults=True):
    """LSP-style `initialize` params. Other LSP fields (rootUri, capabilities, ...) are accepted and
    ignored, so stock LSP clients can connect."""

    process_id: int | UnsetType | None = UNSET
    """The parent process: on stdio the bridge exits when it dies."""
    client_info: ClientInfo | UnsetType = UNSET


class ServerInfo(Struct):
    name: str
    version: str


class ServerCapabilities(Struct, rename="camel"):
    methods: list[str]
    """Every method this server answers, lifecycle included."""
    cancellation: bool
    """`$/cancelRequest` is honoured."""
    batches: bool
    """JSON-RPC batches are accepted (false: a batch gets -32600)."""


class InitializeResult(Struct, rename="camel"):
    server_info: ServerInfo
    capabilities: ServerCapabilities
    protocol_version: str


class CancelParams(Struct, forbid_unknown_fields=True):
    id: int | str


class NoParams(Struct, forbid_unknown_fields=True):
    """This method takes no params: send `{}`, `null`, or omit `params`."""


class IsServiceRunningResult(Struct, rename="camel", omit_defaults=True):
    running: bool
    service_url: str
    tls_problem: str | UnsetType = UNSET
    """Present when the service answered over https with a certificate this machine does not trust
    (or one made for another host name): it runs, but calls will fail with -33007 until it is."""


class CircleInitializeParams(Struct, rename="camel", forbid_unknown_fields=True, omit_defaults=True):
    """Optional: with `CIRCLE_TOKEN_SOURCE=client`, the token your backend obtained for this user."""

    token: Annotated[str, Meta(min_length=1)] | UnsetType = UNSET
    """A Circle token (a JWT) from your backend. Only with `CIRCLE_TOKEN_SOURCE=client`; any other
    source answers -33007."""


class TokenNeededParams(Struct, rename="camel"):
    """Sent by the bridge (`circle/tokenNeeded`, a notification) when `CIRCLE_TOKEN_SOURCE=client`
    and it needs a new token: answer with `circle/initialize {token}`."""

    reason: Literal["missing", "expiring", "expired"]
    """`missing`: no token yet; `expiring`: the current one is in its last fifth of life (calls still
    work); `expired`: calls fail with -33020 until a token arrives."""
    expires_in: float
    """Seconds the current token is still valid for (0 when missing or expired)."""


class CircleInitializeResult(Struct, rename="camel"):
    authorized: bool
    end_user_id: str
    expires_in: float
    """Seconds until the current token expires; the bridge renews it before then on its own."""


class CircleInfo(Struct, rename="camel", omit_defaults=True):
    """A circle as CircleService describes it. Only `circleId` is documented by Circle; every other
    field CircleService sends is passed on, camelCased. Fields marked `x-observed` (and any other,
    such as `memberCount`) were seen in replies but are not guaranteed."""

    circle_id: str
    circle_name: Observed | UnsetType = UNSET
    circle_description: Observed | UnsetType = UNSET


class EnumCirclesResult(Struct):
    circles: list[CircleInfo]


class EnumTopicsParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty


class TopicInfo(Struct, rename="camel", omit_defaults=True):
    """A topic of a circle. Only `topicId` is documented by Circle; every other field CircleService
    sends is passed on, camelCased. Fields marked `x-observed` were seen in replies but are not
    guaranteed."""

    topic_id: str
    topic_name: Observed | UnsetType = UNSET
    topic_description: Observed | UnsetType = UNSET


class EnumTopicsResult(Struct):
    topics: list[TopicInfo]


@dataclass(frozen=True)
class Example:
    name: str
    params: dict[str, Any] | None
    result: Any = None
    error: dict[str, Any] | None = None


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    description: str
    params: type[Struct] | None
    result: type[Struct] | None  # None: the result is JSON null (or there is none, for notifications)
    kind: Literal["request", "notification"] = "request"
    before_initialize: bool = False
    errors: tuple[E.ErrorSpec, ...] = ()
    examples: tuple[Example, ...] = field(default=())


_UPSTREAM_ERRORS = (
    E.SERVICE_NOT_RUNNING,
    E.TOKEN_REQUEST_FAILED,
    E.AUTHORIZATION_REJECTED,
    E.UPSTREAM_MALFORMED,
    E.UPSTREAM_TIMEOUT,
    E.BAD_CONFIGURATION,
)

# Ids below are the emulator's seed data, so every example replays against `circle-bridge emulator`.
EXAMPLE_CIRCLE_ID = "7b1c4e0a-3f5d-4c2e-9a61-0d8f2b6c1e01"

METHODS: tuple[Method, ...] = (
    Method(
        "initialize",
        "Open the connection (LSP-style handshake).",
        "Must be the first request on a connection. Any other request before it gets -32002.",
        InitializeParams,
        InitializeResult,
        before_initialize=True,
        examples=(
            Example(
                "handshake",
                {"processId": 4242, "clientInfo": {"name": "my-editor", "version": "1.2.0"}},
                {
                    "serverInfo": {"name": "circle-bridge", "version": "0.1.0"},
                    "capabilities": {
                        "methods": ["initialize", "circle/enumCircles"],
                        "cancellation": True,
                        "batches": False,
                    },
                    "protocolVersion": PROTOCOL_VERSION,
                },
            ),
        ),
    ),
    Method(
        "initialized",
        "The client received the `initialize` result.",
        "A notification; no reply.",
        NoParams,
        None,
        kind="notification",
        examples=(Example("ack", {}),),
    ),
    Method(
        "shutdown",
        "Ask the server to stop serving this connection.",
        "The result is null. Every later request except `exit` gets -32600.",
        NoParams,
        None,
        examples=(Example("shutdown", None, None),),
    ),
    Method(
        "exit",
        "End the connection (and, on stdio, the process).",
        "A notification. The process exits 0 if `shutdown` came first, else 1.",
        NoParams,
        None,
        kind="notification",
        before_initialize=True,
        examples=(Example("exit", None),),
    ),
    Method(
        "$/cancelRequest",
        "Cancel an in-flight request.",
        "A notification. The cancelled request is still answered, with error -32800. Unknown ids are ignored.",
        CancelParams,
        None,
        kind="notification",
        before_initialize=True,
        examples=(Example("cancel", {"id": 7}),),
    ),
    Method(
        "rpc.discover",
        "This protocol's OpenRPC document.",
        "Returns the same document as protocol/circle-bridge.openrpc.json. Allowed before `initialize`.",
        NoParams,
        None,
        before_initialize=True,
        examples=(Example("discover", None, {"openrpc": "1.3.2"}),),
    ),
    Method(
        "circle/isServiceRunning",
        "Is the local CircleService reachable?",
        "Any HTTP answer on `GET /` of the service URL counts as running, as in Circle's SDK, and so does "
        "an https service whose certificate this machine does not trust: `running: true` with a "
        "`tlsProblem` that says what to fix. Needs no credentials and never fails for a dead service: "
        "it answers `running: false`.",
        NoParams,
        IsServiceRunningResult,
        examples=(Example("running", {}, {"running": True, "serviceUrl": "http://127.0.0.1:31415"}),),
    ),
    Method(
        "circle/initialize",
        "Get a token and authorize with CircleService.",
        "Idempotent: the session is shared by every connection of this bridge, so a second call (or a "
        "second app) costs no token round trip. Other circle/* calls initialize on demand, so calling "
        "this first is optional; it is the place to surface configuration and credential errors early. "
        "With `CIRCLE_TOKEN_SOURCE=client` the app passes `token` (from its own backend): here first, "
        "and again whenever the bridge sends `circle/tokenNeeded`.",
        CircleInitializeParams,
        CircleInitializeResult,
        errors=(*_UPSTREAM_ERRORS, E.TOKEN_NEEDED),
        # examples replay against the emulator with the default (secret) source; the client source
        # is shown in the README, "Where the Secret lives"
        examples=(Example("authorize", {}, {"authorized": True, "endUserId": "userman", "expiresIn": 599.5}),),
    ),
    Method(
        "circle/enumCircles",
        "List the circles this user belongs to.",
        "An empty list means the user has no circle yet.",
        NoParams,
        EnumCirclesResult,
        errors=(*_UPSTREAM_ERRORS, E.CIRCLE_OPERATION_FAILED, E.TOKEN_NEEDED),
        examples=(
            Example(
                "circles",
                {},
                {"circles": [{"circleId": EXAMPLE_CIRCLE_ID, "circleName": "Family Vault", "memberCount": 4}]},
            ),
        ),
    ),
    Method(
        "circle/enumTopics",
        "List the topics of one circle.",
        "An unknown circle gets -33004 with CircleService's message in `data.upstreamMessage`.",
        EnumTopicsParams,
        EnumTopicsResult,
        errors=(*_UPSTREAM_ERRORS, E.CIRCLE_OPERATION_FAILED, E.TOKEN_NEEDED),
        examples=(
            Example(
                "topics",
                {"circleId": EXAMPLE_CIRCLE_ID},
                {
                    "topics": [
                        {
                            "topicId": "1f0e2d3c-4b5a-4978-8d6e-5f4a3b2c1d11",
                            "topicName": "Passwords",
                            "messageCount": 27,
                        }
                    ]
                },
            ),
            Example(
                "unknown circle",
                {"circleId": "no-such-circle"},
                error={"code": E.CIRCLE_OPERATION_FAILED.code, "message": "Circle operation failed: Circle not found"},
            ),
        ),
    ),
)

METHODS_BY_NAME: dict[str, Method] = {m.name: m for m in METHODS}

SERVER_NOTIFICATIONS: tuple[Method, ...] = (
    Method(
        "circle/tokenNeeded",
        "The bridge needs a token from the client (`CIRCLE_TOKEN_SOURCE=client`).",
        "Server to client, a notification. Sent to every initialized connection when no token is "
        "there yet, when the current one enters its last fifth of life, and when it has expired; "
        "each reason once per token. Get a token from your backend and send `circle/initialize` "
        "with `{token}`. Until then calls that need a token fail with -33020.",
        TokenNeededParams,
        None,
        kind="notification",
        examples=(Example("expiring", {"reason": "expiring", "expiresIn": 118.5}),),
    ),
)
"""Notifications the bridge sends to clients; not part of the dispatch table."""
