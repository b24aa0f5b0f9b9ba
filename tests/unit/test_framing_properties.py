"""Properties of the frame parser under arbitrary chunking and injected garbage."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from circle_bridge._framing import FrameError, FrameParser, encode_frame

bodies = st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=12)
cuts = st.lists(st.integers(min_value=0, max_value=4000), max_size=30)


def feed_in_chunks(parser: FrameParser, data: bytes, points: list[int]) -> list[bytes | FrameError]:
    out: list[bytes | FrameError] = []
    edges = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    for start, end in itertools.pairwise(edges):
        out += parser.feed(data[start:end])
    return out


@settings(max_examples=300, deadline=None)
@given(bodies, cuts)
def test_any_chunking_yields_exactly_the_frames_sent(frames: list[bytes], points: list[int]) -> None:
    data = b"".join(encode_frame(b) for b in frames)
    assert feed_in_chunks(FrameParser(1 << 20), data, points) == frames


# Garbage that itself spells a valid Content-Length header would (rightly) be read as a frame and
# eat the bytes it announces; the property is about garbage that is not a header.
garbage_bytes = st.binary(min_size=1, max_size=2000).filter(lambda g: b"content-length" not in g.lower())


@settings(max_examples=300, deadline=None)
@given(garbage_bytes, bodies, cuts)
def test_garbage_costs_errors_but_never_a_later_frame(garbage: bytes, frames: list[bytes], points: list[int]) -> None:
    # the garbage is closed by a blank line, as a broken client's bad header block would be
    data = garbage.replace(b"\r\n\r\n", b"") + b"\r\n\r\n" + b"".join(encode_frame(b) for b in frames)
    out = feed_in_chunks(FrameParser(1 << 20), data, points)
    good = [item for item in out if isinstance(item, bytes)]
    # every frame after the garbage arrives intact, in order (the garbage may itself hold a
    # well-formed frame, which is then delivered too: that is not a loss)
    assert good[len(good) - len(frames) :] == frames
    assert all(isinstance(item, FrameError) for item in out[: len(out) - len(frames)] if not isinstance(item, bytes))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=5000), bodies, cuts)
def test_oversize_frames_are_skipped_exactly(extra: int, frames: list[bytes], points: list[int]) -> None:
    limit = max(len(b) for b in frames)
    data = encode_frame(b"x" * (limit + extra)) + b"".join(encode_frame(b) for b in frames)
    out = feed_in_chunks(FrameParser(limit), data, points)
    assert isinstance(out[0], FrameError)
    assert "exceeds" in out[0].reason
    assert out[1:] == frames


# The junk kinds that once swallowed the valid frame behind them (issue 11): a stray line break,
# bytes glued before a header, a Content-Length shorter than its body, an LF-only header block.
junk = st.sampled_from(
    [
        b"\r\n",
        b"\n",
        b"garbage",
        b"Content-Length: 3\r\n\r\n" + b'{"jsonrpc":"2.0","id":99}',
        b"Content-Length: 2\n\n{}",
        b"Content-Length: 123456789012345678901234567890\r\n\r\n",
    ]
)


@settings(max_examples=300, deadline=None)
@given(st.lists(junk, min_size=1, max_size=4), bodies, cuts)
def test_known_junk_never_costs_the_next_frame(junks: list[bytes], frames: list[bytes], points: list[int]) -> None:
    data = b"".join(j + encode_frame(f) for j, f in zip(itertools.cycle(junks), frames, strict=False))
    out = feed_in_chunks(FrameParser(1 << 20), data, points)
    good = [item for item in out if isinstance(item, bytes)]
    # each valid frame arrives, in order; junk may add frames of its own (the LF-only one is valid)
    it = iter(good)
    assert all(any(g == f for g in it) for f in frames)
