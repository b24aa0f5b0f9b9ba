"""One "app" for `python -m bench.daemon`: reads circles N times, either directly from CircleService
with httpx (getting its own token, as an app without the bridge does) or through the daemon's
Unix socket. It prints "ready", waits for a line on stdin (so that all apps start together), runs,
and prints one JSON line: its start and end (epoch seconds) and its error count.

    python -m bench.daemon_app direct <emulator-describe-json> N
    python -m bench.daemon_app daemon <socket-path> N
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote


async def _direct(desc: dict[str, str]) -> Callable[[], Awaitable[None]]:
    import httpx

    from circle_bridge._upstream import parse_token_body, sign, string_to_sign

    # ms nonces; 16 apps start in the same millisecond and a reused nonce is refused, so each app
    # starts at its own offset and moves on when refused (as the bridge does, see _upstream)
    base = int(time.time() * 1000) + os.getpid() % 1000
    async with httpx.AsyncClient(trust_env=False, timeout=10) as cloud:
        for attempt in range(20):
            nonce = str(base + (random.randrange(1, 30_000) if attempt else 0))
            ids = (desc["customerId"], desc["appKey"], desc["endUserId"])
            sig = sign(desc["secret"], string_to_sign(*ids, nonce))
            query = (
                f"customerId={quote(ids[0], safe='')}&appKey={quote(ids[1], safe='')}"
                f"&endUserId={quote(ids[2], safe='')}&nonce={nonce}&signature={quote(sig, safe='')}"
            )
            reply = await cloud.get(f"{desc['tokenUrl']}?{query}")
            if reply.status_code == 200:
                token = parse_token_body(reply.content)
                break
        else:
            raise SystemExit(f"no token: {reply.status_code}")
    headers = {"x-circle-appkey": desc["appKey"], "Content-Type": "application/json; charset=utf-8"}
    service = httpx.AsyncClient(base_url=desc["serviceUrl"], trust_env=False, timeout=30)
    (await service.post("/v1/authorize", json={"Token": token}, headers=headers)).raise_for_status()
    bearer = {**headers, "Authorization": f"Bearer {token}"}

    async def read() -> None:
        reply = await service.post("/v1/enumCircles", content=b"{}", headers=bearer)
        json.loads(reply.content)["CircleMeta"]

    return read


async def _daemon(socket_path: str) -> Callable[[], Awaitable[None]]:
    from circle_bridge.client import BridgeClient

    client = await BridgeClient.connect_socket(socket_path)
    await client.initialize("bench-app")

    async def read() -> None:
        await client.request("circle/enumCircles", {})

    return read


async def main(mode: str, target: str, n: int) -> dict[str, float]:
    read = await (_direct(json.loads(target)) if mode == "direct" else _daemon(target))
    await read()  # warm: token, authorization, connections
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    errors = 0
    start = time.time()
    for _ in range(n):
        try:
            await read()
        except Exception:
            errors += 1
    return {"start": start, "end": time.time(), "errors": errors}


if __name__ == "__main__":
    result = asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
