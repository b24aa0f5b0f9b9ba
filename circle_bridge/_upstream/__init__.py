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
from ._service import (
    EXPERIMENTAL_OPERATIONS,
    OperationReply,
    ServiceClient,
    Unauthorized,
    parse_service_paths,
)
from ._signing import sign, string_to_sign

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "EXPERIMENTAL_OPERATIONS",
    "Identity",
    "IssuedToken",
    "NonceUnit",
    "OperationReply",
    "ServiceClient",
    "TokenEndpoint",
    "Unauthorized",
    "parse_service_paths",
    "parse_token_body",
    "sign",
    "string_to_sign",
    "token_lifetime",
]
