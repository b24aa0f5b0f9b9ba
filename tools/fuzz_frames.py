"""Fuzz the bridge's input path with hostile frames, in process.

    python -m tools.fuzz_frames --frames 1000000 --seed 1   # make fuzz
    python -m tools.fuzz_frames --frames 20000               # CI's short budget (a test runs it)

A real `Connection` (framing → codec → dispatch → lifecycle → handlers → a real `Session`)
reads a stream that mixes valid requests with every crash class issue 11 found (huge and
implausible lengths, deep JSON at the top and in params, `$/cancelRequest` with array and object
ids, replies carrying the ids of requests in flight, request methods sent as notifications) and
every junk kind that once swallowed the next frame (stray line breaks, bytes glued before a
header, a Content-Length shorter than its body, LF-only headers), plus random bytes, cut at random
points. The session has no credentials, so valid requests are answered (-33007, -32601, -32602,
or a result) without any network I/O and the run measures the bridge alone.

It counts: crashes (an exception out of the read loop), hangs (a read that does not return within
10 s), valid requests never answered or answered twice, and replies with an id that was never
sent. It exits 1 unless all are 0. Seeded: the same seed gives the same stream.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field

from circle_bridge._config import Settings
from circle_bridge._connection import Connection
from circle_bridge._framing import FrameParser, encode_frame
from circle_bridge._session import open_session

HANG_SECONDS = 10.0
DEEP = 5_000


class _Sink:
    def __init__(self) -> None:
        self.parser = FrameParser(1 << 30)
        self.replies: list[dict[str, object]] = []

    def write(self, data: bytes) -> None:
        for body in self.parser.feed(data):
            assert isinstance(body, bytes), body
            self.replies.append(json.loads(body))

    async def drain(self) -> None:
        return None

    def is_closing(self) -> bool:
        return False


@dataclass
class Tally:
    frames: int = 0
    valid: int = 0
    crashes: int = 0
    hangs: int = 0
    unanswered: int = 0
    answered_twice: int = 0
    wrong_ids: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (self.crashes or self.hangs or self.unanswered or self.answered_twice or self.wrong_ids)

    def line(self) -> str:
        return (
            f"fuzz: {self.frames} frames ({self.valid} valid requests) in {self.seconds:.1f} s: "
            f"crashes {self.crashes}, hangs {self.hangs}, unanswered {self.unanswered}, "
            f"answered twice {self.answered_twice}, wrong ids {self.wrong_ids}"
        )


def _request(msg_id: str, method: str, params: object = None) -> bytes:
    message: dict[str, object] = {"jsonrpc": "2.0", "id": msg_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


class _Stream:
    """Generates the frames; remembers which ids are valid requests that must be answered."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.valid: list[str] = []
        self.sent_ids: set[str] = set()
        self.kinds: dict[str, int] = {}
        self._n = 0

    def _id(self) -> str:
        self._n += 1
        msg_id = f"v{self._n}"
        self.sent_ids.add(msg_id)
        return msg_id

    def valid_frame(self) -> bytes:
        msg_id = self._id()
        self.valid.append(msg_id)
        method, params = self.rng.choice(
            [
                ("circle/initialize", {}),  # -33007: no credentials
                ("circle/enumTopics", {}),  # -32602: circleId missing
                ("circle/enumTopics", {"circleId": 7}),  # -32602
                ("circle/nope", None),  # -32601
                ("circle/isServiceRunning", {"extra": 1}),  # -32602
                ("initialize", {}),  # -32600: only once per connection
            ]
        )
        return encode_frame(_request(msg_id, method, params))

    def hostile(self) -> bytes:
        kind, make = self.rng.choice(self._hostile_kinds)
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return make(self)

    def _random_bytes(self) -> bytes:
        junk = self.rng.randbytes(self.rng.randint(1, 200))
        lowered = junk.lower()
        # bytes that spell a header of ours would rightly be read as one (and eat what they announce)
        return b"x" if b"content-" in lowered else junk

    def _lf_only(self) -> bytes:
        msg_id = self._id()
        self.valid.append(msg_id)
        body = _request(msg_id, "circle/nope")
        return b"Content-Length: %d\n\n%b" % (len(body), body)

    def _short_length(self) -> bytes:
        body = _request(f"h{self.rng.random()}", "circle/nope")
        return b"Content-Length: %d\r\n\r\n%b" % (self.rng.randint(0, len(body) - 1), body)

    def _in_flight_reply(self) -> bytes:
        target = self.rng.choice(self.valid) if self.valid else "v1"
        return encode_frame(json.dumps({"jsonrpc": "2.0", "id": target, "result": 1}).encode())

    def _cancel_in_flight(self) -> bytes:
        target = self.rng.choice(self.valid) if self.valid else "v1"
        params = {"id": target}
        return encode_frame(json.dumps({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": params}).encode())

    _hostile_kinds = (
        ("length of 5000 digits", lambda s: b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n"),
        ("implausible length", lambda s: b"Content-Length: 99999999999999999\r\n\r\n"),
        ("deep JSON", lambda s: encode_frame(b"[" * DEEP + b"]" * DEEP)),
        (
            "deep params",
            lambda s: encode_frame(
                b'{"jsonrpc":"2.0","id":"d","method":"circle/nope","params":{"a":' + b"[" * DEEP + b"]" * DEEP + b"}}"
            ),
        ),
        (
            "cancel with array id",
            lambda s: encode_frame(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":[1]}}'),
        ),
        (
            "cancel with object id",
            lambda s: encode_frame(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":{}}}'),
        ),
        ("cancel of a request in flight", _cancel_in_flight),
        ("reply with an in-flight id", _in_flight_reply),
        ("request as notification", lambda s: encode_frame(b'{"jsonrpc":"2.0","method":"circle/enumCircles"}')),
        ("stray line break", lambda s: s.rng.choice([b"\r\n", b"\n", b"\r\n\r\n"])),
        ("junk glued before a header", lambda s: b"junk"),
        ("short Content-Length", _short_length),
        ("LF-only header", _lf_only),
        ("random bytes", _random_bytes),
        ("bad JSON", lambda s: encode_frame(b'{"jsonrpc":"2.0","id":')),
        ("oversized body", lambda s: encode_frame(b" " * 70_000)),
    )


async def fuzz(frames: int, seed: int) -> Tally:
    rng = random.Random(seed)
    tally = Tally()
    stream = _Stream(rng)
    sink = _Sink()
    settings = Settings(max_frame_bytes=64 * 1024)
    session = open_session(settings)
    connection = Connection(session, settings, sink)
    started = time.perf_counter()
    try:
        data = [encode_frame(_request("init", "initialize", {}))]
        stream.sent_ids.add("init")
        for _ in range(frames):
            data.append(stream.valid_frame() if rng.random() < 0.5 else stream.hostile())
        tally.frames = len(data)
        blob = b"".join(data)
        position = 0
        while position < len(blob):
            step = rng.choice((1, 7, 64, 512, 4096, 65536))
            chunk, position = blob[position : position + step], position + step
            try:
                await asyncio.wait_for(connection.feed(chunk), HANG_SECONDS)
            except TimeoutError:
                tally.hangs += 1
            except Exception:  # a crash: the read loop would have died here
                tally.crashes += 1
        await asyncio.wait_for(connection._requests_answered(), HANG_SECONDS)
        await asyncio.sleep(0)
        connection._flush()
    finally:
        await session.aclose()
    tally.seconds = time.perf_counter() - started
    tally.valid = len(stream.valid)
    tally.kinds = stream.kinds
    counts: dict[object, int] = {}
    for reply in sink.replies:
        reply_id = reply.get("id")
        counts[reply_id] = counts.get(reply_id, 0) + 1
        if reply_id is not None and reply_id not in stream.sent_ids and not str(reply_id).startswith(("h", "d")):
            tally.wrong_ids += 1
    tally.unanswered = sum(1 for msg_id in stream.valid if counts.get(msg_id, 0) == 0)
    tally.answered_twice = sum(1 for msg_id in stream.valid if counts.get(msg_id, 0) > 1)
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.fuzz_frames", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="frames to send (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=100_000, help="frames per connection (default: %(default)s)")
    args = parser.parse_args(argv)
    total = Tally()
    done, batch_seed = 0, args.seed
    while done < args.frames:
        count = min(args.batch, args.frames - done)
        tally = asyncio.run(fuzz(count, batch_seed))
        for name in ("frames", "valid", "crashes", "hangs", "unanswered", "answered_twice", "wrong_ids", "seconds"):
            setattr(total, name, getattr(total, name) + getattr(tally, name))
        for kind, n in tally.kinds.items():
            total.kinds[kind] = total.kinds.get(kind, 0) + n
        done += count
        batch_seed += 1
    print(total.line())
    print("hostile kinds: " + ", ".join(f"{kind} {n}" for kind, n in sorted(total.kinds.items())))
    return 0 if total.clean else 1


if __name__ == "__main__":
    sys.exit(main())
