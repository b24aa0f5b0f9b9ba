"""A slow client, a dying parent, and stray writes to stdout."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

from circle_bridge._framing import FrameParser, encode_frame
from circle_bridge.emulator import Emulator
from tests.bridge_harness import BRIDGE, bridge_env, run, start_bridge


def test_slow_client_loses_nothing(shared_emulator: Emulator) -> None:
    """A client that sends many large-reply requests without reading: the bridge stops reading
    (backpressure) instead of buffering without bound, and every reply arrives once read."""
    count = 5000  # 300 KiB of requests, ~13 KiB per reply: far beyond any pipe or transport buffer

    async def scenario() -> None:
        process = await asyncio.create_subprocess_exec(
            *BRIDGE,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env={**bridge_env(shared_emulator)},
        )
        assert process.stdin is not None
        assert process.stdout is not None
        init = b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{}}'
        requests = [encode_frame(init)] + [
            encode_frame(b'{"jsonrpc":"2.0","id":%d,"method":"rpc.discover"}' % i) for i in range(1, count + 1)
        ]

        async def writer() -> None:
            assert process.stdin is not None
            for frame in requests:
                process.stdin.write(frame)
                await process.stdin.drain()

        writing = asyncio.ensure_future(writer())
        await asyncio.sleep(1.0)  # the client is "slow": it reads nothing for a second
        assert not writing.done()  # backpressure reached the writer: the bridge stopped reading
        parser = FrameParser(1 << 26)
        ids: list[int] = []
        while len(ids) < count + 1:
            chunk = await asyncio.wait_for(process.stdout.read(1 << 16), 30)
            assert chunk, "bridge closed the stream early"
            for frame in parser.feed(chunk):
                assert isinstance(frame, bytes)
                ids.append(int(frame.split(b'"id":', 1)[1].split(b",", 1)[0].split(b"}", 1)[0]))
        await writing
        assert sorted(ids) == list(range(count + 1))
        process.stdin.close()
        assert await asyncio.wait_for(process.wait(), 20) == 0

    run(scenario(), timeout=120)


def test_bridge_exits_when_its_parent_dies(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        parent = await asyncio.create_subprocess_exec("sleep", "60")
        bridge = await start_bridge(bridge_env(shared_emulator), initialize=False)
        await bridge.client.request("initialize", {"processId": parent.pid})
        parent.kill()
        await parent.wait()
        assert bridge.client.process is not None
        assert await asyncio.wait_for(bridge.client.process.wait(), 10) == 1

    run(scenario())


def test_stray_output_cannot_corrupt_the_protocol_stream() -> None:
    script = textwrap.dedent(
        """
        import os, subprocess, sys
        from circle_bridge._transports import protect_stdout
        fd = protect_stdout()
        print("stray print")
        subprocess.run(["echo", "child output"], check=True)
        os.write(1, b"raw fd 1 write")
        os.write(fd, b"Content-Length: 2\\r\\n\\r\\n{}")
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"Content-Length: 2\r\n\r\n{}"
    for stray in (b"stray print", b"child output", b"raw fd 1 write"):
        assert stray in result.stderr


def test_sigterm_answers_what_is_in_flight_then_exits_0(emulator: Emulator) -> None:
    import signal

    from circle_bridge.emulator import SEED_CIRCLES
    from tests.bridge_harness import wait_until

    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(emulator))
        client = bridge.client
        assert client.process is not None
        emulator.set_faults(serviceDelay=1.0)
        before = emulator.stats["enumTopics"]
        slow = asyncio.ensure_future(
            client.request_raw("circle/enumTopics", {"circleId": SEED_CIRCLES[0]["CircleId"]}, msg_id="slow")
        )
        await wait_until(lambda: emulator.stats["enumTopics"] == before + 1)
        client.process.send_signal(signal.SIGTERM)
        reply = await slow
        assert reply["result"]["topics"], reply
        assert await asyncio.wait_for(client.process.wait(), 20) == 0
        assert "Traceback" not in bridge.stderr

    run(scenario())


def test_a_process_id_that_could_never_be_watched_is_refused(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator), initialize=False)
        reply = await bridge.client.request_raw("initialize", {"processId": 2**40})
        assert reply["error"]["code"] == -32602
        assert reply["error"]["data"]["field"] == "processId"
        await bridge.client.close()

    run(scenario())
