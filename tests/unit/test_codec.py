import pytest

from circle_bridge import _errors as E
from circle_bridge._codec import Invalid, Notification, Request, Response, cancel_target, decode_message


@pytest.mark.parametrize(
    ("body", "code", "reply_id"),
    [
        (b"{not json", -32700, None),
        (b'{"jsonrpc":"2.0","id":1,"method":"x","params":"\xff"}', -32700, None),
        (b"[]", -32600, None),
        (b'[{"jsonrpc":"2.0","id":1,"method":"x"}]', -32600, None),
        (b"42", -32600, None),
        (b'{"jsonrpc":"1.0","id":3,"method":"x"}', -32600, 3),
        (b'{"id":4,"method":"x"}', -32600, 4),
        (b'{"jsonrpc":"2.0","id":true,"method":"x"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":[1],"method":"x"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"x"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"x"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":null,"method":"x"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":"s","method":7}', -32600, "s"),
        (b'{"jsonrpc":"2.0","id":5,"method":"x","params":3}', -32600, 5),
    ],
)
def test_invalid_messages(body: bytes, code: int, reply_id: object) -> None:
    result = decode_message(body)
    assert isinstance(result, Invalid)
    assert result.spec.code == code
    assert result.id == reply_id


def test_request_and_notification() -> None:
    req = decode_message(b'{"jsonrpc":"2.0","id":"a-1","method":"circle/enumTopics","params":{"circleId":"c"}}')
    assert isinstance(req, Request)
    assert req.id == "a-1"
    assert req.params == {"circleId": "c"}
    note = decode_message(b'{"jsonrpc":"2.0","method":"initialized"}')
    assert isinstance(note, Notification)
    assert note.params is None


@pytest.mark.parametrize(
    ("params", "target"),
    [
        ({"id": 9}, 9),
        ({"id": "a"}, "a"),
        ({"id": [1]}, None),
        ({"id": {"x": 1}}, None),
        ({"id": True}, None),
        (None, None),
    ],
)
def test_cancel_target_is_only_a_valid_id(params: object, target: object) -> None:
    assert cancel_target(params) == target


@pytest.mark.parametrize(
    "body",
    [b'{"jsonrpc":"2.0","id":1,"result":null}', b'{"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}}'],
)
def test_replies_from_the_client_decode_as_responses(body: bytes) -> None:
    assert isinstance(decode_message(body), Response)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deep_nesting_is_an_invalid_request_not_a_crash(depth: int) -> None:
    for body in (b"[" * depth + b"]" * depth, b'{"jsonrpc":"2.0","id":1,"method":"x","params":' + b"[" * depth):
        result = decode_message(body)
        assert isinstance(result, Invalid)
        assert result.spec.code in (-32600, -32700)


def test_catalogue_codes_are_unique_and_outside_reserved_ranges() -> None:
    codes = [spec.code for spec in E.CATALOGUE]
    assert len(codes) == len(set(codes))
    standard = {-32700, -32600, -32601, -32602, -32603, -32002, -32800}
    for code in set(codes) - standard:
        assert not -32768 <= code <= -32000, code
        assert not -32899 <= code <= -32800, code
