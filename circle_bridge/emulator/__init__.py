"""An emulator of the Circle cloud token endpoint and the local CircleService, over real HTTP.

It is an independent implementation of the documented API (``circle-api.md``) and imports
nothing from the rest of ``circle_bridge``: the bridge talks to it only over HTTP.

    with Emulator(EmulatorConfig(token_ttl=5)) as emu:
        emu.token_url, emu.service_url, emu.credentials
        emu.set_faults(serviceDown=True)

What it checks, and how, is described in the docstrings of ``_token_app`` (the token query,
signature and nonce rules) and ``_service_app`` (headers, Bearer tokens, replies).
"""

from ._cli import main_cli, run_cli
from ._config import DEMO_CREDENTIALS, Credentials, EmulatorConfig, Faults
from ._seed import SEED_CIRCLES
from ._server import Emulator

__all__ = [
    "DEMO_CREDENTIALS",
    "SEED_CIRCLES",
    "Credentials",
    "Emulator",
    "EmulatorConfig",
    "Faults",
    "main_cli",
    "run_cli",
]
