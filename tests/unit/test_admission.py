"""Admission of socket and TCP connections, in memory: first bytes, the auth token, timeouts."""

from __future__ import annotations

import asyncio
import json

import pytest

from circle_bridge._admission import Admission, Verdict, admit, starts_like_a_frame
from circle_bridge._framing import FrameParser, encode_frame

TOKEN = "s3cr3t-connection-token-0123456789"


def frame(message: object) -> bytes:
    return encode_frame(json.dumps(message).encode())


def initialize(token: object = TOKEN, msg_id: object = 1) -> bytes:
    params: dict[str, object] = {"clientInfo": {"name": "t"}}
    if token is not None:
        params["initializationOptions"] = {"authToken": token}
    return frame({"jsonrpc": "2.0", "id": msg_id, "method": "initialize", "params": params})


def feed_bytewise(admission: Admission, data: bytes) -> Verdict:
    verdict = Verdict.NEED_MORE
    for i in range(len(data)):
        decision = admission.feed(data[i : i + 1])
        verdict = decision.verdict
        if verdict is not Verdict.NEED_MORE:
            break
    return verdict


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"Content-Length: 5\r\n", True),
        (b"content-type: application/vscode-jsonrpc; charset=utf-8\r\n", True),
        (b"CONTENT-LENGTH:", True),
        (b"Content-Len", None),
        (b"", None),
        (b"C", None),
        (b"POST / HTTP/1.1\r\n", False),
        (b"GET / HTTP/1.1\r\n", False),
        (b" Content-Length: 5", False),
        (b'{"jsonrpc":"2.0"}', False),
        (b"\x16\x03\x01", False),  # a TLS ClientHello
    ],
)
def test_first_bytes_must_be_a_frame_header(data: bytes, expected: bool | None) -> None:
    assert starts_like_a_frame(data) is expected


def test_http_post_with_a_valid_frame_in_its_body_is_refused_on_the_first_byte() -> None:
    body = initialize() + frame({"jsonrpc": "2.0", "id": 2, "method": "circle/enumCircles"})
    post = b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    for token in (TOKEN, None):  # TCP and Unix socket alike
        admission = Admission(token, 1 << 20)
        decision = admission.feed(post[:1])
        assert decision.verdict is Verdict.REFUSE
        assert decision.reply == b""  # an HTTP client gets no JSON-RPC reply at all


def test_the_right_token_admits_and_every_byte_is_kept_for_the_connection() -> None:
    data = initialize() + frame({"jsonrpc": "2.0", "id": 2, "method": "circle/enumCircles"})
    admission = Admission(TOKEN, 1 << 20)
    assert feed_bytewise(admission, data) is Verdict.ADMIT
    kept = bytes(admission.received)
    assert data.startswith(kept)
    assert len(kept) == len(initialize())  # admitted as soon as the first frame was complete


@pytest.mark.parametrize(
    ("first", "reason"),
    [
        (initialize(token=None), "no auth token"),
        (initialize(token="wrong"), "wrong auth token"),
        (initialize(token=TOKEN[:-1]), "wrong auth token"),
        (initialize(token=12345), "no auth token"),
        (frame({"jsonrpc": "2.0", "id": 1, "method": "circle/enumCircles"}), "the first request is not initialize"),
        (frame({"jsonrpc": "2.0", "method": "initialize", "params": {}}), "the first request is not initialize"),
        (frame([{"jsonrpc": "2.0", "id": 1, "method": "initialize"}]), "the first frame is not a JSON-RPC request"),
        (encode_frame(b"{nope"), "the first frame is not JSON"),
        (b"Content-Length: x\r\n\r\n{}", "bad first frame: invalid Content-Length"),
    ],
)
def test_anything_but_initialize_with_the_token_is_refused(first: bytes, reason: str) -> None:
    decision = Admission(TOKEN, 1 << 20).feed(first)
    assert decision.verdict is Verdict.REFUSE
    assert decision.reason == reason
    if decision.reply:
        (reply_frame,) = FrameParser(1 << 20).feed(decision.reply)
        assert isinstance(reply_frame, bytes)
        reply = json.loads(reply_frame)
        assert reply["error"]["code"] == -33010
        assert reply["error"]["data"] == {"retryable": False}
        assert TOKEN not in reply_frame.decode()


def test_the_refusal_answers_the_request_id() -> None:
    decision = Admission(TOKEN, 1 << 20).feed(initialize(token="wrong", msg_id="abc"))
    (reply_frame,) = FrameParser(1 << 20).feed(decision.reply)
    assert isinstance(reply_frame, bytes)
    assert json.loads(reply_frame)["id"] == "abc"


def test_an_oversized_first_frame_is_refused_without_reading_it() -> None:
    decision = Admission(TOKEN, 1024).feed(b"Content-Length: 999999\r\n\r\n")
    assert decision.verdict is Verdict.REFUSE


def test_without_a_token_the_header_check_alone_admits() -> None:
    admission = Admission(None, 1 << 20)
    assert admission.feed(b"Content-").verdict is Verdict.NEED_MORE
    assert admission.feed(b"Length: 2\r\n\r\n{}").verdict is Verdict.ADMIT


class _Writer:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


def test_admit_closes_a_silent_connection_after_the_timeout() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(b"Content-Length: 10\r\n")  # a header, then silence
        writer = _Writer()
        result = await admit(reader, writer, auth_token=TOKEN, max_frame_bytes=1 << 20, within=0.05)
        assert result is None
        assert writer.data == b""

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_admit_returns_the_bytes_to_replay_or_writes_the_refusal() -> None:
    async def scenario() -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(initialize())
        writer = _Writer()
        kept = await admit(reader, writer, auth_token=TOKEN, max_frame_bytes=1 << 20)
        assert kept == initialize()
        refused = asyncio.StreamReader()
        refused.feed_data(initialize(token="nope"))
        assert await admit(refused, writer, auth_token=TOKEN, max_frame_bytes=1 << 20) is None
        assert b"-33010" in writer.data
        eof = asyncio.StreamReader()
        eof.feed_eof()
        assert await admit(eof, writer, auth_token=None, max_frame_bytes=1 << 20) is None

    asyncio.run(asyncio.wait_for(scenario(), 10))
