"""The Circle API methods in memory: handlers over a fake session, the session's generic call with
fake upstreams, and the service client's one call path over httpx's mock transport."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, cast

import httpx
import msgspec
import pytest

from circle_bridge._dispatch import BridgeProtocol, new_server
from circle_bridge._errors import BridgeError, CircleOperationFailed, UpstreamMalformed
from circle_bridge._framing import FrameParser
from circle_bridge._handlers import iso_time, newest_secret, register_circle_methods
from circle_bridge._session import Session
from circle_bridge._upstream import EncodedList, Identity, OperationReply, ServiceClient, ServiceProbe, Unauthorized
from tests.fake_http import HandlerPool

Handler = Callable[[Any], Coroutine[Any, Any, Any]]


class FakeSession:
    def __init__(self, replies: Mapping[str, OperationReply], circles: list[dict[str, Any]] | None = None) -> None:
        self.replies = dict(replies)
        self.circles = [{"circleId": "c1"}] if circles is None else circles
        self.topics: dict[str, list[dict[str, Any]]] = {"c1": [{"topicId": "t1"}, {"topicId": "t2"}]}
        self.calls: list[tuple[str, dict[str, Any], float, bool]] = []

    async def call(
        self, operation: str, fields: Mapping[str, Any], *, extra_time: float = 0.0, as_customer: bool = False
    ) -> OperationReply:
        self.calls.append((operation, dict(fields), extra_time, as_customer))
        return self.replies.get(operation, OperationReply({}, {}))

    async def enum_circles(self) -> EncodedList:
        return EncodedList.of(self.circles)

    async def enum_topics(self, circle_id: str) -> EncodedList:
        return EncodedList.of(self.topics.get(circle_id, []))


def handlers(session: FakeSession) -> tuple[dict[str, Handler], Callable[[], list[dict[str, Any]]]]:
    """The registered handlers by method name, and what the server sent (notifications)."""
    frames: list[bytes] = []
    server = new_server(write_frame=frames.append, gate=lambda message: None, on_request_done=lambda: None)
    protocol = server.protocol
    assert isinstance(protocol, BridgeProtocol)
    register_circle_methods(server, cast(Session, session), dict)

    def sent() -> list[dict[str, Any]]:
        parser = FrameParser(1 << 20)
        return [msgspec.json.decode(f) for frame in frames for f in parser.feed(frame) if isinstance(f, bytes)]

    return dict(protocol.fm.features), sent


def call(table: dict[str, Handler], method: str, params: dict[str, Any]) -> Any:
    return asyncio.run(table[method](params))


def failure(table: dict[str, Handler], method: str, params: dict[str, Any]) -> BridgeError:
    with pytest.raises(BridgeError) as caught:
        call(table, method, params)
    return caught.value


# -- handlers ---------------------------------------------------------------------------------


def test_decrypt_takes_decrypted_data_from_either_place() -> None:
    params = {"circleId": "c1", "topicId": "t1", "toDecrypt": "x"}
    top, _ = handlers(FakeSession({"decrypt": OperationReply({"decryptedData": "top"}, {"decryptedData": "st"})}))
    assert call(top, "circle/decrypt", params) == {"decryptedData": "top"}
    status, _ = handlers(FakeSession({"decrypt": OperationReply({"other": 1}, {"decryptedData": "in status"})}))
    assert call(status, "circle/decrypt", params) == {"other": 1, "decryptedData": "in status"}
    neither, _ = handlers(FakeSession({"decrypt": OperationReply({}, {})}))
    assert isinstance(failure(neither, "circle/decrypt", params), UpstreamMalformed)


def test_create_circle_fills_the_customer_fields_waits_longer_and_names_the_id_one_way() -> None:
    session = FakeSession({"createCircle": OperationReply({"circleID": "new", "extra": True}, {})})
    table, _ = handlers(session)
    assert call(table, "circle/createCircle", {"circleName": "n"}) == {"circleId": "new", "extra": True}
    operation, fields, extra_time, as_customer = session.calls[0]
    assert (operation, fields) == ("createCircle", {"circleName": "n", "circleDescription": ""})
    assert extra_time == 60.0
    assert as_customer is True


def test_create_circle_progress_brackets_the_call() -> None:
    session = FakeSession({"createCircle": OperationReply({"circleId": "new"}, {})})
    table, notifications = handlers(session)
    call(table, "circle/createCircle", {"circleName": "n", "workDoneToken": 42})
    sent = notifications()
    assert [m["method"] for m in sent] == ["$/progress", "$/progress"]
    assert sent[0]["params"]["token"] == 42
    assert sent[0]["params"]["value"]["kind"] == "begin"
    assert sent[1]["params"]["value"] == {"kind": "end", "message": "done"}


def test_process_invite_waits_longer_only_when_asked_to() -> None:
    session = FakeSession({})
    table, _ = handlers(session)
    call(table, "circle/processInvite", {"inviteId": "i", "authCode": "a"})
    call(table, "circle/processInvite", {"inviteId": "i", "authCode": "a", "wait20Second": True})
    assert [c[2] for c in session.calls] == [0.0, 25.0]
    assert session.calls[1][1] == {"inviteId": "i", "authCode": "a", "wait20Second": True}


def test_add_message_sends_every_field_with_documented_defaults() -> None:
    session = FakeSession({})
    table, _ = handlers(session)
    call(table, "circle/addMessage", {"circleId": "c", "topicId": "t", "message": "m", "additionalJson": {"a": "é"}})
    assert session.calls[0][1] == {
        "circleId": "c",
        "topicId": "t",
        "messageType": 100,
        "messageSubType": 0,
        "message": "m",
        "context": "",
        "objectPath": "",
        "base64Data": "",
        "additionalJson": '{"a": "é"}',
    }


@pytest.mark.parametrize(
    ("method", "params", "reply"),
    [
        ("circle/whoAmI", {"circleId": "c"}, {"memberId": "m"}),
        ("circle/whoAmI", {"circleId": "c"}, {"locked": "no"}),
        ("circle/lockUser", {"circleId": "c"}, {}),
        ("circle/lockUser", {"circleId": "c"}, {"encryptedUnlockCodes": [1, 2]}),
        ("circle/getMessages", {"circleId": "c", "topicId": "t"}, {"messages": {}}),
        ("circle/enumFiles", {"circleId": "c", "topicId": "t"}, {"files": "x"}),
    ],
)
def test_replies_missing_their_one_documented_field_are_malformed(
    method: str, params: dict[str, Any], reply: dict[str, Any]
) -> None:
    table, _ = handlers(FakeSession({method.removeprefix("circle/"): OperationReply(reply, {})}))
    assert isinstance(failure(table, method, params), UpstreamMalformed)


def test_put_secret_stores_as_forgerock_in_the_first_topic_of_the_first_circle() -> None:
    session = FakeSession({})
    table, _ = handlers(session)
    assert call(table, "circle/putSecret", {"name": "api", "value": "v"}) == {"circleId": "c1", "topicId": "t1"}
    fields = session.calls[0][1]
    assert (fields["messageType"], fields["messageSubType"], fields["message"]) == (100, 20, "v")
    assert fields["additionalJson"] == '{"type":"api"}'


def test_a_user_without_a_circle_or_topic_is_told_what_to_do() -> None:
    table, _ = handlers(FakeSession({}, circles=[]))
    error = failure(table, "circle/putSecret", {"name": "a", "value": "v"})
    assert isinstance(error, CircleOperationFailed)
    assert "circle/createCircle" in error.message
    table, _ = handlers(FakeSession({}, circles=[{"circleId": "bare"}]))
    assert "no topic" in failure(table, "circle/getSecret", {"name": "a"}).message


def test_get_secret_picks_the_newest_by_time_then_by_order() -> None:
    def secret(name: str, value: str, offset: int | None = None) -> dict[str, Any]:
        message: dict[str, Any] = {"message": value, "additionalJson": json.dumps({"type": name})}
        if offset is not None:
            message["messageTimeOffset"] = offset
        return message

    timed = [secret("k", "newest", 300), secret("k", "older", 100), secret("other", "x", 900)]
    assert (newest_secret(timed, "k") or {})["message"] == "newest"
    untimed = [secret("k", "first"), {"message": "plain", "additionalJson": "not json"}, secret("k", "last")]
    assert (newest_secret(untimed, "k") or {})["message"] == "last"
    assert newest_secret(untimed, "absent") is None
    session = FakeSession({"getMessages": OperationReply({"messages": timed}, {})})
    table, _ = handlers(session)
    got = call(table, "circle/getSecret", {"name": "k"})
    assert got == {"found": True, "circleId": "c1", "topicId": "t1", "value": "newest", "time": iso_time(300)}
    assert session.calls[0][1]["msgTypeFilters"] == [100]


def test_iso_time() -> None:
    assert iso_time(0) == "1970-01-01T00:00:00.000Z"
    assert iso_time(1714641012345) == "2024-05-02T09:10:12.345Z"
    assert iso_time(True) is None
    assert iso_time("1714641012345") is None
    assert iso_time(10**30) is None


# -- Session.call -----------------------------------------------------------------------------


class FakeSource:
    """A token source handing out tok-1, tok-2, ... (opaque: no JWT claims, so the default lifetime)."""

    name = "secret"
    issues_fresh = True

    def __init__(self) -> None:
        self.issued = itertools.count(1)

    async def fetch(self) -> str:
        return f"tok-{next(self.issued)}"

    async def aclose(self) -> None:
        return None


class FakeService:
    base_url = "http://fake"

    def __init__(self, unauthorized_first: bool) -> None:
        self.unauthorized = unauthorized_first
        self.calls: list[tuple[str, str, dict[str, Any], float]] = []

    async def probe(self) -> ServiceProbe:
        return ServiceProbe(running=True)

    async def authorize(self, token: str) -> None:
        return None

    async def call(self, token: str, operation: str, fields: Mapping[str, Any], *, extra_time: float) -> OperationReply:
        self.calls.append((token, operation, dict(fields), extra_time))
        if self.unauthorized:
            self.unauthorized = False
            raise Unauthorized(operation)
        return OperationReply({"ok": True}, {})


def test_session_call_sends_the_customer_token_of_the_very_attempt() -> None:
    service = FakeService(unauthorized_first=True)
    identity = Identity("CUST-1", "app", "user")
    session = Session(identity, FakeSource(), cast(Any, service))
    reply = asyncio.run(session.call("createCircle", {"circleName": "n"}, extra_time=5.0, as_customer=True))
    assert reply.fields == {"ok": True}
    assert [(c[0], c[2]["customerToken"], c[2]["customerId"], c[3]) for c in service.calls] == [
        ("tok-1", "tok-1", "CUST-1", 5.0),
        ("tok-2", "tok-2", "CUST-1", 5.0),
    ]


# -- ServiceClient.call -----------------------------------------------------------------------


def client_answering(
    answer: Callable[[httpx.Request], httpx.Response], paths: dict[str, str] | None = None
) -> ServiceClient:
    return ServiceClient("http://svc", "app", timeout=2.0, paths=paths, transport=HandlerPool(answer))


def test_service_call_sends_pascal_case_and_returns_camel_case_with_status_fields() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200, json={"Status": {"Result": 1, "Message": "", "DecryptedData": "d"}, "FmapID": "f", "Items": [{"A": 1}]}
        )

    service = client_answering(answer, {"enumFiles": "/v9/files"})
    reply = asyncio.run(
        service.call("tok", "enumFiles", {"circleId": "c", "wait20Second": True, "msgTypeFilters": [100]}, extra_time=3)
    )
    assert reply.fields == {"fmapID": "f", "items": [{"a": 1}]}
    assert reply.status_fields == {"decryptedData": "d"}
    request = seen[0]
    assert request.url.path == "/v9/files"
    assert json.loads(request.content) == {"CircleId": "c", "Wait20Second": True, "MsgTypeFilters": [100]}
    assert request.headers["authorization"] == "Bearer tok"
    assert request.extensions["timeout"]["read"] == 5.0


def test_service_call_reads_status_by_truthiness_and_tolerates_no_status() -> None:
    replies = iter(
        [
            httpx.Response(200, json={"Locked": False}),
            httpx.Response(200, json={"Status": {"Result": 0, "Message": "Circle not found"}}),
            httpx.Response(401, json={}),
            httpx.Response(200, content=b"<html>"),
        ]
    )
    service = client_answering(lambda request: next(replies))
    assert asyncio.run(service.call("t", "whoAmI", {})).fields == {"locked": False}
    with pytest.raises(CircleOperationFailed) as failed:
        asyncio.run(service.call("t", "whoAmI", {}))
    assert failed.value.data == {"operation": "whoAmI", "upstreamMessage": "Circle not found"}
    with pytest.raises(Unauthorized):
        asyncio.run(service.call("t", "whoAmI", {}))
    with pytest.raises(UpstreamMalformed):
        asyncio.run(service.call("t", "whoAmI", {}))
