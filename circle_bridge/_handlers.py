"""The `circle/*` methods and `rpc.discover`: validate params, call the shared session, shape
the result. Params are checked with msgspec against the protocol structs; a mismatch is a
-32602 whose `data.field` names the offending field.

Results of the Circle operations are CircleService's replies without `Status`, camelCased, every
field passed on; the structs in `_protocol` describe the fields that are documented."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import msgspec
from pygls.server import JsonRPCServer

from ._errors import CircleOperationFailed, InvalidParams, UpstreamMalformed
from ._protocol import (
    AddFileParams,
    AddMessageParams,
    CircleInitializeParams,
    CircleInitializeResult,
    CircleParams,
    CreateCircleParams,
    DecryptParams,
    EnumTopicsParams,
    GenInviteParams,
    GetMessagesParams,
    GetSecretParams,
    IsServiceRunningResult,
    LockUserParams,
    NoParams,
    ProcessInviteParams,
    ProgressParams,
    ProgressToken,
    PutSecretParams,
    TopicParams,
    UnlockUserParams,
    WorkDoneProgressCancelParams,
    WorkDoneProgressValue,
)
from ._session import Session

S = TypeVar("S", bound=msgspec.Struct)

log = logging.getLogger("circle_bridge.handlers")

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


# Operations known to take long get this much more than CIRCLE_SERVICE_TIMEOUT (docs/circle-api.md §7):
# createCircle takes "a few seconds"; processInvite with Wait20Second blocks at least 20 s.
CREATE_CIRCLE_EXTRA_SECONDS = 60.0
WAIT20_EXTRA_SECONDS = 25.0
PROGRESS_EVERY_SECONDS = 1.0

# Circle's ForgeRock integration stores secrets as MarkupText (100) messages of sub-type 20, named
# by `{"type": <name>}` in AdditionalJson (docs/circle-api.md §3.5).
SECRET_MESSAGE_TYPE = 100
SECRET_MESSAGE_SUB_TYPE = 20


def iso_time(offset_ms: Any) -> str | None:
    """``messageTimeOffset`` (ms since the epoch) as ISO 8601 UTC, or None when it is not a number."""
    if isinstance(offset_ms, bool) or not isinstance(offset_ms, int | float):
        return None
    try:
        moment = datetime.fromtimestamp(offset_ms / 1000, UTC)
    except (OverflowError, OSError, ValueError):
        return None
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def with_time(message: Any) -> Any:
    if isinstance(message, dict):
        time = iso_time(message.get("messageTimeOffset"))
        if time is not None:
            return {**message, "time": time}
    return message


def secret_name(message: dict[str, Any]) -> str | None:
    """The name a putSecret message is stored under, or None for any other message."""
    raw = message.get("additionalJson")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        decoded = json.loads(raw)
    except ValueError:
        return None
    name = decoded.get("type") if isinstance(decoded, dict) else None
    return name if isinstance(name, str) else None


def newest_secret(messages: list[Any], name: str) -> dict[str, Any] | None:
    """The newest message stored under ``name``: by ``messageTimeOffset`` where messages carry one,
    else the later in CircleService's order (which Circle's own client takes as oldest first)."""
    best: tuple[float, int] | None = None
    found: dict[str, Any] | None = None
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or secret_name(message) != name:
            continue
        if not isinstance(message.get("message"), str):
            continue
        offset = message.get("messageTimeOffset")
        when = float(offset) if isinstance(offset, int | float) and not isinstance(offset, bool) else float("-inf")
        rank = (when, index)
        if best is None or rank >= best:
            best, found = rank, message
    return found


class ProgressReporter:
    """LSP work-done progress for one request: `begin`, a `report` every second, `end`."""

    def __init__(self, send: Callable[[ProgressParams], None], token: ProgressToken) -> None:
        self._send = send
        self._token = token

    def _emit(self, value: WorkDoneProgressValue) -> None:
        self._send(ProgressParams(token=self._token, value=value))

    @contextlib.asynccontextmanager
    async def running(self, title: str, waiting: str) -> AsyncIterator[None]:
        self._emit(WorkDoneProgressValue(kind="begin", title=title, cancellable=True, message=waiting))

        async def tick() -> None:
            seconds = 0.0
            while True:
                await asyncio.sleep(PROGRESS_EVERY_SECONDS)
                seconds += PROGRESS_EVERY_SECONDS
                self._emit(WorkDoneProgressValue(kind="report", message=f"{waiting} ({seconds:.0f} s)"))

        ticker = asyncio.ensure_future(tick())
        outcome = "cancelled"
        try:
            yield
            outcome = "done"
        except asyncio.CancelledError:
            raise
        except Exception:
            outcome = "failed"
            raise
        finally:
            ticker.cancel()
            # `end` is sent whatever happens, so a client's spinner never outlives the request
            self._emit(WorkDoneProgressValue(kind="end", message=outcome))


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
        # every upstream field is passed on, not only CircleInfo's; encoded once, however many share it
        return {"circles": (await session.enum_circles()).json}

    @server.feature("circle/enumTopics")
    async def enum_topics(params: Any) -> dict[str, Any]:
        p = parse_params(params, EnumTopicsParams)
        return {"topics": (await session.enum_topics(p.circle_id)).json}

    def send_progress(params: ProgressParams) -> None:
        server.protocol.notify("$/progress", params)

    # requests reporting progress on this connection, by token, for window/workDoneProgress/cancel
    reporting: dict[ProgressToken, asyncio.Task[Any]] = {}

    # A plain function: notification handlers must be (see _lifecycle.register_lifecycle).
    @server.feature("window/workDoneProgress/cancel")
    def cancel_progress(params: Any) -> None:
        try:
            token = parse_params(params, WorkDoneProgressCancelParams).token
        except InvalidParams as exc:
            log.info("window/workDoneProgress/cancel ignored: %s", exc.message)
            return
        task = reporting.get(token)
        if task is None:
            log.debug("window/workDoneProgress/cancel for unknown or finished token %r", token)
            return
        task.cancel()  # the request's own task: its reply becomes -32800, as for $/cancelRequest

    @server.feature("circle/createCircle")
    async def create_circle(params: Any) -> dict[str, Any]:
        p = parse_params(params, CreateCircleParams)
        fields = {"circleName": p.circle_name, "circleDescription": p.circle_description}

        async def create() -> dict[str, Any]:
            reply = await session.call("createCircle", fields, extra_time=CREATE_CIRCLE_EXTRA_SECONDS, as_customer=True)
            return reply.fields

        if isinstance(p.work_done_token, msgspec.UnsetType):
            result = await create()
        else:
            token = p.work_done_token
            reporter = ProgressReporter(send_progress, token)
            task = asyncio.current_task()
            if task is not None:
                reporting[token] = task
            try:
                async with reporter.running(f"Creating circle {p.circle_name}", "CircleService is creating the circle"):
                    result = await create()
            finally:
                if reporting.get(token) is task:
                    del reporting[token]
        # Circle's C# docs name it CircleID, their example CircleId: one name on our side
        if "circleID" in result and "circleId" not in result:
            result["circleId"] = result.pop("circleID")
        return result

    @server.feature("circle/whoAmI")
    async def who_am_i(params: Any) -> dict[str, Any]:
        p = parse_params(params, CircleParams)
        fields = (await session.call("whoAmI", {"circleId": p.circle_id})).fields
        if not isinstance(fields.get("locked"), bool):
            raise UpstreamMalformed("whoAmI reply has no boolean Locked", upstream="service", operation="whoAmI")
        return fields

    @server.feature("circle/addMessage")
    async def add_message(params: Any) -> dict[str, Any]:
        p = parse_params(params, AddMessageParams)
        extra = p.additional_json
        fields = {
            "circleId": p.circle_id,
            "topicId": p.topic_id,
            "messageType": p.message_type,
            "messageSubType": p.message_sub_type,
            "message": p.message,
            "context": p.context,
            "objectPath": p.object_path,
            "base64Data": p.base64_data,
            "additionalJson": extra if isinstance(extra, str) else json.dumps(extra, ensure_ascii=False),
        }
        result = (await session.call("addMessage", fields)).fields
        if isinstance(result.get("messages"), dict):
            result["messages"] = with_time(result["messages"])
        return result

    async def get_messages(circle_id: str, topic_id: str, filters: list[int]) -> list[Any]:
        fields = {"circleId": circle_id, "topicId": topic_id, "msgTypeFilters": filters}
        messages = (await session.call("getMessages", fields)).fields.get("messages")
        if messages is None:
            return []
        if not isinstance(messages, list):
            raise UpstreamMalformed("getMessages reply: Messages is not a list", upstream="service")
        return [with_time(m) for m in messages]

    @server.feature("circle/getMessages")
    async def get_messages_method(params: Any) -> dict[str, Any]:
        p = parse_params(params, GetMessagesParams)
        return {"messages": await get_messages(p.circle_id, p.topic_id, p.msg_type_filters)}

    @server.feature("circle/decrypt")
    async def decrypt(params: Any) -> dict[str, Any]:
        p = parse_params(params, DecryptParams)
        reply = await session.call(
            "decrypt", {"circleId": p.circle_id, "topicId": p.topic_id, "toDecrypt": p.to_decrypt}
        )
        result = dict(reply.fields)
        if "decryptedData" not in result:
            if "decryptedData" not in reply.status_fields:
                raise UpstreamMalformed(
                    "decrypt reply has no DecryptedData, at the top level or in Status",
                    upstream="service",
                    operation="decrypt",
                )
            result["decryptedData"] = reply.status_fields["decryptedData"]
        return result

    @server.feature("circle/lockUser")
    async def lock_user(params: Any) -> dict[str, Any]:
        p = parse_params(params, LockUserParams)
        fields = (await session.call("lockUser", {"circleId": p.circle_id, "numberOfCodes": p.number_of_codes})).fields
        codes = fields.get("encryptedUnlockCodes")
        if not isinstance(codes, list) or not all(isinstance(c, str) for c in codes):
            raise UpstreamMalformed(
                "lockUser reply has no EncryptedUnlockCodes list", upstream="service", operation="lockUser"
            )
        return fields

    @server.feature("circle/unlockUser")
    async def unlock_user(params: Any) -> dict[str, Any]:
        p = parse_params(params, UnlockUserParams)
        return (await session.call("unlockUser", {"circleId": p.circle_id, "unlockCodes": p.unlock_codes})).fields

    @server.feature("circle/genInvite")
    async def gen_invite(params: Any) -> dict[str, Any]:
        p = parse_params(params, GenInviteParams)
        return (await session.call("genInvite", {"circleId": p.circle_id, "isAddDevice": p.is_add_device})).fields

    @server.feature("circle/processInvite")
    async def process_invite(params: Any) -> dict[str, Any]:
        p = parse_params(params, ProcessInviteParams)
        fields = {"inviteId": p.invite_id, "authCode": p.auth_code, "wait20Second": p.wait20_second}
        extra = WAIT20_EXTRA_SECONDS if p.wait20_second else 0.0
        return (await session.call("processInvite", fields, extra_time=extra)).fields

    @server.feature("circle/enumFiles")
    async def enum_files(params: Any) -> dict[str, Any]:
        p = parse_params(params, TopicParams)
        fields = (await session.call("enumFiles", {"circleId": p.circle_id, "topicId": p.topic_id})).fields
        files = fields.get("files")
        if files is None:
            fields["files"] = []
        elif not isinstance(files, list):
            raise UpstreamMalformed("enumFiles reply: Files is not a list", upstream="service", operation="enumFiles")
        return fields

    @server.feature("circle/addFile")
    async def add_file(params: Any) -> dict[str, Any]:
        p = parse_params(params, AddFileParams)
        fields = {
            "circleId": p.circle_id,
            "topicId": p.topic_id,
            "filePath": p.file_path,
            "description": p.description,
        }
        return (await session.call("addFile", fields)).fields

    async def secret_location(
        circle_id: str | msgspec.UnsetType, topic_id: str | msgspec.UnsetType, operation: str
    ) -> tuple[str, str]:
        """The circle and topic a secret lives in: as given, else the first of each (ForgeRock)."""
        if isinstance(circle_id, msgspec.UnsetType):
            circles = (await session.enum_circles()).items()
            if not circles:
                raise CircleOperationFailed(
                    "this user has no circle yet; create one with circle/createCircle", operation=operation
                )
            circle_id = str(circles[0]["circleId"])
        if isinstance(topic_id, msgspec.UnsetType):
            topics = (await session.enum_topics(circle_id)).items()
            if not topics:
                raise CircleOperationFailed("the circle has no topic", operation=operation, circleId=circle_id)
            topic_id = str(topics[0]["topicId"])
        return circle_id, topic_id

    @server.feature("circle/putSecret")
    async def put_secret(params: Any) -> dict[str, Any]:
        p = parse_params(params, PutSecretParams)
        circle_id, topic_id = await secret_location(p.circle_id, p.topic_id, "putSecret")
        fields = {
            "circleId": circle_id,
            "topicId": topic_id,
            "messageType": SECRET_MESSAGE_TYPE,
            "messageSubType": SECRET_MESSAGE_SUB_TYPE,
            "message": p.value,
            "context": "",
            "objectPath": "",
            "base64Data": "",
            "additionalJson": json.dumps({"type": p.name}, ensure_ascii=False, separators=(",", ":")),
        }
        await session.call("addMessage", fields)
        return {"circleId": circle_id, "topicId": topic_id}

    @server.feature("circle/getSecret")
    async def get_secret(params: Any) -> dict[str, Any]:
        p = parse_params(params, GetSecretParams)
        circle_id, topic_id = await secret_location(p.circle_id, p.topic_id, "getSecret")
        messages = await get_messages(circle_id, topic_id, [SECRET_MESSAGE_TYPE])
        found = newest_secret(messages, p.name)
        result: dict[str, Any] = {"found": found is not None, "circleId": circle_id, "topicId": topic_id}
        if found is not None:
            result["value"] = found["message"]
            if "time" in found:
                result["time"] = found["time"]
        return result
