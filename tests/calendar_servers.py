"""Real local calendar servers for tests: an aiohttp feed server that misbehaves on request, and Radicale."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web
from multidict import CIMultiDictProxy

from tests.local_server import LocalServer

__all__ = [
    "FIRST_PUBLISHED",
    "HTML_LOGIN_PAGE",
    "TRUNCATED_ICS",
    "WEEK_ICS",
    "FeedServer",
    "RadicaleServer",
    "ReceivedRequest",
    "calendar_with_event",
]

FIRST_PUBLISHED = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
CALENDAR_TYPE = "text/calendar"

WEEK_ICS = (
    "BEGIN:VCALENDAR\r\n"
    "VERSION:2.0\r\n"
    "PRODID:-//consultbot tests//feed server//EN\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:standup-2026-11-24@example.com\r\n"
    "DTSTAMP:20261120T090000Z\r\n"
    "DTSTART:20261124T090000Z\r\n"
    "DTEND:20261124T093000Z\r\n"
    "SUMMARY:Team stand-up\r\n"
    "END:VEVENT\r\n"
    "BEGIN:VEVENT\r\n"
    "UID:client-workshop-2026-11-25@example.com\r\n"
    "DTSTAMP:20261120T090000Z\r\n"
    "DTSTART:20261125T130000Z\r\n"
    "DTEND:20261125T160000Z\r\n"
    "SUMMARY:Client workshop\r\n"
    "END:VEVENT\r\n"
    "END:VCALENDAR\r\n"
)
"""A small, valid feed: two busy events in the week of the fixed clock."""

# Cut inside the second event, as a dropped connection or a full disk at the provider leaves a feed.
TRUNCATED_ICS = WEEK_ICS[: WEEK_ICS.index("DTEND:20261125")]
"""A feed cut off in the middle of an event, which the HTTP layer serves as if it were whole."""

HTML_LOGIN_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>Sign in</title></head>"
    '<body><form method="post"><input name="password" type="password"></form></body></html>\n'
)
"""What a calendar provider answers, with status 200, when a secret link has been revoked."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def calendar_with_event(uid: str, summary: str, start: datetime, end: datetime) -> str:
    """A VCALENDAR holding one VEVENT, as a CalDAV server wants each PUT body to be."""
    return (
        "BEGIN:VCALENDAR\r\n"
        "VERSION:2.0\r\n"
        "PRODID:-//consultbot tests//radicale//EN\r\n"
        "BEGIN:VEVENT\r\n"
        f"UID:{uid}\r\n"
        "DTSTAMP:20261120T090000Z\r\n"
        f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\n"
        f"DTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}\r\n"
        f"SUMMARY:{summary}\r\n"
        "END:VEVENT\r\n"
        "END:VCALENDAR\r\n"
    )


@dataclass(frozen=True)
class ReceivedRequest:
    """One request the feed server received."""

    method: str
    path: str
    headers: CIMultiDictProxy[str]


@dataclass
class _Feed:
    body: bytes
    etag: str | None
    last_modified: datetime | None


class FeedServer(LocalServer):
    """A local web server publishing calendar feeds as providers do, with routes that misbehave on purpose.

    Routes: `/feeds/{name}` (a published feed, honouring If-None-Match and If-Modified-Since), `/status/{code}`,
    `/slow` (answers after `slow_seconds`), `/trickle` (a byte at a time, forever), `/redirect/{name}` (302 to
    the feed), `/login-redirect` (302 to an HTML sign-in page), `/large/{size}` (a body with Content-Length),
    `/endless` (no Content-Length, streamed until the client hangs up), `/html` (a sign-in page served 200),
    `/html-as-calendar` (HTML behind a calendar Content-Type) and `/truncated` (a feed cut off mid-event).
    """

    def __init__(self, *, slow_seconds: float = 5.0) -> None:
        super().__init__()
        self.slow_seconds = slow_seconds
        self.requests: list[ReceivedRequest] = []
        self._arrived = asyncio.Condition()
        self._feeds: dict[str, _Feed] = {}

    def publish(
        self, name: str, body: str | bytes, *, etag: bool = True, last_modified: datetime | None = FIRST_PUBLISHED
    ) -> str:
        """Serve `body` at /feeds/`name` (replacing what was there, so the ETag changes) and return its URL."""
        data = body.encode() if isinstance(body, str) else body
        tag = f'"{hashlib.sha256(data).hexdigest()[:16]}"' if etag else None
        self._feeds[name] = _Feed(data, tag, last_modified)
        return self.url_for(f"/feeds/{name}")

    def url_for(self, path: str) -> str:
        """The absolute URL of `path` on this server."""
        return f"{self.url}{path}"

    def requests_to(self, path: str) -> list[ReceivedRequest]:
        """The requests received for `path`, oldest first."""
        return [request for request in self.requests if request.path == path]

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        app = web.Application(middlewares=[self._record])
        routes: list[tuple[str, _Handler]] = [
            ("/feeds/{name}", self._feed),
            ("/status/{code}", self._status),
            ("/slow", self._slow),
            ("/trickle", self._trickle),
            ("/redirect/{name}", self._redirect),
            ("/login-redirect", self._login_redirect),
            ("/large/{size}", self._large),
            ("/endless", self._endless),
            ("/html", self._html),
            ("/html-as-calendar", self._html_as_calendar),
            ("/truncated", self._truncated),
        ]
        for path, handler in routes:
            app.router.add_get(path, handler)
        await self._serve(app, shutdown_timeout=0.5)

    async def first_request_to(self, path: str) -> ReceivedRequest:
        """Wait until `path` has been requested, and return that first request."""
        async with self._arrived:
            await self._arrived.wait_for(lambda: bool(self.requests_to(path)))
        return self.requests_to(path)[0]

    @web.middleware
    async def _record(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        self.requests.append(ReceivedRequest(request.method, request.path, request.headers))
        async with self._arrived:
            self._arrived.notify_all()
        return await handler(request)

    async def _feed(self, request: web.Request) -> web.StreamResponse:
        feed = self._feeds.get(request.match_info["name"])
        if feed is None:
            raise web.HTTPNotFound
        headers = {}
        if feed.etag is not None:
            headers["ETag"] = feed.etag
        if feed.last_modified is not None:
            headers["Last-Modified"] = format_datetime(feed.last_modified, usegmt=True)
        if _unchanged_for(request, feed):
            return web.Response(status=304, headers=headers)
        return web.Response(body=feed.body, content_type=CALENDAR_TYPE, charset="utf-8", headers=headers)

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return web.Response(status=int(request.match_info["code"]), text="Something went wrong.")

    async def _slow(self, request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(self.slow_seconds)
        return _calendar_response(WEEK_ICS)

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": CALENDAR_TYPE})
        await response.prepare(request)
        while True:
            await response.write(b" ")
            await asyncio.sleep(0.05)

    async def _redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(f"/feeds/{request.match_info['name']}")

    async def _login_redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/html")

    async def _large(self, request: web.Request) -> web.StreamResponse:
        size = int(request.match_info["size"])
        return _calendar_response(WEEK_ICS.encode().ljust(size, b"\n"))

    async def _endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": CALENDAR_TYPE})
        response.enable_chunked_encoding()
        await response.prepare(request)
        chunk = b"X-FILLER:" + b"x" * 1013 + b"\r\n"
        while True:
            await response.write(chunk)

    async def _html(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=HTML_LOGIN_PAGE, content_type="text/html")

    async def _html_as_calendar(self, request: web.Request) -> web.StreamResponse:
        return _calendar_response(b"\xef\xbb\xbf \r\n" + HTML_LOGIN_PAGE.encode())

    async def _truncated(self, request: web.Request) -> web.StreamResponse:
        return _calendar_response(TRUNCATED_ICS)


def _calendar_response(body: str | bytes) -> web.Response:
    data = body.encode() if isinstance(body, str) else body
    return web.Response(body=data, content_type=CALENDAR_TYPE)


def _unchanged_for(request: web.Request, feed: _Feed) -> bool:
    """Whether the request's validators match the feed (RFC 9110: If-None-Match, when sent, overrides the date)."""
    if request.if_none_match is not None:
        # Weak comparison, as If-None-Match asks for.
        sent = {tag.value for tag in request.if_none_match}
        return feed.etag is not None and ("*" in sent or feed.etag.strip('"') in sent)
    if request.if_modified_since is not None and feed.last_modified is not None:
        return feed.last_modified <= request.if_modified_since
    return False


class RadicaleServer:
    """A real Radicale CalDAV server in a subprocess, without authentication, storing under `folder`."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.base_url = ""
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, *, timeout: float = 10.0) -> None:
        """Start Radicale on a free local port and return once it accepts connections."""
        self.folder.mkdir(parents=True, exist_ok=True)
        port = _free_port()
        config = self.folder / "config"
        config.write_text(
            "[server]\n"
            f"hosts = 127.0.0.1:{port}\n"
            "[auth]\n"
            "type = none\n"
            "[storage]\n"
            f"filesystem_folder = {self.folder / 'collections'}\n"
            "[web]\n"
            "type = none\n"
            "[logging]\n"
            "level = warning\n"
        )
        log = self.folder / "radicale.log"
        # HOME points at the folder so a developer's ~/.config/radicale/config cannot change the test server.
        environment = {**os.environ, "HOME": str(self.folder)}
        environment.pop("RADICALE_CONFIG", None)
        with log.open("wb") as output:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "radicale", "--config", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while not _accepts_connections(port):
            if self._process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"Radicale did not start on port {port}:\n{log.read_text(errors='replace')}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server, killing it if it does not exit promptly."""
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def collection_url(self, user: str, name: str) -> str:
        """The URL of `user`'s collection `name` (a trailing slash, as CalDAV collections have)."""
        return f"{self.base_url}/{user}/{name}/"

    async def make_calendar(self, user: str, name: str) -> str:
        """Create `user`'s calendar collection `name` (and the user's home if new) and return its URL."""
        url = self.collection_url(user, name)
        async with aiohttp.ClientSession() as session:
            # Radicale creates a collection only inside an existing one; 405 means the home is already there.
            async with session.request("MKCOL", f"{self.base_url}/{user}/") as response:
                if response.status not in (201, 405):
                    raise RuntimeError(f"MKCOL /{user}/ answered {response.status}: {await response.text()}")
            async with session.request("MKCALENDAR", url) as response:
                if response.status != 201:
                    raise RuntimeError(f"MKCALENDAR {url} answered {response.status}: {await response.text()}")
        return url

    async def put_event(self, collection_url: str, uid: str, ics_text: str) -> None:
        """Store `ics_text` (a VCALENDAR with one event) in the collection as `<uid>.ics`."""
        url = f"{collection_url.rstrip('/')}/{uid}.ics"
        async with (
            aiohttp.ClientSession() as session,
            session.put(url, data=ics_text.encode(), headers={"Content-Type": CALENDAR_TYPE}) as response,
        ):
            if response.status not in (201, 204):
                raise RuntimeError(f"PUT {url} answered {response.status}: {await response.text()}")


def _free_port() -> int:
    # Radicale cannot report a port it chose itself, so pick one the kernel just handed out.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _accepts_connections(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False
