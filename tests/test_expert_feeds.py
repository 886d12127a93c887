"""Experts' published feeds: a secret link per expert to their consultations, served over HTTP, listed by the CLI."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from icalendar import Calendar, Event
from multidict import CIMultiDict

from bot.config import BUNDLED_EXAMPLE, BusinessConfig, load_config
from bot.settings import Settings
from bot.web import FeedPublisher, WebServer, build_web_app, start_feed_server, start_web_server
from bot.wiring import Services, open_services
from scheduling.bookings import Attendee
from scheduling.records import Booking
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram
from tests.harness import BotProcess
from tests.test_console import _consultbot
from tests.test_restart import STARTUP

CALENDARS = BUNDLED_EXAMPLE.parent / "calendars"
ADA = Attendee(
    prospect_ref=1,
    lead_ref=1,
    chat_id=None,
    name="Ada Lovelace",
    email="ada@example.com",
    zone="Europe/Berlin",
    company="Analytical Engines Ltd",
    topic="HR & payroll",
)
FEED_LINE = re.compile(r"^  feed         (\S+)$", re.MULTILINE)


@dataclass
class Published:
    """The bot's services and its feed server, running on one database."""

    services: Services
    server: WebServer

    def url(self, token: str) -> str:
        """The feed URL of a token on the running server."""
        return f"{self.server.url}/calendars/{token}.ics"


@asynccontextmanager
async def _published(database_url: str, config: BusinessConfig | None = None) -> AsyncIterator[Published]:
    settings = Settings(database_url=database_url, http_port=0)
    async with open_services(settings, config or load_config(BUNDLED_EXAMPLE)) as services:
        await services.calendar_sync.sync()
        server = await start_feed_server(settings, services)
        try:
            yield Published(services, server)
        finally:
            await server.stop()


async def _book(services: Services, services_wanted: tuple[str, ...] = ("hr",), *, nth: int = 0) -> Booking:
    experts = await services.bookings.assign(services_wanted)
    # Two days ahead: the prospect may still cancel (until 12 hours before), whenever the test runs.
    soonest = datetime.now(UTC) + timedelta(days=2)
    offers = [offer for offer in await services.bookings.offers(experts) if offer.slot.start >= soonest]
    offer = offers[nth]
    return await services.bookings.book(expert_key=offer.expert.key, start=offer.slot.start, attendee=ADA)


async def _get(url: str, **headers: str) -> tuple[int, CIMultiDict[str], bytes]:
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        return response.status, CIMultiDict(response.headers), await response.read()


def _events(body: bytes) -> dict[str, Event]:
    calendar = Calendar.from_ical(body)
    return {str(event["UID"]): event for event in calendar.walk("VEVENT") if isinstance(event, Event)}


async def test_a_booked_consultation_is_in_the_expert_s_feed_at_its_utc_start(database_url: str) -> None:
    """The expert's calendar app reads the consultation with its UID and its start in UTC, as an iCalendar feed."""
    async with _published(database_url) as published:
        booking = await _book(published.services)
        token = await published.services.bookings.feed_token(booking.expert_key)

        status, headers, body = await _get(published.url(token))

    events = _events(body)
    assert status == 200
    assert headers["Content-Type"] == "text/calendar; charset=utf-8"
    assert headers["Cache-Control"] == "private, max-age=300"
    assert list(events) == [booking.uid]
    start = events[booking.uid].decoded("DTSTART")
    assert start == booking.starts_at.astimezone(UTC)
    assert start.utcoffset() == timedelta(0)
    assert "Ada Lovelace" in str(events[booking.uid]["SUMMARY"])


async def test_an_unchanged_feed_is_answered_304_on_its_etag(database_url: str) -> None:
    """A calendar app that sends back the ETag gets 304 and no body while nothing has changed."""
    async with _published(database_url) as published:
        booking = await _book(published.services)
        url = published.url(await published.services.bookings.feed_token(booking.expert_key))
        _, first, _ = await _get(url)

        status, headers, body = await _get(url, **{"If-None-Match": first["ETag"]})
        weak_status, _, _ = await _get(url, **{"If-None-Match": f"W/{first['ETag']}"})
        other_status, _, _ = await _get(url, **{"If-None-Match": '"something-else"'})

    assert re.fullmatch(r'"[0-9a-f]{32}"', first["ETag"])
    assert status == 304
    assert body == b""
    assert headers["ETag"] == first["ETag"]
    assert headers["Cache-Control"] == "private, max-age=300"
    assert weak_status == 304
    assert other_status == 200


async def test_a_cancelled_consultation_disappears_from_the_feed(database_url: str) -> None:
    """After a cancellation the feed no longer holds the event, and its ETag changes so apps fetch it again."""
    async with _published(database_url) as published:
        bookings = published.services.bookings
        kept = await _book(published.services)
        cancelled = await _book(published.services, nth=5)
        assert kept.expert_key == cancelled.expert_key
        url = published.url(await bookings.feed_token(kept.expert_key))
        _, before_headers, before = await _get(url)
        assert cancelled.id is not None

        await bookings.cancel(cancelled.id, prospect_ref=ADA.prospect_ref)
        status, after_headers, after = await _get(url, **{"If-None-Match": before_headers["ETag"]})

    assert set(_events(before)) == {kept.uid, cancelled.uid}
    assert status == 200
    assert list(_events(after)) == [kept.uid]
    assert after_headers["ETag"] != before_headers["ETag"]


async def test_a_consultation_stays_in_the_feed_for_30_days_after_it_ends(database_url: str) -> None:
    """The feed keeps the recent past for the expert's notes, and lets older consultations go."""
    async with _published(database_url) as published:
        booking = await _book(published.services)
        token = await published.services.bookings.feed_token(booking.expert_key)
        statuses_and_events = []
        for age in (timedelta(days=29, hours=23), timedelta(days=30, seconds=1)):
            publisher = FeedPublisher(
                published.services.bookings,
                company="Meridian",
                fallback_email="team@example.com",
                clock=FixedClock(booking.ends_at + age),
            )
            server = await start_web_server(build_web_app(publisher), host="127.0.0.1", port=0)
            try:
                status, _, body = await _get(f"{server.url}/calendars/{token}.ics")
            finally:
                await server.stop()
            statuses_and_events.append((status, list(_events(body))))

    assert statuses_and_events == [(200, [booking.uid]), (200, [])]


async def test_a_wrong_token_is_a_bare_404(database_url: str) -> None:
    """A guessed or mistyped link gets the same 404 as any unknown address: nothing says the route exists."""
    async with _published(database_url) as published:
        token = await published.services.bookings.feed_token("amelia")
        base = published.server.url

        answers = [
            await _get(f"{base}/calendars/{guess}.ics")
            for guess in (token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43, "short", "a" * 200, "%27--")
        ]
        unknown_path = await _get(f"{base}/no/such/page")
        status, _, _ = await _get(f"{base}/calendars/{token}.ics")

    assert status == 200
    assert {answer_status for answer_status, _, _ in answers} == {404}
    assert {body for _, _, body in answers} == {unknown_path[2]}
    assert all("ETag" not in headers for _, headers, _ in answers)


async def test_each_expert_s_link_opens_only_their_own_consultations(database_url: str) -> None:
    """Amelia's link shows Amelia's consultation; Sofía's link shows none of it."""
    async with _published(database_url) as published:
        booking = await _book(published.services, ("hr",))
        bookings = published.services.bookings
        amelia_url = published.url(await bookings.feed_token("amelia"))
        sofia_url = published.url(await bookings.feed_token("sofia"))

        _, _, amelia = await _get(amelia_url)
        _, _, sofia = await _get(sofia_url)

    assert booking.expert_key == "amelia"
    assert list(_events(amelia)) == [booking.uid]
    assert list(_events(sofia)) == []
    assert "Sofía Ortega" in str(Calendar.from_ical(sofia)["X-WR-CALNAME"])


async def test_a_rotated_token_retires_the_old_link_at_once(database_url: str) -> None:
    """After rotation the old link answers 404 and the new one serves the same consultations."""
    async with _published(database_url) as published:
        booking = await _book(published.services)
        bookings = published.services.bookings
        old = await bookings.feed_token(booking.expert_key)
        assert (await _get(published.url(old)))[0] == 200

        new = await bookings.rotate_feed_token(booking.expert_key)
        old_status, _, _ = await _get(published.url(old))
        new_status, _, body = await _get(published.url(new))

    assert new != old
    assert old_status == 404
    assert new_status == 200
    assert list(_events(body)) == [booking.uid]


def _config_with_caldav(tmp_path: Path) -> Path:
    text = BUNDLED_EXAMPLE.read_text(encoding="utf-8").replace('"calendars/', f'"{CALENDARS}/')
    commented = '# caldav = { url = "https://dav.example.com/amelia/consultations/"'
    assert commented in text
    text = text.replace(
        commented,
        'caldav = { url = "https://dav.example.com/amelia/Zx81-secret-collection-token/"',
    )
    config = tmp_path / "consultbot.toml"
    config.write_text(text, encoding="utf-8")
    return config


def test_experts_lists_each_expert_with_calendars_caldav_and_feed_link(tmp_path: Path) -> None:
    """An operator sees every expert's key, name, role, zone, specialties, calendars, CalDAV target and feed link."""
    config = _config_with_caldav(tmp_path)
    environment = {
        "CONSULTBOT_CONFIG": str(config),
        "DATABASE_URL": f"sqlite:///{tmp_path}/bot.db",
        "PUBLIC_URL": "https://bot.example.com/",
    }

    result = _consultbot("experts", **environment)
    again = _consultbot("experts", **environment)

    assert result.returncode == 0, result.stderr
    amelia = result.stdout.split("\n\n")[0]
    assert amelia.splitlines()[:6] == [
        "amelia  Amelia Hughes",
        "  role         Principal consultant, back office",
        "  zone         Europe/London",
        "  specialties  hr, finance, data_entry, qa_compliance",
        f"  calendars    {CALENDARS}/amelia.ics",
        "  caldav       https://dav.example.com/… as amelia (password in $CALDAV_AMELIA_PASSWORD)",
    ]
    assert "Zx81-secret-collection-token" not in result.stdout
    assert "sofia  Sofía Ortega" in result.stdout
    assert "  caldav       none" in result.stdout
    links = FEED_LINE.findall(result.stdout)
    assert len(links) == 3
    assert all(re.fullmatch(r"https://bot\.example\.com/calendars/[A-Za-z0-9_-]{43}\.ics", link) for link in links)
    assert len(set(links)) == 3
    assert FEED_LINE.findall(again.stdout) == links


async def test_rotate_token_prints_a_new_link_and_the_old_one_stops_working(database_url: str) -> None:
    """`consultbot experts rotate-token amelia` prints her new link; the running server 404s the old one at once."""
    async with _published(database_url) as published:
        old = published.url(await published.services.bookings.feed_token("amelia"))
        rahul = published.url(await published.services.bookings.feed_token("rahul"))

        result = await asyncio.to_thread(
            _consultbot, "experts", "rotate-token", "amelia", DATABASE_URL=database_url, HTTP_PORT="8765"
        )
        printed = result.stdout.strip().splitlines()[-1]
        new = published.url(printed.rsplit("/", 1)[-1].removesuffix(".ics"))
        statuses = [(await _get(url))[0] for url in (old, new, rahul)]

    assert result.returncode == 0, result.stderr
    assert re.fullmatch(r"http://127\.0\.0\.1:8765/calendars/[A-Za-z0-9_-]{43}\.ics", printed)
    assert statuses == [404, 200, 200]


def test_rotate_token_of_an_unknown_expert_names_the_experts(tmp_path: Path) -> None:
    """A typo in the key gets one line listing the real keys, and exit code 2."""
    result = _consultbot("experts", "rotate-token", "amelai", DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")

    assert result.returncode == 2
    assert "no expert 'amelai'; the experts are: amelia, rahul, sofia" in result.stderr
    assert result.stdout == ""


async def test_the_running_bot_serves_the_feeds_and_logs_where(
    fake: FakeTelegram, database_url: str, tmp_path: Path
) -> None:
    """`consultbot run` serves the feeds beside polling, on HTTP_PORT, and logs the address it listens on."""
    async with _published(database_url) as published:
        booking = await _book(published.services)
        token = await published.services.bookings.feed_token(booking.expert_key)
    port = _free_port()
    bot = BotProcess(fake, database_url, HTTP_PORT=str(port))
    await bot.start()
    try:
        status, body = await _fetch_when_up(f"http://127.0.0.1:{port}/calendars/{token}.ics")
    finally:
        exit_code = await bot.stop()

    assert status == 200
    assert list(_events(body)) == [booking.uid]
    assert exit_code == 0
    assert f"serving experts' calendar feeds on http://127.0.0.1:{port}" in bot.logged
    assert token not in bot.logged
    assert "Traceback" not in bot.logged


async def _fetch_when_up(url: str) -> tuple[int, bytes]:
    deadline = asyncio.get_running_loop().time() + STARTUP
    while True:
        try:
            status, _, body = await _get(url)
        except aiohttp.ClientConnectionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            return status, body


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
