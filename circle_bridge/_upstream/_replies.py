"""Error text from upstream bodies, bounded and masked."""

from __future__ import annotations

import msgspec

from .._redaction import REDACTOR


def upstream_message(body: bytes) -> str | None:
    """The human text of an upstream error body, bounded and with secrets masked."""
    try:
        decoded = msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body[:200].decode("utf-8", "replace").strip()
        return REDACTOR.redact(text) or None
    if isinstance(decoded, dict):
        status = decoded.get("Status")
        for holder in (decoded, status if isinstance(status, dict) else {}):
            message = holder.get("Message")
            if isinstance(message, str) and message:
                return REDACTOR.redact(message[:500])
    return None
