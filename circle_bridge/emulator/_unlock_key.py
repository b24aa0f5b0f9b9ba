"""The emulator's stand-in for the developer's key pair (docs/circle-api.md §1, §7).

Circle encrypts unlock codes for the developer's PublicKey with RSA PKCS#1 v1.5; the developer's
backend decrypts them with the PrivateKey, which Circle hands out as base64 PKCS#8 DER. The
emulator makes one 2048-bit pair per process (nothing is stored on disk or in the source) and
prints both halves with its demo credentials, so a test or a demo can play the backend.
"""

from __future__ import annotations

import base64
import secrets
from functools import cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

# No 0/O, 1/I/L: codes are read out to people and typed in by hand.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


@cache
def demo_unlock_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_key_base64(key: rsa.RSAPrivateKey) -> str:
    """The private key as Circle gives it to developers: base64 PKCS#8 DER, no PEM armour."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return base64.b64encode(der).decode("ascii")


def public_key_base64(key: rsa.RSAPrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


def new_unlock_code() -> str:
    """``XXXX-XXXX`` from an unambiguous alphabet: about 39 bits."""
    chars = [secrets.choice(_CODE_ALPHABET) for _ in range(8)]
    return "".join(chars[:4]) + "-" + "".join(chars[4:])


def encrypt_unlock_code(key: rsa.RSAPublicKey, code: str) -> str:
    """Base64 of RSA PKCS#1 v1.5 over the code as a JSON string literal, quotes included: Circle's
    ForgeRock node strips ``"`` from what it decrypts, which suggests the real service does so."""
    return base64.b64encode(key.encrypt(f'"{code}"'.encode(), padding.PKCS1v15())).decode("ascii")
