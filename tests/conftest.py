from __future__ import annotations

from collections.abc import Iterator

import pytest

from circle_bridge.emulator import Emulator, EmulatorConfig
from tests.bridge_harness import STRICT_BY_DEFAULT


@pytest.fixture(scope="module")
def shared_emulator() -> Iterator[Emulator]:
    """One emulator for tests that do not change its faults."""
    with Emulator(EmulatorConfig(strict=STRICT_BY_DEFAULT)) as emulator:
        yield emulator


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """A private emulator: the test may switch faults on."""
    with Emulator(EmulatorConfig(strict=STRICT_BY_DEFAULT)) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test() -> Iterator[None]:
    yield
    from tests.bridge_harness import reap_daemons

    reap_daemons()
