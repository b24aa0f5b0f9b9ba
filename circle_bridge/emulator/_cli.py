"""``python -m circle_bridge.emulator``: run the emulator in the foreground.

Stdout carries exactly one line, the JSON of ``Emulator.describe()``, written as soon as both
ports listen; scripts and other languages' tests read it to find the URLs and the demo
credentials. Diagnostics go to stderr. SIGINT or SIGTERM stops the emulator gracefully and the
process exits 0; stdin is never read.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from ._config import EmulatorConfig, TokenBody
from ._server import Emulator

_Handler = Callable[[int, FrameType | None], Any] | int | signal.Handlers | None
Render = Callable[[dict[str, object]], str]
"""Turns ``Emulator.describe()`` into what the CLI prints on stdout (ending in a newline)."""


def json_line(description: dict[str, object]) -> str:
    return json.dumps(description, ensure_ascii=False) + "\n"


def run_cli(
    host: str = "127.0.0.1",
    port: int = 0,
    token_port: int = 0,
    token_ttl: float = 600.0,
    https: bool = False,
    token_body: TokenBody = "string",  # noqa: S107
    create_delay: float = 0.5,
    invite_wait: float = 20.0,
    render: Render = json_line,
    **variants: Any,
) -> int:
    """Serve until SIGINT/SIGTERM. ``port`` is the service port (0 = a free one; the real
    CircleService uses 31415). Returns the process exit code: 0 after a signal, 1 if the
    emulator cannot start or its event loop dies. ``variants`` are further ``EmulatorConfig``
    fields (``strict``, ``token_query``, ``signed_string``, ...)."""
    try:
        config = EmulatorConfig(
            host=host,
            token_port=token_port,
            service_port=port,
            token_ttl=token_ttl,
            https=https,
            token_body=token_body,
            create_delay=create_delay,
            invite_wait=invite_wait,
            **variants,
        )
        emulator = Emulator(config).start()
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"circle-bridge emulator: cannot start: {exc}\n")
        return 1
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous: dict[signal.Signals, _Handler] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        sys.stdout.write(render(emulator.describe()))
        sys.stdout.flush()
        while not stop.wait(1.0):
            if not emulator._running():
                return 1
        return 0
    finally:
        emulator.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main_cli(
    argv: Sequence[str] | None = None,
    prog: str = "python -m circle_bridge.emulator",
    formats: dict[str, Render] | None = None,
) -> int:
    """``formats`` names the ways the description may be printed (``--format``); ``json`` always."""
    renderers: dict[str, Render] = {"json": json_line, **(formats or {})}
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Emulate the Circle token endpoint and the local CircleService over HTTP. "
        "Prints its URLs and demo credentials once both ports listen, then serves until SIGINT/SIGTERM.",
    )
    parser.add_argument(
        "--format",
        choices=sorted(renderers),
        default="json",
        help="how to print the URLs and credentials: one JSON line (default)"
        + (", or `export CIRCLE_...=...` lines to source in a shell (env)" if "env" in renderers else ""),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=0, help="service port; 0 = a free port (the real one is 31415)")
    parser.add_argument("--token-port", type=int, default=0, help="token endpoint port; 0 = a free port")
    parser.add_argument("--token-ttl", type=float, default=600.0, help="token lifetime in seconds (default: 600)")
    parser.add_argument("--https", action="store_true", help="serve the service over https with a generated CA")
    parser.add_argument(
        "--token-body",
        choices=("string", "object"),
        default="string",
        help="'string' = the documented double-encoded JSON body; 'object' = a plain {\"Token\": ...}",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="enforce rules Circle does not document: nonce freshness and reuse, app-key binding of tokens, "
        "exact nbf, exactly the five token query parameters in order",
    )
    parser.add_argument(
        "--token-query",
        choices=("percent", "raw", "form"),
        default="percent",
        help="how token query values are decoded: percent (default; raw and encoded clients both work), "
        "raw (no decoding), form ('+' is a space)",
    )
    parser.add_argument(
        "--signed-string",
        choices=("either", "plain", "question"),
        default="either",
        help="the string signatures must cover: without a leading '?' (plain), with it (question), or either",
    )
    parser.add_argument("--token-redirect", action="store_true", help="/api/token redirects (307) to /api/v2/token")
    parser.add_argument(
        "--token-error-status", type=int, default=0, help="HTTP status of token refusals (e.g. 200; default 400/401)"
    )
    parser.add_argument(
        "--status-result", choices=("bool", "number"), default="bool", help="Status.Result as true/false or 1/0"
    )
    parser.add_argument(
        "--create-delay", type=float, default=0.5, help="seconds /v1/createCircle takes (default: %(default)s)"
    )
    parser.add_argument(
        "--invite-wait",
        type=float,
        default=20.0,
        help="seconds /v1/processInvite waits when asked to (Wait20Second; default: %(default)s)",
    )
    parser.add_argument(
        "--circles",
        type=int,
        default=None,
        help="how many circles to serve (default: the 3 seeded ones; more are generated)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(message)s")
    return run_cli(
        host=args.host,
        port=args.port,
        token_port=args.token_port,
        token_ttl=args.token_ttl,
        https=args.https,
        token_body=args.token_body,
        create_delay=args.create_delay,
        invite_wait=args.invite_wait,
        render=renderers[args.format],
        strict=args.strict,
        token_query=args.token_query,
        signed_string=args.signed_string,
        token_redirect=args.token_redirect,
        token_error_status=args.token_error_status,
        status_result=args.status_result,
        circles=args.circles,
    )
