"""List every circle and its topics through circle-bridge. Configure with the CIRCLE_* variables."""

import asyncio

from circle_bridge.client import BridgeClient, BridgeRPCError


async def main() -> None:
    async with await BridgeClient.spawn() as bridge:  # runs `circle-bridge serve --stdio`
        await bridge.initialize("list-circles")
        if not await bridge.is_service_running():
            raise SystemExit("CircleService is not running: install and start it first")
        for circle in await bridge.enum_circles():
            topics = await bridge.enum_topics(circle["circleId"])
            print(circle.get("circleName"), "->", ", ".join(t.get("topicName", t["topicId"]) for t in topics))
        try:
            await bridge.enum_topics("no-such-circle")
        except BridgeRPCError as err:
            print("error", err.code, err.data["upstreamMessage"])  # -33004 Circle not found


asyncio.run(main())
