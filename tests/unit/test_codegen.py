"""The client generators render the two stability markers of the document: a method's
`x-experimental` and a schema property's `x-observed`. A synthetic document carries both, so the
rendering is proven before a real method or field uses them."""

import shutil
import subprocess
from typing import Any

from tools.codegen import go, markdown, neovim, typescript
from tools.codegen._spec import OBSERVED_NOTE


def _method(name: str, kind: str, params: str, result: str | None, experimental: bool) -> dict[str, Any]:
    spot_id = {"name": "spotId", "required": True, "schema": {"type": "string"}}
    method: dict[str, Any] = {
        "name": name,
        "summary": f"Do {name}.",
        "description": "Some detail.",
        "paramStructure": "by-name",
        "params": [spot_id] if params == "PeekParams" else [],
        "x-kind": kind,
        "x-params-schema": {"$ref": f"#/components/schemas/{params}"},
        "examples": [],
    }
    if result is not None:
        method["result"] = {"name": "result", "schema": {"$ref": f"#/components/schemas/{result}"}}
    if experimental:
        method["x-experimental"] = True
    return method


SPEC: dict[str, Any] = {
    "openrpc": "1.3.2",
    "info": {"title": "synthetic", "version": "9.9"},
    "methods": [
        _method("demo/peek", "request", "PeekParams", "PeekResult", experimental=True),
        _method("demo/stable", "request", "NoParams", "PeekResult", experimental=False),
        _method("demo/poke", "notification", "PeekParams", None, experimental=True),
    ],
    "components": {
        "schemas": {
            "NoParams": {"type": "object", "properties": {}, "additionalProperties": False},
            "PeekParams": {
                "type": "object",
                "properties": {"spotId": {"type": "string"}},
                "required": ["spotId"],
                "additionalProperties": False,
            },
            "PeekResult": {
                "type": "object",
                "description": "What a peek sees.",
                "properties": {
                    "spotId": {"type": "string"},
                    "shade": {"type": "string", "x-observed": True},
                    "depthMeters": {"type": "integer"},
                },
                "required": ["spotId"],
            },
        },
        "errors": {
            "SpotMissing": {"code": -33099, "message": "No such spot", "data": {"retryable": False, "meaning": "m"}}
        },
    },
}


def _line_index(lines: list[str], text: str) -> int:
    matches = [i for i, line in enumerate(lines) if text in line]
    assert len(matches) == 1, f"{text!r} is on lines {matches}"
    return matches[0]


def _block_above(lines: list[str], index: int, opener: str) -> str:
    """The comment block that ends right above lines[index], back to the line holding `opener`."""
    start = index - 1
    while opener not in lines[start]:
        start -= 1
        assert start >= 0, f"no {opener!r} above line {index}"
    return "\n".join(lines[start:index])


def test_typescript_marks_experimental_methods_and_observed_fields() -> None:
    lines = typescript.render(SPEC).splitlines()
    requests_entry = _line_index(lines, '"demo/peek": { params')
    assert "@experimental demo/peek is not covered" in _block_above(lines, requests_entry, "/**")
    wrapper = _line_index(lines, "peek(params: PeekParams, token?: CancellationToken): Promise<PeekResult>;")
    assert "* @experimental demo/peek" in _block_above(lines, wrapper, "/**")
    notification = _line_index(lines, "poke(params: PeekParams): Promise<void>;")
    assert "@experimental demo/poke" in _block_above(lines, notification, "/**")
    stable = _line_index(lines, "stable(token?: CancellationToken): Promise<PeekResult>;")
    assert "@experimental" not in lines[stable - 1]

    start = _line_index(lines, "export interface PeekResult {")
    result = lines[start : lines.index("}", start) + 1]
    assert result[1:] == [
        "  spotId: string;",
        f"  /** {OBSERVED_NOTE} */",
        "  shade?: string;",
        "  depthMeters?: number;",
        "  [key: string]: unknown;",
        "}",
    ]


def test_go_marks_experimental_methods_and_observed_fields() -> None:
    text = go.render(SPEC)
    lines = text.splitlines()
    peek = _line_index(lines, "func (s *DemoService) Peek(ctx context.Context, params PeekParams) (*PeekResult, error)")
    doc = _block_above(lines, peek, "// Peek calls demo/peek")
    assert "\n// Experimental: demo/peek is not covered by the versioning promise;" in doc
    stable = _line_index(lines, "func (s *DemoService) Stable(ctx context.Context) (*PeekResult, error) {")
    assert "Experimental" not in _block_above(lines, stable, "// Stable calls demo/stable")
    poke = _line_index(lines, "func (s *DemoService) Poke(ctx context.Context, params PeekParams) error {")
    assert "// Experimental: demo/poke" in _block_above(lines, poke, "// Poke calls demo/poke")
    assert lines[poke + 1] == "\treturn s.c.Notify(ctx, MethodDemoPoke, params)"

    start = _line_index(lines, "type PeekResult struct {")
    assert lines[start + 1 : lines.index("}", start) + 1] == [
        '\tSpotID string `json:"spotId"`',
        f"\t// {OBSERVED_NOTE}",
        '\tShade       string                     `json:"shade,omitempty"`',
        '\tDepthMeters *int                       `json:"depthMeters,omitempty"`',
        '\tExtra       map[string]json.RawMessage `json:"-"`',
        "}",
    ]
    # ...and the documented field still comes out exactly as gofmt prints it.
    gofmt = shutil.which("gofmt")
    assert gofmt is not None, "gofmt is needed (Go is a prerequisite of `make test`)"
    formatted = subprocess.run([gofmt], input=text, capture_output=True, text=True, check=True, timeout=60)
    assert formatted.stdout == text


def test_lua_marks_experimental_methods_and_observed_fields() -> None:
    lines = neovim.render(SPEC).splitlines()
    peek = _line_index(lines, 'demo_peek = "demo/peek",')
    assert lines[peek - 1].startswith("  -- Experimental: demo/peek is not covered")
    stable = _line_index(lines, 'demo_stable = "demo/stable",')
    assert "Experimental" not in lines[stable - 1]
    assert f"---@field shade? string {OBSERVED_NOTE}" in lines
    assert "---@field depthMeters? integer" in lines


def test_markdown_marks_experimental_methods() -> None:
    text = markdown.render(SPEC)
    assert "### `demo/peek` (request, experimental)\n\n> **Experimental:** `demo/peek` is not covered" in text
    assert "### `demo/poke` (notification, experimental)" in text
    assert "### `demo/stable` (request)\n\nDo demo/stable." in text


# A second document for the notification plumbing: a method whose rest is no identifier, a
# string enum, and a server-to-client notification.
NOTIFYING: dict[str, Any] = {
    **SPEC,
    "methods": [
        *SPEC["methods"],
        _method("demo/spot/forget", "notification", "PeekParams", None, experimental=False),
    ],
    "components": {
        **SPEC["components"],
        "schemas": {
            **SPEC["components"]["schemas"],
            "WaveParams": {
                "type": "object",
                "description": "A wave.",
                "properties": {"size": {"enum": ["big", "small"]}},
                "required": ["size"],
            },
        },
    },
    "x-server-notifications": [
        {
            "name": "demo/waved",
            "summary": "A wave passed.",
            "x-params-schema": {"$ref": "#/components/schemas/WaveParams"},
        }
    ],
}


def test_every_client_wraps_the_same_namespaces() -> None:
    """`demo/spot/forget` gets no wrapper anywhere (it is sent by name): Go used to generate a
    service for such a namespace that no Client field exposed."""
    ts = typescript.render(NOTIFYING)
    assert "forget(" not in ts
    assert '"demo/spot/forget": { params: PeekParams };' in ts  # still sendable through notify()
    go_text = go.render(NOTIFYING)
    assert "func (s *DemoService) Poke(" in go_text
    assert "SpotForget" not in go_text.replace("MethodDemoSpotForget", "")
    assert 'MethodDemoSpotForget = "demo/spot/forget"' in go_text


def test_server_notifications_are_typed_in_every_client() -> None:
    ts = typescript.render(NOTIFYING)
    assert '  "demo/waved": WaveParams;' in ts
    assert (
        'export const SERVER_NOTIFICATION_METHODS: readonly ServerNotificationMethod[] = [\n  "demo/waved",\n];' in ts
    )
    go_text = go.render(NOTIFYING)
    assert '\tMethodDemoWaved = "demo/waved"' in go_text
    assert "\tSize  string " in go_text  # a string enum is a string, not raw JSON
    lua = neovim.render(NOTIFYING)
    assert '  ["demo/waved"] = "circle_bridge.WaveParams",' in lua
    gofmt = shutil.which("gofmt")
    assert gofmt is not None
    formatted = subprocess.run([gofmt], input=go_text, capture_output=True, text=True, check=True, timeout=60)
    assert formatted.stdout == go_text
