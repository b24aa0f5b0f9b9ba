"""Regenerate every artifact derived from the protocol module.

    python -m tools.codegen          # write them
    python -m tools.codegen --check  # exit 1 and name the stale files if any differs (CI)

Outputs: protocol/circle-bridge.openrpc.json (the contract), and the TypeScript and Go client
types, which are generated from that JSON document rather than from Python, so any language's
generator could be written the same way.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
from pathlib import Path

from circle_bridge._openrpc import build_document

ROOT = Path(__file__).resolve().parents[2]
SPEC = ROOT / "protocol" / "circle-bridge.openrpc.json"
# (module in tools.codegen, output path); each module has `render(spec: dict) -> str`
TARGETS: tuple[tuple[str, Path], ...] = (
    ("typescript", ROOT / "clients" / "typescript" / "src" / "protocol.ts"),
    ("go", ROOT / "clients" / "go" / "circlebridge" / "protocol_gen.go"),
    ("markdown", ROOT / "protocol" / "methods.md"),
    ("neovim", ROOT / "clients" / "neovim" / "lua" / "circle_bridge" / "protocol.lua"),
)


README = ROOT / "README.md"
BEGIN = "<!-- BEGIN generated: {name} (python -m tools.codegen) -->\n"
END = "<!-- END generated: {name} -->"


def splice(text: str, name: str, content: str) -> str:
    """Replace the generated block ``name`` in a hand-written document."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    if begin not in text or end not in text:
        return text
    head, rest = text.split(begin, 1)
    _, tail = rest.split(end, 1)
    return head + begin + content + end + tail


def config_section() -> str:
    import dataclasses

    from circle_bridge._config import SETTINGS, Settings

    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    lines = ["| environment | config file key | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = defaults[s.name]
        shown = "—" if default is None else f"`{default}`"
        lines.append(f"| `{s.env}` | `{s.name}` | {shown} | {s.description} |")
    return "\n".join(lines) + "\n"


def render_all() -> dict[Path, str]:
    spec = build_document()
    out = {SPEC: json.dumps(spec, indent=2, ensure_ascii=False) + "\n"}
    if README.exists():
        from tools.codegen.markdown import errors_section, methods_section

        readme = README.read_text(encoding="utf-8")
        readme = splice(readme, "methods", methods_section(spec).replace("### ", "#### "))
        readme = splice(readme, "errors", errors_section(spec))
        out[README] = splice(readme, "config", config_section())
    prose = ROOT / "protocol" / "README.md"
    if prose.exists():
        from tools.codegen.markdown import errors_section

        out[prose] = splice(prose.read_text(encoding="utf-8"), "errors", errors_section(spec))
    for module_name, path in TARGETS:
        # a missing generator is a broken checkout, never a reason to skip a target silently
        module = importlib.import_module(f"tools.codegen.{module_name}")
        out[path] = module.render(spec)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.codegen")
    parser.add_argument("--check", action="store_true", help="fail if any generated file is stale")
    args = parser.parse_args()
    stale = []
    for path, text in render_all().items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        stale.append(path.relative_to(ROOT))
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if args.check and stale:
        print("stale generated files (run `python -m tools.codegen`):", *stale, sep="\n  ", file=sys.stderr)
        return 1
    for path in stale:
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
