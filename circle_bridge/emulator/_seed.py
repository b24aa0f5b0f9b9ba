"""The circles and topics every emulator serves.

``SEED_CIRCLES`` is a list of circle dicts. Each holds the fields of one ``CircleMeta`` item of
``/v1/enumCircles`` plus two nested keys that are *not* part of that item:

* ``"Topics"``: the ``Topics`` items ``/v1/enumTopics`` returns for the circle;
* ``"Member"``: the caller's own membership, the fields ``/v1/whoAmI`` returns besides ``Status``
  (``Locked`` comes from the lock state).

A topic may hold ``"Messages"`` (``MessageInfo`` items, ``Base64Data`` in the clear: the state
seals it) and ``"Files"`` (``FileInfo`` items); neither is part of the ``Topics`` item.

Only ``CircleId`` and ``TopicId`` are confirmed field names (docs/circle-api.md §3.9); the others are
believable guesses in the same PascalCase style. Names mix ASCII, accented Latin, CJK and emoji
so clients prove they keep text intact. The replies are encoded once, at import: changing this
list afterwards changes nothing the emulator serves.
"""

from __future__ import annotations

from typing import Any, Final

FAMILY_VAULT_ID: Final = "7b1c4e0a-3f5d-4c2e-9a61-0d8f2b6c1e01"
MEDICAL_TEAM_ID: Final = "c3a9f2d4-8e17-4b5a-b2c6-5f0e9d7a3b02"
RESEARCH_TEAM_ID: Final = "e5d1b8c7-2a4f-4e9b-8c3d-6a2f1e0b9c03"

SEED_CIRCLES: Final[list[dict[str, Any]]] = [
    {
        "CircleId": FAMILY_VAULT_ID,
        "CircleName": "Family Vault",
        "CircleDescription": "Shared passwords, insurance papers and the Wi-Fi key.",
        "MemberCount": 4,
        "IsOwner": True,
        "CreatedOn": "2024-03-18T09:12:44Z",
        "Topics": [
            {
                "TopicId": "1f0e2d3c-4b5a-4978-8d6e-5f4a3b2c1d11",
                "TopicName": "Passwords",
                "TopicDescription": "Streaming, bank and school portal logins.",
                "MessageCount": 27,
                "LastModified": "2025-05-02T18:30:12Z",
                "Messages": [
                    {
                        "MessageId": "msg-7b1c-0001",
                        "MessageType": 100,
                        "MessageSubType": 0,
                        "Message": "The router's admin password is on the fridge.",
                        "Context": "",
                        "ObjectPath": "",
                        "Base64Data": "",
                        "AdditionalJson": "",
                        "MessageTimeOffset": 1714641012000,
                    },
                    {
                        "MessageId": "msg-7b1c-0002",
                        "MessageType": 100,
                        "MessageSubType": 20,
                        "Message": "correct horse battery staple",
                        "Context": "",
                        "ObjectPath": "",
                        "Base64Data": "",
                        "AdditionalJson": '{"type":"wifi"}',
                        "MessageTimeOffset": 1714641072000,
                    },
                ],
            },
            {
                "TopicId": "2a1b3c4d-5e6f-4a7b-9c8d-0e1f2a3b4c12",
                "TopicName": "Insurance & Bills",
                "TopicDescription": "Policy numbers and due dates.",
                "MessageCount": 9,
                "LastModified": "2025-04-11T07:45:00Z",
                "Files": [
                    {
                        "FmapID": "fmap-7b1c-0001",
                        "FileName": "home-policy-2025.pdf",
                        "FileSize": 482113,
                        "FilePath": "C:\\Users\\alex\\Documents\\home-policy-2025.pdf",
                        "Description": "Home insurance policy",
                        "Revision": 1,
                        "Deleted": False,
                        "Modified": "2025-04-11T07:45:00Z",
                    }
                ],
            },
            {
                "TopicId": "3b2c4d5e-6f7a-4b8c-8d9e-1f2a3b4c5d13",
                "TopicName": "Kids' School",
                "TopicDescription": "Report cards, permission slips, lunch accounts.",
                "MessageCount": 14,
                "LastModified": "2025-03-29T15:02:51Z",
            },
        ],
        "Member": {"MemberId": "m-7b1c-0001", "DisplayName": "Alex Morgan"},
    },
    {
        "CircleId": MEDICAL_TEAM_ID,
        "CircleName": "Équipe Médicale – Zürich",  # noqa: RUF001 (the en dash is on purpose)
        "CircleDescription": "Dossiers partagés de l'équipe de garde — accès restreint.",
        "MemberCount": 12,
        "IsOwner": False,
        "CreatedOn": "2023-11-02T14:05:09Z",
        "Topics": [
            {
                "TopicId": "4c3d5e6f-7a8b-4c9d-9e0f-2a3b4c5d6e21",
                "TopicName": "Protocoles d'urgence",
                "TopicDescription": "Procédures validées par le médecin-chef.",
                "MessageCount": 41,
                "LastModified": "2025-06-14T22:10:37Z",
            },
            {
                "TopicId": "5d4e6f7a-8b9c-4d0e-8f1a-3b4c5d6e7f22",
                "TopicName": "Schichtplan – Notaufnahme",  # noqa: RUF001
                "TopicDescription": "Dienstpläne und Übergaben.",
                "MessageCount": 128,
                "LastModified": "2025-06-15T06:00:00Z",
            },
        ],
        "Member": {"MemberId": "m-c3a9-0007", "DisplayName": "Dr. Léa Müller"},
    },
    {
        "CircleId": RESEARCH_TEAM_ID,
        "CircleName": "研究チーム 🔬",
        "CircleDescription": "共有実験ノートと鍵の保管庫",
        "MemberCount": 3,
        "IsOwner": True,
        "CreatedOn": "2025-01-07T23:41:30Z",
        "Topics": [
            {
                "TopicId": "6e5f7a8b-9c0d-4e1f-9a2b-4c5d6e7f8a31",
                "TopicName": "実験ノート",
                "TopicDescription": "毎日の測定記録",
                "MessageCount": 63,
                "LastModified": "2025-06-01T03:14:15Z",
            },
            {
                "TopicId": "7f6a8b9c-0d1e-4f2a-8b3c-5d6e7f8a9b32",
                "TopicName": "API keys 🔑",
                "TopicDescription": "Cluster and instrument credentials.",
                "MessageCount": 5,
                "LastModified": "2025-02-20T11:11:11Z",
            },
            {
                "TopicId": "8a7b9c0d-1e2f-4a3b-9c4d-6e7f8a9b0c33",
                "TopicName": "Datasets",
                "TopicDescription": "Download links and checksums.",
                "MessageCount": 18,
                "LastModified": "2025-05-23T09:00:00Z",
                "Messages": [
                    {
                        "MessageId": "msg-e5d1-0001",
                        "MessageType": 100,
                        "MessageSubType": 0,
                        "Message": "Checksum of the May dataset (attached).",
                        "Context": "",
                        "ObjectPath": "datasets/2025-05.csv",
                        "Base64Data": "c2hhMjU2OjlmODZkMDgx",
                        "AdditionalJson": "",
                        "MessageTimeOffset": 1748000400000,
                    }
                ],
            },
            {
                "TopicId": "9b8c0d1e-2f3a-4b4c-8d5e-7f8a9b0c1d34",
                "TopicName": "Reading list 📚",
                "TopicDescription": "",
                "MessageCount": 0,
                "LastModified": "2025-01-07T23:41:30Z",
            },
        ],
        "Member": {"MemberId": "m-e5d1-0002", "DisplayName": "佐藤 花子"},
    },
]

# Keys of a SEED_CIRCLES item that are not part of its CircleMeta item.
NESTED_KEYS: Final = frozenset({"Topics", "Member"})


def seed_circles(count: int | None = None) -> list[dict[str, Any]]:
    """``SEED_CIRCLES``, or ``count`` circles: the first seeds, then generated ones (a name, a
    description and a topic each, shaped like the seeds) so that big replies can be measured."""
    if count is None:
        return SEED_CIRCLES
    circles = SEED_CIRCLES[:count]
    for n in range(len(circles), count):
        circle_id = f"00000000-0000-4000-8000-{n:012d}"
        circles.append(
            {
                "CircleId": circle_id,
                "CircleName": f"Generated circle {n}",
                "CircleDescription": "One of many, for benchmarks of big replies.",
                "MemberCount": 1 + n % 7,
                "IsOwner": n % 2 == 0,
                "CreatedOn": "2025-01-01T00:00:00Z",
                "Topics": [
                    {
                        "TopicId": f"00000000-0000-4000-9000-{n:012d}",
                        "TopicName": "General",
                        "TopicDescription": "",
                        "MessageCount": 0,
                        "LastModified": "2025-01-01T00:00:00Z",
                    }
                ],
                "Member": {"MemberId": f"m-gen-{n}", "DisplayName": "Bench User"},
            }
        )
    return circles
