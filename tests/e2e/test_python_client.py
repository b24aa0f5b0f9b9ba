"""The Python `BridgeClient`'s typed wrappers, each through a real bridge against the emulator: the
params they put on the wire are the ones the bridge's schemas accept, and what they return is
the part of the result the caller wants."""

from __future__ import annotations

import asyncio
from typing import Any

from circle_bridge.client import BridgeClient
from circle_bridge.emulator import SEED_CIRCLES, Emulator
from circle_bridge.unlock_codes import decrypt_unlock_codes, load_private_key
from tests.bridge_harness import bridge_env, emulator_running, error_of, run, start_bridge
from tests.e2e.test_token_sources import Backend

FAMILY = SEED_CIRCLES[0]["CircleId"]
INSURANCE = SEED_CIRCLES[0]["Topics"][1]["TopicId"]
SCHOOL = SEED_CIRCLES[0]["Topics"][2]["TopicId"]


async def next_notification(client: BridgeClient, method: str) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(client.unsolicited.get(), 30)
        if message.get("method") == method:
            params: dict[str, Any] = message["params"]
            return params


def test_typed_wrappers_cover_the_api(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        try:
            assert (await client.circle_initialize())["authorized"] is True
            created = await client.create_circle("Python wrappers", "typed", work_done_token="py-1")
            assert (await next_notification(client, "$/progress"))["token"] == "py-1"
            assert created["circleId"] in {c["circleId"] for c in await client.enum_circles()}
            assert (await client.who_am_i(FAMILY))["locked"] is False

            added = await client.add_message(FAMILY, INSURANCE, "policy scan", base64Data="aGk=")
            sealed = added["messages"]["base64Data"]
            assert await client.decrypt(FAMILY, INSURANCE, sealed) == "aGk="
            texts = [m["message"] for m in await client.get_messages(FAMILY, INSURANCE, [100])]
            assert "policy scan" in texts

            await client.put_secret("py-wifi", "hunter2", circle_id=FAMILY, topic_id=INSURANCE)
            found = await client.get_secret("py-wifi", circle_id=FAMILY, topic_id=INSURANCE)
            assert (found["found"], found["value"]) == (True, "hunter2")
            assert (await client.get_secret("py-never-stored"))["found"] is False

            locked = await client.lock_user(FAMILY, 2)
            assert len(locked["encryptedUnlockCodes"]) == 2
            key = load_private_key(str(shared_emulator.describe()["privateKey"]).encode())
            await client.unlock_user(FAMILY, decrypt_unlock_codes(key, locked["encryptedUnlockCodes"]))
            assert (await client.who_am_i(FAMILY))["locked"] is False

            invite = (await client.gen_invite(FAMILY, is_add_device=True))["invite"]
            accepted = await client.process_invite(invite["inviteId"], invite["authCode"])
            assert accepted["requestAuthVerificationId"]
            await client.add_file(FAMILY, SCHOOL, "/home/alex/py-wrapper.txt", "from Python")
            names = [f["fileName"] for f in await client.enum_files(FAMILY, SCHOOL)]
            assert "py-wrapper.txt" in names

            wrong = await error_of(client.who_am_i("no-such-circle"))
            assert wrong.code == -33004
        finally:
            await bridge.close()

    run(scenario())


def test_circle_initialize_passes_the_apps_token_under_the_client_source() -> None:
    """CIRCLE_TOKEN_SOURCE=client: a call before any token gets -33020 and `circle/tokenNeeded`
    (reason `missing`); `circle_initialize(token)` then authorizes with the app's token."""
    with emulator_running() as emulator:

        async def scenario() -> None:
            env = bridge_env(emulator, CIRCLE_TOKEN_SOURCE="client")
            env.pop("CIRCLE_SECRET", None)
            bridge = await start_bridge(env)
            client = bridge.client
            try:
                error = await error_of(client.enum_circles())
                assert error.code == -33020
                assert (await next_notification(client, "circle/tokenNeeded"))["reason"] == "missing"
                backend = Backend(emulator)  # the app's backend signs; the bridge holds no Secret
                try:
                    token = await asyncio.to_thread(backend.token)
                finally:
                    backend.close()
                assert (await client.circle_initialize(token))["authorized"] is True
                assert len(await client.enum_circles()) == len(SEED_CIRCLES)
            finally:
                await bridge.close()

        run(scenario())
