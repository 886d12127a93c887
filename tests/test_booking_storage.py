"""Consultations stored in the database: no double booking under concurrency, buffers, moves, cancellations,
reminders, the change cut-off, DST and expert assignment, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import texts
from bot.config import BusinessConfig
from bot.settings import Settings
from bot.wiring import Services, open_services
from scheduling.booking_repository import REMINDERS
from scheduling.bookings import Attendee, SlotTaken, TooLate
from scheduling.model import WEEKDAYS, Expert, WorkingHours
from scheduling.records import Booking
from scheduling.repository import BOOKINGS
from tests.conftest import FixedClock

BERLIN = ZoneInfo("Europe/Berlin")
MEETING = timedelta(minutes=45)
BUFFER_BEFORE = timedelta(minutes=5)
BUFFER_AFTER = timedelta(minutes=10)
"""The bundled example's [slots]: 45-minute consultations every 15 minutes, 5 minutes kept before, 10 after."""

GRETA = Expert(
    key="greta",
    name="Greta Vogel",
    role="Partner, finance outsourcing",
    timezone="Europe/Berlin",
    specialties=("finance",),
)
"""An expert without calendars, working Monday to Friday 09:00-17:00 in Berlin: her free time is predictable."""
HANS = Expert(
    key="hans",
    name="Hans Keller",
    role="Senior consultant, finance outsourcing",
    timezone="Europe/Berlin",
    specialties=("finance",),
)


def _wednesday(hour: int, minute: int = 0) -> datetime:
    """A time on Greta's clock the day after the test clock's Tuesday morning (2026-11-24 09:30 UTC)."""
    return datetime(2026, 11, 25, hour, minute, tzinfo=BERLIN)


def _thursday(hour: int, minute: int = 0) -> datetime:
    """A time on Greta's clock two days after the test clock: both reminders are still ahead."""
    return datetime(2026, 11, 26, hour, minute, tzinfo=BERLIN)


def _weekdays(*ranges: str) -> WorkingHours:
    return WorkingHours.model_validate({day: list(ranges) for day in WEEKDAYS[:5]})


def _config(bundled: BusinessConfig, *experts: Expert, **booking: Any) -> BusinessConfig:
    """The bundled example with these experts (Greta alone by default) and booking settings changed."""
    return bundled.model_copy(
        update={"experts": experts or (GRETA,), "booking": bundled.booking.model_copy(update=booking)}
    )


def _open(database_url: str, config: BusinessConfig, clock: FixedClock) -> AbstractAsyncContextManager[Services]:
    return open_services(Settings(database_url=database_url), config, clock=clock)


def _attendee(number: int, *, chat_id: int | None = None, zone: str = "Europe/London") -> Attendee:
    """Prospect `number`, who books from Telegram chat `chat_id` (None: from the terminal)."""
    return Attendee(
        prospect_ref=number,
        lead_ref=number,
        chat_id=chat_id,
        name=f"Prospect {number}",
        email=f"prospect{number}@northwind.example",
        zone=zone,
        company="Northwind Traders",
        topic="Accounting & finance",
    )


async def _book(services: Services, start: datetime, attendee: Attendee, expert: Expert = GRETA) -> Booking:
    return await services.bookings.book(expert_key=expert.key, start=start, attendee=attendee)


async def _offered(services: Services, expert: Expert = GRETA) -> set[datetime]:
    """The start times the expert is offered at, in UTC."""
    return {offer.slot.start for offer in await services.bookings.offers([expert])}


async def _confirmed(engine: AsyncEngine, expert: Expert = GRETA) -> list[tuple[int, datetime]]:
    """The expert's confirmed rows as stored: (id, start), soonest first."""
    query = (
        select(BOOKINGS.c.id, BOOKINGS.c.starts_at)
        .where(BOOKINGS.c.expert_key == expert.key, BOOKINGS.c.status == "confirmed")
        .order_by(BOOKINGS.c.starts_at)
    )
    async with engine.connect() as connection:
        return [(row.id, row.starts_at) for row in await connection.execute(query)]


async def _reminders(engine: AsyncEngine, booking: Booking) -> list[tuple[datetime, int, str]]:
    """The consultation's reminder rows as stored: (due at, minutes before, status), in the order made."""
    query = (
        select(REMINDERS.c.due_at, REMINDERS.c.before_minutes, REMINDERS.c.status)
        .where(REMINDERS.c.booking_id == booking.id)
        .order_by(REMINDERS.c.id)
    )
    async with engine.connect() as connection:
        return [(row.due_at, row.before_minutes, row.status) for row in await connection.execute(query)]


def _split(outcomes: Sequence[object]) -> tuple[list[Booking], list[SlotTaken]]:
    """Concurrent attempts' outcomes as (bookings, refusals); anything else fails the test."""
    unexpected = [outcome for outcome in outcomes if not isinstance(outcome, Booking | SlotTaken)]
    assert unexpected == []
    booked = [outcome for outcome in outcomes if isinstance(outcome, Booking)]
    return booked, [outcome for outcome in outcomes if isinstance(outcome, SlotTaken)]


# --- Concurrency: one consultation per stretch of an expert's time ---------------------------------------


async def test_fifty_prospects_racing_for_one_slot_get_exactly_one_consultation(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Fifty concurrent bookings of Greta's Wednesday 10:00: one is confirmed, forty-nine are told it is taken."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        outcomes = await asyncio.gather(
            *(_book(services, _wednesday(10), _attendee(number)) for number in range(1, 51)),
            return_exceptions=True,
        )
        stored = await _confirmed(services.engine)

    booked, refused = _split(outcomes)
    assert (len(booked), len(refused)) == (1, 49)
    assert stored == [(booked[0].id, _wednesday(10))]


async def test_of_three_concurrent_overlapping_slots_one_is_booked_and_the_next_clear_slot_stays_bookable(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """10:00, 10:15 and 10:30 all overlap, buffers included: one wins; the slot right after its buffers still books."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        outcomes = await asyncio.gather(
            *(_book(services, _wednesday(10, minute), _attendee(n)) for n, minute in ((1, 0), (2, 15), (3, 30))),
            return_exceptions=True,
        )
        booked, refused = _split(outcomes)
        [winner] = booked
        clear = winner.ends_at + BUFFER_AFTER + BUFFER_BEFORE
        with pytest.raises(SlotTaken):
            await _book(services, clear - timedelta(minutes=15), _attendee(4))
        alongside = await _book(services, clear, _attendee(5))
        stored = await _confirmed(services.engine)

    assert len(refused) == 2
    assert stored == [(winner.id, winner.starts_at), (alongside.id, clear)]


async def test_concurrent_bookings_of_separate_slots_stop_at_the_daily_cap(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Six non-overlapping Wednesday slots booked at once against a cap of five a day: five are confirmed."""
    starts = [_wednesday(hour) for hour in (9, 10, 11, 13, 14, 15)]
    async with _open(database_url, _config(bundled_config), clock) as services:
        outcomes = await asyncio.gather(
            *(_book(services, start, _attendee(n)) for n, start in enumerate(starts, start=1)),
            return_exceptions=True,
        )
        stored = await _confirmed(services.engine)

    booked, refused = _split(outcomes)
    assert bundled_config.slots.max_per_day == 5
    assert (len(booked), len(refused)) == (5, 1)
    assert len(stored) == 5


# --- Buffers ------------------------------------------------------------------------------------------


async def test_buffers_keep_the_quarter_hour_after_a_consultation_free(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """After 10:00-10:45 (10 minutes kept after, 5 before the next), 11:00 is offered; 10:45 is not, nor bookable."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        await _book(services, _wednesday(10), _attendee(1))

        offered = await _offered(services)
        with pytest.raises(SlotTaken):
            await _book(services, _wednesday(10, 45), _attendee(2))

    assert _wednesday(11) in offered
    assert _wednesday(10, 45) not in offered
    assert _wednesday(9) in offered
    assert _wednesday(9, 15) not in offered


async def test_a_refused_time_is_told_apart_as_taken_by_a_consultation_or_by_the_rules(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """After 10:00 is booked, 10:45 clashes with it through the buffers, 14:00 and a Saturday do not: the
    prospect is told "just booked by someone else" only when a consultation is the reason."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _wednesday(10), _attendee(1))

        clash_in_buffer = await services.bookings.clashes_with_booking("greta", _wednesday(10, 45))
        clash_same_time = await services.bookings.clashes_with_booking("greta", _wednesday(10))
        clash_with_itself = await services.bookings.clashes_with_booking(
            "greta", _wednesday(10, 15), excluding=booking.id
        )
        clash_later = await services.bookings.clashes_with_booking("greta", _wednesday(14))
        clash_other_expert = await services.bookings.clashes_with_booking("hans", _wednesday(10))

    assert (clash_in_buffer, clash_same_time) == (True, True)
    assert (clash_with_itself, clash_later, clash_other_expert) == (False, False, False)


@pytest.mark.parametrize(
    "start",
    [
        pytest.param(datetime(2026, 11, 28, 10, 0, tzinfo=BERLIN), id="saturday"),
        pytest.param(_wednesday(16, 30), id="ending-after-17:00"),
        pytest.param(_wednesday(10, 7), id="off-the-quarter-hour"),
        pytest.param(datetime(2026, 11, 24, 13, 0, tzinfo=UTC), id="within-the-4-hour-notice"),
    ],
)
async def test_a_time_that_is_never_offered_cannot_be_booked_either(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock, start: datetime
) -> None:
    """A forged start outside Greta's free slots is refused by the check the booking repeats, not only by the offers."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        offered = await _offered(services)

        with pytest.raises(SlotTaken):
            await _book(services, start, _attendee(1))

        stored = await _confirmed(services.engine)

    assert start not in offered
    assert stored == []


# --- The database's own guard ---------------------------------------------------------------------------

_NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def _row(uid: str, start: datetime, *, status: str = "confirmed", expert: Expert = GRETA) -> dict[str, Any]:
    """A bookings row written by hand, bypassing the booking service and its check."""
    return {
        "uid": f"{uid}@consultbot",
        "expert_key": expert.key,
        "starts_at": start,
        "ends_at": start + MEETING,
        "blocked_from": start - BUFFER_BEFORE,
        "blocked_until": start + MEETING + BUFFER_AFTER,
        "prospect_ref": 1,
        "lead_ref": 1,
        "attendee_name": "Ada Lovelace",
        "attendee_zone": "Europe/London",
        "topic": "Accounting & finance",
        "status": status,
        "sequence": 0,
        "created_at": _NOW,
        "updated_at": _NOW,
    }


async def _insert(engine: AsyncEngine, row: dict[str, Any]) -> int:
    async with engine.begin() as connection:
        inserted = await connection.execute(insert(BOOKINGS).values(row).returning(BOOKINGS.c.id))
        return int(inserted.scalar_one())


async def test_the_database_refuses_two_overlapping_confirmed_consultations_inserted_directly(
    engine: AsyncEngine,
) -> None:
    """Two confirmed rows for Greta whose blocked time overlaps cannot both be stored, whatever the code checked."""
    await _insert(engine, _row("first", _wednesday(10)))

    with pytest.raises(IntegrityError):
        await _insert(engine, _row("second", _wednesday(10, 30)))

    assert [start for _, start in await _confirmed(engine)] == [_wednesday(10)]


async def test_a_cancelled_row_may_overlap_a_confirmed_one_but_cannot_be_confirmed_again_over_it(
    engine: AsyncEngine,
) -> None:
    """A cancelled consultation keeps no time; turning it back into a confirmed one over another is refused."""
    await _insert(engine, _row("kept", _wednesday(10)))
    cancelled = await _insert(engine, _row("cancelled", _wednesday(10, 15), status="cancelled"))

    with pytest.raises(IntegrityError):
        async with engine.begin() as connection:
            await connection.execute(update(BOOKINGS).where(BOOKINGS.c.id == cancelled).values(status="confirmed"))

    assert [start for _, start in await _confirmed(engine)] == [_wednesday(10)]


async def test_blocked_times_that_only_touch_and_other_experts_overlaps_are_stored(engine: AsyncEngine) -> None:
    """10:00 (blocked to 10:55) and 11:00 (blocked from 10:55) both stand; so does Hans at Greta's 10:00."""
    await _insert(engine, _row("ten", _wednesday(10)))

    await _insert(engine, _row("eleven", _wednesday(11)))
    await _insert(engine, _row("hans-ten", _wednesday(10), expert=HANS))

    assert [start for _, start in await _confirmed(engine)] == [_wednesday(10), _wednesday(11)]
    assert [start for _, start in await _confirmed(engine, HANS)] == [_wednesday(10)]


# --- Cancelling and moving -----------------------------------------------------------------------------


async def test_cancelling_frees_the_slot_raises_the_sequence_and_drops_the_reminders(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Ada cancels Thursday 10:00: it is offered again, SEQUENCE goes from 0 to 1, her reminders are dropped."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1, chat_id=5151))
        assert _thursday(10) not in await _offered(services)

        cancelled = await services.bookings.cancel(booking.id or 0, prospect_ref=1)

        offered = await _offered(services)
        stored = await services.booking_store.booking(booking.id or 0)
        reminders = await _reminders(services.engine, booking)

    assert (cancelled.status, cancelled.sequence, cancelled.uid) == ("cancelled", 1, booking.uid)
    assert stored is not None
    assert (stored.status, stored.sequence, stored.cancelled_at) == ("cancelled", 1, clock.now)
    assert _thursday(10) in offered
    assert [status for _, _, status in reminders] == ["dropped", "dropped"]


async def test_moving_keeps_the_uid_raises_the_sequence_frees_the_old_time_and_replaces_the_reminders(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Ada moves Thursday 10:00 to 14:00: same UID, SEQUENCE 1, 10:00 offered again, reminders due before 14:00."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1, chat_id=5151))

        moved = await services.bookings.move(booking.id or 0, start=_thursday(14), prospect_ref=1)

        offered = await _offered(services)
        stored = await services.booking_store.booking(booking.id or 0)
        reminders = await _reminders(services.engine, booking)

    assert (moved.uid, moved.sequence, moved.starts_at, moved.ends_at) == (
        booking.uid,
        1,
        _thursday(14),
        _thursday(14, 45),
    )
    assert stored == moved
    assert _thursday(10) in offered
    assert _thursday(14) not in offered
    day, hour = timedelta(hours=24), timedelta(hours=1)
    assert reminders == [
        (_thursday(10) - day, 1440, "dropped"),
        (_thursday(10) - hour, 60, "dropped"),
        (_thursday(14) - day, 1440, "pending"),
        (_thursday(14) - hour, 60, "pending"),
    ]


async def test_a_consultation_can_move_by_a_quarter_hour_into_its_own_old_time(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Moving 10:00 to 10:15 overlaps only the consultation itself, which neither check nor database counts."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1))

        moved = await services.bookings.move(booking.id or 0, start=_thursday(10, 15), prospect_ref=1)

        stored = await _confirmed(services.engine)

    assert stored == [(booking.id, _thursday(10, 15))]
    assert moved.sequence == 1


async def test_moving_onto_another_prospects_consultation_is_refused_and_changes_nothing(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Ada cannot move her 10:00 onto Bob's 14:00: SlotTaken, and both consultations and Ada's reminders stay."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        ada = await _book(services, _thursday(10), _attendee(1, chat_id=5151))
        bob = await _book(services, _thursday(14), _attendee(2, chat_id=5252))

        with pytest.raises(SlotTaken):
            await services.bookings.move(ada.id or 0, start=_thursday(14), prospect_ref=1)

        stored_ada = await services.booking_store.booking(ada.id or 0)
        stored = await _confirmed(services.engine)
        reminders = await _reminders(services.engine, ada)

    assert stored_ada == ada
    assert stored == [(ada.id, _thursday(10)), (bob.id, _thursday(14))]
    assert [status for _, _, status in reminders] == ["pending", "pending"]


async def test_a_consultation_can_move_within_a_day_that_is_full_because_it_counts_only_once(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Wednesday holds the cap of five with Ada's 09:00 among them; Ada may still move to 16:00 that day."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        ada = await _book(services, _wednesday(9), _attendee(1))
        for number, hour in enumerate((10, 11, 13, 14), start=2):
            await _book(services, _wednesday(hour), _attendee(number))
        assert not {start for start in await _offered(services) if start.date() == _wednesday(9).date()}

        moved = await services.bookings.move(ada.id or 0, start=_wednesday(16), prospect_ref=1)

        stored = await _confirmed(services.engine)

    assert moved.starts_at == _wednesday(16)
    assert len(stored) == 5


async def test_a_reminder_already_sent_stays_sent_when_the_consultation_is_cancelled(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """The day-before reminder went out; cancelling afterwards drops only the hour-before one still pending."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1, chat_id=5151))
        clock.now = _wednesday(10)
        [due] = await services.booking_store.claim_reminders(now=clock.now, lease=timedelta(minutes=5), limit=10)
        await services.booking_store.finish_reminder(due.reminder_id, status="sent", error=None, now=clock.now)

        await services.bookings.cancel(booking.id or 0, prospect_ref=1)

        reminders = await _reminders(services.engine, booking)

    assert reminders == [(_wednesday(10), 1440, "sent"), (_thursday(9), 60, "dropped")]


# --- The change cut-off --------------------------------------------------------------------------------


async def test_eleven_hours_before_a_consultation_it_can_no_longer_be_moved_or_cancelled(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """With 12 hours' change notice, both a move and a cancellation 11 hours before the start raise TooLate."""
    config = _config(bundled_config, change_notice_hours=12)
    async with _open(database_url, config, clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1))
        clock.now = booking.starts_at - timedelta(hours=11)

        with pytest.raises(TooLate) as moving:
            await services.bookings.move(booking.id or 0, start=_thursday(15), prospect_ref=1)
        with pytest.raises(TooLate):
            await services.bookings.cancel(booking.id or 0, prospect_ref=1)

        stored = await services.booking_store.booking(booking.id or 0)

    assert moving.value.cutoff == booking.starts_at - timedelta(hours=12)
    assert stored == booking


async def test_thirteen_hours_before_a_consultation_it_can_still_be_moved(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """With 12 hours' change notice, a move 13 hours before the start goes through."""
    config = _config(bundled_config, change_notice_hours=12)
    async with _open(database_url, config, clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1))
        clock.now = booking.starts_at - timedelta(hours=13)

        moved = await services.bookings.move(booking.id or 0, start=_thursday(15), prospect_ref=1)

    assert (moved.starts_at, moved.sequence) == (_thursday(15), 1)


async def test_thirteen_hours_before_a_consultation_it_can_still_be_cancelled(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """With 12 hours' change notice, a cancellation 13 hours before the start goes through."""
    config = _config(bundled_config, change_notice_hours=12)
    async with _open(database_url, config, clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1))
        clock.now = booking.starts_at - timedelta(hours=13)

        cancelled = await services.bookings.cancel(booking.id or 0, prospect_ref=1)

    assert (cancelled.status, cancelled.sequence) == ("cancelled", 1)


# --- Reminders -----------------------------------------------------------------------------------------


async def test_a_booking_two_days_ahead_is_reminded_of_a_day_and_an_hour_before(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Thursday 10:00 booked on Tuesday morning: reminders pending for Wednesday 10:00 and Thursday 09:00."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1, chat_id=5151))

        reminders = await _reminders(services.engine, booking)

    assert reminders == [(_wednesday(10), 1440, "pending"), (_thursday(9), 60, "pending")]


async def test_a_reminder_whose_moment_has_passed_at_booking_is_not_created(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Wednesday 10:00 Berlin booked at Tuesday 09:30 UTC is 23.5 hours away: only the hour-before reminder is made."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _wednesday(10), _attendee(1, chat_id=5151))

        reminders = await _reminders(services.engine, booking)

    assert reminders == [(_wednesday(9), 60, "pending")]


async def test_a_prospect_without_a_chat_gets_no_reminders(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """A consultation booked from the terminal (no chat id) has no reminder rows."""
    async with _open(database_url, _config(bundled_config), clock) as services:
        booking = await _book(services, _thursday(10), _attendee(1, chat_id=None))

        reminders = await _reminders(services.engine, booking)

    assert reminders == []


# --- Time zones across a DST change --------------------------------------------------------------------


async def test_a_march_booking_for_after_the_european_clock_change_shows_the_right_time_in_new_york_and_berlin(
    database_url: str, bundled_config: BusinessConfig
) -> None:
    """Booked on 10 March (US on summer time, Europe not yet) for 2 April 10:00 Berlin: 08:00 UTC, 04:00 New York."""
    clock = FixedClock(datetime(2026, 3, 10, 9, 0, tzinfo=UTC))
    async with _open(database_url, _config(bundled_config), clock) as services:
        start = datetime(2026, 4, 2, 10, 0, tzinfo=BERLIN)
        offered = await _offered(services)
        booking = await _book(services, start, _attendee(1, chat_id=5151, zone="America/New_York"))

        stored = await services.booking_store.booking(booking.id or 0)

    assert stored is not None
    assert datetime(2026, 4, 2, 8, 0, tzinfo=UTC) in offered
    assert (stored.starts_at, stored.starts_at.tzinfo) == (datetime(2026, 4, 2, 8, 0, tzinfo=UTC), UTC)
    prospect_sees = texts.consultation_time(stored.starts_at, stored.ends_at, stored.attendee_zone)
    expert_sees = texts.consultation_time(stored.starts_at, stored.ends_at, GRETA.timezone)
    assert prospect_sees == "Thu 2 Apr 2026, 04:00–04:45, New York (UTC-04:00)"
    assert expert_sees == "Thu 2 Apr 2026, 10:00–10:45, Berlin (UTC+02:00)"


# --- Which expert is offered ---------------------------------------------------------------------------


async def test_fewest_upcoming_offers_the_expert_with_fewer_consultations_ahead(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Greta (listed first) has two consultations ahead and Hans one: a finance prospect is offered only Hans."""
    config = _config(bundled_config, GRETA, HANS, assignment="fewest_upcoming")
    async with _open(database_url, config, clock) as services:
        await _book(services, _wednesday(10), _attendee(1), GRETA)
        await _book(services, _thursday(10), _attendee(2), GRETA)
        await _book(services, _wednesday(10), _attendee(3), HANS)

        assigned = await services.bookings.assign(["finance"])
        offers = await services.bookings.offers(assigned)

    assert [expert.key for expert in assigned] == ["hans", "greta"]
    assert offers
    assert {offer.expert.key for offer in offers} == {"hans"}


async def test_first_available_merges_both_experts_slots_giving_a_shared_time_to_the_first_listed(
    database_url: str, bundled_config: BusinessConfig, clock: FixedClock
) -> None:
    """Greta works 09:00-13:00 and Hans 11:00-17:00: 09:00 and 11:00 go to Greta, 15:00 to Hans, soonest first."""
    greta = GRETA.model_copy(update={"hours": _weekdays("09:00-13:00")})
    hans = HANS.model_copy(update={"hours": _weekdays("11:00-17:00")})
    config = _config(bundled_config, greta, hans, assignment="first_available")
    async with _open(database_url, config, clock) as services:
        assigned = await services.bookings.assign(["finance"])

        offers = await services.bookings.offers(assigned)

    by_start = {offer.slot.start: offer.expert.key for offer in offers}
    assert [expert.key for expert in assigned] == ["greta", "hans"]
    assert (by_start[_wednesday(9)], by_start[_wednesday(11)], by_start[_wednesday(15)]) == ("greta", "greta", "hans")
    assert [offer.slot.start for offer in offers] == sorted(by_start)
    assert len(by_start) == len(offers)
