"""Circle's token request signature (docs/circle-api.md §2.3): standard base64 of HMAC-SHA256 over
``customerId=…&appKey=…&endUserId=…&nonce=…`` (no leading ``?``, no ``signature``), keyed by the
trimmed developer secret."""

from __future__ import annotations

import base64
import hashlib
import hmac


def string_to_sign(customer_id: str, app_key: str, end_user_id: str, nonce: str) -> str:
    return f"customerId={customer_id}&appKey={app_key}&endUserId={end_user_id}&nonce={nonce}"


def sign(secret: str, message: str) -> str:
    digest = hmac.new(secret.strip().encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")
