"""One typed settings object, from four sources. Precedence: CLI flag > ``CIRCLE_*`` environment >
TOML config file > defaults. Secrets are registered with the redactor as soon as they are read."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import shlex
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from ._errors import BadConfiguration
from ._redaction import REDACTOR

log = logging.getLogger("circle_bridge.config")

PRODUCTION_TOKEN_URL = "https://api.circlesecurity.ai/api/token"  # noqa: S105 - docs/circle-api.md §2.1, current production
DEFAULT_SERVICE_URL = "http://127.0.0.1:31415"  # docs/circle-api.md §3.1; https://127.0.0.1:31414 for Safari/macOS


@dataclass(frozen=True)
class Setting:
    """How one setting is named in each source."""

    name: str  # the Settings attribute, also the TOML key
    env: str
    description: str
    secret: bool = False  # never a command-line flag (it would show in `ps`), never printed
    masked: bool = False  # printed by `doctor` only as its first characters and length; masked in logs


SETTINGS: tuple[Setting, ...] = (
    Setting("customer_id", "CIRCLE_CUSTOMER_ID", "Your Circle CustomerCode."),
    Setting("app_key", "CIRCLE_APP_KEY", "Your Circle AppKey; sent as `x-circle-appkey`.", masked=True),
    Setting("end_user_id", "CIRCLE_END_USER_ID", "The end user the token is for (`endUserId`)."),
    Setting("secret", "CIRCLE_SECRET", "Your Circle Secret; signs token requests, never sent.", secret=True),
    Setting("token_url", "CIRCLE_TOKEN_URL", "Circle cloud token endpoint."),
    Setting("service_url", "CIRCLE_SERVICE_URL", "Local CircleService base URL."),
    Setting(
        "ca_file",
        "CIRCLE_CA_FILE",
        "PEM CA bundle trusted for https, in addition to the OS trust store and `SSL_CERT_FILE`.",
    ),
    Setting("nonce_unit", "CIRCLE_NONCE_UNIT", "`s` (epoch seconds, as Circle's demos) or `ms` (as its docs)."),
    Setting(
        "service_paths",
        "CIRCLE_SERVICE_PATHS",
        "Paths of the experimental methods, e.g. `genInvite=/v1/invite,addFile=/v1/files`; default `/v1/<name>`.",
    ),
    Setting("token_timeout", "CIRCLE_TOKEN_TIMEOUT", "Seconds to wait for the token endpoint (or token source)."),
    Setting("service_timeout", "CIRCLE_SERVICE_TIMEOUT", "Seconds to wait for CircleService."),
    Setting("log_level", "CIRCLE_BRIDGE_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR; logs go to stderr."),
    Setting("log_file", "CIRCLE_BRIDGE_LOG_FILE", "Write logs to this file (created 0600) instead of stderr."),
    Setting("max_frame_bytes", "CIRCLE_BRIDGE_MAX_FRAME_BYTES", "Largest accepted JSON-RPC message body."),
    Setting("max_in_flight", "CIRCLE_BRIDGE_MAX_IN_FLIGHT", "Requests one connection may have in flight."),
    Setting(
        "token_source",
        "CIRCLE_TOKEN_SOURCE",
        "Where tokens come from: `secret` (sign here), `command`, `url` (your backend) or `client`; "
        "`secret` when unset.",
    ),
    Setting(
        "token_command",
        "CIRCLE_TOKEN_COMMAND",
        "`command` source: a command line (split as a shell would, run without one) that prints a token.",
        secret=True,
    ),
    Setting("token_backend_url", "CIRCLE_TOKEN_BACKEND_URL", "`url` source: your backend's token URL (GET)."),
    Setting(
        "token_backend_header",
        "CIRCLE_TOKEN_BACKEND_HEADER",
        "`url` source: one `Name: value` header sent to the backend (e.g. its API key).",
        secret=True,
    ),
    Setting(
        "token_query_encoding",
        "CIRCLE_TOKEN_QUERY_ENCODING",
        "`percent` (encode query values) or `raw` (as Circle's samples send them).",
    ),
    Setting(
        "sign_question_mark",
        "CIRCLE_SIGN_QUESTION_MARK",
        "`true`: sign `?customerId=…` (a disputed variant in Circle's docs); default `false`.",
    ),
    Setting(
        "max_upstream_bytes",
        "CIRCLE_BRIDGE_MAX_UPSTREAM_BYTES",
        "Largest upstream reply body read; a larger one is -33005.",
    ),
    Setting(
        "idle_exit",
        "CIRCLE_BRIDGE_IDLE_EXIT",
        "Seconds without clients after which a daemon started by `connect` (or `serve --exit-when-idle`) exits.",
    ),
)

TOKEN_SOURCES = ("secret", "command", "url", "client")
TokenSourceName = Literal["secret", "command", "url", "client"]


def masked_value(value: str) -> str:
    """A secret-ish value as ``doctor`` shows it: its first 4 characters and its length."""
    return f"{value[:4]}… ({len(value)} chars)" if len(value) > 8 else f"(set, {len(value)} chars)"


@dataclass(frozen=True)
class Settings:
    """The effective configuration. Build it with :func:`load_settings`, which validates every
    value and raises BadConfiguration naming the setting."""

    customer_id: str | None = None
    app_key: str | None = field(default=None, repr=False)
    end_user_id: str | None = None
    secret: str | None = field(default=None, repr=False)
    token_url: str = PRODUCTION_TOKEN_URL
    service_url: str = DEFAULT_SERVICE_URL
    ca_file: str | None = None
    nonce_unit: Literal["s", "ms"] = "s"
    service_paths: str | None = None
    token_timeout: float = 10.0
    service_timeout: float = 10.0
    log_level: str = "WARNING"
    log_file: str | None = None
    max_frame_bytes: int = 16 * 1024 * 1024
    max_in_flight: int = 256
    token_source: TokenSourceName | None = None
    token_command: str | None = field(default=None, repr=False)
    token_backend_url: str | None = None
    token_backend_header: str | None = field(default=None, repr=False)
    token_query_encoding: Literal["percent", "raw"] = "percent"  # noqa: S105 - not a password
    sign_question_mark: bool = False
    max_upstream_bytes: int = 4 * 1024 * 1024
    idle_exit: float = 600.0
    config_file: str | None = None  # where the file layer came from, for `doctor`

    @property
    def effective_token_source(self) -> TokenSourceName:
        return self.token_source or "secret"

    def _required(self) -> tuple[str, ...]:
        source = self.effective_token_source
        if source == "secret":
            return ("customer_id", "app_key", "end_user_id", "secret")
        if source == "command":
            return ("app_key", "token_command")
        if source == "url":
            return ("app_key", "token_backend_url")
        return ("app_key",)

    def missing_credentials(self) -> list[str]:
        """The settings the token source needs that are not set, as environment names."""
        env = {s.name: s.env for s in SETTINGS}
        return [env[name] for name in self._required() if not getattr(self, name)]

    def require_credentials(self) -> tuple[str, str, str, str]:
        missing = self.missing_credentials()
        if missing:
            hint = "" if self.token_source else " (or choose another CIRCLE_TOKEN_SOURCE)"
            raise BadConfiguration(f"set {', '.join(missing)}{hint}", missing=missing)
        return self.customer_id or "", self.app_key or "", self.end_user_id or "", self.secret or ""

    def masked(self) -> dict[str, Any]:
        """The effective configuration, printable: the Secret and the token command as set/unset,
        the app key and the backend header as their first 4 characters and length, a backend URL
        as its origin only."""
        out: dict[str, Any] = {}
        secret_names = {s.name for s in SETTINGS if s.secret or s.masked}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value and f.name in ("secret", "token_command"):
                value = "(set)"
            elif value and f.name in secret_names:
                value = masked_value(str(value))
            elif value and f.name == "token_backend_url":
                parts = urlsplit(value)
                value = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…"
            out[f.name] = value
        out["token_source"] = self.effective_token_source
        return out


def default_config_path(env: Mapping[str, str]) -> Path:
    if env.get("CIRCLE_BRIDGE_CONFIG"):
        return Path(env["CIRCLE_BRIDGE_CONFIG"])
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME", "~")).expanduser() / ".config")
    return Path(base) / "circle-bridge" / "config.toml"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise BadConfiguration(f"cannot read config file {path}: {exc.strerror}", configFile=str(path)) from None
    if not raw.strip():
        return {}  # what an empty TOML document holds (CIRCLE_BRIDGE_CONFIG=/dev/null, say)
    import tomllib  # here: most runs have no config file, and `connect` must start fast (issue 10)

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise BadConfiguration(f"config file {path} is not valid TOML: {exc}", configFile=str(path)) from None
    known = {s.name for s in SETTINGS}
    unknown = sorted(set(data) - known)
    if unknown:
        raise BadConfiguration(f"unknown keys in {path}: {', '.join(unknown)}", configFile=str(path))
    if "secret" in data and path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("config file %s holds the secret but is readable by others; chmod 600 it", path)
    return data


_FLOATS = frozenset({"token_timeout", "service_timeout", "idle_exit"})
_INTS = frozenset({"max_frame_bytes", "max_in_flight", "max_upstream_bytes"})
_POSITIVE = _FLOATS | _INTS
_URLS = frozenset({"token_url", "service_url", "token_backend_url"})
_CHOICES: dict[str, tuple[str, ...]] = {
    "nonce_unit": ("s", "ms"),
    "token_source": TOKEN_SOURCES,
    "token_query_encoding": ("percent", "raw"),
}
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _check_url(name: str, value: str, origin: str) -> str:
    """An http(s) URL with a host, no query (a bare trailing ``?`` is fine on the token URL, which
    Circle's docs write that way) and no fragment; no blanks or control characters anywhere."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise BadConfiguration(f"{origin} holds blanks or control characters", invalid=[origin])
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - parses the port: raises ValueError for a bad one
    except ValueError as exc:
        raise BadConfiguration(f"{origin} is not a valid URL: {exc}", invalid=[origin]) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadConfiguration(f"{origin} must be an http:// or https:// URL with a host", invalid=[origin])
    if parts.query or parts.fragment or (value.endswith("?") and name != "token_url"):
        raise BadConfiguration(f"{origin} must not have a query string or a fragment", invalid=[origin])
    if "#" in value:
        raise BadConfiguration(f"{origin} must not have a fragment", invalid=[origin])
    if name == "service_url" and not value.isascii():
        # it is spoken to through httpcore, which takes ASCII URLs only
        raise BadConfiguration(
            f"{origin} must be ASCII: write an international host name in its xn-- (punycode) form",
            invalid=[origin],
        )
    return value


def _coerce(name: str, value: Any, origin: str) -> Any:
    if name in _POSITIVE:
        try:
            number = float(value) if name in _FLOATS else int(value)
        except (TypeError, ValueError):
            raise BadConfiguration(f"{origin} must be a number, got {value!r}", invalid=[origin]) from None
        if not math.isfinite(number) or number <= 0:
            raise BadConfiguration(f"{origin} must be a finite number > 0, got {value!r}", invalid=[origin])
        return number
    if name in _CHOICES:
        if value not in _CHOICES[name]:
            choices = ", ".join(f"'{c}'" for c in _CHOICES[name])
            raise BadConfiguration(f"{origin} must be one of {choices}", invalid=[origin])
        return value
    if name == "sign_question_mark":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text not in _TRUE + _FALSE:
            raise BadConfiguration(f"{origin} must be true or false", invalid=[origin])
        return text in _TRUE
    if name == "log_level":
        value = str(value).upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise BadConfiguration(f"{origin} must be DEBUG, INFO, WARNING or ERROR", invalid=[origin])
    if name in _URLS:
        return _check_url(name, str(value), origin)
    if name == "token_command":
        try:
            words = shlex.split(str(value))
        except ValueError as exc:
            raise BadConfiguration(f"{origin} cannot be split into words: {exc}", invalid=[origin]) from None
        if not words:
            raise BadConfiguration(f"{origin} is empty", invalid=[origin])
    if name == "token_backend_header":
        header_name, sep, header_value = str(value).partition(":")
        if not sep or not _HEADER_NAME.fullmatch(header_name.strip()) or not header_value.strip():
            raise BadConfiguration(f"{origin} must be one 'Name: value' header", invalid=[origin])
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in header_value):
            raise BadConfiguration(f"{origin} holds control characters", invalid=[origin])
    return str(value)


def load_settings(
    cli: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge the sources. ``cli`` holds only flags the user gave (None values are ignored)."""
    env = os.environ if env is None else env
    path = config_file or default_config_path(env)
    file_values = _read_file(path)
    values: dict[str, Any] = {}
    for s in SETTINGS:
        for origin, source, key in (
            ("--" + s.name.replace("_", "-"), cli or {}, s.name),
            (s.env, env, s.env),
            (f"{path}:{s.name}", file_values, s.name),
        ):
            raw = source.get(key)
            if raw is not None and raw != "":
                values[s.name] = _coerce(s.name, raw, origin)
                break
    settings = Settings(**values, config_file=str(path) if file_values else None)
    for s in SETTINGS:
        value = getattr(settings, s.name)
        if (s.secret or s.masked) and isinstance(value, str) and value:
            REDACTOR.register(value)
    if settings.token_backend_header:
        REDACTOR.register(settings.token_backend_header.partition(":")[2].strip())
    return settings


_EMULATOR_KEYS = {
    "tokenUrl": "token_url",
    "serviceUrl": "service_url",
    "caFile": "ca_file",
    "customerId": "customer_id",
    "appKey": "app_key",
    "endUserId": "end_user_id",
    "secret": "secret",
}


# what `circle-bridge emulator --format env` names the emulator's fields that are not settings
EMULATOR_ONLY_ENV = {"controlUrl": "CIRCLE_EMULATOR_CONTROL_URL", "tokenTtl": "CIRCLE_EMULATOR_TOKEN_TTL"}


def emulator_settings(description: Mapping[str, object]) -> dict[str, str]:
    """Setting values that point a bridge at an emulator, from its one-line JSON description
    (`circle-bridge emulator` prints it; `Emulator.describe()` returns it)."""
    return {name: str(description[key]) for key, name in _EMULATOR_KEYS.items() if description.get(key)}


def as_env(values: Mapping[str, str]) -> dict[str, str]:
    """Setting values as the ``CIRCLE_*`` environment of a bridge process."""
    env_names = {s.name: s.env for s in SETTINGS}
    return {env_names[name]: value for name, value in values.items()}
