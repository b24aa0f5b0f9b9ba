"""The language-independent reading of the OpenRPC document that every generator shares: where
the parts are, what a local `$ref` names, whether a method is a request, and the checks that
would make any generated catalogue ambiguous."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SCHEMA_REF = "#/components/schemas/"
ERROR_REF = "#/components/errors/"


@dataclass(frozen=True)
class Spec:
    openrpc: str
    version: str
    title: str
    methods: list[dict[str, Any]]
    schemas: dict[str, Any]
    errors: dict[str, Any]
    # `x-server-notifications`: what the bridge sends unasked, each with `name`, `summary` and the
    # `$ref` of its params schema in `x-params-schema`
    server_notifications: list[dict[str, Any]]


def server_notification_params(notification: dict[str, Any]) -> str:
    """The schema name of a server notification's params (e.g. `ProgressParams`)."""
    ref = notification.get("x-params-schema", {}).get("$ref", "")
    name = schema_ref_name(str(ref))
    if name is None:
        raise ValueError(f"server notification {notification.get('name')!r} has no params schema $ref")
    return name


def read_spec(spec: dict[str, Any]) -> Spec:
    info = spec.get("info", {})
    components = spec.get("components", {})
    errors: dict[str, Any] = dict(components.get("errors", {}))
    codes: dict[int, str] = {}
    for name, entry in errors.items():
        code = int(entry["code"])
        if code in codes:
            raise ValueError(f"errors {codes[code]!r} and {name!r} share code {code}")
        codes[code] = name
    return Spec(
        openrpc=str(spec.get("openrpc", "?")),
        version=str(info.get("version", "")),
        title=str(info.get("title", "the protocol")),
        methods=list(spec.get("methods", [])),
        schemas=dict(components.get("schemas", {})),
        errors=errors,
        server_notifications=list(spec.get("x-server-notifications", [])),
    )


def schema_ref_name(ref: str) -> str | None:
    """The schema name of a local `$ref`, or None for any other reference."""
    return ref.removeprefix(SCHEMA_REF) if ref.startswith(SCHEMA_REF) else None


def wrapper_namespaces(methods: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The methods that get a typed wrapper in a per-namespace object (`circle/enumTopics` ->
    `circle`, `enumTopics`), in document order. Every client applies the same rule: `$/...` is
    LSP plumbing, and a method whose rest is not one identifier (`window/workDoneProgress/cancel`)
    is sent by name through the client's generic notify, not wrapped."""
    out: dict[str, list[dict[str, Any]]] = {}
    for method in methods:
        namespace, sep, rest = str(method["name"]).partition("/")
        if sep and namespace != "$" and _IDENTIFIER.match(rest):
            out.setdefault(namespace, []).append(method)
    return out


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def method_kind(method: dict[str, Any]) -> str:
    """ "request" or "notification": the `x-kind` extension, else whether a result is declared."""
    kind = method.get("x-kind")
    if isinstance(kind, str):
        return kind
    return "request" if "result" in method else "notification"


# The two stability markers of the document, with the one wording every generator renders.
EXPERIMENTAL_NOTE = "not covered by the versioning promise; it may change or go away in any release."
OBSERVED_NOTE = "Observed in CircleService replies, not documented by Circle; do not rely on it."


def is_experimental(method: dict[str, Any]) -> bool:
    """The method carries `"x-experimental": true`."""
    return method.get("x-experimental") is True


def is_observed(schema: Any) -> bool:
    """A property schema carries `"x-observed": true`: seen upstream, never documented."""
    return isinstance(schema, dict) and schema.get("x-observed") is True
