"""The upstream layer: HTTP to the Circle cloud token endpoint and to the local CircleService."""

from ._cloud import (
    DEFAULT_TOKEN_LIFETIME,
    Identity,
    IssuedToken,
    NonceUnit,
    TokenEndpoint,
    parse_token_body,
    token_lifetime,
)
from ._service import ServiceClient, Unauthorized
from ._signing import sign, string_to_sign

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "Identity",
    "IssuedToken",
    "NonceUnit",
    "ServiceClient",
    "TokenEndpoint",
    "Unauthorized",
    "parse_token_body",
    "sign",
    "string_to_sign",
    "token_lifetime",
]
