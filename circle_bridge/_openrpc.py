"""Builds the OpenRPC document from the protocol module (the single source of truth)."""

from __future__ import annotations

import ast
import inspect
import itertools
import re
import textwrap
from functools import cache
from typing import Any

import msgspec

from . import _protocol
from ._errors import CATALOGUE, ErrorSpec
from ._protocol import METHODS, PROTOCOL_VERSION, SERVER_NOTIFICATIONS, Method
from ._version import __version__

REF = "#/components/schemas/{name}"
OPENRPC_VERSION = "1.3.2"


def _error_ref(spec: ErrorSpec) -> dict[str, str]:
    return {"$ref": f"#/components/errors/{spec.name}"}


def _method(m: Method, schemas: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = []
    if m.params is not None:
        fields = schemas[m.params.__name__].get("properties", {})
        required = set(schemas[m.params.__name__].get("required", []))
        for name, schema in fields.items():
            params.append({"name": name, "required": name in required, "schema": schema})
    result_schema: dict[str, Any]
    if m.name == "rpc.discover":
        result_schema = {"$ref": "https://meta.open-rpc.org/"}
    elif m.result is None:
        result_schema = {"type": "null"}
    else:
        result_schema = {"$ref": REF.format(name=m.result.__name__)}
    doc: dict[str, Any] = {
        "name": m.name,
        "summary": m.summary,
        "description": m.description,
        "paramStructure": "by-name",
        "params": params,
        "x-direction": "clientToServer",
        "x-kind": m.kind,
        "x-allowed-before-initialize": m.before_initialize,
    }
    if m.experimental:
        doc["x-experimental"] = True
    if m.params is not None:
        doc["x-params-schema"] = {"$ref": REF.format(name=m.params.__name__)}
    if m.kind == "request":
        doc["result"] = {"name": "result", "schema": result_schema}
    if m.errors:
        doc["errors"] = [_error_ref(e) for e in m.errors]
    examples = []
    for ex in m.examples:
        pairing: dict[str, Any] = {
            "name": ex.name,
            "params": [{"name": k, "value": v} for k, v in (ex.params or {}).items()],
        }
        if m.kind == "request":
            if ex.error is not None:
                pairing["x-error"] = ex.error
            else:
                pairing["result"] = {"name": "result", "value": ex.result}
        examples.append(pairing)
    doc["examples"] = examples
    return doc


_LINE_BREAK = re.compile(r"(?<!\n)\n(?!\n)")


def _normalised(text: str) -> str:
    """A docstring as one line per paragraph. msgspec copies docstrings into schema descriptions,
    and whether it dedents them changed in 0.23; this makes the document the same under every
    msgspec the declared range allows."""
    return _LINE_BREAK.sub(" ", inspect.cleandoc(text))


def _normalise_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: _normalised(v) if k == "description" and isinstance(v, str) else _normalise_descriptions(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_normalise_descriptions(v) for v in node]
    return node


def _field_docs(struct: type[msgspec.Struct]) -> dict[str, str]:
    """The docstrings written under a struct's fields (``name: T`` then ``\"\"\"text\"\"\"``), by wire
    name. msgspec only copies the class docstring into the schema; these document each field."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(struct)))
    except (OSError, TypeError):  # no source (a frozen build): the schema is only less explained
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    wire = {f.name: f.encode_name for f in msgspec.structs.fields(struct)}
    docs: dict[str, str] = {}
    for field, text in itertools.pairwise(body):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and field.target.id in wire
            and isinstance(text, ast.Expr)
            and isinstance(text.value, ast.Constant)
            and isinstance(text.value.value, str)
        ):
            docs[wire[field.target.id]] = text.value.value
    return docs


def _describe_fields(components: dict[str, Any]) -> None:
    for name, schema in components.items():
        struct = getattr(_protocol, name, None)
        if not (isinstance(struct, type) and issubclass(struct, msgspec.Struct)):
            continue
        properties = schema.get("properties", {})
        for key, text in _field_docs(struct).items():
            if key in properties and "description" not in properties[key]:
                properties[key]["description"] = text


@cache
def build_document() -> dict[str, Any]:
    every = (*METHODS, *SERVER_NOTIFICATIONS)
    types = [m.params for m in every if m.params] + [m.result for m in every if m.result]
    _, raw = msgspec.json.schema_components(sorted(set(types), key=lambda t: t.__name__), ref_template=REF)
    _describe_fields(raw)
    components: dict[str, Any] = _normalise_descriptions(raw)
    return {
        "openrpc": OPENRPC_VERSION,
        "info": {
            "title": "circle-bridge",
            "version": PROTOCOL_VERSION,
            "description": (
                "JSON-RPC 2.0 over LSP base-protocol framing (Content-Length headers) on stdio. "
                "Generated from circle_bridge/_protocol.py; see protocol/README.md for framing, lifecycle, "
                "cancellation and versioning. Server implementation version: " + __version__ + "."
            ),
            "license": {"name": "MIT"},
        },
        "methods": [_method(m, components) for m in METHODS],
        # OpenRPC describes calls to the server only; what the server sends is an extension
        "x-server-notifications": [
            {**_method(n, components), "x-direction": "serverToClient"} for n in SERVER_NOTIFICATIONS
        ],
        "components": {
            "schemas": components,
            "errors": {
                e.name: {
                    "code": e.code,
                    "message": e.message,
                    "data": {"meaning": e.meaning, "retryable": e.retryable},
                }
                for e in CATALOGUE
            },
        },
        "x-framing": {
            "header": "Content-Length: <bytes>\\r\\n\\r\\n",
            "charset": "utf-8",
            "maxHeaderBytes": 8192,
            "batches": False,
        },
        "x-notifications": {
            "serverToClient": [n.name for n in SERVER_NOTIFICATIONS],
            "serverToClientParams": {
                n.name: {"$ref": REF.format(name=n.params.__name__)} for n in SERVER_NOTIFICATIONS if n.params
            },
            "clientToServer": [m.name for m in METHODS if m.kind == "notification"],
        },
    }
