"""An emulator of the Circle cloud token endpoint and the local CircleService, over real HTTP.

It is an independent implementation of the documented API (``docs/circle-api.md``) and imports
nothing from the rest of ``circle_bridge``: the bridge talks to it only over HTTP.

    with Emulator(EmulatorConfig(token_ttl=5)) as emu:
        emu.token_url, emu.service_url, emu.credentials
        emu.set_faults(serviceDown=True)

What it checks, and how, is described in the docstrings of ``_token_app`` (the token query,
signature and nonce rules) and ``_service_app`` (headers, Bearer tokens, replies).
"""

import importlib.util

# The emulator ships as an extra (`pip install 'circle-bridge[emulator]'`): say so, instead of a bare
# "No module named 'uvicorn'" from deep inside an import.
for _needed in ("uvicorn", "httptools"):
    if importlib.util.find_spec(_needed) is None:
        raise ModuleNotFoundError(
            f"the Circle emulator needs the 'emulator' extra ({_needed} is not installed): "
            "pip install 'circle-bridge[emulator]'",
            name=_needed,
        )

from ._cli import main_cli, run_cli  # noqa: E402
from ._config import DEMO_CREDENTIALS, Credentials, EmulatorConfig, Faults  # noqa: E402
from ._seed import SEED_CIRCLES  # noqa: E402
from ._server import Emulator  # noqa: E402

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
