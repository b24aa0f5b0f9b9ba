"""What the stdio server imports: nothing it does not use (issue 10). The emulator's HTTP server
(uvicorn, and click with it), httpx's command line (click, rich, pygments) and a CA bundle loaded
for a plain-http service each cost start-up time and memory that a bridge never needs."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys

import truststore

from circle_bridge._config import Settings
from circle_bridge._session import _verify_context

UNUSED = ("uvicorn", "click", "rich", "pygments", "circle_bridge.emulator", "truststore", "tomllib")
"""truststore only for https, tomllib only for a config file that has something in it."""

PROBE = f"""
import json, sys
import circle_bridge.cli, circle_bridge._connection, circle_bridge._session, circle_bridge._transports
from circle_bridge._config import Settings
from circle_bridge._session import open_session
open_session(Settings(service_url="http://127.0.0.1:9", token_url="http://127.0.0.1:9/api/token"))
print(json.dumps([m for m in {UNUSED!r} if m in sys.modules]))
"""


def test_the_stdio_server_and_its_session_import_no_emulator_cli_or_ca_bundle() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_no_ca_is_loaded_when_every_url_is_plain_http() -> None:
    plain = _verify_context(Settings(service_url="http://127.0.0.1:9", token_url="http://127.0.0.1:9/api/token"))
    assert plain.cert_store_stats()["x509_ca"] == 0
    assert plain.verify_mode == ssl.CERT_REQUIRED  # and it trusts no one, should it ever be used


def test_the_os_trust_store_is_used_as_soon_as_one_url_is_https() -> None:
    for settings in (
        Settings(service_url="https://127.0.0.1:31414", token_url="http://127.0.0.1:9/api/token"),
        Settings(service_url="http://127.0.0.1:9"),  # the default token URL is Circle's https one
    ):
        assert isinstance(_verify_context(settings), truststore.SSLContext)


ATTACH_PROBE = """
import json, sys
import circle_bridge.cli, circle_bridge._connect, circle_bridge._runtime_dir
print(json.dumps(sorted(sys.modules)))
"""


def test_the_attach_path_imports_no_dispatcher_http_client_event_loop_or_spawner() -> None:
    """`connect` to a warm daemon is Python's start plus these imports (issue 10: attach ≤ 0.1 s)."""
    out = subprocess.run([sys.executable, "-c", ATTACH_PROBE], capture_output=True, text=True, check=True, timeout=60)
    loaded = set(json.loads(out.stdout))
    heavy = ("pygls", "lsprotocol", "httpx", "httpcore", "msgspec", "asyncio", "subprocess", "tomllib")
    assert loaded.isdisjoint(heavy), sorted(loaded.intersection(heavy))
