"""LSP base-protocol framing, sans-IO: bytes in, frames (or framing errors) out.

Lenient in what it accepts: header names in any case and any order, extra headers ignored,
`Content-Type` optional (its charset, when given, must be utf-8), lines ended by CRLF or by a bare
LF (so a person can type frames into a terminal), and stray blank lines between frames. Strict in
what it emits: ``Content-Length: N\\r\\n\\r\\n`` with N in bytes.

Recovery: a malformed header block is reported as a `FrameError`. When the block does not start
with a header of ours, its first bytes are junk, and the parser resumes at the next
``Content-Length`` *inside* it: junk glued in front of a header, or the tail of a body whose
``Content-Length`` was too short, then costs one error reply and never the valid frame behind it.
A block that starts as a real header (with a bad value) is skipped whole. An oversized body is
skipped exactly, so the next frame is found where the client put it; a length beyond any plausible
body is taken as corruption, and the parser resyncs instead of waiting for bytes that never come.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_HEADER_BYTES = 8 * 1024
MAX_LENGTH_DIGITS = 18  # int() of a longer string is slow (and past 4,300 digits, an exception)
# A refused body is skipped exactly up to this many times the cap (and at least 64 MiB); a longer
# Content-Length is taken as corruption, and the parser resyncs on the next header instead.
SKIP_FACTOR, SKIP_FLOOR = 8, 64 * 1024 * 1024
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_LINE_BREAK = re.compile(r"\r?\n")
_NEXT_FRAME = re.compile(rb"content-length\s*:", re.IGNORECASE)
_KNOWN_FIRST_HEADER = re.compile(rb"\s*content-(length|type)\s*:", re.IGNORECASE)
_BLANK = b"\r\n"
# the header every LSP client sends: one exact match instead of the general parse (issue 10)
_PLAIN_HEADER = re.compile(rb"Content-Length: ([0-9]{1,%d})\r\n\r\n" % MAX_LENGTH_DIGITS)
_GOOD_CHARSETS = {"utf-8", "utf8"}


@dataclass(frozen=True, slots=True)
class FrameError:
    reason: str
    oversize: bool = False  # a well-framed body over the size cap, not malformed bytes


def encode_frame(body: bytes) -> bytes:
    return b"Content-Length: %d\r\n\r\n%b" % (len(body), body)


class FrameParser:
    """Feed it bytes as they arrive; it returns each complete frame body, or a `FrameError` per
    malformed or oversized frame. Memory is bounded by the header cap plus one body."""

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
            plain = _PLAIN_HEADER.match(self._buf)
            if plain is not None and int(plain[1]) <= self._max_body:
                self._need = int(plain[1])
                del self._buf[: plain.end()]
                continue
            self._drop_blank_lines()
            found = _HEADER_END.search(self._buf, 0, MAX_HEADER_BYTES + 4)
            if found is None:
                if len(self._buf) <= MAX_HEADER_BYTES:
                    return out
                out.append(FrameError(f"header block longer than {MAX_HEADER_BYTES} bytes"))
                self._resync(1)
                continue
            end, body_start = found.start(), found.end()
            length, error = self._parse_header(bytes(self._buf[:end]))
            if error is None:
                assert length is not None
                self._need = length
                del self._buf[:body_start]
                continue
            out.append(error)
            if length is not None and length <= max(self._max_body * SKIP_FACTOR, SKIP_FLOOR):
                self._skip = length  # well framed: drop exactly that body
                del self._buf[:body_start]
            elif _KNOWN_FIRST_HEADER.match(self._buf):
                # a real header block with a bad value: a second Content-Length inside it is no frame
                self._resync(body_start)
            else:
                # junk in front: the next header may start inside this very block
                self._resync(1)

    def _drop_blank_lines(self) -> None:
        start = 0
        while start < len(self._buf) and self._buf[start] in _BLANK:
            start += 1
        if start:
            del self._buf[:start]

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
        keep = min(keep, len(self._buf) - 1)
        del self._buf[: len(self._buf) - keep]

    def _parse_header(self, header: bytes) -> tuple[int | None, FrameError | None]:
        """The body length and an error; a length comes with an error only for a frame that is well
        framed but refused (oversized, wrong charset), whose body is then skipped exactly."""
        length: int | None = None
        charset_error: FrameError | None = None
        try:
            text = header.decode("ascii")
        except UnicodeDecodeError:
            return None, FrameError("header block is not ASCII")
        for line in _LINE_BREAK.split(text):
            name, sep, value = line.partition(":")
            if not sep:
                return None, FrameError(f"malformed header line {line[:40]!r}")
            name = name.strip().lower()
            value = value.strip()
            if name == "content-length":
                if not value.isdigit() or len(value) > MAX_LENGTH_DIGITS:
                    return None, FrameError("invalid Content-Length")
                if length is not None and int(value) != length:
                    return None, FrameError("conflicting Content-Length headers")
                length = int(value)
            elif name == "content-type":
                for param in value.split(";")[1:]:
                    key, _, val = param.partition("=")
                    if key.strip().lower() == "charset" and val.strip().strip('"').lower() not in _GOOD_CHARSETS:
                        charset_error = FrameError(f"unsupported charset {val.strip()!r}; only utf-8 is accepted")
        if length is None:
            return None, FrameError("missing Content-Length")
        if length > self._max_body:
            return length, FrameError(f"body of {length} bytes exceeds the {self._max_body}-byte limit", oversize=True)
        return length, charset_error
