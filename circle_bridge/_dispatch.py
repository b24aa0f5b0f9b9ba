"""Dispatch: pygls' JsonRPCProtocol keeps the handler table, runs each request as a Task and
tracks its future for `$/cancelRequest`. This subclass adds what pygls lacks (docs/pygls.md):

* msgspec encoding of everything sent, framed with byte lengths;
* **the one place where errors become JSON-RPC error replies** (`send_error`): every reply, whether
  for a `BridgeError`, a bug, a cancelled request, an unknown method or a message the codec or the
  lifecycle gate refused, carries the catalogue's message and ``data.retryable``;
* routing by the kind the codec already decoded, instead of pygls' ``handle_message``, whose
  ``isinstance`` checks against typing Protocols were a fifth of a request's CPU, and whose own
  answers to unknown methods broke the catalogue's shape, logged an ERROR line and leaked an entry
  per request;
* a gate, consulted before dispatch, that the lifecycle layer fills in;
* a hook when a request finishes, which the connection uses to cap requests in flight.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable
from concurrent.futures import Future
from functools import cache, partial
from typing import Any

import cattrs
from pygls.exceptions import JsonRpcException
from pygls.protocol import JsonRPCProtocol
from pygls.server import JsonRPCServer

from . import _errors as E
from ._codec import Message, MsgId, Notification, Request, cancel_target, encode
from ._framing import encode_frame
from ._protocol import METHODS_BY_NAME

log = logging.getLogger("circle_bridge.dispatch")

Gate = Callable[[Message], "tuple[E.ErrorSpec, str] | None"]
"""Returns an error to answer instead of dispatching, or None to dispatch."""

_SPEC_BY_CODE = {spec.code: spec for spec in E.CATALOGUE}


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
        self._coroutine_functions: dict[Callable[..., Any], bool] = {}
        self.write_frame = write_frame
        self.gate = gate
        self.on_request_done = on_request_done

    # -- outgoing ---------------------------------------------------------------------------
    def _send_data(self, data: Any) -> None:
        if not data or self.write_frame is None:
            return
        body = encode(data)  # msgspec encodes our dicts, Structs and pygls' attrs messages natively
        self.write_frame(encode_frame(body))

    def send_error(self, msg_id: MsgId | None, spec: E.ErrorSpec, detail: str | None = None, **data: Any) -> None:
        """Answer ``msg_id`` with catalogue entry ``spec``: message ``"<catalogue message>: <detail>"``,
        ``data`` with ``retryable`` and any upstream detail (which must never hold a secret)."""
        message = f"{spec.message}: {detail}" if detail else spec.message
        self._send_error(msg_id, spec.code, message, {"retryable": spec.retryable, **data})

    def _send_error(self, msg_id: MsgId | None, code: int, message: str, data: dict[str, Any]) -> None:
        self._send_data({"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message, "data": data}})

    def _send_response(self, msg_id: MsgId, result: Any | None = None, error: Any | None = None) -> None:
        """pygls' own reply path. Our paths never reach it with an error; should pygls ever produce
        one, it still leaves in the catalogue's shape."""
        if error is None:
            self._send_data({"jsonrpc": "2.0", "id": msg_id, "result": result})
            return
        spec = _SPEC_BY_CODE.get(getattr(error, "code", 0), E.INTERNAL_ERROR)
        self.send_error(msg_id, spec, getattr(error, "message", None) or None)

    # -- the error boundary -----------------------------------------------------------------
    def _send_handler_result(self, future: Future[Any], *, msg_id: MsgId, method: str = "?") -> None:
        self._request_futures.pop(msg_id, None)
        if self.on_request_done is not None:
            self.on_request_done()
        if future.cancelled():
            self.send_error(msg_id, E.REQUEST_CANCELLED, f"request {msg_id!r} was cancelled by the client")
            return
        exc = future.exception()
        if exc is None:
            self._send_data({"jsonrpc": "2.0", "id": msg_id, "result": future.result()})
        elif isinstance(exc, E.BridgeError):
            log.info("%s (id %r) failed: %d %s", method, msg_id, exc.code, exc.message)
            self._send_error(msg_id, exc.code, exc.message, exc.wire_data())
        elif isinstance(exc, JsonRpcException):  # raised by pygls itself
            self.send_error(msg_id, _SPEC_BY_CODE.get(exc.code, E.INTERNAL_ERROR), exc.message or None)
        else:
            log.error("bug: %s (id %r) raised", method, msg_id, exc_info=exc)
            self.send_error(msg_id, E.INTERNAL_ERROR)

    # -- incoming ---------------------------------------------------------------------------
    def handle_message(self, message: Message) -> None:  # type: ignore[override]
        kind = type(message)
        if kind is Request or kind is Notification:
            assert isinstance(message, Request | Notification)
            if self.gate is not None:
                refusal = self.gate(message)
                if refusal is not None:
                    spec, detail = refusal
                    if kind is Request:
                        assert isinstance(message, Request)
                        self.send_error(message.id, spec, detail)
                    return
            if isinstance(message, Request):
                self._dispatch_request(message)
            else:
                self._dispatch_notification(message)
            return
        # A reply from the client: this server sends no requests, so none can be awaited. Handing it
        # to pygls would fail its lookup (or, with the id of one of the client's own requests in
        # flight, resolve that request's future with the client's value).
        log.debug("dropped a response (id %r): this server sends no requests", getattr(message, "id", None))

    def _dispatch_request(self, message: Request) -> None:
        msg_id, method = message.id, message.method
        handler = self.fm.features.get(method)
        if handler is None:
            self.send_error(msg_id, E.METHOD_NOT_FOUND, method)
            return
        spec = METHODS_BY_NAME.get(method)
        if spec is not None and spec.kind == "notification":
            self.send_error(msg_id, E.INVALID_REQUEST, f"`{method}` is a notification; send it without an id")
            return
        if msg_id in self._request_futures:
            # a second request under the id of one in flight would make both unanswerable by id
            self.send_error(msg_id, E.INVALID_REQUEST, f"id {msg_id!r} is already in use by a request in flight")
            return
        done = partial(self._send_handler_result, msg_id=msg_id, method=method)
        if self._is_coroutine_function(handler):
            # what pygls' _execute_handler does for an `async def` handler, without its per-request
            # iscoroutinefunction and ensure_future checks (issue 10: the path we control)
            task = asyncio.get_running_loop().create_task(handler(message.params))
            self._request_futures[msg_id] = task  # type: ignore[assignment]  # as pygls itself stores them
            task.add_done_callback(done)
            return
        self._execute_handler(msg_id, handler, done, args=(message.params,))

    def _is_coroutine_function(self, handler: Callable[..., Any]) -> bool:
        known = self._coroutine_functions.get(handler)
        if known is None:
            known = self._coroutine_functions[handler] = inspect.iscoroutinefunction(handler)
        return known

    def _dispatch_notification(self, message: Notification) -> None:
        method = message.method
        if method == "$/cancelRequest":
            target = cancel_target(message.params)
            if target is not None:
                self._handle_cancel_notification(target)
            return
        spec = METHODS_BY_NAME.get(method)
        if spec is None or spec.kind != "notification":
            # Stock LSP notifications ($/setTrace, workspace/didChangeConfiguration, ...) and requests
            # sent without an id: there is no one to answer, and running a request whose result
            # nobody can receive would only hold a slot of the in-flight cap.
            log.debug("ignored notification %s", method)
            return
        self._handle_notification(method, message.params)

    @property
    def in_flight(self) -> int:
        return len(self._request_futures)

    def _handle_cancel_notification(self, msg_id: MsgId) -> None:
        future = self._request_futures.get(msg_id)
        if future is None:
            log.debug("$/cancelRequest for unknown or finished id %r", msg_id)
            return
        future.cancel()


@cache
def _converter() -> cattrs.Converter:
    """pygls wants a converter per protocol; ours never uses it (the codec builds messages and
    `_send_data` encodes with msgspec), so one bare converter serves every connection instead of
    pygls' default, which took 14-18 ms to build per connection."""
    return cattrs.Converter()


def new_server(
    *,
    write_frame: Callable[[bytes], None],
    gate: Gate,
    on_request_done: Callable[[], None],
) -> JsonRPCServer:
    """One server (and protocol) per connection, its hooks given at construction."""

    def protocol(server: JsonRPCServer, converter: cattrs.Converter) -> BridgeProtocol:
        return BridgeProtocol(server, converter, write_frame=write_frame, gate=gate, on_request_done=on_request_done)

    return JsonRPCServer(protocol, _converter)  # type: ignore[arg-type]  # a factory, not the class
