"""The README's examples run, as written, against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from circle_bridge.emulator import Emulator
from tests.bridge_harness import bridge_env

ROOT = Path(__file__).resolve().parents[2]


def test_python_example_lists_circles(shared_emulator: Emulator) -> None:
    env = {**os.environ, **bridge_env(shared_emulator)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "python" / "list_circles.py")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert "Family Vault -> Passwords, Insurance & Bills, Kids' School" in result.stdout
    assert "研究チーム 🔬 ->" in result.stdout
    assert "error -33004 Circle not found" in result.stdout


def test_readme_embeds_the_python_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / "examples" / "python" / "list_circles.py").read_text(encoding="utf-8")
    assert example.strip() in readme


def test_readme_embeds_each_client_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ts = (ROOT / "clients" / "typescript" / "examples" / "quickstart.ts").read_text(encoding="utf-8")
    lua = (ROOT / "clients" / "neovim" / "examples" / "list_circles.lua").read_text(encoding="utf-8")
    go_source = (ROOT / "clients" / "go" / "circlebridge" / "example_test.go").read_text(encoding="utf-8")
    go = go_source[go_source.index("func Example() {") :]
    go = go[: go.index("\n}\n") + 2]
    for snippet in (ts.strip(), lua.strip(), go):
        assert snippet in readme
