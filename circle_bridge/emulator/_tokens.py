"""The emulator's tokens: HS256 JWTs it issues, checks and authorizes.

Both emulated servers share one ``TokenAuthority``: the "cloud" issues tokens with its private
key, the "service" checks them with the same key. Claims have the shapes of the real sample tokens
(docs/circle-api.md §2.6 and §7): ``unique_name`` (customerId), the ``authorizationdecision`` claim (a
4-character code), ``primarysid`` (endUserId), ``gender`` (an RSA public key as XML), ``userdata``
(a JSON string), ``nbf``, ``iat``, ``exp``; no app-key claim and no ``jti``. Only with
``bind_app_key`` (strict mode) do tokens carry ``appkey`` and ``jti`` claims and work only with the
app key they were issued for. Times are whole epoch seconds, as JWT ``NumericDate`` values usually are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass

import msgspec

from ._asgi import encode_json

_HEADER = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=").decode("ascii")
_PRUNE_AT = 4096


AUTHORIZATION_DECISION = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/authorizationdecision"
USER_DATA = "http://schemas.microsoft.com/ws/2008/06/identity/claims/userdata"
NBF_LEEWAY = 300  # .NET's default clock skew for nbf/exp checks; the real service is .NET (§2.6)


class Claims(msgspec.Struct, frozen=True):
    unique_name: str  # customerId
    primarysid: str  # endUserId
    nbf: int
    iat: int
    exp: int
    appkey: str | None = None  # only with bind_app_key
    jti: str | None = None  # only with bind_app_key


def _rsa_key_value() -> str:
    """An ``<RSAKeyValue>`` with a 4096-bit modulus, the shape of the ``gender`` claim in the wild
    (the developer's PublicKey, probably). The bytes are random: nothing here encrypts with it."""
    modulus = bytearray(secrets.token_bytes(512))
    modulus[0] |= 0x80
    encoded = base64.b64encode(bytes(modulus)).decode("ascii")
    return f"<RSAKeyValue><Modulus>{encoded}</Modulus><Exponent>AQAB</Exponent></RSAKeyValue>"


_decode_claims = msgspec.json.Decoder(Claims).decode


@dataclass(frozen=True, slots=True)
class _Grant:
    app_key: bytes
    exp: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class TokenError(Exception):
    """Why a token was refused; the message is safe to send back (it never holds the token)."""


class TokenAuthority:
    """Issues tokens, verifies them, and remembers which ones ``/v1/authorize`` accepted.

    Only the event loop thread touches it (the ``Emulator`` routes outside calls there).
    """

    def __init__(self, ttl: float, *, bind_app_key: bool = False, exact_nbf: bool = False) -> None:
        self.ttl = math.ceil(ttl)
        self._bind_app_key = bind_app_key
        self._nbf_leeway = 0 if exact_nbf else NBF_LEEWAY
        self._key = secrets.token_bytes(32)
        self._public_key = _rsa_key_value()
        self._decision = secrets.token_hex(2).upper()
        # Raw bearer token bytes -> grant. Keyed by the exact token text, so a lookup is a whole
        # check: only a token that was verified when it was authorized can be in here.
        self._grants: dict[bytes, _Grant] = {}

    def issue(self, customer_id: str, app_key: str, end_user_id: str, now: float) -> str:
        iat = int(now)
        claims: dict[str, object] = {
            "unique_name": customer_id,
            AUTHORIZATION_DECISION: self._decision,
            "primarysid": end_user_id,
            "gender": self._public_key,
            USER_DATA: '{"CrossCustomerExceptions":[]}',
            "nbf": iat,
            "exp": iat + self.ttl,
            "iat": iat,
        }
        if self._bind_app_key:
            claims["appkey"] = app_key
            claims["jti"] = secrets.token_hex(16)
        signing_input = f"{_HEADER}.{_b64url(encode_json(claims))}"
        return f"{signing_input}.{self._sign(signing_input)}"

    def _sign(self, signing_input: str) -> str:
        return _b64url(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def verify(self, token: str, now: float) -> Claims:
        """The token's claims. Raises TokenError when it is malformed, forged or not valid now."""
        parts = token.split(".")
        if len(parts) != 3 or not token.isascii() or parts[0] != _HEADER:
            raise TokenError("Token is malformed")
        if not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), parts[2]):
            raise TokenError("Token signature is invalid")
        try:
            claims = _decode_claims(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
        except (binascii.Error, ValueError, msgspec.DecodeError):
            raise TokenError("Token is malformed") from None
        if claims.nbf > now + self._nbf_leeway:
            raise TokenError("Token is not valid yet")
        if claims.exp <= now:
            raise TokenError("Token has expired")
        return claims

    def authorize(self, token: str, app_key: bytes, now: float) -> None:
        """Accept ``token`` for Bearer use with ``app_key``. Raises TokenError."""
        claims = self.verify(token, now)
        if self._bind_app_key and (claims.appkey or "").encode("utf-8") != app_key:
            raise TokenError("Token was issued for another appKey")
        if len(self._grants) >= _PRUNE_AT:
            self._grants = {t: g for t, g in self._grants.items() if g.exp > now}
        self._grants[token.encode("ascii")] = _Grant(app_key, claims.exp)

    def is_authorized(self, token: bytes, app_key: bytes, now: float) -> bool:
        grant = self._grants.get(token)
        if grant is None:
            return False
        if grant.exp <= now:
            del self._grants[token]
            return False
        return grant.app_key == app_key

    def revoke(self) -> None:
        """Forget every authorization and rotate the key, so every issued token stops working."""
        self._grants = {}
        self._key = secrets.token_bytes(32)
