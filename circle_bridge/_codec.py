"""JSON-RPC 2.0 envelopes: decoded frame bodies become pygls message objects, or an `Invalid`
that says which error to answer and with which id. msgspec does the JSON both ways, once-built
encoder and decoder reused."""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any

import msgspec
from pygls.protocol import JsonRPCNotification, JsonRPCRequestMessage, JsonRPCResponseMessage

from . import _errors as E

Message = JsonRPCRequestMessage | JsonRPCNotification | JsonRPCResponseMessage
MsgId = int | str

_decode = msgspec.json.Decoder().decode
encode = msgspec.json.Encoder().encode


@dataclass(frozen=True, slots=True)
class Invalid:
    spec: E.ErrorSpec
    detail: str
    id: MsgId | None = None  # None: answer with id null


def _valid_id(value: Any) -> bool:
    # a bool is an int in Python but not a valid id; floats, objects, arrays and null are invalid too
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def decode_message(body: bytes) -> Message | Invalid:
    try:
        obj = _decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Invalid(E.PARSE_ERROR, f"not valid UTF-8 JSON ({exc})")
    if isinstance(obj, list):
        return Invalid(E.INVALID_REQUEST, "batches are not supported; send one request per frame")
    if not isinstance(obj, dict):
        return Invalid(E.INVALID_REQUEST, "a message must be a JSON object")
    has_id = "id" in obj
    msg_id = obj.get("id")
    reply_id = msg_id if _valid_id(msg_id) else None
    if obj.get("jsonrpc") != "2.0":
        return Invalid(E.INVALID_REQUEST, 'jsonrpc must be "2.0"', reply_id)
    method = obj.get("method")
    if method is None and reply_id is not None and ("result" in obj or "error" in obj):
        # a reply to a server->client request; the server sends none today, pygls logs and drops it
        return JsonRPCResponseMessage(id=reply_id, jsonrpc="2.0", result=obj.get("result"))
    if not isinstance(method, str) or not method:
        return Invalid(E.INVALID_REQUEST, "method must be a non-empty string", reply_id)
    if has_id and not _valid_id(msg_id):
        return Invalid(E.INVALID_REQUEST, "id must be an integer or a string")
    params = obj.get("params")
    if params is not None and not isinstance(params, dict | list):
        return Invalid(E.INVALID_REQUEST, "params must be an object or an array", reply_id)
    if method == "$/cancelRequest":
        # pygls reads params.id as an attribute
        params = types.SimpleNamespace(id=params.get("id") if isinstance(params, dict) else None)
    if has_id:
        assert msg_id is not None
        return JsonRPCRequestMessage(id=msg_id, method=method, jsonrpc="2.0", params=params)
    return JsonRPCNotification(method=method, jsonrpc="2.0", params=params)
