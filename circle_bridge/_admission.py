"""Who may talk to a listening bridge: checks on a socket or TCP connection's first bytes, before
any of them reach the connection.

* The first bytes must be a frame header (`Content-Length` or `Content-Type`). The frame parser
  resyncs leniently after junk, which is right on a pipe from a trusted parent but wrong on a
  socket: a browser's ``POST / HTTP/1.1`` carrying a frame in its body would otherwise have that
  frame executed. Here such a connection is closed on its first byte.
* On TCP, the first frame must be the `initialize` request carrying the daemon's token in
  ``params.initializationOptions.authToken`` (compared in constant time). Anything else gets one
  -33010 reply and the connection is closed; nothing is dispatched. A connection that has not
  passed within the admission timeout is closed too.

Sans-IO (`Admission.feed`) so it is tested in memory; `admit` drives it from a stream.
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging
from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from . import _errors as E
from ._framing import FrameError, FrameParser, encode_frame

log = logging.getLogger("circle_bridge.admission")

_HEADER_NAMES = (b"content-length", b"content-type")
_LONGEST = max(len(n) for n in _HEADER_NAMES)
ADMISSION_TIMEOUT_SECONDS = 10.0
_decode = msgspec.json.Decoder().decode
_encode = msgspec.json.Encoder().encode


class ReplySink(Protocol):
    def write(self, data: bytes) -> None: ...


class Verdict(enum.Enum):
    NEED_MORE = "need more bytes"
    ADMIT = "admit"
    REFUSE = "refuse"


@dataclass
class Decision:
    verdict: Verdict
    reason: str = ""
    reply: bytes = b""  # a frame to send before closing, when refusing someone who spoke JSON-RPC


def starts_like_a_frame(data: bytes) -> bool | None:
    """True if ``data`` begins with a frame header name, False if it cannot, None if too short to tell."""
    head = data[:_LONGEST].lower()
    possible = False
    for name in _HEADER_NAMES:
        n = min(len(head), len(name))
        if head[:n] == name[:n]:
            if len(head) >= len(name):
                return True
            possible = True
    return None if possible else False


def _refusal(msg_id: Any, detail: str) -> bytes:
    spec = E.UNAUTHENTICATED
    body = {
        "jsonrpc": "2.0",
        "id": msg_id if isinstance(msg_id, int | str) and not isinstance(msg_id, bool) else None,
        "error": {"code": spec.code, "message": f"{spec.message}: {detail}", "data": {"retryable": False}},
    }
    return encode_frame(_encode(body))


class Admission:
    """Feed it a connection's bytes until it admits or refuses. Keeps everything it was fed, so
    an admitted connection replays it from the first byte (the frame parser is not touched)."""

    def __init__(self, auth_token: str | None, max_frame_bytes: int) -> None:
        self._token = auth_token.encode() if auth_token is not None else None
        self._parser = FrameParser(max_frame_bytes)
        self.received = bytearray()
        self._header_ok = False

    def feed(self, data: bytes) -> Decision:
        self.received += data
        if not self._header_ok:
            looks = starts_like_a_frame(bytes(self.received[:_LONGEST]))
            if looks is False:
                return Decision(Verdict.REFUSE, "the first bytes are not a frame header (an HTTP request?)")
            if looks is None:
                return Decision(Verdict.NEED_MORE)
            self._header_ok = True
            data = bytes(self.received)  # the parser starts at the first byte
        if self._token is None:
            return Decision(Verdict.ADMIT)
        frames = self._parser.feed(data)
        if not frames:
            return Decision(Verdict.NEED_MORE)
        return self._check_first(frames[0])

    def _check_first(self, frame: bytes | FrameError) -> Decision:
        if isinstance(frame, FrameError):
            return Decision(Verdict.REFUSE, f"bad first frame: {frame.reason}")
        try:
            message = _decode(frame)
        except msgspec.DecodeError:
            return Decision(Verdict.REFUSE, "the first frame is not JSON")
        if not isinstance(message, dict):
            return Decision(
                Verdict.REFUSE, "the first frame is not a JSON-RPC request", _refusal(None, "not a request")
            )
        msg_id = message.get("id")
        if message.get("method") != "initialize" or "id" not in message:
            detail = "send `initialize` with initializationOptions.authToken first"
            return Decision(Verdict.REFUSE, "the first request is not initialize", _refusal(msg_id, detail))
        params = message.get("params")
        options = params.get("initializationOptions") if isinstance(params, dict) else None
        token = options.get("authToken") if isinstance(options, dict) else None
        if not isinstance(token, str):
            detail = "initializationOptions.authToken is missing (read it from daemon.json)"
            return Decision(Verdict.REFUSE, "no auth token", _refusal(msg_id, detail))
        if not hmac.compare_digest(token.encode(), self._token or b""):
            return Decision(
                Verdict.REFUSE, "wrong auth token", _refusal(msg_id, "wrong initializationOptions.authToken")
            )
        return Decision(Verdict.ADMIT)


async def admit(
    reader: asyncio.StreamReader,
    writer: ReplySink,
    *,
    auth_token: str | None,
    max_frame_bytes: int,
    within: float = ADMISSION_TIMEOUT_SECONDS,
    peer: str = "",
) -> bytes | None:
    """Read until the connection is admitted, and return the bytes read so far (to be fed to the
    connection first); or refuse it, send the refusal reply if any, and return None."""
    admission = Admission(auth_token, max_frame_bytes)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        try:
            data = await asyncio.wait_for(reader.read(64 * 1024), max(0.0, deadline - loop.time()))
        except TimeoutError:
            log.info("refused %s: no valid first frame within %.0f s", peer or "a client", within)
            return None
        if not data:
            return None
        decision = admission.feed(data)
        if decision.verdict is Verdict.ADMIT:
            return bytes(admission.received)
        if decision.verdict is Verdict.REFUSE:
            log.warning("refused %s: %s", peer or "a client", decision.reason)
            if decision.reply:
                writer.write(decision.reply)
            return None
