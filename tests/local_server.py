"""An aiohttp application served on a free local port: what the test servers have in common."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from aiohttp import web


class LocalServer:
    """Serves an aiohttp application on 127.0.0.1 at a port the system picks; an async context manager."""

    def __init__(self) -> None:
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Start serving."""
        raise NotImplementedError

    async def _serve(self, app: web.Application, *, shutdown_timeout: float) -> None:
        # handler_cancellation stops a handler as soon as its client hangs up (a slow route, a long poll),
        # so shutdown is quick and nothing answers a client that is gone.
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=shutdown_timeout, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Shut the server down."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
