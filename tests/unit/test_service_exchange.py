"""ServiceClient's exchanges with CircleService: a cancelled caller never cancels httpcore mid-request,
and probes leave their connection reusable."""

from __future__ import annotations

import asyncio

import httpcore

from circle_bridge._upstream import ServiceClient

_EMPTY_LIST = b'{"Status": {"Result": true}, "CircleMeta": []}'


class GatedPool:
    """A pool whose every request waits for ``gate``, noting whether httpcore would have seen a cancel."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.cancelled = 0
        self.finished = 0

    async def handle_async_request(self, request: httpcore.Request) -> httpcore.Response:
        self.started.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        self.finished += 1
        return httpcore.Response(200, content=b'{"Status": {"Result": true}, "CircleMeta": []}')


async def _cancelled_midway() -> tuple[GatedPool, ServiceClient, asyncio.Future[object]]:
    """A client whose one call was cancelled while its exchange waits on the gate."""
    pool = GatedPool()
    client = ServiceClient("http://circle.test", "app-key", timeout=5, transport=pool)
    caller: asyncio.Future[object] = asyncio.ensure_future(client.enum_circles("token"))
    await asyncio.wait_for(pool.started.wait(), 5)
    caller.cancel()
    await asyncio.gather(caller, return_exceptions=True)
    return pool, client, caller


def test_a_cancelled_caller_leaves_the_exchange_to_finish_in_the_background() -> None:
    async def scenario() -> None:
        pool, client, caller = await _cancelled_midway()
        assert caller.cancelled()
        assert pool.cancelled == 0  # httpcore never saw the cancel (encode/httpcore#1093)
        assert len(client._abandoned) == 1
        pool.gate.set()
        await asyncio.wait(set(client._abandoned), timeout=5)
        await asyncio.sleep(0)  # its done-callback runs in the next turn
        assert pool.finished == 1
        assert not client._abandoned  # forgotten once done, its reply discarded
        assert (await client.enum_circles("token")).items() == []  # and the client works on
        await client.aclose()

    asyncio.run(scenario())


def test_aclose_cancels_exchanges_nobody_waits_for() -> None:
    async def scenario() -> None:
        pool, client, _ = await _cancelled_midway()
        await client.aclose()
        assert pool.cancelled == 1
        assert not client._abandoned

    asyncio.run(scenario())


def test_probes_reuse_one_connection() -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        page = b"<html>" + b"x" * 5000 + b"</html>"
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(page), page))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def scenario() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        client = ServiceClient(f"http://127.0.0.1:{port}", "app-key", timeout=5)
        for _ in range(20):
            assert (await client.probe()).running
        await client.aclose()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())
    assert connections <= 4  # one per pool at most (they are picked round-robin), not one per probe
