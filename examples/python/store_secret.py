"""Keep an API key behind the user's Circle keys and read it back. Configure with the CIRCLE_* variables.

Usage: python store_secret.py NAME VALUE
"""

import asyncio
import sys

from circle_bridge.client import BridgeClient


async def main(name: str, value: str) -> None:
    async with await BridgeClient.spawn() as bridge:  # runs `circle-bridge serve --stdio`
        await bridge.initialize("store-secret")
        if not await bridge.enum_circles():  # a new user has no circle yet: make one (takes seconds)
            await bridge.request("circle/createCircle", {"circleName": "My app"})
        stored = await bridge.request("circle/putSecret", {"name": name, "value": value})
        print("stored in circle", stored["circleId"])
        secret = await bridge.request("circle/getSecret", {"name": name})  # the newest value wins
        print(name, "=", secret["value"] if secret["found"] else "(not found)")


asyncio.run(main(sys.argv[1], sys.argv[2]))
