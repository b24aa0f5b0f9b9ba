"""Upstream reply bodies: read within a size cap, and their error text, masked then bounded."""

from __future__ import annotations

from collections.abc import AsyncIterable

import httpx
import msgspec

from .._errors import UpstreamMalformed
from .._redaction import REDACTOR

DEFAULT_MAX_BODY = 4 * 1024 * 1024
_MESSAGE_CHARS = 500


async def read_capped(reply: httpx.Response, cap: int, origin: str) -> bytearray:
    """The body of a streamed httpx ``reply``: see ``read_capped_chunks``."""
    declared = reply.headers.get("content-length")
    return await read_capped_chunks(reply.aiter_bytes(), declared, reply.status_code, cap, origin)


async def read_capped_chunks(
    chunks: AsyncIterable[bytes], declared: str | bytes | None, status: int, cap: int, origin: str
) -> bytearray:
    """A streamed body, or UpstreamMalformed once it exceeds ``cap`` bytes (``declared`` is its
    Content-Length header, if any). The body is never held whole beyond the cap: memory stays under
    about 1.2 times the cap (a bytearray grows in steps), even for a 200 MB reply (issue 11)."""
    size = int(declared) if declared is not None and declared.isdigit() else None
    if size is not None and size > cap:
        raise _too_large(status, cap, origin, size)
    body = bytearray()
    async for chunk in chunks:
        if len(body) + len(chunk) > cap:
            raise _too_large(status, cap, origin, size)
        body += chunk
    return body


def _too_large(status: int, cap: int, origin: str, size: int | None) -> UpstreamMalformed:
    return UpstreamMalformed(
        f"the reply from {origin} is larger than {cap} bytes (CIRCLE_BRIDGE_MAX_UPSTREAM_BYTES)",
        upstream=origin,
        httpStatus=status,
        limitBytes=cap,
        contentLength=size,
    )


def upstream_message_of(text: str | None) -> str | None:
    """Upstream text as it may reach a client: secrets masked first, then bounded, so a secret
    that straddles the cut cannot escape in part."""
    if not text:
        return None
    masked = REDACTOR.redact(text).strip()
    if len(masked) > _MESSAGE_CHARS:
        masked = masked[:_MESSAGE_CHARS] + "…"
    return masked or None


def upstream_message(body: bytes | bytearray) -> str | None:
    """The human text of an upstream error body (``Message``, ``Status.Message``, ``message``,
    ``error``), masked then bounded; a body that is not JSON is taken as text."""
    try:
        decoded = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        return upstream_message_of(bytes(body[: _MESSAGE_CHARS * 8]).decode("utf-8", "replace"))
    if isinstance(decoded, str):  # the token endpoint's double-encoded body
        try:
            decoded = msgspec.json.decode(decoded)
        except (msgspec.DecodeError, RecursionError):
            return upstream_message_of(decoded)
    if isinstance(decoded, dict):
        status = decoded.get("Status")
        for holder in (decoded, status if isinstance(status, dict) else {}):
            for key in ("Message", "message", "Error", "error", "error_description"):
                message = holder.get(key)
                if isinstance(message, str) and message:
                    return upstream_message_of(message)
    return None
