"""One typed settings object, from four sources. Precedence: CLI flag > ``CIRCLE_*`` environment >
TOML config file > defaults. Secrets are registered with the redactor as soon as they are read."""

from __future__ import annotations

import dataclasses
import logging
import os
import stat
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ._errors import BadConfiguration
from ._redaction import REDACTOR

log = logging.getLogger("circle_bridge.config")

PRODUCTION_TOKEN_URL = "https://api.circlesecurity.ai/api/token"  # noqa: S105 - circle-api.md §2.1, current production
DEFAULT_SERVICE_URL = "http://127.0.0.1:31415"  # circle-api.md §3.1; https://127.0.0.1:31414 for Safari/macOS


@dataclass(frozen=True)
class Setting:
    """How one setting is named in each source."""

    name: str  # the Settings attribute, also the TOML key
    env: str
    description: str
    secret: bool = False


SETTINGS: tuple[Setting, ...] = (
    Setting("customer_id", "CIRCLE_CUSTOMER_ID", "Your Circle CustomerCode."),
    Setting("app_key", "CIRCLE_APP_KEY", "Your Circle AppKey; sent as `x-circle-appkey`."),
    Setting("end_user_id", "CIRCLE_END_USER_ID", "The end user the token is for (`endUserId`)."),
    Setting("secret", "CIRCLE_SECRET", "Your Circle Secret; signs token requests, never sent.", secret=True),
    Setting("token_url", "CIRCLE_TOKEN_URL", "Circle cloud token endpoint."),
    Setting("service_url", "CIRCLE_SERVICE_URL", "Local CircleService base URL."),
    Setting("ca_file", "CIRCLE_CA_FILE", "PEM CA bundle to trust for an https service URL (port 31414)."),
    Setting("nonce_unit", "CIRCLE_NONCE_UNIT", "`s` (epoch seconds, as Circle's demos) or `ms` (as its docs)."),
    Setting(
        "service_paths",
        "CIRCLE_SERVICE_PATHS",
        "Paths of the experimental methods, e.g. `genInvite=/v1/invite,addFile=/v1/files`; default `/v1/<name>`.",
    ),
    Setting("token_timeout", "CIRCLE_TOKEN_TIMEOUT", "Seconds to wait for the token endpoint."),
    Setting("service_timeout", "CIRCLE_SERVICE_TIMEOUT", "Seconds to wait for CircleService."),
    Setting("log_level", "CIRCLE_BRIDGE_LOG_LEVEL", "DEBUG, INFO, WARNING or ERROR; logs go to stderr."),
    Setting("log_file", "CIRCLE_BRIDGE_LOG_FILE", "Write logs to this file instead of stderr."),
    Setting("max_frame_bytes", "CIRCLE_BRIDGE_MAX_FRAME_BYTES", "Largest accepted JSON-RPC message body."),
    Setting("max_in_flight", "CIRCLE_BRIDGE_MAX_IN_FLIGHT", "Requests one connection may have in flight."),
)


@dataclass(frozen=True)
class Settings:
    customer_id: str | None = None
    app_key: str | None = None
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
    config_file: str | None = None  # where the file layer came from, for `doctor`

    def missing_credentials(self) -> list[str]:
        return [s.env for s in SETTINGS[:4] if not getattr(self, s.name)]

    def require_credentials(self) -> tuple[str, str, str, str]:
        missing = self.missing_credentials()
        if missing:
            raise BadConfiguration(f"set {', '.join(missing)}", missing=missing)
        return self.customer_id or "", self.app_key or "", self.end_user_id or "", self.secret or ""

    def masked(self) -> dict[str, Any]:
        """The effective configuration, printable: secrets shown only as set/unset."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "secret":
                value = "(set)" if value else None
            out[f.name] = value
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


_FLOATS = frozenset({"token_timeout", "service_timeout"})
_INTS = frozenset({"max_frame_bytes", "max_in_flight"})
_POSITIVE = _FLOATS | _INTS


def _coerce(name: str, value: Any, origin: str) -> Any:
    if name in _POSITIVE:
        try:
            number = float(value) if name in _FLOATS else int(value)
        except (TypeError, ValueError):
            raise BadConfiguration(f"{origin} must be a number, got {value!r}", invalid=[origin]) from None
        if number <= 0:
            raise BadConfiguration(f"{origin} must be positive, got {value!r}", invalid=[origin])
        return number
    if name == "nonce_unit" and value not in ("s", "ms"):
        raise BadConfiguration(f"{origin} must be 's' or 'ms'", invalid=[origin])
    if name == "log_level":
        value = str(value).upper()
        if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise BadConfiguration(f"{origin} must be DEBUG, INFO, WARNING or ERROR", invalid=[origin])
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
    if settings.secret:
        REDACTOR.register(settings.secret)
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
