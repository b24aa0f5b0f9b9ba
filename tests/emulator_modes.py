"""Run a test module against the emulator in both its modes: the default (no rule Circle does not
document) and strict (nonce freshness and reuse, app-key binding, exact nbf, exact query). The bridge
must pass against both. Import the fixtures into a test module:

    from tests.emulator_modes import emulator, emulator_running, shared_emulator, strict_mode

Every test of that module then runs twice; ``emulator_running(...)`` follows the current mode unless
the test names ``strict`` (or a single rule) itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from circle_bridge.emulator import Emulator, EmulatorConfig
from tests import bridge_harness

_current = {"strict": False}


@pytest.fixture(scope="module", params=[False, True], ids=["default", "strict"], autouse=True)
def strict_mode(request: pytest.FixtureRequest) -> Iterator[bool]:
    strict: bool = request.param
    _current["strict"] = strict
    yield strict
    _current["strict"] = False


def emulator_running(**config: Any) -> AbstractContextManager[Emulator]:
    config.setdefault("strict", _current["strict"])
    return bridge_harness.emulator_running(**config)


@pytest.fixture(scope="module")
def shared_emulator(strict_mode: bool) -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(strict=strict_mode)) as emulator:
        yield emulator


@pytest.fixture
def emulator(strict_mode: bool) -> Iterator[Emulator]:
    with Emulator(EmulatorConfig(strict=strict_mode)) as emulator:
        yield emulator
