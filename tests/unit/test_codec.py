import pytest
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage

from circle_bridge import _errors as E
from circle_bridge._codec import Invalid, decode_message


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
    assert isinstance(req, JsonRPCRequestMessage)
    assert req.id == "a-1"
    assert req.params == {"circleId": "c"}
    note = decode_message(b'{"jsonrpc":"2.0","method":"initialized"}')
    assert isinstance(note, JsonRPCNotification)
    assert note.params is None


def test_cancel_params_become_attribute_access() -> None:
    note = decode_message(b'{"jsonrpc":"2.0","method":"$/cancelRequest","params":{"id":9}}')
    assert isinstance(note, JsonRPCNotification)
    assert note.params.id == 9


def test_catalogue_codes_are_unique_and_outside_reserved_ranges() -> None:
    codes = [spec.code for spec in E.CATALOGUE]
    assert len(codes) == len(set(codes))
    standard = {-32700, -32600, -32601, -32602, -32603, -32002, -32800}
    for code in set(codes) - standard:
        assert not -32768 <= code <= -32000, code
        assert not -32899 <= code <= -32800, code
