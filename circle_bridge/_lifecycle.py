"""Per-connection lifecycle, LSP style: `initialize` -> `initialized` -> ... -> `shutdown` -> `exit`.

A request before `initialize` gets -32002 (except the few methods marked ``before_initialize``);
after `shutdown` every request gets -32600; notifications in either state are dropped, except
`exit`. `exit` closes the connection with code 0 after `shutdown`, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from pygls.server import JsonRPCServer

from . import _errors as E
from ._codec import Message
from ._protocol import METHODS_BY_NAME, InitializeParams, InitializeResult, NoParams

log = logging.getLogger("circle_bridge.lifecycle")

PARENT_POLL_SECONDS = 1.0


class Lifecycle:
    def __init__(self, close: Callable[[int], None], *, watch_parent: bool) -> None:
        self._close = close
        self._watch_parent = watch_parent
        self.initialized = False
        self.shut_down = False
        self._watcher: asyncio.Task[None] | None = None

    def gate(self, message: Message) -> tuple[E.ErrorSpec, str] | None:
        method = getattr(message, "method", None)
        if method is None or method == "exit":
            return None
        if self.shut_down:
            return E.INVALID_REQUEST, "the server is shut down; only `exit` is accepted"
        if method == "initialize":
            # decided here, in arrival order, so a client may pipeline requests right behind it
            if self.initialized:
                return E.INVALID_REQUEST, "`initialize` may be sent only once per connection"
            self.initialized = True
            return None
        if not self.initialized:
            spec = METHODS_BY_NAME.get(method)
            if spec is None or not spec.before_initialize:
                return E.SERVER_NOT_INITIALIZED, "send `initialize` first"
        return None

    def on_initialize(self, params: InitializeParams) -> None:
        if params.client_info:
            log.info("client %s %s connected", params.client_info.name, params.client_info.version or "(no version)")
        if self._watch_parent and isinstance(params.process_id, int):
            self._watcher = asyncio.ensure_future(self._watch(params.process_id))

    async def _watch(self, pid: int) -> None:
        while True:
            await asyncio.sleep(PARENT_POLL_SECONDS)
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                log.warning("parent process %d is gone; exiting", pid)
                self._close(1)
                return
            except PermissionError:  # exists, owned by someone else
                pass

    def on_shutdown(self) -> None:
        self.shut_down = True

    def on_exit(self) -> None:
        self._close(0 if self.shut_down else 1)

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


def register_lifecycle(
    server: JsonRPCServer,
    lifecycle: Lifecycle,
    parse: Callable[[Any, type[Any]], Any],
    initialize_result: Callable[[], InitializeResult],
    drain_requests: Callable[[], Awaitable[None]],
) -> None:
    @server.feature("initialize")
    async def initialize(params: Any) -> InitializeResult:
        lifecycle.on_initialize(parse(params, InitializeParams))
        return initialize_result()

    # Notification handlers are plain functions on purpose: pygls stores the future of an async
    # notification handler in its request table and never removes it (a leak that would also count
    # against the in-flight cap). These run inline and do no I/O.
    @server.feature("initialized")
    def initialized(params: Any) -> None:
        parse(params, NoParams)

    @server.feature("shutdown")
    async def shutdown(params: Any) -> None:
        lifecycle.on_shutdown()
        # answer only once every earlier request is answered, so `exit` right after the reply
        # cannot drop a reply the client still waits for
        await drain_requests()

    @server.feature("exit")
    def exit_(params: Any) -> None:
        lifecycle.on_exit()
