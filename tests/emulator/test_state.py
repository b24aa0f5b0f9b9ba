"""The emulated CircleService's state, in memory, with a clock the test moves."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from circle_bridge.emulator import SEED_CIRCLES
from circle_bridge.emulator._config import EmulatorConfig
from circle_bridge.emulator._seed import seed_circles
from circle_bridge.emulator._state import MAX_INVITE_FAILURES, WEEK, Failure, ServiceState, seal, unseal

FAMILY = SEED_CIRCLES[0]["CircleId"]
PASSWORDS = SEED_CIRCLES[0]["Topics"][0]["TopicId"]
INSURANCE = SEED_CIRCLES[0]["Topics"][1]["TopicId"]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(key: rsa.RSAPrivateKey, clock: Clock) -> ServiceState:
    return ServiceState(SEED_CIRCLES, key.public_key(), clock=clock)


def failure(run: Any, body: dict[str, Any]) -> str:
    with pytest.raises(Failure) as caught:
        run(body)
    return str(caught.value)


def test_seed_is_copied_not_shared(state: ServiceState) -> None:
    state.add_message({"CircleId": FAMILY, "TopicId": PASSWORDS, "Message": "new"})
    assert "Messages" in SEED_CIRCLES[0]["Topics"][0]
    assert len(SEED_CIRCLES[0]["Topics"][0]["Messages"]) == 2
    assert all("Messages" not in t for t in state.enum_topics({"CircleId": FAMILY})["Topics"])


def test_create_circle_accepts_what_forgerock_sends_and_adds_one_topic(state: ServiceState) -> None:
    before = state.version
    created = state.create_circle({"CircleName": "forgerock", "CircleDescription": ""})
    assert state.version > before
    circles = state.enum_circles()["CircleMeta"]
    assert circles[-1]["CircleId"] == created["CircleId"]
    assert circles[-1]["CircleName"] == "forgerock"
    topics = state.enum_topics({"CircleId": created["CircleId"]})["Topics"]
    assert [t["TopicName"] for t in topics] == ["General"]
    assert state.who_am_i({"CircleId": created["CircleId"]})["Locked"] is False
    assert failure(state.create_circle, {"CircleDescription": "no name"}) == "CircleName is required"


def test_messages_keep_order_filter_by_type_and_get_increasing_offsets(state: ServiceState, clock: Clock) -> None:
    base = {"CircleId": FAMILY, "TopicId": INSURANCE}
    first = state.add_message({**base, "MessageType": 100, "Message": "a"})["Messages"]
    second = state.add_message({**base, "MessageType": 7, "Message": "b"})["Messages"]  # same clock tick
    assert second["MessageTimeOffset"] == first["MessageTimeOffset"] + 1
    assert first["MessageTimeOffset"] == int(clock.now * 1000)
    everything = state.get_messages(base)["Messages"]
    assert [m["Message"] for m in everything] == ["a", "b"]
    assert [m["Message"] for m in state.get_messages({**base, "MsgTypeFilters": [7]})["Messages"]] == ["b"]
    assert [m["Message"] for m in state.get_messages({**base, "MsgTypeFilters": []})["Messages"]] == ["a", "b"]
    assert failure(state.get_messages, {**base, "MsgTypeFilters": ["100"]}).startswith("MsgTypeFilters")
    assert failure(state.add_message, {**base, "TopicId": "nope"}) == "Topic not found"


def test_attachments_are_sealed_to_their_topic(state: ServiceState) -> None:
    base = {"CircleId": FAMILY, "TopicId": INSURANCE}
    stored = state.add_message({**base, "Message": "scan", "Base64Data": "aGVsbG8="})["Messages"]
    assert stored["Base64Data"] != "aGVsbG8="
    assert state.decrypt({**base, "ToDecrypt": stored["Base64Data"]}) == "aGVsbG8="
    other = {"CircleId": FAMILY, "TopicId": PASSWORDS, "ToDecrypt": stored["Base64Data"]}
    assert failure(state.decrypt, other) == "Cannot decrypt this data with this topic's keys"
    assert (
        failure(state.decrypt, {**base, "ToDecrypt": "not base64!"})
        == "Cannot decrypt this data with this topic's keys"
    )
    assert unseal("c", "t", seal("c", "t", "Zürich ✓")) == "Zürich ✓"


def test_lock_returns_codes_for_the_public_key_and_unlock_accepts_them_once(
    state: ServiceState, key: rsa.RSAPrivateKey
) -> None:
    body = {"CircleId": FAMILY}
    encrypted = state.lock_user({**body, "NumberOfCodes": 3})["EncryptedUnlockCodes"]
    assert len(encrypted) == 3
    assert state.who_am_i(body)["Locked"] is True
    plain = [key.decrypt(base64.b64decode(c), padding.PKCS1v15()).decode() for c in encrypted]
    assert all(p.startswith('"') and p.endswith('"') for p in plain)  # as ForgeRock expects to strip
    codes = [p.strip('"') for p in plain]
    assert failure(state.get_messages, {**body, "TopicId": PASSWORDS}) == "User is locked"
    assert failure(state.unlock_user, {**body, "UnlockCodes": codes[:2]}) == "Invalid unlock codes"
    assert failure(state.unlock_user, {**body, "UnlockCodes": [*codes[:2], "XXXX-XXXX"]}) == "Invalid unlock codes"
    assert state.unlock_user({**body, "UnlockCodes": list(reversed(plain))}) == {}  # quotes and order ignored
    assert state.who_am_i(body)["Locked"] is False
    assert failure(state.unlock_user, {**body, "UnlockCodes": codes}) == "User is not locked"


def test_lock_again_replaces_the_codes(state: ServiceState, key: rsa.RSAPrivateKey) -> None:
    body = {"CircleId": FAMILY}
    old = state.lock_user(body)["EncryptedUnlockCodes"]
    new = state.lock_user(body)["EncryptedUnlockCodes"]
    assert len(old) == len(new) == 2

    def decrypted(codes: list[str]) -> list[str]:
        return [key.decrypt(base64.b64decode(c), padding.PKCS1v15()).decode() for c in codes]

    assert failure(state.unlock_user, {**body, "UnlockCodes": decrypted(old)}) == "Invalid unlock codes"
    assert state.unlock_user({**body, "UnlockCodes": decrypted(new)}) == {}
    assert failure(state.lock_user, {**body, "NumberOfCodes": 0}).startswith("NumberOfCodes")


def test_invite_expires_after_a_week(state: ServiceState, clock: Clock) -> None:
    invite = state.gen_invite({"CircleId": FAMILY, "IsAddDevice": True})["Invite"]
    clock.now += WEEK
    body = {"InviteId": invite["InviteId"], "AuthCode": invite["AuthCode"]}
    assert failure(state.process_invite, body) == "Invite not found or expired"


def test_invite_is_accepted_once_and_counts_a_new_member(state: ServiceState, clock: Clock) -> None:
    invite = state.gen_invite({"CircleId": FAMILY})["Invite"]
    assert invite["IsAddDevice"] is False
    clock.now += WEEK - 1
    members = state.enum_circles()["CircleMeta"][0]["MemberCount"]
    body = {"InviteId": invite["InviteId"], "AuthCode": invite["AuthCode"], "Wait20Second": False}
    assert state.process_invite(body)["RequestAuthVerificationId"]
    assert state.enum_circles()["CircleMeta"][0]["MemberCount"] == members + 1
    assert failure(state.process_invite, body) == "Invite not found or expired"


def test_invite_fails_for_good_after_five_wrong_codes(state: ServiceState) -> None:
    invite = state.gen_invite({"CircleId": FAMILY})["Invite"]
    wrong = str((int(invite["AuthCode"]) + 1) % 10**6).zfill(6)
    messages = [
        failure(state.process_invite, {"InviteId": invite["InviteId"], "AuthCode": wrong})
        for _ in range(MAX_INVITE_FAILURES)
    ]
    assert messages[0] == "Invalid authorization code (4 attempt(s) left)"
    assert messages[-1].endswith("failed five times and is void")
    right = {"InviteId": invite["InviteId"], "AuthCode": invite["AuthCode"]}
    assert failure(state.process_invite, right) == "Invite not found or expired"


def test_files_get_revisions_by_path_case_insensitively(state: ServiceState, tmp_path: Path) -> None:
    document = tmp_path / "Report.PDF"
    base = {"CircleId": FAMILY, "TopicId": PASSWORDS}
    assert state.add_file({**base, "FilePath": str(document), "Description": "v1"}) == {}
    state.add_file({**base, "FilePath": str(document).upper(), "Description": "v2"})
    files = state.enum_files(base)["Files"]
    assert len(files) == 1
    assert files[0]["Revision"] == 2
    assert files[0]["Description"] == "v2"
    state.add_file({**base, "FilePath": "C:\\Users\\me\\notes.txt"})
    files = state.enum_files(base)["Files"]
    assert files[1]["FileName"] == "notes.txt"
    assert files[1]["FileSize"] == 0  # not a file on this machine
    assert files[0]["FmapID"] != files[1]["FmapID"]


def test_file_size_is_read_from_the_path(state: ServiceState, tmp_path: Path) -> None:
    document = tmp_path / "scan.png"
    document.write_bytes(b"x" * 1234)
    base = {"CircleId": FAMILY, "TopicId": PASSWORDS}
    state.add_file({**base, "FilePath": str(document)})
    assert state.enum_files(base)["Files"][0]["FileSize"] == 1234
    assert state.enum_files(base)["Files"][0]["FileName"] == "scan.png"


def test_cli_delays_reach_the_config(capsys: pytest.CaptureFixture[str]) -> None:
    from circle_bridge.emulator import main_cli

    assert main_cli(["--create-delay", "-1"]) == 1
    assert "create_delay must be in [0, 3600)" in capsys.readouterr().err
    assert main_cli(["--invite-wait", "3600"]) == 1
    assert "invite_wait must be in [0, 3600)" in capsys.readouterr().err


def test_circles_n_serves_the_seeds_then_generated_circles_each_with_a_topic(key: rsa.RSAPrivateKey) -> None:
    many = ServiceState(seed_circles(1000), key.public_key()).enum_circles()["CircleMeta"]
    ids = [c["CircleId"] for c in many]
    assert len(ids) == len(set(ids)) == 1000
    assert ids[:3] == [c["CircleId"] for c in SEED_CIRCLES]
    state = ServiceState(seed_circles(1000), key.public_key())
    assert state.enum_topics({"CircleId": ids[-1]})["Topics"][0]["TopicName"] == "General"
    assert [c["CircleId"] for c in seed_circles(2)] == ids[:2]
    assert len(SEED_CIRCLES) == 3  # generating never changes the seed
    with pytest.raises(ValueError, match="circles"):
        EmulatorConfig(circles=-1)
