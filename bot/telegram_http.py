"""python-telegram-bot's requests to the Bot API, carried by aiohttp's client instead of httpx.

PTB leaves the transport to a `BaseRequest` (its documented extension point): everything above it, the Bot's
methods, the rate limiter, `BaseRequest._request_wrapper` turning HTTP statuses into `RetryAfter`, `Forbidden`,
`BadRequest` and the rest, is PTB's own and unchanged. Only `do_request`, one HTTP exchange, is done here.

Why: the bot spends about half its CPU in its HTTP client, and most of that in httpx's layers (httpcore's pool,
which checks every idle connection for readability on each request and each response, anyio, h11, a cookie
jar). aiohttp is already the project's HTTP server and calendar client; its client parses HTTP in C, and
carrying the same calls with it costs the bot far less per update (benchmarks/conversation.py).

Timeouts keep PTB's meaning: `pool_timeout` bounds the wait for a free connection of the pool, `connect_timeout`
making one, and `read_timeout` the wait for each part of the answer. aiohttp has no write timeout of its own:
the exchange as a whole is bounded by the sum of the write, connect and read timeouts, so no call can hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram._utils.types import ODVInput, UploadFileDict
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

NEVER_SENT = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
"""aiohttp's errors for a request that never reached the server: no connection could be made."""
POOL_TIMEOUT = "Pool timeout: all connections to the Bot API were busy; the request was not sent"
"""PTB's words for a call that found no free connection in time (telegram_io.surely_not_sent reads them)."""


class AiohttpRequest(BaseRequest):
    """One pool of keep-alive connections to the Bot API server, with PTB's timeouts and error types."""

    def __init__(
        self,
        *,
        connection_pool_size: int,
        connect_timeout: float | None = 5.0,
        read_timeout: float | None = 5.0,
        write_timeout: float | None = 5.0,
        pool_timeout: float | None = 1.0,
        media_write_timeout: float | None = 20.0,
    ) -> None:
        self._pool_size = connection_pool_size
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._write_timeout = write_timeout
        self._pool_timeout = pool_timeout
        self._media_write_timeout = media_write_timeout
        self._session: aiohttp.ClientSession | None = None
        self._places = asyncio.Semaphore(connection_pool_size)

    @property
    def read_timeout(self) -> float | None:
        """The read timeout when a call gives none (PTB adds a long poll's own timeout to it)."""
        return self._read_timeout

    async def initialize(self) -> None:
        """Open the connection pool (again, after a shutdown)."""
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._pool_size, limit_per_host=self._pool_size)
            # No cookies and no automatic decompression: the Bot API sets none and sends plain JSON.
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                headers={"User-Agent": self.USER_AGENT},
            )

    async def shutdown(self) -> None:
        """Close every pooled connection."""
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        write_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        connect_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
        pool_timeout: ODVInput[float] = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """One HTTP exchange: the status and the body, or PTB's TimedOut / NetworkError."""
        if self._session is None or self._session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        files = request_data.multipart_data if request_data else None
        body = None if request_data is None else _body(request_data.json_parameters, files)
        pool = _given(pool_timeout, self._pool_timeout)
        timeout = self._timeout(
            read=_given(read_timeout, self._read_timeout),
            write=_given(write_timeout, self._media_write_timeout if files else self._write_timeout),
            connect=_given(connect_timeout, self._connect_timeout),
        )
        async with self._free_connection(pool):
            try:
                async with self._session.request(method, url, data=body, timeout=timeout) as response:
                    return response.status, await response.read()
            except (TimeoutError, aiohttp.ServerTimeoutError) as error:
                if isinstance(error, aiohttp.ConnectionTimeoutError):
                    raise TimedOut("Connect timeout: the request was not sent") from error
                raise TimedOut from error
            except aiohttp.ClientError as error:
                raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error

    @asynccontextmanager
    async def _free_connection(self, pool_timeout: float | None) -> AsyncIterator[None]:
        """A place among the pool's connections, waited for at most `pool_timeout` (PTB's "Pool timeout")."""
        # aiohttp's own wait for a pooled connection is bounded only together with connecting: wait here instead,
        # so that a call that found no connection is known never to have left (see telegram_io.surely_not_sent).
        if self._places.locked():
            try:
                async with asyncio.timeout(pool_timeout):
                    await self._places.acquire()
            except TimeoutError as error:
                raise TimedOut(POOL_TIMEOUT) from error
        else:
            await self._places.acquire()  # at once: no timer to set for the common case
        try:
            yield
        finally:
            self._places.release()

    @staticmethod
    def _timeout(*, read: float | None, write: float | None, connect: float | None) -> aiohttp.ClientTimeout:
        waits = (read, write, connect)
        total = None if any(wait is None for wait in waits) else sum(wait for wait in waits if wait is not None)
        return aiohttp.ClientTimeout(total=total, connect=connect, sock_connect=connect, sock_read=read)


def _given(value: ODVInput[float], default: float | None) -> float | None:
    """A call's own timeout, or this request's default when the call left it to the default."""
    return default if isinstance(value, DefaultValue) else value


def _body(parameters: dict[str, str], files: UploadFileDict | None) -> Any:
    """The request's parameters, form-encoded as PTB's own transport sends them, or multipart with files."""
    if not files:
        return parameters
    form = aiohttp.FormData()
    for name, value in parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mime_type) in files.items():
        form.add_field(name, content, filename=filename, content_type=mime_type)
    return form
