"""`consultbot sync` and `consultbot slots` on the bundled demo calendars, as an operator runs them."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest

from bot import database
from bot.config import BUNDLED_EXAMPLE
from scheduling.records import FeedState
from scheduling.repository import SqlAvailabilityStore
from tests.calendar_servers import FeedServer
from tests.fake_telegram import FakeTelegram
from tests.harness import BotProcess
from tests.test_console import _consultbot
from tests.test_restart import STARTUP

CALENDARS = BUNDLED_EXAMPLE.parent / "calendars"
DAY_LINE = re.compile(r"^  (\w{3} \d{2} \w{3} \d{4})  ((?:\d{2}:\d{2} ?)+)$")


def _config_with(tmp_path: Path, old: str, new: str) -> Path:
    text = BUNDLED_EXAMPLE.read_text(encoding="utf-8").replace('"calendars/', f'"{CALENDARS}/')
    assert old in text
    config = tmp_path / "consultbot.toml"
    config.write_text(text.replace(old, new), encoding="utf-8")
    return config


def _days(output: str) -> dict[date, list[time]]:
    days = {}
    for line in output.splitlines():
        if found := DAY_LINE.match(line):
            day = datetime.strptime(found[1], "%a %d %b %Y").replace(tzinfo=UTC).date()
            days[day] = [time.fromisoformat(start) for start in found[2].split()]
    return days


def test_sync_reads_every_demo_calendar_and_reports_what_it_stored(database_url: str) -> None:
    """Each expert's feed is listed as updated, with its events and busy intervals, and no error."""
    result = _consultbot("sync", DATABASE_URL=database_url)

    assert result.returncode == 0, result.stderr
    for expert in ("amelia", "rahul", "sofia"):
        assert f"{expert}  {CALENDARS}/{expert}.ics" in result.stdout
    assert result.stdout.count("status          updated: ") == 3
    assert "last error      never" in result.stdout
    assert re.search(r"busy intervals  [1-9]\d*", result.stdout)


def test_sync_reports_an_unreachable_feed_with_its_reason_and_fails(tmp_path: Path) -> None:
    """A calendar server that refuses connections is shown as failed, with why and when, and the exit code says so."""
    config = _config_with(tmp_path, f'"{CALENDARS}/amelia.ics"', '"http://127.0.0.1:9/amelia/private-token/basic.ics"')

    result = _consultbot("sync", CONSULTBOT_CONFIG=str(config), DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")

    assert result.returncode == 1
    assert "status          failed: cannot connect to 127.0.0.1:9" in result.stdout
    assert "last error      20" in result.stdout
    assert "private-token" not in result.stdout + result.stderr
    assert result.stdout.count("status          updated: ") == 2


def test_slots_lie_in_the_expert_s_working_hours_around_the_weekly_meetings(database_url: str) -> None:
    """Sofía works 08:30-12:00 and 13:00-17:00 New York time and has a Monday 09:00 sync: slots respect both."""
    result = _consultbot(
        "slots", "--expert", "sofia", "--days", "14", "--tz", "America/New_York", DATABASE_URL=database_url
    )

    days = _days(result.stdout)
    assert result.returncode == 0, result.stderr
    assert "Sofía Ortega (sofia)" in result.stdout
    assert "times in America/New_York" in result.stdout
    assert days
    starts = [start for day_starts in days.values() for start in day_starts]
    assert all(time(8, 30) <= start <= time(11, 15) or time(13) <= start <= time(16, 15) for start in starts)
    mondays = [starts for day, starts in days.items() if day.weekday() == 0]
    assert all(not time(8, 30) <= start < time(10, 15) for starts in mondays for start in starts)
    assert not [day for day in days if day.weekday() >= 5]


def test_slots_in_another_zone_are_the_same_instants_shown_there(tmp_path: Path) -> None:
    """Rahul's 10:00 India time is shown as 05:30 or 04:30 London time, depending on British summer time."""
    database = f"sqlite:///{tmp_path}/bot.db"
    at_home = _consultbot("slots", "--expert", "rahul", "--days", "5", DATABASE_URL=database)
    in_london = _consultbot("slots", "--expert", "rahul", "--days", "5", "--tz", "Europe/London", DATABASE_URL=database)

    home_days, london_days = _days(at_home.stdout), _days(in_london.stdout)
    assert sum(map(len, home_days.values())) == sum(map(len, london_days.values()))
    assert "times in Asia/Kolkata" in at_home.stdout
    assert all(time(4, 30) <= start for starts in london_days.values() for start in starts)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("--expert", "nobody"), "no expert 'nobody'; the experts are: amelia, rahul, sofia"),
        (("--tz", "Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (("--days", "0"), "expected a whole number of days"),
    ],
)
def test_slots_explains_a_bad_argument(tmp_path: Path, arguments: tuple[str, ...], expected: str) -> None:
    """A typo on the command line gets one clear line and exit code 2."""
    result = _consultbot("slots", *arguments, DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")

    assert result.returncode == 2
    assert expected in result.stderr


def test_a_working_hours_typo_stops_start_up_naming_the_expert_and_day(tmp_path: Path) -> None:
    """'25:00' is not a time: the error names the file, the expert, the weekday and the problem."""
    config = _config_with(tmp_path, 'friday = ["09:00-13:00"]', 'friday = ["09:00-25:00"]')

    result = _consultbot("slots", CONSULTBOT_CONFIG=str(config), DATABASE_URL=f"sqlite:///{tmp_path}/bot.db")

    assert result.returncode == 2
    assert f'configuration error in {config}: experts[0] ("amelia").hours.friday' in result.stderr
    assert "25:00" in result.stderr
    assert "Traceback" not in result.stderr


def _busy_in_the_coming_days() -> str:
    """A feed with a meeting tomorrow and the day after: inside the horizon of a bot running on today's clock."""
    today = datetime.now(UTC).date()
    events = "".join(
        "BEGIN:VEVENT\r\n"
        f"UID:meeting-{day:%Y%m%d}@example.com\r\n"
        f"DTSTAMP:{today:%Y%m%d}T000000Z\r\n"
        f"DTSTART:{day:%Y%m%d}T090000Z\r\n"
        f"DTEND:{day:%Y%m%d}T100000Z\r\n"
        "SUMMARY:Client meeting\r\n"
        "END:VEVENT\r\n"
        for day in (today + timedelta(days=1), today + timedelta(days=2))
    )
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//consultbot tests//EN\r\n{events}END:VCALENDAR\r\n"


async def test_the_running_bot_reads_the_experts_calendars_on_start(
    fake: FakeTelegram, database_url: str, tmp_path: Path
) -> None:
    """`consultbot run` syncs every feed as it starts serving, and stores what it read."""
    # `consultbot run` reads the wall clock: a feed of fixed dates would fall out of its horizon as time passes.
    async with FeedServer() as server:
        url = server.publish("amelia.ics", _busy_in_the_coming_days())
        config = _config_with(tmp_path, f'"{CALENDARS}/amelia.ics"', f'"{url}"')
        bot = BotProcess(fake, database_url, CONSULTBOT_CONFIG=str(config))
        await bot.start()
        try:
            await asyncio.wait_for(server.first_request_to("/feeds/amelia.ics"), timeout=STARTUP)
            for _ in range(100):  # the feed is read and stored moments after it is fetched
                feeds = await _stored_feeds(database_url)
                if all(feed.last_success_at for feed in feeds):
                    break
                await asyncio.sleep(0.05)
        finally:
            await bot.stop()

    assert {feed.expert_key for feed in feeds} == {"amelia", "rahul", "sofia"}
    assert all(feed.busy_intervals > 0 for feed in feeds)
    assert "consultbot/" in server.requests_to("/feeds/amelia.ics")[0].headers["User-Agent"]
    assert "Traceback" not in bot.logged


async def _stored_feeds(database_url: str) -> list[FeedState]:
    engine = database.create_engine(database_url)
    try:
        return await SqlAvailabilityStore(engine).feeds()
    finally:
        await engine.dispose()
