"""An in-memory CircleService at httpcore's level, the layer ServiceClient speaks to: a handler
takes an ``httpx.Request`` and returns an ``httpx.Response`` (httpx's models are handy to build
replies with), or raises one of httpcore's errors as a failing network would."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable

import httpcore
import httpx

Handler = Callable[[httpx.Request], httpx.Response]


class HandlerPool:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        assert isinstance(request.stream, AsyncIterable)
        body = b"".join([chunk async for chunk in request.stream])
        reply = self.handler(
            httpx.Request(
                request.method.decode(),
                bytes(request.url).decode(),
                headers=request.headers,
                content=body,
                extensions=request.extensions,
            )
        )

        async def content() -> AsyncIterator[bytes]:
            try:
                yield reply.content  # a body given whole
            except httpx.ResponseNotRead:
                async for chunk in reply.aiter_raw():  # a streamed body stays streamed, chunk by chunk
                    yield chunk

        return httpcore.Response(reply.status_code, headers=reply.headers.raw, content=content())
