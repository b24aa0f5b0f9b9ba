"""circle-bridge: Circle's token signing, token refresh and CircleService calls, behind a JSON-RPC 2.0
server (LSP framing) that any language can drive."""

# This module is the composition root: it opens the session (`async with`) and hands the
# transports a per-connection factory built around it; nothing below opens or closes anything shared.

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:  # imported lazily at run time: `connect`, `status` and `stop` must start fast
    from ._connection import Connection, FrameWriter
    from ._runtime_dir import DaemonState
    from ._session import Session

    ConnectionMaker = Callable[[FrameWriter], Connection]


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


def _identity(settings: Settings) -> str:
    from ._connect import identity_of

    return identity_of(settings)


def _cmd_serve(args: argparse.Namespace) -> int:
    listening = args.socket is not None or args.tcp is not None
    on_stdio = args.stdio or not listening
    # first: nothing below may write to the protocol stream
    protocol_fd = _protect_stdout() if on_stdio else None
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
    if on_stdio and sys.stdin.isatty():
        # a person ran it in a terminal: without this it looks hung
        sys.stderr.write(
            "circle-bridge: serving JSON-RPC on stdin/stdout (Content-Length framed); "
            "it is meant to be started by an editor or a client library. See README, "
            '"Talk to it by hand". Ctrl-D or Ctrl-C ends it.\n'
        )
    log = logging.getLogger("circle_bridge")
    log.info("circle-bridge %s serving; service %s", __version__, settings.service_url)
    if settings.missing_credentials():
        log.warning("credentials missing (%s): circle/* calls will fail", ", ".join(settings.missing_credentials()))
    try:
        import asyncio  # here, not at the top: `connect` must start fast and never needs it

        return asyncio.run(_serve(args, settings, protocol_fd))
    except KeyboardInterrupt:
        return 130
    finally:
        if emulator is not None:
            emulator.stop()


def _protect_stdout() -> int:
    from ._transports import protect_stdout

    return protect_stdout()


async def _serve(args: argparse.Namespace, settings: Settings, protocol_fd: int | None) -> int:
    from ._connection import Connection, circle_methods
    from ._session import open_session
    from ._transports import serve_stdio

    async with open_session(settings) as session:
        methods = circle_methods(session)

        def stdio_connection(writer: FrameWriter) -> Connection:
            return Connection(settings, writer, methods, watch_parent=True)

        def listener_connection(writer: FrameWriter) -> Connection:
            # a shared daemon must not exit with one client's parent: no parent watch
            return Connection(settings, writer, methods)

        if args.socket is None and args.tcp is None:
            assert protocol_fd is not None
            return await serve_stdio(stdio_connection, protocol_fd)
        return await _serve_daemon(args, settings, session, listener_connection, stdio_connection, protocol_fd)


async def _serve_daemon(
    args: argparse.Namespace,
    settings: Settings,
    session: Session,
    listener_connection: ConnectionMaker,
    stdio_connection: ConnectionMaker,
    protocol_fd: int | None,
) -> int:
    from pathlib import Path

    from ._daemon import Daemon, DaemonError, DaemonOptions
    from ._listeners import is_loopback, parse_tcp_address
    from ._runtime_dir import SOCKET_FILE, runtime_dir
    from ._transports import serve_stdio

    directory = runtime_dir()
    tcp = None
    if args.tcp is not None:
        try:
            tcp = parse_tcp_address(args.tcp)
        except ValueError as exc:
            sys.stderr.write(f"circle-bridge: {exc}\n")
            return 2
        if not is_loopback(tcp[0]):
            if not args.allow_non_loopback:
                sys.stderr.write(
                    f"circle-bridge: refusing to listen on {tcp[0]}, which other machines can reach; "
                    "add --allow-non-loopback if you mean it\n"
                )
                return 2
            sys.stderr.write(f"circle-bridge: WARNING: listening on {tcp[0]}: reachable beyond this machine\n")
    socket_path = None
    if args.socket is not None:
        socket_path = Path(args.socket) if args.socket else directory / SOCKET_FILE
    options = DaemonOptions(
        runtime_dir=directory,
        socket_path=socket_path,
        tcp=tcp,
        identity=_identity(settings),
        idle_exit=settings.idle_exit if args.exit_when_idle else None,
        log_file=settings.log_file,
    )
    daemon = Daemon(session, options, settings.max_frame_bytes)
    try:
        state = await daemon.start(listener_connection)
    except DaemonError as exc:
        sys.stderr.write(f"circle-bridge: {exc}\n")
        return 2
    announcement = {
        "pid": state.pid,
        "socket": state.socket,
        "tcp": state.tcp,
        "stateFile": str(directory / "daemon.json"),
    }
    sys.stderr.write(f"circle-bridge: daemon listening: {json.dumps(announcement)}\n")
    if protocol_fd is None:  # stdout is free: one JSON line for scripts (port 0 -> the port picked)
        sys.stdout.write(json.dumps(announcement) + "\n")
        sys.stdout.flush()
        return await daemon.run()
    stdio_fd = protocol_fd
    served: list[Connection] = []

    def tracked_stdio_connection(writer: FrameWriter) -> Connection:
        # counted with the others, so `status` shows it and a SIGTERM drains it too
        connection = stdio_connection(writer)
        daemon.clients.add(connection, "stdio")
        served.append(connection)
        return connection

    async def stdio() -> int:
        try:
            return await serve_stdio(tracked_stdio_connection, stdio_fd, own_sigterm=False)
        finally:
            for connection in served:
                daemon.clients.remove(connection)

    return await daemon.run(stdio)


def _cmd_connect(args: argparse.Namespace) -> int:
    from ._connect import daemon_argv, run_connect
    from ._runtime_dir import LOG_FILE, runtime_dir

    try:
        settings = _load(args)
    except BadConfiguration as exc:
        sys.stderr.write(f"circle-bridge connect: {exc.message}\n")
        return 2
    directory = runtime_dir()
    log_file = settings.log_file or str(directory / LOG_FILE)
    return run_connect(directory, _identity(settings), daemon_argv(_cli_overrides(args), log_file), log_file)


def _running_daemon() -> DaemonState | None:
    from ._runtime_dir import live_state, runtime_dir

    return live_state(runtime_dir())


def _cmd_status(args: argparse.Namespace) -> int:
    from ._runtime_dir import control_request

    state = _running_daemon()
    if state is None:
        print(json.dumps({"running": False}) if args.json else "no circle-bridge daemon is running")
        return 1
    try:
        status = control_request(state.control, "status")
    except (OSError, ValueError) as exc:
        print(f"the daemon (pid {state.pid}) does not answer on {state.control}: {exc}")
        return 1
    if args.json:
        print(json.dumps({"running": True, **status}, indent=2))
        return 0
    print(_format_status(status))
    return 0


def _format_status(status: dict[str, Any]) -> str:
    endpoints = status["endpoints"]
    clients = status["clients"]
    session = status["session"]
    upstream = status["upstream"]
    by_kind = ", ".join(f"{kind} {n}" for kind, n in sorted(clients["byTransport"].items())) or "none"
    if not session["configured"]:
        session_line = "not configured (credentials missing)"
    elif session["authorized"]:
        session_line = f"authorized as {session['endUserId']}; token expires in {session['tokenExpiresIn']:.0f} s"
    else:
        session_line = "not authorized yet (the first circle/* call authorizes)"
    idle = status["idleExit"]
    lines = [
        f"circle-bridge {status['version']} daemon, pid {status['pid']}, up {status['uptime']:.0f} s"
        + (f", exits after {idle:.0f} s without clients" if idle else ""),
        f"  socket    {endpoints['socket'] or '-'}",
        f"  tcp       {endpoints['tcp'] or '-'}" + (" (token in daemon.json)" if endpoints["tcp"] else ""),
        f"  identity  {status['identity'] or '(none configured)'}",
        f"  clients   {clients['connected']} connected ({by_kind}); "
        f"accepted {sum(status['accepted'].values())}, refused {sum(status['refused'].values())}",
        f"  session   {session_line}; service {session['serviceUrl']}",
        f"  upstream  {upstream['calls']} calls, {upstream['coalesced']} coalesced, "
        f"{upstream['tokenRequests']} token requests",
        f"  log       {status['log'] or 'stderr of the process that started it'}",
    ]
    return "\n".join(lines)


def _cmd_stop(args: argparse.Namespace) -> int:
    import os
    import signal
    import time

    from ._runtime_dir import control_request, pid_alive

    state = _running_daemon()
    if state is None:
        print("no circle-bridge daemon is running")
        return 0
    try:
        control_request(state.control, "stop")
    except (OSError, ValueError):
        os.kill(state.pid, signal.SIGTERM)  # SIGTERM drains too
    deadline = time.monotonic() + args.timeout
    while pid_alive(state.pid):
        if time.monotonic() > deadline:
            print(f"the daemon (pid {state.pid}) is still draining after {args.timeout:.0f} s")
            return 1
        time.sleep(0.05)
    print(f"stopped the daemon (pid {state.pid})")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    import asyncio

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
        help="serve JSON-RPC on stdio, a Unix socket and/or loopback TCP",
        description="Serve the circle-bridge JSON-RPC protocol (protocol/README.md) on stdin/stdout, "
        "LSP-framed: each message is `Content-Length: N\\r\\n\\r\\n` then N bytes of JSON; or, with --socket "
        'and/or --tcp, as a daemon that many apps share (README, "One session for all your apps"). Logs go '
        "to stderr (or CIRCLE_BRIDGE_LOG_FILE); stdout carries protocol frames only.",
        epilog=_epilog(),
    )
    serve.add_argument(
        "--stdio", action="store_true", help="serve on stdin/stdout (the default without --socket or --tcp)"
    )
    serve.add_argument(
        "--socket",
        nargs="?",
        const="",
        default=None,
        metavar="PATH",
        help="serve many clients on a Unix socket (default: bridge.sock in the runtime dir)",
    )
    serve.add_argument(
        "--tcp",
        default=None,
        metavar="[HOST:]PORT",
        help="serve many clients on TCP, 127.0.0.1 by default; port 0 picks a free port; "
        "clients need the authToken from daemon.json",
    )
    serve.add_argument(
        "--allow-non-loopback",
        action="store_true",
        help="let --tcp listen on an address other machines can reach (warns)",
    )
    serve.add_argument(
        "--exit-when-idle",
        action="store_true",
        help="exit after --idle-exit seconds without clients (what `connect` starts daemons with)",
    )
    serve.add_argument("--emulator", action="store_true", help="start the embedded Circle emulator and use it")
    settings_flags(serve)
    serve.set_defaults(func=_cmd_serve)

    connect = sub.add_parser(
        "connect",
        help="stdio <-> the shared daemon: attach to it, or start one (use as a client's command)",
        description="Forward stdin/stdout to this user's circle-bridge daemon (its Unix socket, named in "
        "daemon.json in $CIRCLE_BRIDGE_RUNTIME_DIR, else $XDG_RUNTIME_DIR/circle-bridge), starting one if "
        "none runs; it exits after --idle-exit seconds without clients. A daemon serving another Circle "
        "identity is refused, never used. Exit code: 0 after shutdown+exit or stdin EOF, 1 after exit "
        "alone or if the daemon goes away, 2 if it cannot attach.",
        epilog=_epilog(),
    )
    settings_flags(connect)
    connect.set_defaults(func=_cmd_connect)

    status = sub.add_parser("status", help="show the running daemon: endpoints, clients, session, upstream counters")
    status.add_argument("--json", action="store_true", help="the same, as JSON for scripts")
    status.set_defaults(func=_cmd_status)

    stop = sub.add_parser("stop", help="stop the running daemon after answering every request in flight")
    stop.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for it to exit")
    stop.set_defaults(func=_cmd_stop)

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
