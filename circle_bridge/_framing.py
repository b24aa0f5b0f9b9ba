"""LSP base-protocol framing, sans-IO: bytes in, frames (or framing errors) out.

Lenient in what it accepts: header names in any case and any order, extra headers ignored,
`Content-Type` optional (its charset, when given, must be utf-8). Strict in what it emits:
``Content-Length: N\\r\\n\\r\\n`` with N in bytes. A malformed header block or an oversized body is
reported as a `FrameError` and skipped; the parser then finds the next frame, so one bad frame
costs exactly one error reply and nothing else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEADER_BYTES = 8 * 1024
_HEADER_END = b"\r\n\r\n"
_NEXT_FRAME = re.compile(rb"content-length\s*:", re.IGNORECASE)
_GOOD_CHARSETS = {"utf-8", "utf8"}


@dataclass(frozen=True, slots=True)
class FrameError:
    reason: str


def encode_frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


class FrameParser:
    def __init__(self, max_body: int) -> None:
        self._max_body = max_body
        self._buf = bytearray()
        self._need: int | None = None  # body length of the frame whose header was read
        self._skip = 0  # bytes of a rejected body still to discard

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        self._buf += data
        out: list[bytes | FrameError] = []
        while True:
            if self._skip:
                dropped = min(self._skip, len(self._buf))
                del self._buf[:dropped]
                self._skip -= dropped
                if self._skip:
                    return out
            if self._need is not None:
                if len(self._buf) < self._need:
                    return out
                out.append(bytes(self._buf[: self._need]))
                del self._buf[: self._need]
                self._need = None
                continue
            end = self._buf.find(_HEADER_END)
            if end < 0 and len(self._buf) <= MAX_HEADER_BYTES:
                return out
            if end < 0 or end > MAX_HEADER_BYTES:
                out.append(FrameError(f"header block longer than {MAX_HEADER_BYTES} bytes"))
                self._resync(1)
                continue
            length, error = self._parse_header(bytes(self._buf[:end]))
            if error is not None:
                out.append(error)
                if length is None:
                    # unknown body length: skip to the next header after this block
                    self._resync(end + len(_HEADER_END))
                    continue
                self._skip = length  # well-formed length: drop exactly that body
            else:
                self._need = length
            del self._buf[: end + len(_HEADER_END)]

    def _resync(self, start: int) -> None:
        """Drop bytes up to the next thing that looks like a frame header (always drops some)."""
        match = _NEXT_FRAME.search(self._buf, start)
        if match is not None:
            del self._buf[: match.start()]
            return
        # keep only a tail that could be the start of a header name split across reads
        name = b"content-length:"
        lowered = bytes(self._buf[-(len(name) - 1) :]).lower()
        keep = next((n for n in range(len(lowered), 0, -1) if name.startswith(lowered[-n:])), 0)
        del self._buf[: len(self._buf) - keep]

    def _parse_header(self, header: bytes) -> tuple[int | None, FrameError | None]:
        length: int | None = None
        charset_error: FrameError | None = None
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            return None, FrameError("header block is not ASCII")
        for line in text.split("\r\n"):
            name, sep, value = line.partition(":")
            if not sep:
                return None, FrameError(f"malformed header line {line[:40]!r}")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                if not value.isdigit() or (length is not None and int(value) != length):
                    return None, FrameError("invalid Content-Length")
                length = int(value)
            elif name == "content-type":
                for param in value.split(";")[1:]:
                    key, _, val = param.partition("=")
                    if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in _GOOD_CHARSETS:
                        charset_error = FrameError(f"unsupported charset {val.strip()!r}; only utf-8 is accepted")
        if length is None:
            return None, FrameError("missing Content-Length")
        if length > self._max_body:
            return length, FrameError(f"body of {length} bytes exceeds the {self._max_body}-byte limit")
        if charset_error is not None:
            return length, charset_error
        return length, None
