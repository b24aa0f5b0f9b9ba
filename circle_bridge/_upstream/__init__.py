"""The upstream layer: HTTP to the Circle cloud token endpoint and to the local CircleService."""

import sys

# httpx's package imports its command-line client, which imports click, rich and pygments when
# they are installed (click comes with the emulator's uvicorn): ~20 ms of every cold start for a
# CLI the bridge never runs. Marking the module absent makes httpx fall back to its stub `main`.
if "httpx" not in sys.modules:
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

from ._cloud import (
    DEFAULT_TOKEN_LIFETIME,
    Identity,
    IssuedToken,
    NonceUnit,
    SignedTokenSource,
    TokenEndpoint,
    TokenSource,
    check_bearer,
    parse_token_body,
    token_lifetime,
    token_subject,
)
from ._service import (
    EXPERIMENTAL_OPERATIONS,
    EncodedList,
    OperationReply,
    ServiceClient,
    ServiceProbe,
    Unauthorized,
    parse_service_paths,
    tls_problem,
)
from ._signing import sign, string_to_sign
from ._sources import BackendTokenSource, CommandTokenSource
from ._tls import trust_context

__all__ = [
    "DEFAULT_TOKEN_LIFETIME",
    "EXPERIMENTAL_OPERATIONS",
    "BackendTokenSource",
    "CommandTokenSource",
    "EncodedList",
    "Identity",
    "IssuedToken",
    "NonceUnit",
    "OperationReply",
    "ServiceClient",
    "ServiceProbe",
    "SignedTokenSource",
    "TokenEndpoint",
    "TokenSource",
    "Unauthorized",
    "check_bearer",
    "parse_service_paths",
    "parse_token_body",
    "sign",
    "string_to_sign",
    "tls_problem",
    "token_lifetime",
    "token_subject",
    "trust_context",
]
