"""The bot's own HTTP server: experts' private calendar feeds of their consultations, on aiohttp."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from aiohttp import web

from bot.settings import Settings
from bot.wiring import Services, utc_now
from bot.workers import fallback_email
from scheduling.bookings import BookingService
from scheduling.invites import expert_feed
from scheduling.service import Clock

FEED_LOOK_BACK = timedelta(days=30)
"""A feed shows consultations from this long ago on, so the expert's calendar keeps the recent past."""
FEED_CACHE_CONTROL = "private, max-age=300"
"""Calendar apps poll every few minutes to hours; a shared cache must never hold a secret feed."""
CALENDAR_TYPE = "text/calendar"

# Tokens are secrets.token_urlsafe(32): 43 URL-safe characters. Anything else is refused before the database
# is asked, so a scanner's garbage costs nothing; the length limit is the column's.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


@dataclass(frozen=True)
class FeedPublisher:
    """What the feed route needs: whose feed a token opens, their consultations, and how to write them."""

    bookings: BookingService
    company: str
    fallback_email: str
    clock: Clock


FEEDS = web.AppKey("feeds", FeedPublisher)


def build_web_app(publisher: FeedPublisher) -> web.Application:
    """The aiohttp application: `GET /calendars/{token}.ics` (HEAD too) and nothing else."""
    app = web.Application()
    app[FEEDS] = publisher
    app.router.add_get("/calendars/{token}.ics", expert_calendar)
    return app


async def expert_calendar(request: web.Request) -> web.StreamResponse:
    """One expert's feed of their confirmed consultations, to whoever holds its secret token."""
    publisher = request.app[FEEDS]
    token = request.match_info["token"]
    expert = await publisher.bookings.expert_for_feed(token) if _TOKEN.fullmatch(token) else None
    if expert is None:
        # The same bare 404 as any unknown path: nothing tells a guesser that the route or a token exists.
        raise web.HTTPNotFound
    now = publisher.clock()
    bookings = await publisher.bookings.upcoming_with(expert.key, since=now - FEED_LOOK_BACK)
    body = expert_feed(bookings, expert, company=publisher.company, fallback_email=publisher.fallback_email, now=now)
    # The feed is the same bytes for the same bookings (DTSTAMP is each booking's last change), so a hash of the
    # body is a strong validator and an unchanged feed costs the app a 304.
    etag = hashlib.sha256(body).hexdigest()[:32]
    headers = {"ETag": f'"{etag}"', "Cache-Control": FEED_CACHE_CONTROL}
    if _unchanged(request, etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type=CALENDAR_TYPE, charset="utf-8", headers=headers)


def _unchanged(request: web.Request, etag: str) -> bool:
    sent = request.if_none_match
    # If-None-Match is compared weakly (RFC 9110 §13.1.2): W/"x" matches "x".
    return sent is not None and any(tag.value in {etag, "*"} for tag in sent)


class WebServer:
    """An aiohttp application served on a host and port; port 0 takes a free one, read back from `port`."""

    def __init__(self, app: web.Application, *, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._requested_port = port
        self._runner: web.AppRunner | None = None
        self.port = port

    @property
    def url(self) -> str:
        """Where the server listens, e.g. http://127.0.0.1:8080."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        """Bind and start serving; OSError when the address cannot be bound."""
        # No access log: every request line carries a feed's secret token in its path.
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await web.TCPSite(runner, self._host, self._requested_port).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = int(runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop accepting connections and finish the requests in hand."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


async def start_web_server(app: web.Application, *, host: str, port: int) -> WebServer:
    """Serve `app` on `host`:`port` (0: a free port) and return the running server."""
    server = WebServer(app, host=host, port=port)
    await server.start()
    return server


async def start_feed_server(
    settings: Settings,
    services: Services,
    *,
    clock: Clock = utc_now,
    extend: Callable[[web.Application], None] | None = None,
) -> WebServer:
    """Serve the experts' feeds, and whatever `extend` adds, on HTTP_HOST and HTTP_PORT (0: a free port)."""
    config = services.config
    publisher = FeedPublisher(
        services.bookings, company=config.company.name, fallback_email=fallback_email(config), clock=clock
    )
    app = build_web_app(publisher)
    if extend is not None:
        extend(app)
    return await start_web_server(app, host=settings.http_host, port=settings.http_port)
