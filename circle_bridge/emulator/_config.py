"""What an emulator is configured with, and the fault switches tests flip while it runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

TokenBody = Literal["string", "object"]
TokenQuery = Literal["percent", "raw", "form"]
SignedString = Literal["either", "plain", "question"]
StatusResult = Literal["bool", "number"]


@dataclass(frozen=True)
class Credentials:
    """One developer identity, as Circle hands it out on sign-up (docs/circle-api.md §1).

    The emulator accepts a token request when ``customer_id`` + ``app_key`` match and the request
    is signed with ``secret``; ``end_user_id`` is free-form per the docs and only serves as the
    default a client should use.
    """

    customer_id: str
    app_key: str
    end_user_id: str
    secret: str = field(repr=False)


DEMO_CREDENTIALS = Credentials(
    customer_id="CUST-DEMO-0001",
    app_key="appkey-demo-7f3a9c",
    end_user_id="userman",
    # A published demo credential, not a secret. It holds `+`, `/` and `=` on purpose, so a
    # client that mangles them while encoding or signing fails against the emulator.
    secret="demo-secret-N0t-A-Real-S3cret+/=kq4Xv9Tz",  # noqa: S106
)


@dataclass
class EmulatorConfig:
    """How an :class:`~circle_bridge.emulator.Emulator` listens and behaves.

    By default the emulator enforces no rule that Circle does not document (docs/circle-api.md §7): any
    integer nonce, used any number of times; tokens good with any configured app key; ``nbf`` with
    .NET's five minutes of clock skew; the five query parameters in any order, with extras ignored.
    ``strict=True`` turns every one of those rules on; each also has its own switch (``None``
    follows ``strict``). The variant modes make the emulator behave as one reading of Circle's
    disputed details, so a client setting can be tested against it.

    Raises ``ValueError`` (from ``__post_init__``) for a non-positive ``token_ttl`` or
    ``nonce_window`` or ``invite_ttl``, a ``create_delay`` or ``invite_wait`` outside [0, 3600),
    an unknown mode or an empty ``credentials`` tuple.
    """

    host: str = "127.0.0.1"
    token_port: int = 0  # 0 = a free port
    service_port: int = 0  # 0 = a free port (the real CircleService uses 31415)
    token_ttl: float = 600.0  # JWT exp - iat, in seconds (rounded up to whole seconds)
    nonce_window: float = 300.0  # accepted |now - nonce|, in seconds
    token_body: TokenBody = "string"  # noqa: S105  # "string" = the documented double-encoded body
    https: bool = False  # serve the service over TLS with a generated CA
    cert_dir: str | None = None  # where ca.pem, service.pem, service.key go; a temp dir if None
    credentials: tuple[Credentials, ...] = (DEMO_CREDENTIALS,)
    # -- strictness: each None follows `strict` ------------------------------------------------
    strict: bool = False
    check_nonce_freshness: bool | None = None  # |now - nonce| <= nonce_window, seconds or ms
    reject_nonce_reuse: bool | None = None  # the same (identity, nonce) is accepted once
    bind_app_key: bool | None = None  # tokens carry `appkey`/`jti`; authorize checks the app key
    exact_nbf: bool | None = None  # no clock-skew leeway for `nbf`
    exact_query: bool | None = None  # exactly the five parameters, in the documented order
    # -- variants (docs/circle-api.md §7) -----------------------------------------------------------
    token_query: TokenQuery = "percent"  # noqa: S105 - percent-decode | raw: no decoding | form: `+` is a space
    signed_string: SignedString = "either"  # which string the signature covers: with/without `?`
    token_redirect: bool = False  # /api/token answers 307 to /api/v2/token, which serves tokens
    token_error_status: int = 0  # 0: 400/401 as usual; e.g. 200: refusals are 200 {"Message": ...}
    status_result: StatusResult = "bool"  # "number": Status.Result is 1 or 0
    # -- the service's state ------------------------------------------------------------------
    create_delay: float = 0.5  # seconds /v1/createCircle takes ("it may take a few seconds")
    invite_wait: float = 20.0  # seconds /v1/processInvite waits when asked to (Wait20Second)
    invite_ttl: float = 7 * 24 * 3600.0  # an invite times out after a week
    # how many circles the user belongs to: None = the seed's three; more adds generated ones
    # (benchmarks of big replies), fewer keeps the first ones
    circles: int | None = None

    def __post_init__(self) -> None:
        for name in ("check_nonce_freshness", "reject_nonce_reuse", "bind_app_key", "exact_nbf", "exact_query"):
            if getattr(self, name) is None:
                setattr(self, name, self.strict)
        if self.token_query not in ("percent", "raw", "form"):
            raise ValueError("token_query must be 'percent', 'raw' or 'form'")
        if self.signed_string not in ("either", "plain", "question"):
            raise ValueError("signed_string must be 'either', 'plain' or 'question'")
        if self.status_result not in ("bool", "number"):
            raise ValueError("status_result must be 'bool' or 'number'")
        if self.token_error_status and not 200 <= self.token_error_status <= 599:
            raise ValueError("token_error_status must be an HTTP status")
        for name in ("create_delay", "invite_wait"):
            if not 0 <= getattr(self, name) < 3600:
                raise ValueError(f"{name} must be in [0, 3600) seconds")
        if self.circles is not None and not 0 <= self.circles <= 1_000_000:
            raise ValueError("circles must be in [0, 1000000]")
        if not self.invite_ttl > 0:
            raise ValueError("invite_ttl must be > 0")
        if not self.token_ttl > 0:
            raise ValueError("token_ttl must be > 0")
        if not self.nonce_window > 0:
            raise ValueError("nonce_window must be > 0")
        if self.token_body not in ("string", "object"):
            raise ValueError("token_body must be 'string' or 'object'")
        if not self.credentials:
            raise ValueError("credentials must hold at least one identity")


# Wire name (control API, JSON) -> attribute name.
_FAULT_NAMES: dict[str, str] = {
    "serviceDown": "service_down",
    "serviceDelay": "service_delay",
    "serviceError500": "service_error_500",
    "serviceMalformed": "service_malformed",
    "tokenRefuse": "token_refuse",
    "tokenDelay": "token_delay",
}
_DELAYS = frozenset({"service_delay", "token_delay"})


@dataclass(slots=True)
class Faults:
    """Fault switches. Every field but ``service_down`` takes effect on the next request when it
    is assigned directly. ``service_down`` closes or reopens a listening socket, which
    ``Emulator.set_faults`` does before it returns; a direct assignment is picked up within
    about 50 ms."""

    service_down: bool = False  # the service listener is closed: connection refused
    service_delay: float = 0.0  # seconds added before every /v1 reply
    service_error_500: bool = False  # every /v1 call answers 500 with a text body
    service_malformed: bool = False  # every /v1 call answers 200 with a body that is not JSON
    token_refuse: bool = False  # the token endpoint answers 403 {"Message": "refused"}
    token_delay: float = 0.0  # seconds added before every token reply

    def to_json(self) -> dict[str, bool | float]:
        return {wire: getattr(self, attr) for wire, attr in _FAULT_NAMES.items()}

    def clear(self) -> None:
        for attr in _FAULT_NAMES.values():
            setattr(self, attr, 0.0 if attr in _DELAYS else False)

    def update(self, changes: Mapping[str, object]) -> None:
        """Apply a subset of switches, named either way (``serviceDown`` or ``service_down``).

        All changes are checked before any is applied. Raises ``ValueError`` naming the first
        unknown switch or badly typed value.
        """
        checked: dict[str, bool | float] = {}
        known = set(_FAULT_NAMES.values())
        for name, value in changes.items():
            attr = _FAULT_NAMES.get(name, name)
            if attr not in known:
                raise ValueError(f"unknown fault switch {name!r}; known: {', '.join(_FAULT_NAMES)}")
            if attr in _DELAYS:
                if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 3600:
                    raise ValueError(f"{name} must be a number of seconds in [0, 3600)")
                checked[attr] = float(value)
            else:
                if not isinstance(value, bool):
                    raise ValueError(f"{name} must be true or false")
                checked[attr] = value
        for attr, value in checked.items():
            setattr(self, attr, value)
