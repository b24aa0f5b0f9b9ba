"""What the emulated CircleService remembers: circles, topics, messages, lock state, invites and
files. Plain, synchronous and clock-injectable, so it is tested without HTTP or waiting.

Each operation takes the PascalCase request body and returns the reply body without ``Status``
(or raises :class:`Failure`, which the service answers as ``Status.Result: false`` with the
message). Where Circle's documentation is silent, the emulator accepts what Circle's own clients
send (docs/circle-api.md §3.3, §7) and is no stricter than that:

* ``createCircle`` needs ``CircleName``; ``CircleDescription``, ``CustomerId`` and
  ``CustomerToken`` may be absent (ForgeRock's client sends name and description only). A new
  circle has one topic, "General".
* ``addMessage`` stores every field it gets, stamps ``MessageId`` and ``MessageTimeOffset``
  (ms since the epoch, strictly increasing) and answers the stored message as ``Messages``.
  A non-empty ``Base64Data`` is stored *sealed* to its topic (the emulator's model of encryption
  at rest); ``decrypt`` with that circle and topic opens it. The sealing is an XOR keystream from
  SHA-256: a stand-in, not cryptography.
* ``getMessages``: oldest first; ``MsgTypeFilters`` empty or absent means every type.
* ``lockUser`` locks the caller out of the circle and answers ``NumberOfCodes`` (default 2) fresh
  codes, RSA-encrypted for the demo public key. ``unlockUser`` accepts exactly that set (order and
  surrounding quotes ignored), once; ``lockUser`` again replaces the codes. While locked,
  addMessage, getMessages, decrypt, genInvite, enumFiles and addFile fail with "User is locked";
  whoAmI, enumCircles and enumTopics still answer.
* ``genInvite`` answers ``Invite: {InviteId, AuthCode, IsAddDevice, ExpiresOn}``. An invite is
  valid until accepted, for ``invite_ttl`` seconds (a week), and dies after five wrong codes.
* ``addFile`` records the path; the same path again (case-insensitively) adds a revision of the
  same ``FmapID``. ``FileSize`` is the size of that path on this machine, 0 if it cannot be read.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ntpath
import os
import posixpath
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from ._unlock_key import encrypt_unlock_code, new_unlock_code

MAX_INVITE_FAILURES = 5
WEEK = 7 * 24 * 3600.0
_SEAL_MARK = b"EMU1"


class Failure(Exception):
    """A logical failure: ``Status.Result`` false, ``Status.Message`` = the text."""


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _keystream(circle_id: str, topic_id: str, size: int) -> bytes:
    blocks = []
    for n in range(0, size, 32):
        blocks.append(hashlib.sha256(f"{circle_id}\0{topic_id}\0{n}".encode()).digest())
    return b"".join(blocks)[:size]


def _xor(data: bytes, circle_id: str, topic_id: str) -> bytes:
    return bytes(a ^ b for a, b in zip(data, _keystream(circle_id, topic_id, len(data)), strict=True))


def seal(circle_id: str, topic_id: str, data: str) -> str:
    return base64.b64encode(_xor(_SEAL_MARK + data.encode("utf-8"), circle_id, topic_id)).decode()


def unseal(circle_id: str, topic_id: str, sealed: str) -> str | None:
    try:
        raw = base64.b64decode(sealed, validate=True)
    except ValueError:
        return None
    opened = _xor(raw, circle_id, topic_id)
    if not opened.startswith(_SEAL_MARK):
        return None
    try:
        return opened[len(_SEAL_MARK) :].decode("utf-8")
    except UnicodeDecodeError:
        return None


def _text(body: Mapping[str, Any], name: str, *, required: bool = True, default: str = "") -> str:
    value = body.get(name)
    if value is None and not required:
        return default
    if not isinstance(value, str) or (required and not value):
        raise Failure(f"{name} is required")
    return value


def _int(body: Mapping[str, Any], name: str, default: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Failure(f"{name} must be an integer")
    return value


def _flag(body: Mapping[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Failure(f"{name} must be true or false")
    return value


def _strip_code(code: str) -> str:
    return code.strip().strip('"').strip()


@dataclass
class _Topic:
    meta: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Circle:
    meta: dict[str, Any]
    topics: dict[str, _Topic]
    member: dict[str, Any]
    unlock_codes: frozenset[str] | None = None  # set while locked

    @property
    def locked(self) -> bool:
        return self.unlock_codes is not None


@dataclass
class _Invite:
    circle_id: str
    auth_code: str
    is_add_device: bool
    expires_at: float
    failures: int = 0


class ServiceState:
    """Every circle the emulated user belongs to, and what is stored in them."""

    def __init__(
        self,
        seed_circles: Iterable[Mapping[str, Any]],
        unlock_key: rsa.RSAPublicKey,
        *,
        clock: Callable[[], float] = time.time,
        invite_ttl: float = WEEK,
    ) -> None:
        self._clock = clock
        self._unlock_key = unlock_key
        self._invite_ttl = invite_ttl
        self._circles: dict[str, _Circle] = {}
        self._invites: dict[str, _Invite] = {}
        self._last_offset = 0
        self.version = 0
        """Bumped by every change a cached reply could depend on."""
        for seed in seed_circles:
            self._add_seed(copy.deepcopy(dict(seed)))

    def _add_seed(self, seed: dict[str, Any]) -> None:
        circle_id = seed["CircleId"]
        topics: dict[str, _Topic] = {}
        for topic_seed in seed.pop("Topics", []):
            messages = topic_seed.pop("Messages", [])
            files = topic_seed.pop("Files", [])
            topic = _Topic(topic_seed, files=files)
            for message in messages:
                if message.get("Base64Data"):
                    message["Base64Data"] = seal(circle_id, topic_seed["TopicId"], message["Base64Data"])
                topic.messages.append(message)
            topics[topic_seed["TopicId"]] = topic
        member = seed.pop("Member", {})
        self._circles[circle_id] = _Circle(seed, topics, member)

    # -- lookups ---------------------------------------------------------------------------

    def _circle(self, body: Mapping[str, Any]) -> _Circle:
        circle = self._circles.get(_text(body, "CircleId"))
        if circle is None:
            raise Failure("Circle not found")
        return circle

    def _open_topic(self, body: Mapping[str, Any]) -> tuple[_Circle, _Topic]:
        circle = self._circle(body)
        topic_id = _text(body, "TopicId")
        if circle.locked:
            raise Failure("User is locked")
        topic = circle.topics.get(topic_id)
        if topic is None:
            raise Failure("Topic not found")
        return circle, topic

    def _next_offset(self) -> int:
        self._last_offset = max(self._last_offset + 1, int(self._clock() * 1000))
        return self._last_offset

    # -- circles and topics ----------------------------------------------------------------

    def enum_circles(self) -> dict[str, Any]:
        return {"CircleMeta": [dict(c.meta) for c in self._circles.values()]}

    def enum_topics(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"Topics": [dict(t.meta) for t in self._circle(body).topics.values()]}

    def who_am_i(self, body: Mapping[str, Any]) -> dict[str, Any]:
        circle = self._circle(body)
        return {**circle.member, "Locked": circle.locked}

    def create_circle(self, body: Mapping[str, Any]) -> dict[str, Any]:
        name = _text(body, "CircleName")
        description = _text(body, "CircleDescription", required=False)
        now = self._clock()
        circle_id = str(uuid.uuid4())
        topic_id = str(uuid.uuid4())
        meta = {
            "CircleId": circle_id,
            "CircleName": name,
            "CircleDescription": description,
            "MemberCount": 1,
            "IsOwner": True,
            "CreatedOn": _iso(now),
        }
        topic = {
            "TopicId": topic_id,
            "TopicName": "General",
            "TopicDescription": "",
            "MessageCount": 0,
            "LastModified": _iso(now),
        }
        member = {"MemberId": f"m-{circle_id[:4]}-0001", "DisplayName": "Me"}
        self._circles[circle_id] = _Circle(meta, {topic_id: _Topic(topic)}, member)
        self.version += 1
        return {"CircleId": circle_id}

    # -- messages --------------------------------------------------------------------------

    def add_message(self, body: Mapping[str, Any]) -> dict[str, Any]:
        circle, topic = self._open_topic(body)
        data = _text(body, "Base64Data", required=False)
        offset = self._next_offset()
        message: dict[str, Any] = {
            "MessageId": str(uuid.uuid4()),
            "MessageType": _int(body, "MessageType", 0),
            "MessageSubType": _int(body, "MessageSubType", 0),
            "Message": _text(body, "Message", required=False),
            "Context": _text(body, "Context", required=False),
            "ObjectPath": _text(body, "ObjectPath", required=False),
            "Base64Data": seal(circle.meta["CircleId"], topic.meta["TopicId"], data) if data else "",
            "AdditionalJson": _text(body, "AdditionalJson", required=False),
            "MessageTimeOffset": offset,
        }
        topic.messages.append(message)
        topic.meta["MessageCount"] = topic.meta.get("MessageCount", 0) + 1
        topic.meta["LastModified"] = _iso(offset / 1000)
        self.version += 1
        return {"Messages": dict(message)}

    def get_messages(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _, topic = self._open_topic(body)
        filters = body.get("MsgTypeFilters")
        if filters is None:
            filters = []
        if not isinstance(filters, list) or not all(isinstance(f, int) and not isinstance(f, bool) for f in filters):
            raise Failure("MsgTypeFilters must be a list of integers")
        wanted = set(filters)
        return {"Messages": [dict(m) for m in topic.messages if not wanted or m.get("MessageType") in wanted]}

    def decrypt(self, body: Mapping[str, Any]) -> str:
        """The decrypted data; the service puts it in ``Status.DecryptedData`` (where Circle's only
        client reads it)."""
        circle, topic = self._open_topic(body)
        opened = unseal(circle.meta["CircleId"], topic.meta["TopicId"], _text(body, "ToDecrypt"))
        if opened is None:
            raise Failure("Cannot decrypt this data with this topic's keys")
        return opened

    # -- lock ------------------------------------------------------------------------------

    def lock_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        circle = self._circle(body)
        count = _int(body, "NumberOfCodes", 2)
        if not 1 <= count <= 16:
            raise Failure("NumberOfCodes must be between 1 and 16")
        codes = [new_unlock_code() for _ in range(count)]
        circle.unlock_codes = frozenset(codes)
        return {"EncryptedUnlockCodes": [encrypt_unlock_code(self._unlock_key, c) for c in codes]}

    def unlock_user(self, body: Mapping[str, Any]) -> dict[str, Any]:
        circle = self._circle(body)
        given = body.get("UnlockCodes")
        if not isinstance(given, list) or not given or not all(isinstance(c, str) for c in given):
            raise Failure("UnlockCodes is required")
        if circle.unlock_codes is None:
            raise Failure("User is not locked")
        if {_strip_code(c) for c in given} != circle.unlock_codes or len(given) != len(circle.unlock_codes):
            raise Failure("Invalid unlock codes")
        circle.unlock_codes = None
        return {}

    # -- invites ---------------------------------------------------------------------------

    def gen_invite(self, body: Mapping[str, Any]) -> dict[str, Any]:
        circle = self._circle(body)
        if circle.locked:
            raise Failure("User is locked")
        is_add_device = _flag(body, "IsAddDevice")
        invite_id = "inv-" + secrets.token_hex(6)
        auth_code = f"{secrets.randbelow(10**6):06d}"
        expires_at = self._clock() + self._invite_ttl
        self._invites[invite_id] = _Invite(circle.meta["CircleId"], auth_code, is_add_device, expires_at)
        return {
            "Invite": {
                "InviteId": invite_id,
                "AuthCode": auth_code,
                "IsAddDevice": is_add_device,
                "ExpiresOn": _iso(expires_at),
            }
        }

    def process_invite(self, body: Mapping[str, Any]) -> dict[str, Any]:
        invite_id = _text(body, "InviteId")
        auth_code = _text(body, "AuthCode")
        _flag(body, "Wait20Second")
        invite = self._invites.get(invite_id)
        if invite is None or self._clock() >= invite.expires_at:
            self._invites.pop(invite_id, None)
            raise Failure("Invite not found or expired")
        if not secrets.compare_digest(auth_code.encode(), invite.auth_code.encode()):
            invite.failures += 1
            left = MAX_INVITE_FAILURES - invite.failures
            if left <= 0:
                del self._invites[invite_id]
                raise Failure("Invalid authorization code; the invite failed five times and is void")
            raise Failure(f"Invalid authorization code ({left} attempt(s) left)")
        del self._invites[invite_id]
        circle = self._circles.get(invite.circle_id)
        if circle is not None and not invite.is_add_device:
            circle.meta["MemberCount"] = circle.meta.get("MemberCount", 0) + 1
            self.version += 1
        return {"RequestAuthVerificationId": str(uuid.uuid4())}

    # -- files -----------------------------------------------------------------------------

    def enum_files(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _, topic = self._open_topic(body)
        return {"Files": [dict(f) for f in topic.files]}

    def add_file(self, body: Mapping[str, Any]) -> dict[str, Any]:
        _, topic = self._open_topic(body)
        path = _text(body, "FilePath")
        description = _text(body, "Description", required=False)
        name = (ntpath if "\\" in path else posixpath).basename(path)
        try:
            size = os.stat(path).st_size
        except (OSError, ValueError):
            size = 0
        now = _iso(self._clock())
        for entry in topic.files:
            if str(entry.get("FilePath", "")).casefold() == path.casefold():
                entry.update(
                    FilePath=path,
                    FileName=name,
                    FileSize=size,
                    Description=description,
                    Revision=int(entry.get("Revision", 1)) + 1,
                    Deleted=False,
                    Modified=now,
                )
                return {}
        topic.files.append(
            {
                "FmapID": "fmap-" + secrets.token_hex(6),
                "FileName": name,
                "FileSize": size,
                "FilePath": path,
                "Description": description,
                "Revision": 1,
                "Deleted": False,
                "Modified": now,
            }
        )
        return {}
