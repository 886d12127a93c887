"""The CalDAV outbox: consultations written into the expert's own calendar on a real Radicale, retried, never lost."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp import web
from icalendar import Calendar, Event

from bot.config import BUNDLED_EXAMPLE, BusinessConfig, load_config
from bot.workers import CalendarWriter, caldav_passwords, retry_delay
from scheduling.caldav import event_url
from scheduling.ics import read_busy
from scheduling.intervals import Interval
from scheduling.model import CalDavAccount
from scheduling.records import Booking
from tests import calendar_servers
from tests.calendar_servers import RadicaleServer, calendar_with_event
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram
from tests.harness import BotProcess
from tests.local_server import LocalServer
from tests.test_console import _consultbot
from tests.test_reminders import World, booking_world
from tests.test_restart import STARTUP

CALENDARS = BUNDLED_EXAMPLE.parent / "calendars"


def _with_caldav(url: str, *, read_back: bool = False) -> BusinessConfig:
    """The bundled configuration, Amelia writing her consultations to `url` (and reading it as her calendar)."""
    config = load_config(BUNDLED_EXAMPLE)
    amelia = config.experts[0]
    update: dict[str, Any] = {"caldav": CalDavAccount(url=url)}
    if read_back:
        update["calendars"] = (url,)
    return config.model_copy(update={"experts": (amelia.model_copy(update=update), *config.experts[1:])})


@asynccontextmanager
async def _writer(
    world: World, *, max_attempts: int = 10, jitter: Callable[[], float] = lambda: 0.0
) -> AsyncIterator[CalendarWriter]:
    async with aiohttp.ClientSession() as session:
        yield CalendarWriter(
            store=world.store,
            experts=world.config.experts,
            session=session,
            passwords=caldav_passwords(world.config.experts, {}),
            company=world.config.company.name,
            fallback_email="consultations@meridian-outsourcing.example",
            clock=world.clock,
            max_attempts=max_attempts,
            jitter=jitter,
        )


async def _stored(world: World, booking: Booking) -> tuple[int, Event | None]:
    """What the expert's collection holds for the consultation: the status of a GET and the event, if any."""
    caldav = world.config.experts[0].caldav
    assert caldav is not None
    async with aiohttp.ClientSession() as session, session.get(event_url(caldav, booking.uid)) as response:
        if response.status != 200:
            return response.status, None
        events = [
            event for event in Calendar.from_ical(await response.read()).walk("VEVENT") if isinstance(event, Event)
        ]
    assert len(events) == 1
    return 200, events[0]


async def _collection(url: str) -> bytes:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        return await response.read()


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[RadicaleServer]:
    """A real Radicale, running for the test."""
    with RadicaleServer(tmp_path / "radicale") as server:
        yield server


async def test_a_booking_is_written_to_the_expert_s_calendar(
    database_url: str, clock: FixedClock, radicale: RadicaleServer
) -> None:
    """The event Radicale holds parses, with the consultation's UID, its start and end in UTC, and SEQUENCE 0."""
    url = await radicale.make_calendar("amelia", "consultations")
    async with booking_world(database_url, clock, _with_caldav(url)) as world, _writer(world) as writer:
        booking = await world.book(days_ahead=3)

        written = await writer.write_due()
        status, event = await _stored(world, booking)
        writes = await world.store.calendar_writes()

    assert written == 1
    assert status == 200
    assert event is not None
    assert str(event["UID"]) == booking.uid
    assert event.decoded("DTSTART") == booking.starts_at
    assert event.decoded("DTEND") == booking.ends_at
    assert event.decoded("SEQUENCE") == 0
    assert "Ada Lovelace" in str(event["SUMMARY"])
    assert [(row["action"], row["status"], row["attempts"]) for row in writes] == [("create", "done", 1)]
    assert writes[0]["done_at"] == clock.now


async def test_a_move_rewrites_the_event_at_the_new_time_with_sequence_1(
    database_url: str, clock: FixedClock, radicale: RadicaleServer
) -> None:
    """The same UID, the new start, SEQUENCE raised: calendar apps update the event they hold."""
    url = await radicale.make_calendar("amelia", "consultations")
    async with booking_world(database_url, clock, _with_caldav(url)) as world, _writer(world) as writer:
        booking = await world.book(days_ahead=3)
        assert booking.id is not None
        await writer.write_due()
        new_start = await world.slot(days_ahead=5, moving=booking)

        moved = await world.bookings.move(booking.id, start=new_start, prospect_ref=7)
        written = await writer.write_due()
        _, event = await _stored(world, booking)

    assert written == 1
    assert event is not None
    assert str(event["UID"]) == booking.uid
    assert event.decoded("DTSTART") == moved.starts_at
    assert moved.starts_at != booking.starts_at
    assert event.decoded("SEQUENCE") == 1


async def test_a_cancellation_deletes_the_event(database_url: str, clock: FixedClock, radicale: RadicaleServer) -> None:
    """After the cancel is written, the collection no longer holds the consultation."""
    url = await radicale.make_calendar("amelia", "consultations")
    async with booking_world(database_url, clock, _with_caldav(url)) as world, _writer(world) as writer:
        booking = await world.book(days_ahead=3)
        assert booking.id is not None
        await writer.write_due()

        await world.bookings.cancel(booking.id, prospect_ref=7)
        written = await writer.write_due()
        status, _ = await _stored(world, booking)
        writes = await world.store.calendar_writes()

    assert written == 1
    assert status == 404
    assert [(row["action"], row["status"]) for row in writes] == [("create", "done"), ("delete", "done")]


async def test_a_booking_cancelled_before_its_first_write_is_created_then_deleted_in_order(
    database_url: str, clock: FixedClock, radicale: RadicaleServer
) -> None:
    """The writes go in the order they were queued, so the delete never runs ahead of the create."""
    url = await radicale.make_calendar("amelia", "consultations")
    async with booking_world(database_url, clock, _with_caldav(url)) as world, _writer(world) as writer:
        booking = await world.book(days_ahead=3)
        assert booking.id is not None
        await world.bookings.cancel(booking.id, prospect_ref=7)

        written = await writer.write_due()
        status, _ = await _stored(world, booking)

    assert written == 2
    assert status == 404


async def test_with_the_server_down_the_write_waits_and_goes_through_when_it_is_back(
    database_url: str, clock: FixedClock, radicale: RadicaleServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refused connection leaves the write pending, due again 30 s later; nothing is lost, and it goes through."""
    url = await radicale.make_calendar("amelia", "consultations")
    port = int(radicale.base_url.rsplit(":", 1)[1])
    async with booking_world(database_url, clock, _with_caldav(url)) as world, _writer(world) as writer:
        booking = await world.book(days_ahead=3)
        radicale.stop()

        while_down = await writer.write_due()
        [pending] = await world.store.calendar_writes()
        before_due = await writer.write_due()
        # Back on the same address, as a restarted server is.
        monkeypatch.setattr(calendar_servers, "_free_port", lambda: port)
        radicale.start()
        still_before_due = await writer.write_due()
        clock.now = pending["next_attempt_at"]
        when_due = await writer.write_due()
        status, event = await _stored(world, booking)
        [done] = await world.store.calendar_writes()

    assert (while_down, before_due, still_before_due, when_due) == (0, 0, 0, 1)
    assert pending["status"] == "pending"
    assert pending["attempts"] == 1
    assert pending["next_attempt_at"] - booking.created_at == timedelta(seconds=30)
    assert "cannot connect to 127.0.0.1" in pending["last_error"]
    assert status == 200
    assert event is not None
    assert str(event["UID"]) == booking.uid
    assert (done["status"], done["attempts"]) == ("done", 2)


class _RefusingServer(LocalServer):
    """A CalDAV server that answers every request with one status."""

    def __init__(self, status: int) -> None:
        super().__init__()
        self.status = status
        self.requests: list[str] = []

    async def start(self) -> None:
        """Serve on a free port."""
        app = web.Application()
        app.router.add_route("*", "/{path:.*}", self._answer)
        await self._serve(app, shutdown_timeout=0.5)

    async def _answer(self, request: web.Request) -> web.Response:
        self.requests.append(f"{request.method} {request.path}")
        return web.Response(status=self.status, text="no")


async def test_a_permanent_refusal_makes_the_write_dead_at_once(
    database_url: str, clock: FixedClock, caplog: pytest.LogCaptureFixture
) -> None:
    """A 403 will not change by itself: the write is dead after one try, the reason kept and logged, no secret."""
    caplog.set_level(logging.INFO)
    async with _RefusingServer(403) as server:
        config = _with_caldav(f"{server.url}/amelia/Zx81-secret-collection-token/")
        async with booking_world(database_url, clock, config) as world, _writer(world) as writer:
            await world.book(days_ahead=3)

            first = await writer.write_due()
            clock.now += timedelta(days=1)
            later = await writer.write_due()
            [write] = await world.store.calendar_writes()

    assert (first, later) == (0, 0)
    assert len(server.requests) == 1
    assert (write["status"], write["attempts"]) == ("dead", 1)
    assert "HTTP 403" in write["last_error"]
    assert "the account may not write to this collection" in write["last_error"]
    assert "Zx81" not in write["last_error"]
    [logged] = [record for record in caplog.records if record.name == "bot.workers"]
    assert logged.levelno == logging.ERROR
    assert "is dead (permanent failure)" in logged.getMessage()
    assert "HTTP 403" in logged.getMessage()
    assert "Zx81" not in caplog.text


async def test_a_write_that_keeps_failing_is_dead_after_max_attempts_with_growing_waits(
    database_url: str, clock: FixedClock
) -> None:
    """503 after 503: tried again after 30 s, 1 min, 2 min…, and given up after the last allowed try."""
    async with _RefusingServer(503) as server:
        config = _with_caldav(f"{server.url}/amelia/consultations/")
        async with booking_world(database_url, clock, config) as world, _writer(world, max_attempts=4) as writer:
            await world.book(days_ahead=3)
            waits, statuses = [], []
            for _ in range(5):
                before = clock.now
                await writer.write_due()
                [write] = await world.store.calendar_writes()
                statuses.append(write["status"])
                if write["status"] == "pending":
                    waits.append(write["next_attempt_at"] - before)
                    clock.now = write["next_attempt_at"]

    assert len(server.requests) == 4
    assert statuses == ["pending", "pending", "pending", "dead", "dead"]
    assert waits == [timedelta(seconds=30), timedelta(minutes=1), timedelta(minutes=2)]
    assert "HTTP 503" in write["last_error"]


def test_retry_waits_double_up_to_an_hour_and_spread_by_a_fifth() -> None:
    """30 s, 1 min, 2 min, … capped at 1 h; the jitter moves each by at most 20 % either way."""
    assert [retry_delay(attempt, jitter=0) for attempt in (1, 2, 3, 7, 8, 50)] == [
        timedelta(seconds=30),
        timedelta(minutes=1),
        timedelta(minutes=2),
        timedelta(minutes=32),
        timedelta(hours=1),
        timedelta(hours=1),
    ]
    assert retry_delay(1, jitter=-1) == timedelta(seconds=24)
    assert retry_delay(1, jitter=1) == timedelta(seconds=36)


async def test_the_default_jitter_keeps_retries_within_a_fifth_of_the_wait(
    database_url: str, clock: FixedClock
) -> None:
    """Writes failing together spread out: each waits 24 to 36 seconds before its second try."""
    async with _RefusingServer(503) as server:
        config = _with_caldav(f"{server.url}/amelia/consultations/")
        async with booking_world(database_url, clock, config) as world, aiohttp.ClientSession() as session:
            writer = CalendarWriter(
                store=world.store,
                experts=world.config.experts,
                session=session,
                passwords={},
                company="Meridian",
                fallback_email="team@example.com",
                clock=clock,
            )
            for nth in range(3):
                await world.book(days_ahead=3, nth=nth * 8)

            await writer.write_due()
            writes = await world.store.calendar_writes()

    waits = [write["next_attempt_at"] - clock.now for write in writes]
    assert len(waits) == 3
    assert all(timedelta(seconds=24) <= wait <= timedelta(seconds=36) for wait in waits)


def test_a_missing_caldav_password_stops_start_up_naming_the_variable() -> None:
    """An account that names CALDAV_AMELIA_PASSWORD needs it set; the error says which variable and expert."""
    config = load_config(BUNDLED_EXAMPLE)
    account = CalDavAccount(url="https://dav.example.com/amelia/", username="amelia", password_env="CALDAV_AMELIA_PW")
    experts = (config.experts[0].model_copy(update={"caldav": account}),)

    with pytest.raises(Exception, match=r"CALDAV_AMELIA_PW: is not set; experts\.amelia\.caldav\.password_env"):
        caldav_passwords(experts, {})

    assert caldav_passwords(experts, {"CALDAV_AMELIA_PW": "s3cret"}) == {"amelia": "s3cret"}


async def test_the_echo_of_a_written_consultation_is_not_busy_time(
    database_url: str, clock: FixedClock, radicale: RadicaleServer
) -> None:
    """Amelia's calendar is the collection the bot writes to: reading it back, the bot skips its own events."""
    url = await radicale.make_calendar("amelia", "consultations")
    config = _with_caldav(url, read_back=True)
    async with booking_world(database_url, clock, config) as world, _writer(world) as writer:
        booking = await world.book(days_ahead=3)
        before_echo = await world.slots()
        await writer.write_due()

        await world.sync.sync(["amelia"])
        after_echo = await world.slots()
        [feed] = [state for state in await world.sync.feeds() if state.expert_key == "amelia"]
        body = await _collection(url)
        zone = ZoneInfo("Europe/London")
        reading = read_busy(body, window=Interval(clock.now, clock.now + timedelta(days=30)), zone=zone)
        # A meeting of her own in the same calendar still counts, so the feed is really read.
        other = booking.starts_at + timedelta(days=1)
        meeting = calendar_with_event("board@example.com", "Board meeting", other, other + timedelta(hours=1))
        await radicale.put_event(url, "board-meeting", meeting)
        await world.sync.sync(["amelia"])
        [feed_with_meeting] = [state for state in await world.sync.feeds() if state.expert_key == "amelia"]

    assert booking.uid.encode() in body
    assert reading.events == 1
    assert reading.busy == ()
    assert (feed.events, feed.busy_intervals, feed.last_error) == (1, 0, None)
    assert after_echo == before_echo
    assert booking.starts_at not in after_echo
    assert (feed_with_meeting.events, feed_with_meeting.busy_intervals) == (2, 1)


def _config_file(tmp_path: Path, caldav_url: str) -> Path:
    """The bundled configuration as a file of its own, Amelia's CalDAV account pointing at `caldav_url`."""
    text = BUNDLED_EXAMPLE.read_text(encoding="utf-8").replace('"calendars/', f'"{CALENDARS}/')
    commented = '# caldav = { url = "https://dav.example.com/amelia/consultations/"'
    assert commented in text
    path = tmp_path / "consultbot.toml"
    path.write_text(text.replace(commented, f'caldav = {{ url = "{caldav_url}"'), encoding="utf-8")
    return path


async def test_the_running_bot_writes_consultations_into_the_expert_s_calendar(
    fake: FakeTelegram, database_url: str, tmp_path: Path, radicale: RadicaleServer
) -> None:
    """`consultbot run` starts the CalDAV writer when an expert has an account, with the password from its variable."""
    url = await radicale.make_calendar("amelia", "consultations")
    config = _config_file(tmp_path, url)
    async with booking_world(database_url, FixedClock(datetime.now(UTC)), load_config(config)) as world:
        booking = await world.book(days_ahead=3)
    bot = BotProcess(fake, database_url, CONSULTBOT_CONFIG=str(config), CALDAV_AMELIA_PASSWORD="app-password")
    await bot.start()
    try:
        for _ in range(int(STARTUP * 10)):  # the writer's first round comes moments after start-up
            status, _ = await _stored(world, booking)
            if status == 200:
                break
            await asyncio.sleep(0.1)
    finally:
        exit_code = await bot.stop()

    assert status == 200
    assert exit_code == 0
    assert "app-password" not in bot.logged
    assert "Traceback" not in bot.logged


def test_run_without_the_caldav_password_stops_naming_the_variable(tmp_path: Path) -> None:
    """The password is read at start-up: unset, the bot does not start, and says which variable to set."""
    config = _config_file(tmp_path, "https://dav.example.com/amelia/consultations/")

    result = _consultbot(
        "run",
        CONSULTBOT_CONFIG=str(config),
        DATABASE_URL=f"sqlite:///{tmp_path}/bot.db",
        TELEGRAM_BOT_TOKEN="123456:TEST-TOKEN",
        TELEGRAM_BASE_URL="http://127.0.0.1:9",
    )

    assert result.returncode == 2
    assert "CALDAV_AMELIA_PASSWORD: is not set" in result.stderr
    assert "Traceback" not in result.stderr
