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
from msgspec import field as wire_field

from . import _errors as E

PROTOCOL_VERSION = "1.1"
"""Bumped in its minor part when methods or optional fields are added, in its major part when
anything is removed or changes meaning. See protocol/README.md, "Versioning"."""

NonEmpty = Annotated[str, Meta(min_length=1)]
PID_MAX = 4_194_304
"""The largest process id any supported OS hands out (Linux's PID_MAX_LIMIT): a larger
`processId` could never be watched, so it is refused rather than silently ignored."""
ProgressToken = int | str
"""LSP's ProgressToken: the client chooses it; `$/progress` notifications carry it back."""

OBSERVED: Meta = Meta(extra_json_schema={"x-observed": True})
"""Marks a field seen in CircleService replies (or its emulator) but not documented by Circle
(docs/circle-api.md §7: mark such names in any schema). Clients must not rely on it."""
Observed = Annotated[str, OBSERVED]
"""A string field CircleService was seen to send but Circle does not document."""


class ClientInfo(Struct, rename="camel", omit_defaults=True):
    """Who the client is; logged, never required."""

    name: str
    version: str | UnsetType = UNSET


class InitializeParams(Struct, rename="camel", omit_defaults=True):
    """LSP-style `initialize` params. Other LSP fields (rootUri, capabilities, ...) are accepted and
    ignored, so stock LSP clients can connect."""

    process_id: Annotated[int, Meta(ge=1, le=PID_MAX)] | UnsetType | None = UNSET
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


class CreateCircleParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_name: NonEmpty
    circle_description: str = ""
    work_done_token: ProgressToken | UnsetType = UNSET
    """LSP work-done progress: when given, the bridge sends `$/progress` notifications with this
    token (`begin`, a `report` every second while CircleService works, `end`)."""


class CreateCircleResult(Struct, rename="camel", omit_defaults=True):
    """CircleService's reply without `Status`, camelCased. Circle's C# docs name the id `CircleID`
    and their example `CircleId`; either is given here as `circleId`. Circle's own JavaScript
    client never reads this reply, so `circleId` may be absent: then list the circles."""

    circle_id: str | UnsetType = UNSET


class CircleParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty


class WhoAmIResult(Struct, rename="camel", omit_defaults=True):
    """The caller's own membership of the circle. Only `locked` is documented."""

    locked: bool
    member_id: Annotated[str, OBSERVED] | UnsetType = UNSET
    display_name: Annotated[str, OBSERVED] | UnsetType = UNSET


class AddMessageParams(Struct, rename="camel", forbid_unknown_fields=True):
    """Defaults make a plain text message need only `circleId`, `topicId` and `message`."""

    circle_id: NonEmpty
    topic_id: NonEmpty
    message: str
    message_type: int = 100
    """100 is MarkupText in Circle's C# docs."""
    message_sub_type: int = 0
    context: str = ""
    object_path: str = ""
    base64_data: str = ""
    additional_json: str | dict[str, Any] = ""
    """Sent to Circle as a string; an object is JSON-encoded by the bridge first."""


class MessageInfo(Struct, rename="camel", omit_defaults=True):
    """One message as CircleService returns it, camelCased, every field passed on."""

    message: str | UnsetType = UNSET
    additional_json: str | UnsetType = UNSET
    message_time_offset: int | UnsetType = UNSET
    """Milliseconds since 1970-01-01 UTC (Circle's C# docs)."""
    time: str | UnsetType = UNSET
    """`messageTimeOffset` as ISO 8601 UTC with milliseconds, added by the bridge."""
    message_type: Annotated[int, OBSERVED] | UnsetType = UNSET
    message_sub_type: Annotated[int, OBSERVED] | UnsetType = UNSET
    message_id: Annotated[str, OBSERVED] | UnsetType = UNSET


class AddMessageResult(Struct, rename="camel", omit_defaults=True):
    """CircleService's reply without `Status`. Circle's C# docs name the stored message `Messages`
    (one object, despite the name)."""

    messages: MessageInfo | UnsetType = UNSET


class GetMessagesParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty
    topic_id: NonEmpty
    msg_type_filters: list[int] = []
    """Message types to return; empty (the default) asks for every type. Circle's own client sends
    `[100]`."""


class GetMessagesResult(Struct):
    messages: list[MessageInfo]
    """In CircleService's order (oldest first, as Circle's own client assumes)."""


class DecryptParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty
    topic_id: NonEmpty
    to_decrypt: str


class DecryptResult(Struct, rename="camel"):
    """Circle's only client reads `Status.DecryptedData`, which may be a quirk of that client; the
    bridge takes `DecryptedData` from the top level of the reply or from `Status`, whichever holds
    it (top level first)."""

    decrypted_data: str


class LockUserParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty
    number_of_codes: Annotated[int, Meta(ge=1, le=16)] = 2
    """Every Circle client asks for 2."""


class LockUserResult(Struct, rename="camel"):
    encrypted_unlock_codes: list[str]
    """As Circle gives them: base64 RSA (PKCS#1 v1.5) ciphertexts for the developer's PublicKey.
    Decrypt them in your backend (`circle-bridge unlock-codes decrypt`), never on the user's
    machine, and hand them to the user or an admin by another channel."""


class UnlockUserParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty
    unlock_codes: Annotated[list[NonEmpty], Meta(min_length=1)]
    """The decrypted codes, all of them."""


class UpstreamReply(Struct):
    """CircleService's reply without `Status`, camelCased: every field it sends, none promised."""


class GenInviteParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty
    is_add_device: bool = False
    """True: invite another device of the same user; false: a new member."""


class InviteInfo(Struct, rename="camel", omit_defaults=True):
    """ "An Invite ID and an authorization code" (Circle's C# docs); the member names are not
    documented."""

    invite_id: Annotated[str, OBSERVED] | UnsetType = UNSET
    auth_code: Annotated[str, OBSERVED] | UnsetType = UNSET


class GenInviteResult(Struct, rename="camel", omit_defaults=True):
    invite: InviteInfo | UnsetType = UNSET


class ProcessInviteParams(Struct, rename="camel", forbid_unknown_fields=True):
    invite_id: NonEmpty
    auth_code: NonEmpty
    wait20_second: bool = False
    """CircleService waits 20 s before answering, in case the invite is authorized at once; the
    bridge then waits 25 s longer than `CIRCLE_SERVICE_TIMEOUT`."""


class ProcessInviteResult(Struct, rename="camel", omit_defaults=True):
    request_auth_verification_id: str | UnsetType = UNSET
    """The id of the peer device that validates the authorization code."""


class TopicParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty
    topic_id: NonEmpty


class FileInfo(Struct, rename="camel", omit_defaults=True):
    fmap_id: str | UnsetType = wire_field(default=UNSET, name="fmapID")
    file_name: str | UnsetType = UNSET
    file_size: int | UnsetType = UNSET


class EnumFilesResult(Struct):
    files: list[FileInfo]


class AddFileParams(Struct, rename="camel", forbid_unknown_fields=True):
    circle_id: NonEmpty
    topic_id: NonEmpty
    file_path: NonEmpty
    """A path on the user's machine; re-adding the same path adds a revision."""
    description: str = ""


class PutSecretParams(Struct, rename="camel", forbid_unknown_fields=True):
    name: NonEmpty
    value: str
    circle_id: NonEmpty | UnsetType = UNSET
    """Default: the first circle (circle/enumCircles order)."""
    topic_id: NonEmpty | UnsetType = UNSET
    """Default: the first topic of the circle."""


class PutSecretResult(Struct, rename="camel"):
    circle_id: str
    topic_id: str


class GetSecretParams(Struct, rename="camel", forbid_unknown_fields=True):
    name: NonEmpty
    circle_id: NonEmpty | UnsetType = UNSET
    """Default: the first circle (circle/enumCircles order)."""
    topic_id: NonEmpty | UnsetType = UNSET
    """Default: the first topic of the circle."""


class GetSecretResult(Struct, rename="camel", omit_defaults=True):
    found: bool
    circle_id: str | UnsetType = UNSET
    topic_id: str | UnsetType = UNSET
    value: str | UnsetType = UNSET
    """The newest value stored under the name (it may be empty)."""
    time: str | UnsetType = UNSET
    """When it was stored, ISO 8601 UTC, if CircleService says."""


class WorkDoneProgressValue(Struct, rename="camel", omit_defaults=True):
    kind: Literal["begin", "report", "end"]
    title: str | UnsetType = UNSET
    """`begin` only."""
    cancellable: bool | UnsetType = UNSET
    """`begin` only: true, the request can be cancelled with `$/cancelRequest`."""
    message: str | UnsetType = UNSET


class WorkDoneProgressCancelParams(Struct, forbid_unknown_fields=True):
    token: ProgressToken


class ProgressParams(Struct):
    """LSP `$/progress`, server to client, for requests that carried a `workDoneToken`."""

    token: ProgressToken
    value: WorkDoneProgressValue


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
    experimental: bool = False
    """On an inferred CircleService path: not covered by the versioning promise."""


_UPSTREAM_ERRORS = (
    E.SERVICE_NOT_RUNNING,
    E.TOKEN_REQUEST_FAILED,
    E.AUTHORIZATION_REJECTED,
    E.UPSTREAM_MALFORMED,
    E.UPSTREAM_TIMEOUT,
    E.BAD_CONFIGURATION,
    E.TOKEN_NEEDED,  # with CIRCLE_TOKEN_SOURCE=client, until the app has sent a token
)

_CIRCLE_ERRORS = (*_UPSTREAM_ERRORS, E.CIRCLE_OPERATION_FAILED)

# Ids below are the emulator's seed data, so every example replays against `circle-bridge emulator`
# in any order: each example that changes state uses a circle or topic no other example reads.
EXAMPLE_CIRCLE_ID = "7b1c4e0a-3f5d-4c2e-9a61-0d8f2b6c1e01"
_PASSWORDS = "1f0e2d3c-4b5a-4978-8d6e-5f4a3b2c1d11"
_INSURANCE = "2a1b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c12"
_SCHOOL = "3b2c4d5e-6f7a-4b8c-8d9e-1f2a3b4c5d13"
_MEDICAL_CIRCLE = "c3a9f2d4-8e17-4b5a-b2c6-5f0e9d7a3b02"
_RESEARCH_CIRCLE = "e5d1b8c7-2a4f-4e9b-8c3d-6a2f1e0b9c03"
_DATASETS = "8a7b9c0d-1e2f-4a3b-9c4d-6e7f8a9b0c33"
# what the emulator's seed message in Datasets holds in Base64Data (the emulator seals stored
# attachments to their topic; circle/decrypt opens them)
_SEALED = "Sov539cFED+RMpzvX3XqS9WnMCs9mOvc"
_INFERRED_PATH = (
    " Experimental: Circle documents this method for C# only; the bridge calls `POST /v1/{path}`, an"
    " inferred path (override with `CIRCLE_SERVICE_PATHS`)."
)


def _failed(message: str) -> dict[str, Any]:
    return {"code": E.CIRCLE_OPERATION_FAILED.code, "message": f"Circle operation failed: {message}"}


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
        "window/workDoneProgress/cancel",
        "Cancel a request through its progress token (LSP).",
        "A notification, for UIs that offer a cancel button on progress marked `cancellable`. It "
        "cancels the running request that reports `$/progress` with this token, exactly as "
        "`$/cancelRequest` with its id would: the request is answered with -32800. Unknown or finished "
        "tokens are ignored.",
        WorkDoneProgressCancelParams,
        None,
        kind="notification",
        examples=(Example("cancel", {"token": "create-1"}),),
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
        errors=_UPSTREAM_ERRORS,
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
        errors=_CIRCLE_ERRORS,
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
        errors=_CIRCLE_ERRORS,
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
    Method(
        "circle/createCircle",
        "Create a circle; the current device is its only member.",
        "The bridge fills in `CustomerId` (CIRCLE_CUSTOMER_ID) and `CustomerToken` (the bearer token it "
        "authorized with, which CircleService already holds). Creation takes seconds: with a "
        "`workDoneToken` the bridge reports LSP `$/progress` (`begin`, a `report` every second, `end`), "
        "and the request can be cancelled with `$/cancelRequest`, or `window/workDoneProgress/cancel` with "
        "the token (-32800; CircleService may still create the circle, so list the circles afterwards). "
        "The bridge waits 60 s longer than `CIRCLE_SERVICE_TIMEOUT` for it.",
        CreateCircleParams,
        CreateCircleResult,
        errors=(*_CIRCLE_ERRORS, E.REQUEST_CANCELLED),
        examples=(
            Example(
                "create",
                {"circleName": "Book club", "circleDescription": "", "workDoneToken": "create-1"},
                {"circleId": "0d9c6a52-7e1b-4f3a-9c2d-5b8e4f1a2c60"},
            ),
        ),
    ),
    Method(
        "circle/whoAmI",
        "The caller's membership of a circle: is this user locked?",
        "`locked` is the one documented field; every other field CircleService sends is passed on.",
        CircleParams,
        WhoAmIResult,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "member",
                {"circleId": EXAMPLE_CIRCLE_ID},
                {"locked": False, "memberId": "m-7b1c-0001", "displayName": "Alex Morgan"},
            ),
        ),
    ),
    Method(
        "circle/addMessage",
        "Add a message to a topic.",
        "Sends every field of Circle's AddMessage: a plain text message needs only `circleId`, `topicId` "
        "and `message` (defaults: `messageType` 100, `messageSubType` 0, empty `context`, `objectPath`, "
        "`base64Data` and `additionalJson`). The result is CircleService's reply without `Status`.",
        AddMessageParams,
        AddMessageResult,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "plain text",
                {"circleId": EXAMPLE_CIRCLE_ID, "topicId": _INSURANCE, "message": "Car insurance renews in May."},
                {
                    "messages": {
                        "messageId": "3f1e9a7c-52d4-4b8e-a0c6-7d2b9e4f1a83",
                        "messageType": 100,
                        "messageSubType": 0,
                        "message": "Car insurance renews in May.",
                        "additionalJson": "",
                        "messageTimeOffset": 1767225600000,
                        "time": "2026-01-01T00:00:00.000Z",
                    }
                },
            ),
        ),
    ),
    Method(
        "circle/getMessages",
        "The messages of a topic, oldest first.",
        "`msgTypeFilters` limits the message types (empty: all). Each message has every field "
        "CircleService sends, camelCased, and `time`: `messageTimeOffset` (ms since the epoch) as ISO 8601.",
        GetMessagesParams,
        GetMessagesResult,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "notes",
                {"circleId": EXAMPLE_CIRCLE_ID, "topicId": _PASSWORDS, "msgTypeFilters": [100]},
                {
                    "messages": [
                        {
                            "message": "The router's admin password is on the fridge.",
                            "additionalJson": "",
                            "messageTimeOffset": 1714641012000,
                            "time": "2024-05-02T09:10:12.000Z",
                            "messageType": 100,
                            "messageSubType": 0,
                            "messageId": "msg-7b1c-0001",
                        }
                    ]
                },
            ),
        ),
    ),
    Method(
        "circle/decrypt",
        "Decrypt data with a topic's keys.",
        "Where the decrypted data sits in CircleService's reply is unclear (Circle's only client reads "
        "`Status.DecryptedData`): the bridge accepts `DecryptedData` at the top level or in `Status` and "
        "returns it as `decryptedData`; a reply with neither is -33005.",
        DecryptParams,
        DecryptResult,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "sealed attachment",
                {"circleId": _RESEARCH_CIRCLE, "topicId": _DATASETS, "toDecrypt": _SEALED},
                {"decryptedData": "c2hhMjU2OjlmODZkMDgx"},
            ),
            Example(
                "not for this topic",
                {"circleId": EXAMPLE_CIRCLE_ID, "topicId": _PASSWORDS, "toDecrypt": _SEALED},
                error=_failed("Cannot decrypt this data with this topic's keys"),
            ),
        ),
    ),
    Method(
        "circle/lockUser",
        "Lock this user out of a circle; returns the encrypted unlock codes.",
        "The codes are RSA ciphertexts for the developer's PublicKey, returned as Circle gives them. "
        "Decrypt them in the developer's backend (`circle-bridge unlock-codes decrypt`), never on the "
        "locked user's machine, and send them to the user or an admin by another channel.",
        LockUserParams,
        LockUserResult,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "lock",
                {"circleId": _RESEARCH_CIRCLE, "numberOfCodes": 2},
                {"encryptedUnlockCodes": ["kY3n…(base64, 344 chars)", "Qm9v…(base64, 344 chars)"]},
            ),
        ),
    ),
    Method(
        "circle/unlockUser",
        "Unlock this user with the decrypted unlock codes.",
        "All codes from one circle/lockUser, decrypted; each set works once. The result is "
        "CircleService's reply without `Status`.",
        UnlockUserParams,
        UpstreamReply,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "not locked",
                {"circleId": _MEDICAL_CIRCLE, "unlockCodes": ["7KQ4-M2XD", "P9WB-3HTN"]},
                error=_failed("User is not locked"),
            ),
        ),
    ),
    Method(
        "circle/genInvite",
        "Generate an invitation: an invite id and an authorization code.",
        "`isAddDevice`: true to add another device of this user, false for a new member."
        + _INFERRED_PATH.format(path="genInvite"),
        GenInviteParams,
        GenInviteResult,
        errors=_CIRCLE_ERRORS,
        experimental=True,
        examples=(
            Example(
                "invite a member",
                {"circleId": EXAMPLE_CIRCLE_ID, "isAddDevice": False},
                {"invite": {"inviteId": "inv-5c2e8f1a9b3d", "authCode": "482913"}},
            ),
        ),
    ),
    Method(
        "circle/processInvite",
        "Offer an invite to this device.",
        "An invite is valid until accepted, for a week, and fails for good after five wrong codes. With "
        "`wait20Second` CircleService waits 20 s before answering; the bridge waits 25 s longer than "
        "`CIRCLE_SERVICE_TIMEOUT` then." + _INFERRED_PATH.format(path="processInvite"),
        ProcessInviteParams,
        ProcessInviteResult,
        errors=_CIRCLE_ERRORS,
        experimental=True,
        examples=(
            Example(
                "unknown invite",
                {"inviteId": "inv-000000000000", "authCode": "000000", "wait20Second": False},
                error=_failed("Invite not found or expired"),
            ),
        ),
    ),
    Method(
        "circle/enumFiles",
        "The files of a topic.",
        "Each file has every field CircleService sends; `fmapID`, `fileName` and `fileSize` are documented."
        + _INFERRED_PATH.format(path="enumFiles"),
        TopicParams,
        EnumFilesResult,
        errors=_CIRCLE_ERRORS,
        experimental=True,
        examples=(
            Example(
                "files",
                {"circleId": EXAMPLE_CIRCLE_ID, "topicId": _INSURANCE},
                {"files": [{"fmapID": "fmap-7b1c-0001", "fileName": "home-policy-2025.pdf", "fileSize": 482113}]},
            ),
        ),
    ),
    Method(
        "circle/addFile",
        "Add a file of the user's machine to a topic.",
        "Re-adding a path already in the topic (compared case-insensitively) adds a new revision. The "
        "result is CircleService's reply without `Status`." + _INFERRED_PATH.format(path="addFile"),
        AddFileParams,
        UpstreamReply,
        errors=_CIRCLE_ERRORS,
        experimental=True,
        examples=(
            Example(
                "add",
                {
                    "circleId": EXAMPLE_CIRCLE_ID,
                    "topicId": _SCHOOL,
                    "filePath": "/home/alex/Documents/permission-slip.pdf",
                    "description": "Field trip, signed",
                },
                {},
            ),
        ),
    ),
    Method(
        "circle/putSecret",
        "Keep a named secret behind the user's Circle keys.",
        "Stored as Circle's ForgeRock integration does: a message with `messageType` 100, `messageSubType` "
        '20, the value as `message` and `additionalJson` `{"type":"<name>"}`. A later put of the same name '
        "wins. Without `circleId`/`topicId`: the first topic of the first circle; a user without a circle "
        "gets -33004 (create one with circle/createCircle).",
        PutSecretParams,
        PutSecretResult,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "store",
                {"name": "github-token", "value": "example-value-1"},
                {"circleId": EXAMPLE_CIRCLE_ID, "topicId": _PASSWORDS},
            ),
        ),
    ),
    Method(
        "circle/getSecret",
        "Read a named secret stored with circle/putSecret.",
        "Scans the topic's type-100 messages from newest to oldest (by `messageTimeOffset`, else "
        'CircleService\'s order) for `additionalJson` `{"type": "<name>"}`. Not found is not an error: '
        "`found` is false.",
        GetSecretParams,
        GetSecretResult,
        errors=_CIRCLE_ERRORS,
        examples=(
            Example(
                "found",
                {"name": "wifi"},
                {
                    "found": True,
                    "circleId": EXAMPLE_CIRCLE_ID,
                    "topicId": _PASSWORDS,
                    "value": "correct horse battery staple",
                    "time": "2024-05-02T09:11:12.000Z",
                },
            ),
            Example(
                "missing",
                {"name": "no-such-secret"},
                {"found": False, "circleId": EXAMPLE_CIRCLE_ID, "topicId": _PASSWORDS},
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
    Method(
        "$/progress",
        "Work-done progress (LSP) of a request that carried a `workDoneToken`.",
        "Server to client, a notification, as LSP's work-done progress: `begin`, `report`s, then `end`, "
        "all before the request's reply. Sent only for requests whose params carried a `workDoneToken`.",
        ProgressParams,
        None,
        kind="notification",
        examples=(Example("begin", {"token": "create-1", "value": {"kind": "begin", "title": "Creating circle"}}),),
    ),
)
"""Notifications the bridge sends to clients; not part of the dispatch table."""
