"""JSON-RPC 2.0 envelopes: a decoded frame body becomes a `Request`, a `Notification`, a
`Response`, or an `Invalid` that says which error to answer and with which id. msgspec does the
JSON both ways, with one encoder and one decoder built once and reused.

The codec already knows each message's kind, so it hands dispatch plain slotted objects: pygls'
attrs message classes would only be built to be taken apart again, and its ``isinstance`` checks
against them cost a fifth of a request's CPU (issue 10).
"""

from __future__ import annotations

from typing import Any

import msgspec

from . import _errors as E

MsgId = int | str

_decode = msgspec.json.Decoder().decode
encode = msgspec.json.Encoder().encode


# msgspec Structs, not frozen dataclasses: built in C, where a frozen dataclass sets each field
# through object.__setattr__ (one of these per message, issue 10)
class Request(msgspec.Struct, frozen=True):
    id: MsgId
    method: str
    params: Any


class Notification(msgspec.Struct, frozen=True):
    method: str
    params: Any


class Response(msgspec.Struct, frozen=True):
    """A reply from the client (`result` or `error`). The server sends no requests of its own, so
    every one is unexpected; dispatch drops it."""

    id: MsgId | None


Message = Request | Notification | Response


class Invalid(msgspec.Struct, frozen=True):
    spec: E.ErrorSpec
    detail: str
    id: MsgId | None = None  # None: answer with id null


def _valid_id(value: Any) -> bool:
    # a bool is an int in Python but not a valid id; floats, objects, arrays and null are invalid too
    return (isinstance(value, int) and not isinstance(value, bool)) or isinstance(value, str)


def cancel_target(params: Any) -> MsgId | None:
    """The id a `$/cancelRequest` names, or None when it names no valid id (an array or object id
    must never reach a dict lookup: it is unhashable)."""
    target = params.get("id") if isinstance(params, dict) else None
    return target if _valid_id(target) else None


def decode_message(body: bytes) -> Message | Invalid:
    try:
        obj = _decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        return Invalid(E.PARSE_ERROR, f"not valid UTF-8 JSON ({exc})")
    except RecursionError:
        # msgspec recurses once per nesting level; a frame nested thousands deep must cost one
        # error reply, not the process
        return Invalid(E.INVALID_REQUEST, "JSON nested too deeply")
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
    if method is None and ("result" in obj or "error" in obj):
        return Response(reply_id)
    if not isinstance(method, str) or not method:
        return Invalid(E.INVALID_REQUEST, "method must be a non-empty string", reply_id)
    if has_id and not _valid_id(msg_id):
        return Invalid(E.INVALID_REQUEST, "id must be an integer or a string")
    params = obj.get("params")
    if params is not None and not isinstance(params, dict | list):
        return Invalid(E.INVALID_REQUEST, "params must be an object or an array", reply_id)
    if has_id:
        assert msg_id is not None
        return Request(msg_id, method, params)
    return Notification(method, params)
