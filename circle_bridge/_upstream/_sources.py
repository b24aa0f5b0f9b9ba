"""Token sources that keep the Secret off this machine: the developer's backend hands out tokens,
through a command (``CIRCLE_TOKEN_SOURCE=command``) or an HTTP GET (``CIRCLE_TOKEN_SOURCE=url``).

This is how Circle's own demos work: a backend signs the token request, and the end user's machine
only ever sees the token (docs/circle-api.md §7, "Where the secret lives").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shlex
import ssl

import httpx

from .._errors import BadConfiguration, TokenRequestFailed, UpstreamMalformed, UpstreamTimeout
from ._cloud import parse_token_body
from ._replies import DEFAULT_MAX_BODY, read_capped, upstream_message, upstream_message_of

log = logging.getLogger("circle_bridge.upstream")

# Settings a token command has no business seeing: the bridge's own credentials.
_WITHHELD_ENV = ("CIRCLE_SECRET", "CIRCLE_TOKEN_BACKEND_HEADER", "CIRCLE_TOKEN_COMMAND")


async def _read_capped_stream(stream: asyncio.StreamReader, cap: int) -> bytes | None:
    """Everything the stream gives until EOF, or None once it exceeds ``cap`` bytes."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await stream.read(65536):
        size += len(chunk)
        if size > cap:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class CommandTokenSource:
    """Runs a command that prints a token (``{"Token": ...}``, a JSON string, or the bare token),
    as git's credential helpers and kubectl's exec plugins do; run again for every new token.

    The command line is split as a POSIX shell would (``shlex``) and run without a shell. It
    inherits the bridge's environment, minus the bridge's own secrets, with stdin closed. Raises
    TokenRequestFailed (non-zero exit: ``data.exitCode`` and the masked first line of its
    stderr), UpstreamTimeout (no token within ``timeout``), UpstreamMalformed (nothing usable
    printed), BadConfiguration (the program cannot be started).
    """

    name = "command"
    issues_fresh = False  # the backend may hand out a token it made earlier

    def __init__(self, command: str, *, timeout: float, max_output: int = DEFAULT_MAX_BODY) -> None:
        self._argv = shlex.split(command)
        self._timeout = timeout
        self._max_output = max_output

    async def fetch(self) -> str:
        env = {k: v for k, v in os.environ.items() if k not in _WITHHELD_ENV}
        try:
            process = await asyncio.create_subprocess_exec(
                *self._argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise BadConfiguration(
                f"cannot run CIRCLE_TOKEN_COMMAND ({self._argv[0]}: {exc.strerror})", invalid=["CIRCLE_TOKEN_COMMAND"]
            ) from None
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            async with asyncio.timeout(self._timeout):
                out, err, code = await asyncio.gather(
                    _read_capped_stream(process.stdout, self._max_output),
                    _read_capped_stream(process.stderr, 64 * 1024),
                    process.wait(),
                )
        except TimeoutError:
            raise UpstreamTimeout(
                f"CIRCLE_TOKEN_COMMAND printed no token within {self._timeout:g} s", upstream="command"
            ) from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        if code != 0:
            first_line = (err or b"").decode("utf-8", "replace").strip().splitlines()[:1]
            raise TokenRequestFailed(
                f"CIRCLE_TOKEN_COMMAND exited with status {code}",
                tokenSource="command",
                exitCode=code,
                upstreamMessage=upstream_message_of(first_line[0] if first_line else None),
            )
        if out is None:
            raise UpstreamMalformed(
                f"CIRCLE_TOKEN_COMMAND printed more than {self._max_output} bytes", upstream="command"
            )
        log.info("token obtained from CIRCLE_TOKEN_COMMAND")
        return parse_token_body(out, "CIRCLE_TOKEN_COMMAND", bare=True)

    async def aclose(self) -> None:
        return None


class BackendTokenSource:
    """GETs a token from the developer's backend (``CIRCLE_TOKEN_BACKEND_URL``), with one optional
    header (``CIRCLE_TOKEN_BACKEND_HEADER``, e.g. the backend's own API key). The reply is
    ``{"Token": ...}`` (as Circle's endpoint, double-encoded or not), a JSON string, or the bare
    token. Raises TokenRequestFailed (``data.httpStatus``), UpstreamTimeout, UpstreamMalformed."""

    name = "url"
    issues_fresh = False

    def __init__(
        self,
        url: str,
        *,
        header: str | None,
        timeout: float,
        verify: ssl.SSLContext | bool = True,
        max_body: int = DEFAULT_MAX_BODY,
    ) -> None:
        self.url = url
        self._headers = {"Accept": "application/json, text/plain", "Accept-Encoding": "identity"}
        if header:
            name, _, value = header.partition(":")
            self._headers[name.strip()] = value.strip()
        self._max_body = max_body
        self._client = httpx.AsyncClient(
            trust_env=True, timeout=httpx.Timeout(timeout), verify=verify, follow_redirects=False
        )

    async def fetch(self) -> str:
        try:
            async with self._client.stream("GET", self.url, headers=self._headers) as reply:
                status = reply.status_code
                body = await read_capped(reply, self._max_body, "url")
        except httpx.TimeoutException:
            raise UpstreamTimeout("the token backend did not answer in time", upstream="url") from None
        except httpx.RemoteProtocolError:
            raise UpstreamMalformed("the token backend broke off its reply", upstream="url") from None
        except httpx.HTTPError as exc:
            raise TokenRequestFailed(
                f"cannot reach CIRCLE_TOKEN_BACKEND_URL ({type(exc).__name__})", tokenSource="url"
            ) from None
        log.debug("GET token backend -> HTTP %d", status)
        if status != 200:
            cause = (
                "the backend refused this bridge: check CIRCLE_TOKEN_BACKEND_HEADER" if status in (401, 403) else None
            )
            raise TokenRequestFailed(
                f"the token backend answered HTTP {status}",
                tokenSource="url",
                httpStatus=status,
                upstreamMessage=upstream_message(body),
                likelyCause=cause,
                retryable=status >= 500 or status in (408, 429),
            )
        return parse_token_body(body, "CIRCLE_TOKEN_BACKEND_URL", bare=True)

    async def aclose(self) -> None:
        await self._client.aclose()
