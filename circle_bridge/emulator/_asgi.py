"""The few ASGI pieces both emulated servers share: types, pre-encoded replies, body reading."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

JSON = b"application/json; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"

encode_json = msgspec.json.Encoder().encode
decode_json = msgspec.json.Decoder().decode

MAX_BODY = 1 << 20


class Reply:
    """A complete response, encoded once; sending it is two ``send`` calls and no other work."""

    __slots__ = ("_body", "_start", "content_type", "status")

    def __init__(
        self, status: int, body: bytes, content_type: bytes = JSON, extra: tuple[tuple[bytes, bytes], ...] = ()
    ) -> None:
        self.status = status
        self.content_type = content_type
        headers = [(b"content-type", content_type), (b"content-length", b"%d" % len(body)), *extra]
        self._start: Message = {"type": "http.response.start", "status": status, "headers": headers}
        self._body: Message = {"type": "http.response.body", "body": body}

    @classmethod
    def json(cls, status: int, payload: object, extra: tuple[tuple[bytes, bytes], ...] = ()) -> Reply:
        return cls(status, encode_json(payload), extra=extra)

    @property
    def body(self) -> bytes:
        body: bytes = self._body["body"]
        return body

    async def send(self, send: Send) -> None:
        await send(self._start)
        await send(self._body)


async def read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None when it exceeds ``MAX_BODY`` or the client went away."""
    message = await receive()
    body: bytes = message.get("body", b"")
    if message["type"] != "http.request" or len(body) > MAX_BODY:
        return None
    if not message.get("more_body", False):
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of a header (``name`` in lower case), or None."""
    for key, value in scope["headers"]:
        if key == name:
            return value  # type: ignore[no-any-return]
    return None
