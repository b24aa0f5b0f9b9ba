"""The README's "store a secret" example runs, as written, against the emulator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from circle_bridge.emulator import SEED_CIRCLES, Emulator
from tests.bridge_harness import bridge_env

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "python" / "store_secret.py"


def test_store_secret_example_stores_and_reads_back(shared_emulator: Emulator) -> None:
    env = {**os.environ, **bridge_env(shared_emulator)}
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "example-api-key", "s3cr3t ✓"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"stored in circle {SEED_CIRCLES[0]['CircleId']}",
        "example-api-key = s3cr3t ✓",
    ]


def test_readme_embeds_the_store_secret_example_verbatim() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert EXAMPLE.read_text(encoding="utf-8").strip() in readme
