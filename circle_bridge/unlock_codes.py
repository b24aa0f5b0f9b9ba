"""Decrypt the unlock codes of `circle/lockUser`, in the developer's backend.

`circle/lockUser` returns codes encrypted for the developer's Circle PublicKey (RSA, PKCS#1 v1.5).
Only the developer's backend holds the PrivateKey: it decrypts the codes and sends them to the
user or an admin by another channel (mail, SMS), and the user types them into
`circle/unlockUser`. A private key on the locked user's own machine would let the user unlock
themselves, so this is a library and a command for the backend (`circle-bridge unlock-codes
decrypt`), never a method of the bridge a user's app talks to (docs/circle-api.md §7).

    key = load_private_key(Path("circle-private.key").read_bytes())  # base64 PKCS#8 DER or PEM
    codes = decrypt_unlock_codes(key, read_codes(lock_user_result_json))

Nothing here logs, and no error message holds key material or a decrypted code.

A wrong key does not always raise: OpenSSL 3.2 and later answer a PKCS#1 v1.5 padding failure
with random bytes ("implicit rejection", a defence against timing attacks). So every decrypted
code is checked: printable UTF-8, 4 to 128 characters once Circle's quotes are removed. Random
bytes pass that check for one code with a probability of about 2 % (4 printable ASCII bytes),
for both codes of a usual lock about 0.04 %; a code that fails it is reported as a wrong key.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["UnlockCodeError", "decrypt_unlock_codes", "load_private_key", "read_codes"]

MIN_CODE_LENGTH = 4
MAX_CODE_LENGTH = 128
WRONG_KEY = "the codes do not decrypt with this private key: was it the key pair the codes were encrypted for?"


class UnlockCodeError(Exception):
    """A key or a code that cannot be used. The message never holds key material or a code."""


def load_private_key(data: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from what Circle hands out (base64 PKCS#8 DER, no armour), or from PEM
    (``-----BEGIN PRIVATE KEY-----`` or ``RSA PRIVATE KEY``), or raw DER."""
    text = data.strip()
    key: Any
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(text, password=None)
        else:
            try:
                der = base64.b64decode(b"".join(text.split()), validate=True)
            except (binascii.Error, ValueError):
                der = text  # not base64: perhaps raw DER
            key = serialization.load_der_private_key(der, password=None)
    except TypeError:
        raise UnlockCodeError("the private key is protected by a password; give it unencrypted") from None
    except (ValueError, UnsupportedAlgorithm):
        raise UnlockCodeError(
            "the private key file is not a private key (expected base64 PKCS#8 DER, as Circle gives it, or PEM)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise UnlockCodeError("the private key is not an RSA key")
    return key


def read_codes(text: str) -> list[str]:
    """The encrypted codes in ``text``: the result of `circle/lockUser` (``{"encryptedUnlockCodes":
    [...]}``), CircleService's own reply (``EncryptedUnlockCodes``), a JSON array, or the codes
    separated by whitespace or commas."""
    stripped = text.strip()
    if stripped[:1] in ("[", "{"):
        try:
            decoded = json.loads(stripped)
        except ValueError:
            raise UnlockCodeError("the input starts like JSON but is not valid JSON") from None
        if isinstance(decoded, dict):
            decoded = decoded.get("encryptedUnlockCodes", decoded.get("EncryptedUnlockCodes"))
        if not isinstance(decoded, list) or not all(isinstance(c, str) for c in decoded):
            raise UnlockCodeError("expected a list of codes, or an object with encryptedUnlockCodes")
        codes = [c.strip() for c in decoded]
    else:
        codes = stripped.replace(",", " ").split()
    if not codes or not all(codes):
        raise UnlockCodeError("no codes in the input")
    return codes


def _plausible(plain: bytes) -> str | None:
    try:
        text = plain.decode("utf-8")
    except UnicodeDecodeError:
        return None
    # Circle's ForgeRock node removes every `"` from a decrypted code (docs/circle-api.md §7)
    code = text.replace('"', "").strip()
    if not MIN_CODE_LENGTH <= len(code) <= MAX_CODE_LENGTH or not code.isprintable():
        return None
    return code


def decrypt_unlock_codes(key: rsa.RSAPrivateKey, codes: Iterable[str]) -> list[str]:
    """Each base64 code decrypted (RSA PKCS#1 v1.5), in order. Raises UnlockCodeError for a code
    that is not base64, not of the key's size, or does not decrypt to a plausible code (a wrong key)."""
    size = (key.key_size + 7) // 8
    out: list[str] = []
    for number, code in enumerate(codes, 1):
        try:
            blob = base64.b64decode(code.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise UnlockCodeError(f"code {number} is not base64") from None
        if len(blob) != size:
            raise UnlockCodeError(
                f"code {number} is {len(blob)} bytes, but this {key.key_size}-bit key takes {size}: "
                "it was encrypted for another key"
            )
        try:
            plain = key.decrypt(blob, padding.PKCS1v15())
        except ValueError:  # OpenSSL before implicit rejection
            raise UnlockCodeError(WRONG_KEY) from None
        decrypted = _plausible(plain)
        if decrypted is None:
            raise UnlockCodeError(f"{WRONG_KEY} (code {number} decrypted to no printable code)")
        out.append(decrypted)
    return out
