"""Baseline: what an app does without the bridge. Gets a token, authorizes, then makes N direct
httpx calls to CircleService and reports its own CPU and wall time for those calls only.

    python -m bench.direct_httpx <emulator-describe-json> N CONCURRENCY OPERATION

OPERATION is enumCircles (POST /v1/enumCircles) or isServiceRunning (GET /).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from urllib.parse import quote

import httpx

from bench._stats import summarize
from circle_bridge._upstream import parse_token_body, sign, string_to_sign


async def main(desc: dict[str, str], n: int, concurrency: int, operation: str) -> dict[str, float]:
    nonce = str(int(time.time() * 1000))  # ms: runs in the same second must not reuse a nonce
    sig = sign(desc["secret"], string_to_sign(desc["customerId"], desc["appKey"], desc["endUserId"], nonce))
    query = (
        f"customerId={quote(desc['customerId'], safe='')}&appKey={quote(desc['appKey'], safe='')}"
        f"&endUserId={quote(desc['endUserId'], safe='')}&nonce={nonce}&signature={quote(sig, safe='')}"
    )
    async with httpx.AsyncClient(trust_env=False, timeout=10) as cloud:
        token = parse_token_body((await cloud.get(f"{desc['tokenUrl']}?{query}")).content)
    headers = {"x-circle-appkey": desc["appKey"], "Content-Type": "application/json; charset=utf-8"}
    async with httpx.AsyncClient(base_url=desc["serviceUrl"], trust_env=False, timeout=10) as service:
        (await service.post("/v1/authorize", json={"Token": token}, headers=headers)).raise_for_status()
        bearer = {**headers, "Authorization": f"Bearer {token}"}
        latencies: list[float] = []

        async def worker(count: int) -> None:
            for _ in range(count):
                t0 = time.perf_counter()
                if operation == "enumCircles":
                    reply = await service.post("/v1/enumCircles", content=b"{}", headers=bearer)
                    json.loads(reply.content)["CircleMeta"]
                else:
                    await service.get("/")
                latencies.append(time.perf_counter() - t0)

        for _ in range(50):  # warm-up
            await service.post("/v1/enumCircles", content=b"{}", headers=bearer)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(worker(n // concurrency) for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return summarize(latencies, cpu, wall)


if __name__ == "__main__":
    result = asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]))
    sys.stdout.write(json.dumps(result) + "\n")
