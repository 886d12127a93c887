"""Calendar feeds and busy intervals kept in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduling.feeds import FetchLimits, FetchResult, Validators, feed_session, fetch_feed
from scheduling.intervals import Interval
from scheduling.repository import SqlAvailabilityStore
from scheduling.service import CalendarSync
from tests.calendar_servers import FeedServer
from tests.conftest import FixedClock
from tests.test_calendar_sync import WEEKLY_STEERING, _amelia, _policy

WORK = "https://calendar.example/amelia/work.ics"
HOME = "https://calendar.example/amelia/home.ics"
_LIMITS = FetchLimits(connect_timeout=5, total_timeout=10)


def _hours(day: int, start: int, end: int) -> Interval:
    return Interval(datetime(2026, 11, day, start, tzinfo=UTC), datetime(2026, 11, day, end, tzinfo=UTC))


async def test_configured_feeds_are_stored_and_removed_ones_forgotten_with_their_busy_time(
    store_engine: AsyncEngine | Engine,
) -> None:
    """Reconfiguring an expert's calendars keeps what is known of the remaining feed and drops the other."""
    store = SqlAvailabilityStore(store_engine)
    feeds = {feed.location: feed for feed in await store.configure_feeds({("amelia", WORK), ("amelia", HOME)})}
    work, home = feeds[WORK], feeds[HOME]
    await store.replace_busy(replace(work, events=1), [_hours(24, 10, 11)])
    await store.replace_busy(replace(home, events=1), [_hours(25, 18, 20)])

    [kept] = await store.configure_feeds({("amelia", WORK)})

    assert kept.location == WORK
    assert kept.events == 1
    assert await store.busy_between("amelia", _hours(24, 0, 23).padded(timedelta(0), timedelta(days=2))) == [
        _hours(24, 10, 11)
    ]


async def test_a_new_read_replaces_the_busy_intervals_of_that_feed_only(store_engine: AsyncEngine | Engine) -> None:
    """Replacing one feed's intervals leaves the expert's other feed alone."""
    store = SqlAvailabilityStore(store_engine)
    feeds = {feed.location: feed for feed in await store.configure_feeds({("amelia", WORK), ("amelia", HOME)})}
    work, home = feeds[WORK], feeds[HOME]
    await store.replace_busy(work, [_hours(24, 10, 11), _hours(24, 14, 15)])
    await store.replace_busy(home, [_hours(24, 18, 19)])

    await store.replace_busy(work, [_hours(24, 12, 13)])

    busy = await store.busy_between("amelia", _hours(24, 0, 23))
    assert busy == [_hours(24, 12, 13), _hours(24, 18, 19)]


async def test_busy_between_returns_intervals_overlapping_the_window_in_utc(store_engine: AsyncEngine | Engine) -> None:
    """An interval that starts before the window or ends after it counts; one that only touches it does not."""
    store = SqlAvailabilityStore(store_engine)
    [feed] = await store.configure_feeds({("amelia", WORK)})
    await store.replace_busy(feed, [_hours(24, 8, 10), _hours(24, 11, 12), _hours(24, 13, 15), _hours(24, 15, 16)])

    busy = await store.busy_between("amelia", _hours(24, 9, 14))

    assert busy == [_hours(24, 8, 10), _hours(24, 11, 12), _hours(24, 13, 15)]
    assert all(interval.start.tzinfo is UTC for interval in busy)


async def test_a_failed_attempt_is_recorded_without_touching_the_busy_time(store_engine: AsyncEngine | Engine) -> None:
    """The reason and time of a failure are stored; the intervals read before stay."""
    store = SqlAvailabilityStore(store_engine)
    [feed] = await store.configure_feeds({("amelia", WORK)})
    read_at = datetime(2026, 11, 24, 9, tzinfo=UTC)
    await store.replace_busy(replace(feed, last_success_at=read_at), [_hours(24, 10, 11)])
    failed_at = read_at + timedelta(minutes=5)

    await store.record_attempt(replace(feed, last_success_at=read_at, last_error="HTTP 404", last_error_at=failed_at))

    [stored] = await store.feeds()
    assert (stored.last_success_at, stored.last_error, stored.last_error_at) == (read_at, "HTTP 404", failed_at)
    assert stored.busy_intervals == 1


async def test_a_feed_served_over_http_is_synced_into_the_database(
    store_engine: AsyncEngine | Engine, clock: FixedClock
) -> None:
    """A real feed server, the real fetcher and the real store: the weekly meeting is stored, and a 500 keeps it."""
    store = SqlAvailabilityStore(store_engine)
    async with FeedServer() as server, feed_session(limits=_LIMITS) as session:
        url = server.publish("amelia.ics", WEEKLY_STEERING.encode())

        async def fetch(location: str, validators: Validators) -> FetchResult:
            return await fetch_feed(session, location, validators=validators, limits=_LIMITS)

        sync = CalendarSync(store=store, fetch=fetch, experts=[_amelia(url)], policy=_policy(), clock=clock)
        await sync.configure()
        [first] = await sync.sync()
        server.publish("amelia.ics", b"<!DOCTYPE html><html><body>Sign in</body></html>")
        [second] = await sync.sync()

    [feed] = await store.feeds()
    assert (first.outcome, second.outcome) == ("updated", "failed")
    assert feed.busy_intervals == 3
    assert feed.last_error is not None
    assert "HTML" in feed.last_error
