"""The emulator is an extra: the bridge runs without uvicorn, and the emulator says what is missing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"

# Pretend uvicorn is not installed, then run a command that needs the emulator.
WITHOUT_UVICORN = """
import importlib.util, sys
real = importlib.util.find_spec
importlib.util.find_spec = lambda name, *a: None if name == "uvicorn" else real(name, *a)
sys.modules["uvicorn"] = None
from circle_bridge.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_uvicorn_and_httptools_are_only_in_the_emulator_extra() -> None:
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime = " ".join(project["dependencies"])
    assert "uvicorn" not in runtime
    assert "httptools" not in runtime
    extras = project["optional-dependencies"]
    assert any(d.startswith("uvicorn") for d in extras["emulator"])
    assert "circle-bridge[emulator]" in extras["dev"]  # make installs .[dev]: `make demo` stays zero-config


def test_emulator_commands_without_the_extra_say_how_to_install_it() -> None:
    for command in (["emulator"], ["demo"], ["serve", "--emulator"]):
        done = subprocess.run(
            [sys.executable, "-c", WITHOUT_UVICORN, *command], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, (command, done.stderr)
        assert "pip install 'circle-bridge[emulator]'" in done.stderr
        assert "Traceback" not in done.stderr


def test_the_bridge_itself_imports_without_the_extra() -> None:
    code = "import sys; sys.modules['uvicorn'] = None; import circle_bridge._session, circle_bridge.cli; print('ok')"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "ok", done.stderr
