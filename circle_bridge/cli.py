"""circle-bridge: Circle's token signing, token refresh and CircleService calls, behind a JSON-RPC 2.0
server (LSP framing) that any language can drive."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from typing import Any

from ._config import (
    EMULATOR_ONLY_ENV,
    SETTINGS,
    Settings,
    as_env,
    default_config_path,
    emulator_settings,
    load_settings,
)
from ._errors import BadConfiguration
from ._redaction import RedactingFilter
from ._version import __version__


def _open_log_file(path: str) -> logging.Handler:
    """The log file, created 0600 (it may hold upstream messages and user ids); BadConfiguration
    naming the setting when it cannot be written."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.fchmod(fd, 0o600)  # it may have existed with looser permissions
        finally:
            os.close(fd)
        return logging.FileHandler(path, encoding="utf-8")
    except OSError as exc:
        raise BadConfiguration(
            f"cannot write CIRCLE_BRIDGE_LOG_FILE {path}: {exc.strerror}", invalid=["CIRCLE_BRIDGE_LOG_FILE"]
        ) from None


def _setup_logging(settings: Settings) -> None:
    handler = _open_log_file(settings.log_file) if settings.log_file else logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # pygls logs every message body at INFO and tracebacks with params at ERROR; we do our own
    logging.getLogger("pygls").setLevel(max(logging.WARNING, root.level))
    for noisy in ("httpx", "httpcore", "uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def _cli_overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {s.name: getattr(args, s.name, None) for s in SETTINGS}


def _load(args: argparse.Namespace) -> Settings:
    return load_settings(_cli_overrides(args))


def _cmd_serve(args: argparse.Namespace) -> int:
    from ._session import open_session
    from ._transports import protect_stdout, serve_stdio

    protocol_fd = protect_stdout()  # first: nothing below may write to the protocol stream
    try:
        settings = _load(args)
    except BadConfiguration as exc:
        sys.stderr.write(f"circle-bridge: {exc.message}\n")
        return 2
    emulator = None
    if args.emulator:
        from .emulator import Emulator

        emulator = Emulator().start()
        settings = load_settings({**_cli_overrides(args), **emulator_settings(emulator.describe())})
    try:
        _setup_logging(settings)
    except BadConfiguration as exc:
        sys.stderr.write(f"circle-bridge: {exc.message}\n")
        if emulator is not None:
            emulator.stop()
        return 2
    if sys.stdin.isatty():
        # a person ran it in a terminal: without this it looks hung
        sys.stderr.write(
            "circle-bridge: serving JSON-RPC on stdin/stdout (Content-Length framed); "
            "it is meant to be started by an editor or a client library. See README, "
            '"Talk to it by hand". Ctrl-D or Ctrl-C ends it.\n'
        )
    log = logging.getLogger("circle_bridge")
    log.info("circle-bridge %s serving stdio; service %s", __version__, settings.service_url)
    if settings.missing_credentials():
        log.warning("credentials missing (%s): circle/* calls will fail", ", ".join(settings.missing_credentials()))
    try:
        return asyncio.run(serve_stdio(open_session(settings), settings, protocol_fd))
    except KeyboardInterrupt:
        return 130
    finally:
        if emulator is not None:
            emulator.stop()


def _cmd_demo(args: argparse.Namespace) -> int:
    from ._cli_demo import run_demo

    return asyncio.run(run_demo(trace=args.trace))


def _cmd_spec(args: argparse.Namespace) -> int:
    from ._openrpc import build_document

    sys.stdout.write(json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n")
    return 0


def _cmd_doctor(args: argparse.Namespace) -> int:
    try:
        settings = _load(args)
    except BadConfiguration as exc:
        print(f"configuration error: {exc.message}")
        return 2
    searched = default_config_path(os.environ)
    found = "found" if settings.config_file else "not found"
    print(f"config file: {searched} ({found})")
    print(json.dumps(settings.masked(), indent=2))
    # which source, never its contents (the command, URL and header stay masked above)
    print(f"token source: {settings.effective_token_source}")
    missing = settings.missing_credentials()
    print("credentials: " + ("complete" if not missing else "missing " + ", ".join(missing)))
    return 0 if not missing else 1


def _cmd_unlock_codes_decrypt(args: argparse.Namespace) -> int:
    """A backend tool: the decrypted codes go to stdout, the product of the command; nothing else
    ever shows them or the key."""
    import stat
    from pathlib import Path

    from .unlock_codes import UnlockCodeError, decrypt_unlock_codes, load_private_key, read_codes

    path = args.private_key_file
    try:
        mode = os.stat(path).st_mode
        data = Path(path).read_bytes()
    except OSError as exc:
        sys.stderr.write(f"circle-bridge unlock-codes: cannot read {path}: {exc.strerror}\n")
        return 2
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        sys.stderr.write(f"circle-bridge unlock-codes: warning: {path} is readable by others; chmod 600 it\n")
    try:
        codes = decrypt_unlock_codes(load_private_key(data), read_codes(sys.stdin.read()))
    except UnlockCodeError as exc:
        sys.stderr.write(f"circle-bridge unlock-codes: {exc}\n")
        return 1
    sys.stdout.write(json.dumps(codes) + "\n" if args.json else "".join(c + "\n" for c in codes))
    return 0


def _emulator_env(description: dict[str, object]) -> str:
    """`circle-bridge emulator --format env`: lines to `source` into a shell."""
    values = as_env(emulator_settings(description))
    values.update({env: str(description[key]) for key, env in EMULATOR_ONLY_ENV.items() if description.get(key)})
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in values.items())


def _epilog() -> str:
    return (
        "Credentials come from CIRCLE_CUSTOMER_ID, CIRCLE_APP_KEY, CIRCLE_END_USER_ID and CIRCLE_SECRET "
        "(the secret only from the environment or the config file, never a flag), or from the config file "
        f"{default_config_path(os.environ)} (TOML; CIRCLE_BRIDGE_CONFIG names another). "
        "`circle-bridge doctor` shows the effective configuration, secrets masked."
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="circle-bridge",
        description=__doc__,
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"circle-bridge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def settings_flags(p: argparse.ArgumentParser) -> None:
        for s in SETTINGS:
            if s.secret:
                continue  # never on a command line: it would show in `ps`
            p.add_argument(
                "--" + s.name.replace("_", "-"), dest=s.name, default=None, help=f"{s.description} [{s.env}]"
            )

    serve = sub.add_parser(
        "serve",
        help="serve JSON-RPC (stdio)",
        description="Serve the circle-bridge JSON-RPC protocol (protocol/README.md) on stdin/stdout, "
        "LSP-framed: each message is `Content-Length: N\\r\\n\\r\\n` then N bytes of JSON. Logs go to stderr "
        "(or CIRCLE_BRIDGE_LOG_FILE); stdout carries protocol frames only.",
        epilog=_epilog(),
    )
    serve.add_argument("--stdio", action="store_true", help="serve on stdin/stdout (the default)")
    serve.add_argument("--emulator", action="store_true", help="start the embedded Circle emulator and use it")
    settings_flags(serve)
    serve.set_defaults(func=_cmd_serve)

    # listed for --help only: main() hands `emulator ...` to the emulator's own parser
    sub.add_parser("emulator", help="run the Circle emulator alone; prints its URLs and credentials as JSON")

    demo = sub.add_parser("demo", help="walk a first Circle app's calls through a real bridge and the emulator")
    demo.add_argument("--trace", action="store_true", help="show every JSON-RPC message (secrets masked)")
    demo.set_defaults(func=_cmd_demo)

    spec = sub.add_parser("spec", help="print the OpenRPC document")
    spec.set_defaults(func=_cmd_spec)

    unlock = sub.add_parser("unlock-codes", help="backend tool: decrypt the unlock codes of circle/lockUser")
    unlock_sub = unlock.add_subparsers(dest="action", required=True)
    decrypt = unlock_sub.add_parser(
        "decrypt",
        help="decrypt codes read on stdin (lockUser's JSON result, a JSON array, or one per line)",
        description="Decrypt the unlock codes of circle/lockUser with the developer's Circle PrivateKey. "
        "Run it in your backend, never on the locked user's machine. Codes are read on stdin; the "
        "decrypted codes are written to stdout, one per line. Keep the key file mode 600.",
    )
    decrypt.add_argument(
        "--private-key-file", required=True, help="the PrivateKey: base64 PKCS#8 DER (as Circle gives it) or PEM"
    )
    decrypt.add_argument("--json", action="store_true", help="print the codes as one JSON array")
    decrypt.set_defaults(func=_cmd_unlock_codes_decrypt)

    doctor = sub.add_parser(
        "doctor",
        help="show the effective configuration, secrets masked",
        description="Print the config file searched, the effective configuration (secrets masked) and "
        "whether the credentials are complete. Exit 0 when they are, 1 when some are missing, 2 on a bad setting.",
        epilog=_epilog(),
    )
    settings_flags(doctor)
    doctor.set_defaults(func=_cmd_doctor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv[:1] == ["emulator"]:
            from .emulator import main_cli

            return main_cli(argv[1:], prog="circle-bridge emulator", formats={"env": _emulator_env})
        args = build_parser().parse_args(argv)
        code: int = args.func(args)
        return code
    except ModuleNotFoundError as exc:
        if exc.name not in ("uvicorn", "httptools"):
            raise
        sys.stderr.write(f"circle-bridge: {exc.msg}\n")  # `emulator`, `serve --emulator` and `demo` need the extra
        return 2
