"""Dispatch: pygls' JsonRPCProtocol routes messages to handlers, runs each request as a Task and
handles `$/cancelRequest`. This subclass adds what pygls lacks (pygls-notes.md §5):

* msgspec encoding of everything sent, framed with byte lengths;
* **the one place where exceptions become JSON-RPC errors** (`_send_handler_result`): a
  `BridgeError` becomes its catalogue code, anything else a bare -32603 with no traceback;
* a gate, consulted before dispatch, that the lifecycle layer fills in;
* a hook when a request finishes, which the connection uses to cap requests in flight.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import cattrs
from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCProtocol, default_converter
from pygls.server import JsonRPCServer

from . import _errors as E
from ._codec import Message, MsgId, encode
from ._framing import encode_frame

log = logging.getLogger("circle_bridge.dispatch")

Gate = Callable[[Message], "tuple[E.ErrorSpec, str] | None"]
"""Returns an error to answer instead of dispatching, or None to dispatch."""


class BridgeProtocol(JsonRPCProtocol):
    def __init__(
        self,
        server: JsonRPCServer,
        converter: cattrs.Converter,
        *,
        write_frame: Callable[[bytes], None] | None = None,
        gate: Gate | None = None,
        on_request_done: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(server, converter)
        self.write_frame = write_frame
        self.gate = gate
        self.on_request_done = on_request_done
        self._methods: dict[MsgId, str] = {}

    # -- outgoing ---------------------------------------------------------------------------
    def _send_data(self, data: Any) -> None:
        if not data or self.write_frame is None:
            return
        body = encode(data)  # msgspec encodes pygls' attrs messages and our Structs natively
        self.write_frame(encode_frame(body))

    def send_error(self, msg_id: MsgId | None, spec: E.ErrorSpec, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": spec.code, "message": message}
        if data is not None:
            error["data"] = data
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": error})

    # -- the error boundary -----------------------------------------------------------------
    def _send_handler_result(self, future: Future[Any], *, msg_id: MsgId) -> None:
        self._request_futures.pop(msg_id, None)
        method = self._methods.pop(msg_id, "?")
        if self.on_request_done is not None:
            self.on_request_done()
        if future.cancelled():
            self.send_error(msg_id, E.REQUEST_CANCELLED, f"Request {msg_id!r} was cancelled", {"retryable": False})
            return
        exc = future.exception()
        if exc is None:
            log.debug("reply to %s id=%r", method, msg_id)
            self._send_response(msg_id, result=future.result())
        elif isinstance(exc, E.BridgeError):
            log.info("%s (id %r) failed: %d %s", method, msg_id, exc.code, exc.message)
            self.send_error(msg_id, exc.spec, exc.message, exc.wire_data())
        elif isinstance(exc, JsonRpcException):  # raised by pygls itself
            self.send_error(msg_id, E.INTERNAL_ERROR, exc.message or E.INTERNAL_ERROR.message, {"retryable": False})
        else:
            log.error("bug: %s (id %r) raised", method, msg_id, exc_info=exc)
            self.send_error(msg_id, E.INTERNAL_ERROR, E.INTERNAL_ERROR.message, {"retryable": True})

    # -- incoming ---------------------------------------------------------------------------
    def handle_message(self, message: Message) -> None:  # type: ignore[override]
        method = getattr(message, "method", None)
        msg_id = getattr(message, "id", None) if method is not None else None
        log.debug("recv %s id=%r", method or "response", msg_id)
        if self.gate is not None:
            refusal = self.gate(message)
            if refusal is not None:
                spec, detail = refusal
                if msg_id is not None:
                    self.send_error(msg_id, spec, f"{spec.message}: {detail}")
                return
        if msg_id is not None:
            self._methods[msg_id] = str(method)
        super().handle_message(message)

    @property
    def in_flight(self) -> int:
        return len(self._request_futures)

    def _handle_cancel_notification(self, msg_id: MsgId) -> None:
        future = self._request_futures.get(msg_id)
        if future is None:
            log.debug("$/cancelRequest for unknown or finished id %r", msg_id)
            return
        future.cancel()


def new_server(
    *,
    write_frame: Callable[[bytes], None],
    gate: Gate,
    on_request_done: Callable[[], None],
) -> JsonRPCServer:
    """One server (and protocol) per connection, its hooks given at construction. The converter is
    unused on our paths: the read loop builds pygls' message objects from msgspec output, and
    `_send_data` encodes with msgspec."""

    def protocol(server: JsonRPCServer, converter: cattrs.Converter) -> BridgeProtocol:
        return BridgeProtocol(server, converter, write_frame=write_frame, gate=gate, on_request_done=on_request_done)

    return JsonRPCServer(protocol, default_converter)  # type: ignore[arg-type]  # a factory, not the class
