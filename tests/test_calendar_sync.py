"""Keeping experts' busy time in step with their calendars, and offering slots from it (in memory)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from scheduling.feeds import Fetched, FetchFailed, FetchResult, NotModified, Validators
from scheduling.intervals import Interval
from scheduling.memory import InMemoryAvailabilityStore
from scheduling.model import Expert, SlotRules, WorkingHours
from scheduling.records import FeedState
from scheduling.service import AvailabilityService, CalendarSync, SyncPolicy
from tests.conftest import FixedClock

FEED = "https://calendar.example/ical/amelia/private-0123456789abcdef/basic.ics"
SECOND_FEED = "https://outlook.example/owa/calendar/amelia/reachcalendar.ics"

# Tuesdays 10:00-11:00 London time, from the start of November 2026.
WEEKLY_STEERING = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//consultbot tests//EN
BEGIN:VEVENT
UID:steering@example.com
DTSTAMP:20261101T000000Z
DTSTART;TZID=Europe/London:20261103T100000
DTEND;TZID=Europe/London:20261103T110000
RRULE:FREQ=WEEKLY;BYDAY=TU
SUMMARY:Steering group
END:VEVENT
END:VCALENDAR
"""

ONE_OFF_WORKSHOP = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//consultbot tests//EN
BEGIN:VEVENT
UID:workshop@example.com
DTSTAMP:20261101T000000Z
DTSTART:20261125T140000Z
DTEND:20261125T160000Z
SUMMARY:Workshop
END:VEVENT
END:VCALENDAR
"""


class FeedsOnHand:
    """A fake fetcher: serves bodies by location like an HTTP server with ETags, and remembers what it was asked."""

    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}
        self.failures: dict[str, str] = {}
        self.asked: list[tuple[str, Validators]] = []

    async def __call__(self, location: str, validators: Validators) -> FetchResult:
        self.asked.append((location, validators))
        if location in self.failures:
            return FetchFailed(self.failures[location])
        body = self.bodies[location]
        digest = hashlib.sha256(body).hexdigest()
        if validators.etag == digest:
            return NotModified()
        return Fetched(body, Validators(etag=digest), digest)


def _amelia(*calendars: str) -> Expert:
    return Expert(
        key="amelia",
        name="Amelia Hughes",
        role="Principal consultant",
        timezone="Europe/London",
        calendars=calendars,
        hours=WorkingHours.office_hours(),
    )


def _policy(when_stale: Literal["block", "warn"] = "block") -> SyncPolicy:
    return SyncPolicy(horizon=timedelta(days=14), stale_after=timedelta(hours=24), when_stale=when_stale)


async def _set_up(
    clock: FixedClock, *calendars: str, when_stale: Literal["block", "warn"] = "block"
) -> tuple[CalendarSync, AvailabilityService, FeedsOnHand, InMemoryAvailabilityStore]:
    store, fetch, experts = InMemoryAvailabilityStore(), FeedsOnHand(), [_amelia(*calendars)]
    policy = _policy(when_stale)
    sync = CalendarSync(store=store, fetch=fetch, experts=experts, policy=policy, clock=clock)
    await sync.configure()
    rules = SlotRules(meeting_minutes=60, step_minutes=30, buffer_after_minutes=0, notice_minutes=60)
    availability = AvailabilityService(store=store, sync=sync, experts=experts, rules=rules, policy=policy, clock=clock)
    return sync, availability, fetch, store


def _at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


async def test_a_synced_calendar_s_meetings_become_stored_busy_time(clock: FixedClock) -> None:
    """Every weekly meeting inside the horizon is stored as busy time for the expert."""
    sync, _, fetch, store = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()

    [report] = await sync.sync()

    assert report.outcome == "updated"
    busy = await store.busy_between("amelia", Interval(_at(24, 0), _at(24, 0) + timedelta(days=15)))
    assert busy == [
        Interval(_at(24, 10), _at(24, 11)),
        Interval(datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 12, 1, 11, tzinfo=UTC)),
        Interval(datetime(2026, 12, 8, 10, tzinfo=UTC), datetime(2026, 12, 8, 11, tzinfo=UTC)),
    ]


async def test_no_slot_is_offered_while_the_expert_is_in_a_meeting(clock: FixedClock) -> None:
    """The Tuesday steering group's hour is not offered; the hours around it are."""
    clock.now = _at(23, 8)
    sync, availability, fetch, _ = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()

    found = await availability.availability("amelia", days=2)

    starts = {slot.start for slot in found.slots}
    assert found.bookable
    assert _at(24, 9) in starts
    assert _at(24, 11) in starts
    assert not {_at(24, 9, 30), _at(24, 10), _at(24, 10, 30)} & starts


async def test_a_failed_fetch_keeps_the_last_good_busy_time_and_records_why(clock: FixedClock) -> None:
    """An unreachable feed never empties the calendar: the meetings read before still block slots."""
    sync, _, fetch, store = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()
    clock.now += timedelta(minutes=5)
    fetch.failures[FEED] = "HTTP 503 Service Unavailable"

    [report] = await sync.sync()

    [feed] = await store.feeds()
    assert report.outcome == "failed"
    assert feed.last_error == "HTTP 503 Service Unavailable"
    assert feed.last_error_at == clock.now
    assert feed.last_success_at == clock.now - timedelta(minutes=5)
    assert feed.busy_intervals == 3


async def test_a_body_that_is_not_a_calendar_keeps_the_last_good_busy_time(clock: FixedClock) -> None:
    """A login page or a truncated download served with 200 is a failed sync, not an empty calendar."""
    sync, _, fetch, store = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()[:200]

    [report] = await sync.sync()

    [feed] = await store.feeds()
    assert report.outcome == "failed"
    assert feed.busy_intervals == 3
    assert feed.failing


async def test_an_unchanged_feed_is_not_read_again(clock: FixedClock) -> None:
    """The second sync asks conditionally, gets 'not modified', and counts as a success."""
    sync, _, fetch, store = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()
    clock.now += timedelta(minutes=5)

    [report] = await sync.sync()

    [feed] = await store.feeds()
    assert report.outcome == "unchanged"
    assert fetch.asked[-1][1].etag is not None
    assert feed.last_success_at == clock.now
    assert feed.last_changed_at == clock.now - timedelta(minutes=5)


async def test_a_changed_feed_replaces_the_busy_time(clock: FixedClock) -> None:
    """When the expert's calendar changes, the old meetings go and the new ones count."""
    sync, _, fetch, store = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()
    fetch.bodies[FEED] = ONE_OFF_WORKSHOP.encode()

    [report] = await sync.sync()

    assert report.outcome == "updated"
    busy = await store.busy_between("amelia", Interval(_at(23, 0), _at(23, 0) + timedelta(days=30)))
    assert busy == [Interval(_at(25, 14), _at(25, 16))]


async def test_a_feed_is_read_whole_again_before_its_stored_window_runs_out(clock: FixedClock) -> None:
    """Days later an unchanged feed is fetched unconditionally, so recurring meetings further ahead get stored."""
    sync, _, fetch, store = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()
    clock.now += timedelta(days=7)

    [report] = await sync.sync()

    [feed] = await store.feeds()
    assert fetch.asked[-1][1] == Validators()
    assert report.outcome == "updated"
    assert feed.covered_until is not None
    assert feed.covered_until > clock.now + timedelta(days=14)


async def test_an_expert_whose_calendar_is_stale_is_not_bookable_when_the_policy_blocks(clock: FixedClock) -> None:
    """A calendar unread for longer than the staleness limit could hide meetings: no slots, and a reason."""
    sync, availability, fetch, _ = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()
    fetch.failures[FEED] = "timed out after 30 s"
    clock.now += timedelta(hours=25)

    found = await availability.availability("amelia")

    assert not found.bookable
    assert found.slots == ()
    assert found.warning is not None
    assert "calendar.example" in found.warning
    assert "private-0123456789abcdef" not in found.warning


async def test_a_stale_calendar_only_warns_when_the_policy_says_so(clock: FixedClock) -> None:
    """With 'warn', the last good busy time still gives slots, and the staleness is reported with them."""
    sync, availability, fetch, _ = await _set_up(clock, FEED, when_stale="warn")
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    await sync.sync()
    fetch.failures[FEED] = "timed out after 30 s"
    clock.now += timedelta(hours=25)

    found = await availability.availability("amelia", days=7)

    assert found.bookable
    assert found.slots
    assert found.warning is not None
    steering = Interval(datetime(2026, 12, 1, 10, tzinfo=UTC), datetime(2026, 12, 1, 11, tzinfo=UTC))
    assert not any(slot.overlaps(steering) for slot in found.slots)


async def test_slots_are_offered_after_a_refresh_of_calendars_not_read_lately(clock: FixedClock) -> None:
    """Before offering slots the bot reads a calendar it has not tried for a while, and only then."""
    _sync, availability, fetch, _ = await _set_up(clock, FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()

    await availability.availability("amelia")
    await availability.availability("amelia")
    clock.now += timedelta(minutes=20)
    await availability.availability("amelia")

    assert len(fetch.asked) == 2


async def test_every_calendar_of_an_expert_blocks_time(clock: FixedClock) -> None:
    """An expert with a work and a personal calendar is busy when either says so."""
    sync, _, fetch, store = await _set_up(clock, FEED, SECOND_FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    fetch.bodies[SECOND_FEED] = ONE_OFF_WORKSHOP.encode()

    reports = await sync.sync()

    busy = await store.busy_between("amelia", Interval(_at(24, 0), _at(26, 0)))
    assert [report.outcome for report in reports] == ["updated", "updated"]
    assert busy == [Interval(_at(24, 10), _at(24, 11)), Interval(_at(25, 14), _at(25, 16))]


async def test_a_calendar_removed_from_the_configuration_no_longer_blocks_time(clock: FixedClock) -> None:
    """Configuring the expert without a feed forgets that feed and its meetings."""
    sync, _, fetch, store = await _set_up(clock, FEED, SECOND_FEED)
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    fetch.bodies[SECOND_FEED] = ONE_OFF_WORKSHOP.encode()
    await sync.sync()
    policy = _policy()
    reconfigured = CalendarSync(store=store, fetch=fetch, experts=[_amelia(FEED)], policy=policy, clock=clock)

    await reconfigured.configure()

    busy = await store.busy_between("amelia", Interval(_at(24, 0), _at(26, 0)))
    assert [feed.location for feed in await store.feeds()] == [FEED]
    assert busy == [Interval(_at(24, 10), _at(24, 11))]


@pytest.mark.parametrize("days", [1, 3])
async def test_slots_stop_at_the_days_asked_for(clock: FixedClock, days: int) -> None:
    """Asking for a few days gives no slot beyond them."""
    _, availability, _, _ = await _set_up(clock)

    found = await availability.availability("amelia", days=days)

    assert found.slots
    assert all(slot.start < clock.now + timedelta(days=days) for slot in found.slots)


class StoreThatFailsOnce(InMemoryAvailabilityStore):
    """An in-memory store whose second listing of feeds fails, as a database restarting would."""

    def __init__(self) -> None:
        super().__init__()
        self.listings = 0
        self.listed_five_times = asyncio.Event()

    async def feeds(self, expert_keys: Collection[str] | None = None) -> list[FeedState]:
        self.listings += 1
        if self.listings == 5:
            self.listed_five_times.set()
        if self.listings == 2:
            raise ConnectionError("database restarting")
        return await super().feeds(expert_keys)


async def test_periodic_sync_reads_the_calendars_again_and_survives_a_failing_round(clock: FixedClock) -> None:
    """The background loop reads every feed once per period and carries on after a round that raised."""
    store, fetch = StoreThatFailsOnce(), FeedsOnHand()
    fetch.bodies[FEED] = WEEKLY_STEERING.encode()
    sync = CalendarSync(store=store, fetch=fetch, experts=[_amelia(FEED)], policy=_policy(), clock=clock)
    await sync.configure()

    loop = asyncio.create_task(sync.keep_in_sync(timedelta(milliseconds=10)))
    await asyncio.wait_for(store.listed_five_times.wait(), timeout=10)
    still_running = not loop.done()
    loop.cancel()

    assert still_running
    assert len(fetch.asked) >= 2
