"""The ``Emulator``: two uvicorn servers on a private event loop in a background thread.

Sockets are bound by ``start()`` in the caller's thread, so a busy port raises ``OSError`` there
and both ports listen by the time ``start()`` returns. ``serviceDown`` really closes the
service's listening socket and its connections (clients get "connection refused"); clearing it
binds the same port again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import uvicorn

from ._asgi import Receive, Scope, Send
from ._certs import TlsFiles, write_tls_files
from ._config import Credentials, EmulatorConfig, Faults
from ._service_app import ServiceApp
from ._token_app import TokenApp
from ._tokens import TokenAuthority
from ._unlock_key import demo_unlock_key, private_key_base64, public_key_base64

log = logging.getLogger("circle_bridge.emulator")

STAT_NAMES = (
    "tokenRequests",
    "tokenRejected",
    "authorize",
    "enumCircles",
    "enumTopics",
    "whoAmI",
    "createCircle",
    "addMessage",
    "getMessages",
    "decrypt",
    "lockUser",
    "unlockUser",
    "genInvite",
    "processInvite",
    "enumFiles",
    "addFile",
    "unauthorized",
    "serviceRequests",
)
_WATCH_INTERVAL = 0.05  # how soon a direct `faults.service_down = ...` takes effect
_CALL_TIMEOUT = 30.0

T = TypeVar("T")
_App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _bind(host: str, port: int) -> socket.socket:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        # Re-listening on the same port after `serviceDown` must not wait out TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class _Listener:
    server: uvicorn.Server
    task: asyncio.Task[None]


class _Runtime:
    """Everything that lives on the emulator's event loop, and the control API's target."""

    def __init__(
        self,
        config: EmulatorConfig,
        tls: TlsFiles | None,
        faults: Faults,
        stats: dict[str, int],
        authority: TokenAuthority,
        control_token: str,
    ) -> None:
        self._config = config
        self._tls = tls
        self._faults = faults
        self._stats = stats
        self._authority = authority
        self._token_app = TokenApp(config, authority, faults, stats, self, control_token)
        self._service_app = ServiceApp(config, authority, faults, stats)
        self._service: _Listener | None = None
        self._service_port = 0
        self._service_lock = asyncio.Lock()
        self._stop = asyncio.Event()
        self._closing = False
        self._rebind_failed = False

    # -- Control (called on the loop) ------------------------------------------------------

    def state(self) -> dict[str, object]:
        return {"faults": self._faults.to_json(), "stats": dict(self._stats)}

    async def apply_faults(self, changes: Mapping[str, object]) -> None:
        self._faults.update(changes)
        await self._reconcile_service()

    async def reset(self) -> None:
        self._faults.clear()
        for name in self._stats:
            self._stats[name] = 0
        await self._reconcile_service()

    def revoke(self) -> None:
        self._authority.revoke()

    # -- lifecycle -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self, token_sock: socket.socket, service_sock: socket.socket, ready: Callable[[], None]) -> None:
        self._service_port = service_sock.getsockname()[1]
        token: _Listener | None = None
        stop_waiter = asyncio.ensure_future(self._stop.wait())
        try:
            token = await self._serve(self._token_app, token_sock, None)
            self._service = await self._serve(self._service_app, service_sock, self._tls)
            await self._reconcile_service()
            ready()
            while not stop_waiter.done():
                await asyncio.wait({stop_waiter}, timeout=_WATCH_INTERVAL)
                if self._faults.service_down == (self._service is not None):
                    await self._watch_reconcile()
        finally:
            stop_waiter.cancel()
            async with self._service_lock:
                self._closing = True
                listeners = [x for x in (token, self._service) if x is not None]
                self._service = None
                await asyncio.gather(*(self._close(x) for x in listeners))
            # uvicorn closes the sockets it served; these only matter if it never got them.
            token_sock.close()
            service_sock.close()

    async def _watch_reconcile(self) -> None:
        try:
            await self._reconcile_service()
        except OSError as exc:
            if not self._rebind_failed:
                log.warning("cannot listen on the service port %d again: %s", self._service_port, exc)
            self._rebind_failed = True
        else:
            self._rebind_failed = False

    async def _reconcile_service(self) -> None:
        async with self._service_lock:
            if self._closing:
                return
            if self._faults.service_down and self._service is not None:
                listener, self._service = self._service, None
                await self._close(listener)
            elif not self._faults.service_down and self._service is None:
                sock = _bind(self._config.host, self._service_port)
                self._service = await self._serve(self._service_app, sock, self._tls)

    async def _serve(self, app: _App, sock: socket.socket, tls: TlsFiles | None) -> _Listener:
        config = uvicorn.Config(
            app,
            http="httptools",
            ws="none",
            lifespan="off",
            interface="asgi3",
            log_level="warning",
            log_config=None,  # leave the host process's logging configuration alone
            access_log=False,
            proxy_headers=False,
            server_header=False,
            timeout_keep_alive=30,
            timeout_graceful_shutdown=1,
            ssl_certfile=tls.cert_file if tls else None,
            ssl_keyfile=tls.key_file if tls else None,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if task.done():
                sock.close()
                task.result()
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.001)
        return _Listener(server, task)

    @staticmethod
    async def _close(listener: _Listener) -> None:
        listener.server.should_exit = True
        await listener.task


class Emulator:
    """The Circle token endpoint and CircleService, served over real HTTP on loopback.

    ``start()`` binds both ports (``OSError`` if one is taken) and returns once both listen;
    ``stop()`` is idempotent. An emulator starts once: after ``stop()`` make a new one.
    ``faults`` and ``stats`` are live: the control API at ``control_url`` changes the same
    objects. Use ``set_faults``, ``revoke`` and ``reset`` from other threads; they return once
    the change is in effect.
    """

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config if config is not None else EmulatorConfig()
        self.credentials: Credentials = self.config.credentials[0]
        self.faults = Faults()
        self.stats: dict[str, int] = dict.fromkeys(STAT_NAMES, 0)
        self._authority = TokenAuthority(
            self.config.token_ttl, bind_app_key=bool(self.config.bind_app_key), exact_nbf=bool(self.config.exact_nbf)
        )
        self._guard = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runtime: _Runtime | None = None
        self._stopped = False
        self._ports: tuple[int, int] | None = None
        self._tls: TlsFiles | None = None
        self._temp_dir: str | None = None
        # The control API lives under a path only this run knows (printed as part of controlUrl):
        # a web page the developer visits cannot guess it, so it cannot flip faults or read state.
        self.control_token = secrets.token_urlsafe(16)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Emulator:
        with self._guard:
            if self._thread is not None or self._stopped:
                raise RuntimeError("an Emulator can be started only once")
            try:
                if self.config.https:
                    directory = self.config.cert_dir
                    if directory is None:
                        directory = self._temp_dir = tempfile.mkdtemp(prefix="circle-bridge-emulator-")
                    else:
                        os.makedirs(directory, mode=0o700, exist_ok=True)
                    self._tls = write_tls_files(directory, self.config.host)
                token_sock = _bind(self.config.host, self.config.token_port)
                try:
                    service_sock = _bind(self.config.host, self.config.service_port)
                except BaseException:
                    token_sock.close()
                    raise
            except BaseException:
                self._remove_temp_dir()
                raise
            self._ports = (token_sock.getsockname()[1], service_sock.getsockname()[1])

            ready = threading.Event()
            failure: list[BaseException] = []

            def main() -> None:
                async def run() -> None:
                    self._loop = asyncio.get_running_loop()
                    self._runtime = _Runtime(
                        self.config, self._tls, self.faults, self.stats, self._authority, self.control_token
                    )
                    await self._runtime.run(token_sock, service_sock, ready.set)

                try:
                    asyncio.run(run())
                except BaseException as exc:
                    if ready.is_set():
                        log.exception("the emulator's event loop failed")
                    failure.append(exc)
                finally:
                    token_sock.close()
                    service_sock.close()
                    ready.set()

            self._thread = threading.Thread(target=main, name="circle-bridge-emulator", daemon=True)
            self._thread.start()
            ready.wait()
            if failure:
                self._thread.join()
                self._stopped = True
                self._remove_temp_dir()
                raise failure[0]
        log.info("emulator listening: token %s, service %s", self.token_url, self.service_url)
        return self

    def stop(self) -> None:
        with self._guard:
            thread, loop, runtime = self._thread, self._loop, self._runtime
            already = self._stopped
            self._stopped = True
            if thread is None or already:
                return
            if threading.current_thread() is thread:
                raise RuntimeError("Emulator.stop() cannot run on the emulator's own event loop")
            if loop is not None and runtime is not None:
                with contextlib.suppress(RuntimeError):  # the loop has already ended
                    loop.call_soon_threadsafe(runtime.request_stop)
            thread.join()
            self._remove_temp_dir()

    def _remove_temp_dir(self) -> None:
        if self._temp_dir is not None:
            shutil.rmtree(self._temp_dir, ignore_errors=True)
            self._temp_dir = None

    def __enter__(self) -> Emulator:
        return self if self._thread is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------

    def _port(self, index: int) -> int:
        if self._ports is None:
            raise RuntimeError("the Emulator is not started")
        return self._ports[index]

    @property
    def token_url(self) -> str:
        return f"http://{_url_host(self.config.host)}:{self._port(0)}/api/token"

    @property
    def service_url(self) -> str:
        scheme = "https" if self.config.https else "http"
        return f"{scheme}://{_url_host(self.config.host)}:{self._port(1)}"

    @property
    def control_url(self) -> str:
        return f"http://{_url_host(self.config.host)}:{self._port(0)}/_emulator/{self.control_token}"

    @property
    def ca_file(self) -> str | None:
        return self._tls.ca_file if self._tls is not None else None

    def describe(self) -> dict[str, object]:
        """Everything a client needs, the demo secret included (it is a published demo value), and
        the demo key pair that unlock codes are encrypted for: ``privateKey`` is what a developer's
        backend would hold (base64 PKCS#8 DER, as Circle hands it out)."""
        unlock_key = demo_unlock_key()
        return {
            "tokenUrl": self.token_url,
            "serviceUrl": self.service_url,
            "controlUrl": self.control_url,
            "caFile": self.ca_file,
            "customerId": self.credentials.customer_id,
            "appKey": self.credentials.app_key,
            "endUserId": self.credentials.end_user_id,
            "secret": self.credentials.secret,
            "tokenTtl": self._authority.ttl,
            "publicKey": public_key_base64(unlock_key),
            "privateKey": private_key_base64(unlock_key),
        }

    # -- faults, from any thread -----------------------------------------------------------

    def set_faults(self, **changes: bool | float) -> None:
        """Change fault switches, named ``serviceDown`` or ``service_down``; returns once they are
        in effect (the service port closed or listening again). Raises ``ValueError`` for an
        unknown switch or a bad value, ``OSError`` if the service port cannot be bound again."""
        runtime = self._runtime
        if runtime is None or not self._running():
            self.faults.update(changes)
            return
        self._call(lambda: runtime.apply_faults(changes))

    def revoke(self) -> None:
        """Forget every authorization and invalidate every issued token (a service restart with
        a new signing key): the next Bearer call gets 401 and old tokens fail to authorize."""
        runtime = self._runtime
        if runtime is None or not self._running():
            self._authority.revoke()
            return

        async def revoke() -> None:
            runtime.revoke()

        self._call(revoke)

    def reset(self) -> None:
        """Clear every fault switch and zero the stats."""
        runtime = self._runtime
        if runtime is None or not self._running():
            self.faults.clear()
            for name in self.stats:
                self.stats[name] = 0
            return
        self._call(runtime.reset)

    def _running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stopped

    def _call(self, make: Callable[[], Awaitable[T]]) -> T:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the Emulator is not running")
        if threading.current_thread() is self._thread:
            raise RuntimeError("this method would block the emulator's own event loop")

        async def call() -> T:
            return await make()

        coro = call()
        try:
            future = asyncio.run_coroutine_threadsafe(coro, loop)
        except RuntimeError:  # the loop has closed meanwhile
            coro.close()
            raise
        return future.result(_CALL_TIMEOUT)
