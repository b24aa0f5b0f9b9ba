from circle_bridge._framing import FrameError, FrameParser, encode_frame


def frames(*bodies: bytes) -> bytes:
    return b"".join(encode_frame(b) for b in bodies)


def test_encode_counts_bytes_not_characters() -> None:
    body = '{"name":"Équipe 研究"}'.encode()
    assert encode_frame(body) == b"Content-Length: %d\r\n\r\n" % len(body) + body
    assert len(body) > len('{"name":"Équipe 研究"}')


def test_joined_frames_come_out_one_by_one() -> None:
    parser = FrameParser(1024)
    assert parser.feed(frames(b"{}", b"[1]", b'"x"')) == [b"{}", b"[1]", b'"x"']


def test_split_frames_byte_by_byte() -> None:
    parser = FrameParser(1024)
    data = frames(b'{"a":1}', b'{"b":2}')
    out: list[bytes | FrameError] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert out == [b'{"a":1}', b'{"b":2}']


def test_lower_case_and_extra_headers_in_any_order() -> None:
    parser = FrameParser(1024)
    data = b"content-type: application/vscode-jsonrpc; charset=utf-8\r\ncontent-LENGTH:  2\r\n\r\n{}"
    assert parser.feed(data) == [b"{}"]


def test_missing_content_length_is_an_error_and_the_next_frame_survives() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b"Content-Lenght: 2\r\n\r\n{}" + frames(b"[2]"))
    assert isinstance(out[0], FrameError)
    assert "Content-Length" in out[0].reason
    assert out[1:] == [b"[2]"]


def test_oversize_body_is_skipped_exactly() -> None:
    parser = FrameParser(10)
    big = b"x" * 50
    out = parser.feed(frames(big, b"{}"))
    assert isinstance(out[0], FrameError)
    assert "exceeds" in out[0].reason
    assert out[1:] == [b"{}"]


def test_oversize_body_skipped_across_reads() -> None:
    parser = FrameParser(10)
    data = frames(b"y" * 100, b"[3]")
    out: list[bytes | FrameError] = []
    for i in range(0, len(data), 7):
        out += parser.feed(data[i : i + 7])
    assert len(out) == 2
    assert isinstance(out[0], FrameError)
    assert out[1] == b"[3]"


def test_endless_header_is_capped_and_resyncs() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b"X" * 9000 + frames(b"{}"))
    assert isinstance(out[0], FrameError)
    assert out[-1] == b"{}"


def test_wrong_charset_is_rejected_but_body_consumed() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b"Content-Length: 2\r\nContent-Type: text/plain; charset=latin-1\r\n\r\n{}" + frames(b"[4]"))
    assert isinstance(out[0], FrameError)
    assert "charset" in out[0].reason
    assert out[1:] == [b"[4]"]


def test_conflicting_lengths_rejected() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{}" + frames(b"[5]"))
    assert isinstance(out[0], FrameError)
    assert out[-1] == b"[5]"


def test_garbage_then_a_later_frame_in_another_read() -> None:
    parser = FrameParser(1024)
    first = parser.feed(b"Content-Lenght: 2\r\n\r\n{}")
    assert len(first) == 1
    assert isinstance(first[0], FrameError)
    assert parser.feed(b"Cont") == []
    assert parser.feed(frames(b"[6]")[4:]) == [b"[6]"]


def test_lf_only_header_is_accepted_and_the_next_frame_survives() -> None:
    parser = FrameParser(1024)
    assert parser.feed(b"Content-Length: 2\n\n{}" + frames(b"[1]")) == [b"{}", b"[1]"]


def test_stray_blank_lines_between_frames_cost_nothing() -> None:
    parser = FrameParser(1024)
    assert parser.feed(frames(b"{}") + b"\r\n\n\r\n" + frames(b"[1]")) == [b"{}", b"[1]"]


def test_bytes_glued_before_a_header_cost_one_error_not_the_frame() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b"xyz" + frames(b"[1]"))
    assert [type(item) for item in out] == [FrameError, bytes]
    assert out[1] == b"[1]"


def test_content_length_shorter_than_the_body_loses_no_later_frame() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b'Content-Length: 5\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"x"}' + frames(b"[2]"))
    assert out[0] == b'{"jso'
    assert out[-1] == b"[2]"
    assert all(isinstance(item, FrameError) for item in out[1:-1])


def test_thousands_of_length_digits_are_an_error_not_a_crash() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n{}" + frames(b"[3]"))
    assert isinstance(out[0], FrameError)
    assert out[-1] == b"[3]"


def test_an_implausible_length_resyncs_instead_of_waiting_forever() -> None:
    parser = FrameParser(1024)
    out = parser.feed(b"Content-Length: 99999999999999999\r\n\r\n{}" + frames(b"[4]"))
    assert isinstance(out[0], FrameError)
    assert out[-1] == b"[4]"
