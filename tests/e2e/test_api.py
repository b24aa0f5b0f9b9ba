"""The Circle API beyond listing: a real `circle-bridge serve --stdio` against a real emulator over
HTTP (circles, progress and cancellation, messages, secrets, lock and unlock with the backend's
decryption, invites, files, per-method timeouts, configurable paths)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

from circle_bridge.client import BridgeClient
from circle_bridge.emulator import DEMO_CREDENTIALS, SEED_CIRCLES, Emulator
from circle_bridge.unlock_codes import decrypt_unlock_codes, load_private_key
from tests.bridge_harness import bridge_env, emulator_running, error_of, run, start_bridge, wait_until

FAMILY = SEED_CIRCLES[0]["CircleId"]
PASSWORDS = SEED_CIRCLES[0]["Topics"][0]["TopicId"]
INSURANCE = SEED_CIRCLES[0]["Topics"][1]["TopicId"]
SCHOOL = SEED_CIRCLES[0]["Topics"][2]["TopicId"]
MEDICAL = SEED_CIRCLES[1]["CircleId"]


async def progress_of(client: BridgeClient, token: str) -> list[dict[str, Any]]:
    """The `$/progress` values sent for ``token`` up to and including its `end`."""
    values: list[dict[str, Any]] = []
    while not values or values[-1]["kind"] != "end":
        message = await asyncio.wait_for(client.unsolicited.get(), 30)
        if message.get("method") == "$/progress" and message["params"]["token"] == token:
            values.append(message["params"]["value"])
    return values


def test_create_circle_reports_progress_and_the_circle_is_listed() -> None:
    with emulator_running(create_delay=1.2) as emulator:

        async def scenario() -> None:
            bridge = await start_bridge(bridge_env(emulator))
            client = bridge.client
            created = await client.request(
                "circle/createCircle", {"circleName": "Book club 📚", "workDoneToken": "tok-1"}
            )
            progress = await progress_of(client, "tok-1")
            assert progress[0]["kind"] == "begin"
            assert progress[0]["cancellable"] is True
            assert "Book club 📚" in progress[0]["title"]
            assert {p["kind"] for p in progress[1:-1]} <= {"report"}
            assert progress[-1] == {"kind": "end", "message": "done"}
            circles = await client.enum_circles()
            mine = [c for c in circles if c["circleId"] == created["circleId"]]
            assert mine[0]["circleName"] == "Book club 📚"
            assert [t["topicName"] for t in await client.enum_topics(created["circleId"])] == ["General"]
            # without a token: no progress at all
            await client.request("circle/createCircle", {"circleName": "quiet"})
            assert client.unsolicited.empty()
            await client.close()

        run(scenario())
        assert emulator.stats["createCircle"] == 2


def test_create_circle_is_cancellable_and_its_progress_ends() -> None:
    with emulator_running(create_delay=20) as emulator:

        async def scenario() -> None:
            bridge = await start_bridge(bridge_env(emulator))
            client = bridge.client
            await client.circle_initialize()
            pending = asyncio.ensure_future(
                client.request_raw("circle/createCircle", {"circleName": "slow", "workDoneToken": 7}, msg_id="mk")
            )
            await wait_until(lambda: emulator.stats["createCircle"] == 1)
            client.cancel("mk")
            reply = await pending
            assert reply["error"]["code"] == -32800
            progress = await progress_of(client, 7)  # type: ignore[arg-type]
            assert progress[0]["kind"] == "begin"
            assert progress[-1] == {"kind": "end", "message": "cancelled"}
            await client.close()

        run(scenario())


def test_create_circle_is_cancellable_through_its_progress_token() -> None:
    """LSP's cancel button on `cancellable` progress: window/workDoneProgress/cancel {token}."""
    with emulator_running(create_delay=20) as emulator:

        async def scenario() -> None:
            bridge = await start_bridge(bridge_env(emulator))
            client = bridge.client
            await client.circle_initialize()
            client.notify("window/workDoneProgress/cancel", {"token": "nothing-running"})  # ignored
            client.notify("window/workDoneProgress/cancel", {"tokn": 1})  # malformed: ignored too
            pending = asyncio.ensure_future(
                client.request_raw("circle/createCircle", {"circleName": "slow", "workDoneToken": "ui-7"})
            )
            await wait_until(lambda: emulator.stats["createCircle"] == 1)
            client.notify("window/workDoneProgress/cancel", {"token": "ui-7"})
            reply = await pending
            assert reply["error"]["code"] == -32800
            progress = await progress_of(client, "ui-7")
            assert progress[-1] == {"kind": "end", "message": "cancelled"}
            assert (await client.request("circle/whoAmI", {"circleId": FAMILY}))["locked"] is False
            await client.close()

        run(scenario())


def test_bad_create_circle_params_name_the_field(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        error = await error_of(bridge.client.request("circle/createCircle", {"circleName": ""}))
        assert error.code == -32602
        assert error.data["field"] == "circleName"
        error = await error_of(bridge.client.request("circle/createCircle", {"circleName": "x", "workDoneToken": 1.5}))
        assert error.data["field"] == "workDoneToken"
        await bridge.client.close()

    run(scenario())


def test_messages_with_defaults_time_and_type_filters(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        added = await client.request(
            "circle/addMessage", {"circleId": FAMILY, "topicId": SCHOOL, "message": "Parents' evening: 5 pm"}
        )
        stored = added["messages"]
        assert stored["messageType"] == 100
        assert stored["messageSubType"] == 0
        assert stored["additionalJson"] == ""
        await client.request(
            "circle/addMessage",
            {
                "circleId": FAMILY,
                "topicId": SCHOOL,
                "message": "{}",
                "messageType": 7,
                "additionalJson": {"kind": "ünïcode"},
            },
        )
        every = (await client.request("circle/getMessages", {"circleId": FAMILY, "topicId": SCHOOL}))["messages"]
        assert [m["messageType"] for m in every[-2:]] == [100, 7]
        assert json.loads(every[-1]["additionalJson"]) == {"kind": "ünïcode"}
        for message in every:
            moment = datetime.fromisoformat(message["time"].replace("Z", "+00:00"))
            assert moment == datetime.fromtimestamp(message["messageTimeOffset"] / 1000, UTC)
        sevens = await client.request(
            "circle/getMessages", {"circleId": FAMILY, "topicId": SCHOOL, "msgTypeFilters": [7]}
        )
        assert [m["messageType"] for m in sevens["messages"]] == [7] * len(sevens["messages"])
        assert len(sevens["messages"]) >= 1
        await client.close()

    run(scenario())


def test_attachments_come_back_sealed_and_decrypt_opens_them(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        base = {"circleId": FAMILY, "topicId": INSURANCE}
        stored = (await client.request("circle/addMessage", {**base, "message": "scan", "base64Data": "aGk="}))[
            "messages"
        ]
        assert stored["base64Data"] != "aGk="
        opened = await client.request("circle/decrypt", {**base, "toDecrypt": stored["base64Data"]})
        assert opened == {"decryptedData": "aGk="}
        error = await error_of(
            client.request("circle/decrypt", {**base, "topicId": PASSWORDS, "toDecrypt": stored["base64Data"]})
        )
        assert error.code == -33004
        assert error.data["operation"] == "decrypt"
        await client.close()

    run(scenario())


def test_secrets_newest_wins_and_missing_is_not_an_error(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        where = await client.request("circle/putSecret", {"name": "e2e-api-key", "value": "first"})
        assert where == {"circleId": FAMILY, "topicId": PASSWORDS}
        await client.request("circle/putSecret", {"name": "e2e-api-key", "value": "second ✓"})
        await client.request("circle/putSecret", {"name": "e2e-other", "value": "unrelated"})
        got = await client.request("circle/getSecret", {"name": "e2e-api-key"})
        assert got["found"] is True
        assert got["value"] == "second ✓"
        assert got["time"].endswith("Z")
        missing = await client.request("circle/getSecret", {"name": "e2e-never-stored"})
        assert missing == {"found": False, "circleId": FAMILY, "topicId": PASSWORDS}
        # stored exactly as ForgeRock does: type 100, sub-type 20, {"type": name}
        raw = await client.request("circle/getMessages", {"circleId": FAMILY, "topicId": PASSWORDS})
        mine = [m for m in raw["messages"] if m["additionalJson"] == '{"type":"e2e-api-key"}']
        assert [(m["messageType"], m["messageSubType"], m["message"]) for m in mine] == [
            (100, 20, "first"),
            (100, 20, "second ✓"),
        ]
        elsewhere = {"circleId": MEDICAL, "topicId": SEED_CIRCLES[1]["Topics"][1]["TopicId"]}
        await client.request("circle/putSecret", {"name": "e2e-api-key", "value": "medical", **elsewhere})
        assert (await client.request("circle/getSecret", {"name": "e2e-api-key", **elsewhere}))["value"] == "medical"
        assert (await client.request("circle/getSecret", {"name": "e2e-api-key"}))["value"] == "second ✓"
        error = await error_of(client.request("circle/getSecret", {"name": "x", "circleId": "no-such-circle"}))
        assert error.code == -33004
        await client.close()

    run(scenario())


def test_lock_backend_decrypts_codes_unlock(emulator: Emulator) -> None:
    """The done-when walk: whoAmI shows `locked` before and after; the codes are decrypted as a
    backend would, with the emulator's demo private key; neither the key nor a plaintext code
    reaches the bridge's debug log."""
    plaintext: list[str] = []

    async def scenario() -> str:
        bridge = await start_bridge(bridge_env(emulator, CIRCLE_BRIDGE_LOG_LEVEL="DEBUG"))
        client = bridge.client
        # createCircle carries the bearer token in its body (CustomerToken): it must not be logged
        await client.request("circle/createCircle", {"circleName": "logged?", "workDoneToken": 1})
        circle = {"circleId": FAMILY}
        assert (await client.request("circle/whoAmI", circle))["locked"] is False
        locked = await client.request("circle/lockUser", circle)
        assert len(locked["encryptedUnlockCodes"]) == 2
        assert (await client.request("circle/whoAmI", circle))["locked"] is True
        error = await error_of(client.request("circle/getSecret", {"name": "wifi"}))
        assert (error.code, error.data["upstreamMessage"]) == (-33004, "User is locked")

        backend_key = load_private_key(str(emulator.describe()["privateKey"]).encode())
        plaintext.extend(decrypt_unlock_codes(backend_key, locked["encryptedUnlockCodes"]))
        wrong = await error_of(client.request("circle/unlockUser", {**circle, "unlockCodes": plaintext[:1]}))
        assert wrong.data["upstreamMessage"] == "Invalid unlock codes"
        assert (await client.request("circle/whoAmI", circle))["locked"] is True

        assert await client.request("circle/unlockUser", {**circle, "unlockCodes": plaintext}) == {}
        assert (await client.request("circle/whoAmI", circle))["locked"] is False
        assert (await client.request("circle/getSecret", {"name": "wifi"}))["found"] is True
        again = await error_of(client.request("circle/unlockUser", {**circle, "unlockCodes": plaintext}))
        assert again.data["upstreamMessage"] == "User is not locked"
        await client.close()
        return bridge.stderr

    log = run(scenario())
    assert "lockUser" in log  # the log is really at DEBUG
    private_key = str(emulator.describe()["privateKey"])
    assert "createCircle" in log
    for leaked in (*plaintext, private_key[:48], private_key[-48:], DEMO_CREDENTIALS.secret, "Bearer ", "eyJ"):
        assert leaked not in log


def test_invites_fail_after_five_wrong_codes_and_files_keep_revisions(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        bridge = await start_bridge(bridge_env(shared_emulator))
        client = bridge.client
        invite = (await client.request("circle/genInvite", {"circleId": FAMILY}))["invite"]
        wrong = {"inviteId": invite["inviteId"], "authCode": "wrong"}
        messages = [(await error_of(client.request("circle/processInvite", wrong))).data for _ in range(5)]
        assert messages[0]["upstreamMessage"] == "Invalid authorization code (4 attempt(s) left)"
        assert all(m["operation"] == "processInvite" for m in messages)
        right = {"inviteId": invite["inviteId"], "authCode": invite["authCode"]}
        void = await error_of(client.request("circle/processInvite", right))
        assert void.data["upstreamMessage"] == "Invite not found or expired"

        fresh = (await client.request("circle/genInvite", {"circleId": FAMILY, "isAddDevice": True}))["invite"]
        accepted = await client.request(
            "circle/processInvite", {"inviteId": fresh["inviteId"], "authCode": fresh["authCode"]}
        )
        assert accepted["requestAuthVerificationId"]

        base = {"circleId": FAMILY, "topicId": SCHOOL}
        path = "/home/alex/Documents/E2E-Report.pdf"
        assert await client.request("circle/addFile", {**base, "filePath": path}) == {}
        await client.request("circle/addFile", {**base, "filePath": path.lower(), "description": "v2"})
        files = [
            f
            for f in (await client.request("circle/enumFiles", base))["files"]
            if f["fileName"].lower() == "e2e-report.pdf"
        ]
        assert len(files) == 1
        assert files[0]["revision"] == 2
        assert set(files[0]) >= {"fmapID", "fileName", "fileSize"}
        await client.close()

    run(scenario())


def test_process_invite_with_wait20_second_outlasts_the_service_timeout() -> None:
    with emulator_running(invite_wait=1.5) as emulator:

        async def scenario() -> None:
            bridge = await start_bridge(bridge_env(emulator, CIRCLE_SERVICE_TIMEOUT="0.5"))
            client = bridge.client
            invite = (await client.request("circle/genInvite", {"circleId": FAMILY}))["invite"]
            params = {"inviteId": invite["inviteId"], "authCode": invite["authCode"], "wait20Second": True}
            assert (await client.request("circle/processInvite", params))["requestAuthVerificationId"]
            emulator.set_faults(serviceDelay=1.5)  # the same wait on any other call times out
            slow = await error_of(client.request("circle/whoAmI", {"circleId": FAMILY}))
            assert slow.code == -33006
            emulator.set_faults(serviceDelay=0)
            await client.close()

        run(scenario())


def test_experimental_paths_can_be_moved(shared_emulator: Emulator) -> None:
    async def scenario() -> None:
        moved = await start_bridge(bridge_env(shared_emulator, CIRCLE_SERVICE_PATHS="genInvite=/v2/invites/new"))
        error = await error_of(moved.client.request("circle/genInvite", {"circleId": FAMILY}))
        assert (error.code, error.data["httpStatus"], error.data["operation"]) == (-33004, 404, "genInvite")
        await moved.client.close()
        broken = await start_bridge(bridge_env(shared_emulator, CIRCLE_SERVICE_PATHS="enumCircles=/x"))
        error = await error_of(broken.client.request("circle/genInvite", {"circleId": FAMILY}))
        assert (error.code, error.data["invalid"]) == (-33007, ["CIRCLE_SERVICE_PATHS"])
        await broken.client.close()

    run(scenario())


def test_unlock_code_decryption_never_loads_in_the_server() -> None:
    code = (
        "import sys, circle_bridge.cli, circle_bridge._connection, circle_bridge._transports;"
        "print('circle_bridge.unlock_codes' in sys.modules, 'cryptography' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "False"]
