"""The booking store on SQLAlchemy Core: consultations, reminders, calendar writes, feed tokens, booking chats.

Like the availability store, each operation is one transaction written as a plain function of a connection.
A booking's transaction reads the expert's busy time and consultations, asks the service whether the slot still
fits, and inserts: on PostgreSQL an advisory lock per expert queues such transactions (so the daily cap holds
too) and the exclusion constraint refuses any overlap that slipped past; on SQLite the transaction began
IMMEDIATE, which queues every writer, and triggers refuse an overlap.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal, cast

from sqlalchemy import Connection, Engine, RowMapping, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduling import tables
from scheduling.intervals import Interval
from scheduling.ports import BookingEvent, DueCalendarWrite, DueReminder, FitCheck, SlotTaken
from scheduling.records import Booking, BookingStatus
from scheduling.repository import BOOKINGS, SqlStore, booked_between, busy_between

REMINDERS = tables.metadata.tables[tables.ReminderRow.__tablename__]
WRITES = tables.metadata.tables[tables.CalendarWriteRow.__tablename__]
CHATS = tables.metadata.tables[tables.BookingChatRow.__tablename__]
FEEDS = tables.metadata.tables[tables.ExpertFeedRow.__tablename__]
EVENTS = tables.metadata.tables[tables.BookingEventRow.__tablename__]

_BOOKING_FIELDS = tuple(column.name for column in BOOKINGS.columns if column.name != "id")
_LOOK_AROUND = timedelta(days=2)
"""How far around a consultation its fit is checked: a day's cap counts that local day, in any zone."""


class SqlBookingStore(SqlStore):
    """Consultations in the bot's database, with the database refusing a double booking."""

    def __init__(self, engine: AsyncEngine | Engine, *, one_writer: asyncio.Lock | None = None) -> None:
        super().__init__(engine, one_writer=one_writer)
        self._queues: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)

    async def book(
        self, booking: Booking, *, fits: FitCheck, reminders: Sequence[datetime], write_back: bool
    ) -> Booking:
        # This process's bookings of one expert queue here, before taking a connection: queued on the advisory
        # lock instead, a burst for one expert would hold every pooled connection while it waits.
        async with self._queues[booking.expert_key]:
            return await self._run(lambda connection: _book(connection, booking, fits, reminders, write_back))

    async def move(
        self,
        booking_id: int,
        *,
        to: Interval,
        blocked: Interval,
        fits: FitCheck,
        reminders: Sequence[datetime],
        write_back: bool,
        now: datetime,
    ) -> Booking:
        def work(connection: Connection) -> Booking:
            return _move(connection, booking_id, to, blocked, fits, reminders, write_back, now)

        return await self._run(work)

    async def cancel(self, booking_id: int, *, write_back: bool, now: datetime) -> Booking:
        return await self._run(lambda connection: _cancel(connection, booking_id, write_back, now))

    async def booking(self, booking_id: int) -> Booking | None:
        return await self._run(lambda connection: _booking(connection, booking_id))

    async def upcoming(
        self, *, since: datetime, prospect_ref: int | None = None, expert_key: str | None = None
    ) -> list[Booking]:
        query = select(BOOKINGS).where(BOOKINGS.c.status == "confirmed", BOOKINGS.c.ends_at > since)
        if prospect_ref is not None:
            query = query.where(BOOKINGS.c.prospect_ref == prospect_ref)
        if expert_key is not None:
            query = query.where(BOOKINGS.c.expert_key == expert_key)
        query = query.order_by(BOOKINGS.c.starts_at, BOOKINGS.c.id)
        return await self._run(lambda connection: [_record(row) for row in connection.execute(query).mappings()])

    async def upcoming_counts(self, expert_keys: Collection[str], *, since: datetime) -> dict[str, int]:
        query = (
            select(BOOKINGS.c.expert_key, func.count())
            .where(
                BOOKINGS.c.status == "confirmed",
                BOOKINGS.c.starts_at >= since,
                BOOKINGS.c.expert_key.in_(list(expert_keys)),
            )
            .group_by(BOOKINGS.c.expert_key)
        )
        rows = await self._run(lambda connection: connection.execute(query).all())
        counts = dict.fromkeys(expert_keys, 0)
        counts.update({key: int(count) for key, count in rows})
        return counts

    async def set_attendee_zone(self, prospect_ref: int, zone: str) -> None:
        statement = update(BOOKINGS).where(BOOKINGS.c.prospect_ref == prospect_ref).values(attendee_zone=zone)
        await self._run(lambda connection: connection.execute(statement))

    async def personal_data(self, prospect_ref: int) -> list[dict[str, Any]]:
        """The prospect's consultations, every state, with their reminders, as plain JSON values."""
        return await self._run(lambda connection: _personal_data(connection, prospect_ref))

    async def erase_attendee(
        self, prospect_ref: int, *, chat_key: str, write_back: Collection[str], now: datetime
    ) -> list[Booking]:
        """Cancel the prospect's consultations that have not started and remove them from every consultation.

        Returns the cancelled ones. Cancelling is not bound by the change cut-off: the prospect is withdrawing
        from the firm, not rescheduling. Past consultations stay booked but anonymous, and those published to an
        expert's CalDAV collection are written again so the expert's copy loses the name and address too.
        """
        return await self._run(lambda connection: _erase_attendee(connection, prospect_ref, chat_key, write_back, now))

    async def claim_reminders(self, *, now: datetime, lease: timedelta, limit: int) -> list[DueReminder]:
        return await self._run(lambda connection: _claim_reminders(connection, now, lease, limit))

    async def finish_reminder(
        self,
        reminder_id: int,
        *,
        status: Literal["sent", "blocked", "skipped", "failed"],
        error: str | None,
        now: datetime,
    ) -> None:
        values: dict[str, Any] = {"last_error": error}
        if status == "failed":
            values["status"] = "pending"
        else:
            values.update(status=status, sent_at=now if status == "sent" else None, leased_until=None)
        statement = update(REMINDERS).where(REMINDERS.c.id == reminder_id).values(**values)
        await self._run(lambda connection: connection.execute(statement))

    async def claim_calendar_writes(self, *, now: datetime, lease: timedelta, limit: int) -> list[DueCalendarWrite]:
        return await self._run(lambda connection: _claim_writes(connection, now, lease, limit))

    async def finish_calendar_write(
        self, write_id: int, *, outcome: Literal["done", "retry", "dead"], error: str | None, at: datetime
    ) -> None:
        values: dict[str, Any] = {"last_error": error, "leased_until": None}
        if outcome == "retry":
            values.update(status="pending", next_attempt_at=at)
        else:
            values.update(status=outcome, done_at=at)
        statement = update(WRITES).where(WRITES.c.id == write_id).values(**values)
        await self._run(lambda connection: connection.execute(statement))

    async def claim_booking_events(self, *, now: datetime, lease: timedelta, limit: int) -> list[BookingEvent]:
        return await self._run(lambda connection: _claim_events(connection, now, lease, limit))

    async def calendar_writes(self) -> list[dict[str, Any]]:
        query = select(WRITES).order_by(WRITES.c.id)
        return await self._run(lambda connection: [dict(row) for row in connection.execute(query).mappings()])

    async def feed_token(self, expert_key: str, *, new_token: Callable[[], str], now: datetime) -> str:
        return await self._run(lambda connection: _feed_token(connection, expert_key, new_token, now))

    async def rotate_feed_token(self, expert_key: str, *, token: str, now: datetime) -> None:
        def work(connection: Connection) -> None:
            connection.execute(FEEDS.delete().where(FEEDS.c.expert_key == expert_key))
            connection.execute(insert(FEEDS).values(expert_key=expert_key, token=token, created_at=now))

        await self._run(work)

    async def expert_for_token(self, token: str) -> str | None:
        query = select(FEEDS.c.expert_key).where(FEEDS.c.token == token)
        return await self._run(lambda connection: connection.execute(query).scalar_one_or_none())

    async def chat_state(self, chat_key: str) -> tuple[dict[str, Any] | None, int | None]:
        query = select(CHATS.c.state, CHATS.c.last_update_id).where(CHATS.c.chat_key == chat_key)
        row = await self._run(lambda connection: connection.execute(query).one_or_none())
        return (None, None) if row is None else (dict(row.state), row.last_update_id)

    async def save_chat_state(
        self, chat_key: str, state: dict[str, Any], *, update_id: int | None, now: datetime
    ) -> None:
        await self._run(lambda connection: _save_chat(connection, chat_key, state, update_id, now))


def _book(
    connection: Connection, booking: Booking, fits: FitCheck, reminders: Sequence[datetime], write_back: bool
) -> Booking:
    _lock_expert(connection, booking.expert_key)
    if not fits(*_surroundings(connection, booking.expert_key, booking.meeting, excluding=None)):
        raise SlotTaken(booking.expert_key)
    values = {name: getattr(booking, name) for name in _BOOKING_FIELDS}
    try:
        # A savepoint, so a refused insert leaves the transaction usable on PostgreSQL.
        with connection.begin_nested():
            booking_id = connection.execute(insert(BOOKINGS).values(values).returning(BOOKINGS.c.id)).scalar_one()
    except IntegrityError as error:
        raise SlotTaken(booking.expert_key) from error
    stored = replace(booking, id=booking_id)
    _schedule(connection, stored, reminders)
    _record_event(connection, stored, "created", booking.updated_at or booking.created_at)
    if write_back:
        _queue_write(connection, stored, "create", booking.updated_at or booking.created_at)
    return stored


def _move(
    connection: Connection,
    booking_id: int,
    to: Interval,
    blocked: Interval,
    fits: FitCheck,
    reminders: Sequence[datetime],
    write_back: bool,
    now: datetime,
) -> Booking:
    current = _booking(connection, booking_id, for_update=True)
    if current is None or current.status != "confirmed":
        raise LookupError(f"no confirmed consultation {booking_id}")
    _lock_expert(connection, current.expert_key)
    if not fits(*_surroundings(connection, current.expert_key, to, excluding=booking_id)):
        raise SlotTaken(current.expert_key)
    moved = replace(
        current,
        starts_at=to.start,
        ends_at=to.end,
        blocked_from=blocked.start,
        blocked_until=blocked.end,
        sequence=current.sequence + 1,
        updated_at=now,
    )
    changes = {name: getattr(moved, name) for name in _MOVED_FIELDS}
    try:
        with connection.begin_nested():
            connection.execute(update(BOOKINGS).where(BOOKINGS.c.id == booking_id).values(changes))
    except IntegrityError as error:
        raise SlotTaken(current.expert_key) from error
    _drop_reminders(connection, booking_id)
    _schedule(connection, moved, reminders)
    _record_event(connection, moved, "rescheduled", now, previous=current)
    if write_back:
        _queue_write(connection, moved, "update", now)
    return moved


_MOVED_FIELDS = ("starts_at", "ends_at", "blocked_from", "blocked_until", "sequence", "updated_at")


def _cancel(connection: Connection, booking_id: int, write_back: bool, now: datetime) -> Booking:
    current = _booking(connection, booking_id, for_update=True)
    if current is None or current.status != "confirmed":
        raise LookupError(f"no confirmed consultation {booking_id}")
    cancelled = replace(current, status="cancelled", sequence=current.sequence + 1, updated_at=now, cancelled_at=now)
    changes = {name: getattr(cancelled, name) for name in ("status", "sequence", "updated_at", "cancelled_at")}
    connection.execute(update(BOOKINGS).where(BOOKINGS.c.id == booking_id).values(changes))
    _drop_reminders(connection, booking_id)
    _record_event(connection, cancelled, "cancelled", now)
    if write_back:
        _queue_write(connection, cancelled, "delete", now)
    return cancelled


ERASED_ATTENDEE = "Erased prospect"
"""The name an erased prospect's consultations keep: the column is required, and the expert must see why."""


def _erase_attendee(
    connection: Connection, prospect_ref: int, chat_key: str, write_back: Collection[str], now: datetime
) -> list[Booking]:
    of_prospect = BOOKINGS.c.prospect_ref == prospect_ref
    future = connection.execute(
        select(BOOKINGS.c.id).where(of_prospect, BOOKINGS.c.status == "confirmed", BOOKINGS.c.starts_at > now)
    ).scalars()
    upcoming = sorted(_bookings(connection, list(future)).values(), key=lambda booking: booking.starts_at)
    cancelled = [
        _cancel(connection, booking.id, booking.expert_key in write_back, now)
        for booking in upcoming
        if booking.id is not None
    ]
    anonymous = {
        "attendee_name": ERASED_ATTENDEE,
        "attendee_email": None,
        "attendee_zone": "UTC",
        "company": None,
        "chat_id": None,
        "updated_at": now,
    }
    connection.execute(update(BOOKINGS).where(of_prospect).values(anonymous))
    connection.execute(delete(CHATS).where(CHATS.c.chat_key == chat_key))
    held = connection.execute(
        select(BOOKINGS).where(of_prospect, BOOKINGS.c.status == "confirmed", BOOKINGS.c.expert_key.in_(write_back))
    ).mappings()
    for row in held:
        _queue_write(connection, _record(row), "update", now)
    return cancelled


def _personal_data(connection: Connection, prospect_ref: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(BOOKINGS).where(BOOKINGS.c.prospect_ref == prospect_ref).order_by(BOOKINGS.c.starts_at)
    ).mappings()
    documents = []
    for row in rows:
        reminders = connection.execute(
            select(REMINDERS.c.due_at, REMINDERS.c.status, REMINDERS.c.sent_at)
            .where(REMINDERS.c.booking_id == row["id"])
            .order_by(REMINDERS.c.due_at)
        ).mappings()
        document = {
            key: _json(value) for key, value in row.items() if key not in {"id", "blocked_from", "blocked_until"}
        }
        document["reminders"] = [{key: _json(value) for key, value in reminder.items()} for reminder in reminders]
        documents.append(document)
    return documents


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _record_event(
    connection: Connection, booking: Booking, kind: str, at: datetime | None, *, previous: Booking | None = None
) -> None:
    """Note the change for sales in the same transaction; the bot relays it once (see claim_booking_events)."""
    assert at is not None
    detail: dict[str, Any] = {
        "uid": booking.uid,
        "expert_key": booking.expert_key,
        "starts_at": booking.starts_at.isoformat(),
        "ends_at": booking.ends_at.isoformat(),
        "status": booking.status,
        "sequence": booking.sequence,
    }
    if previous is not None:
        detail["previous_starts_at"] = previous.starts_at.isoformat()
        detail["previous_ends_at"] = previous.ends_at.isoformat()
    connection.execute(
        insert(EVENTS).values(booking_id=booking.id, lead_ref=booking.lead_ref, kind=kind, at=at, detail=detail)
    )


def _claim_events(connection: Connection, now: datetime, lease: timedelta, limit: int) -> list[BookingEvent]:
    due = (
        select(EVENTS)
        .where(EVENTS.c.relayed_at.is_(None), or_(EVENTS.c.leased_until.is_(None), EVENTS.c.leased_until < now))
        .order_by(EVENTS.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = connection.execute(due).mappings().all()
    if rows:
        connection.execute(
            update(EVENTS).where(EVENTS.c.id.in_([row["id"] for row in rows])).values(leased_until=now + lease)
        )
    return [
        BookingEvent(
            event_id=row["id"],
            booking_id=row["booking_id"],
            lead_ref=row["lead_ref"],
            kind=row["kind"],
            at=row["at"],
            detail=dict(row["detail"]),
        )
        for row in rows
    ]


class AlreadyRelayed(Exception):
    """Another relayer handed this booking event over first; its transaction must roll back."""


def mark_event_relayed(connection: Connection, event_id: int, now: datetime) -> None:
    """Mark a booking event relayed inside the relayer's transaction; AlreadyRelayed if it was.

    On PostgreSQL the UPDATE waits for a concurrent relayer's lock and then sees its relayed_at, so of two
    relayers of one event exactly one commits.
    """
    marked = connection.execute(
        update(EVENTS)
        .where(EVENTS.c.id == event_id, EVENTS.c.relayed_at.is_(None))
        .values(relayed_at=now, leased_until=None)
    )
    if marked.rowcount != 1:
        raise AlreadyRelayed(event_id)


def _lock_expert(connection: Connection, expert_key: str) -> None:
    if connection.dialect.name == "postgresql":
        # Held to the end of the transaction: one expert's bookings are checked and written one at a time.
        connection.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": "booking:" + expert_key})


def _surroundings(
    connection: Connection, expert_key: str, meeting: Interval, *, excluding: int | None
) -> tuple[list[Interval], list[Interval]]:
    """The expert's busy time and consultations around a meeting, as its fit check needs them."""
    window = Interval(meeting.start - _LOOK_AROUND, meeting.end + _LOOK_AROUND)
    return busy_between(connection, expert_key, window), booked_between(
        connection, expert_key, window, excluding=excluding
    )


def _schedule(connection: Connection, booking: Booking, reminders: Sequence[datetime]) -> None:
    rows = [
        {
            "booking_id": booking.id,
            "due_at": due,
            "before_minutes": int((booking.starts_at - due).total_seconds() // 60),
            "status": "pending",
            "attempts": 0,
        }
        for due in reminders
    ]
    if rows:
        connection.execute(insert(REMINDERS), rows)


def _drop_reminders(connection: Connection, booking_id: int) -> None:
    connection.execute(
        update(REMINDERS)
        .where(REMINDERS.c.booking_id == booking_id, REMINDERS.c.status == "pending")
        .values(status="dropped", leased_until=None)
    )


def _queue_write(connection: Connection, booking: Booking, action: str, now: datetime | None) -> None:
    assert now is not None
    connection.execute(
        insert(WRITES).values(
            booking_id=booking.id,
            expert_key=booking.expert_key,
            action=action,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
    )


def _claim_reminders(connection: Connection, now: datetime, lease: timedelta, limit: int) -> list[DueReminder]:
    due = (
        select(REMINDERS.c.id, REMINDERS.c.before_minutes, REMINDERS.c.booking_id)
        .where(
            REMINDERS.c.status == "pending",
            REMINDERS.c.due_at <= now,
            or_(REMINDERS.c.leased_until.is_(None), REMINDERS.c.leased_until < now),
        )
        .order_by(REMINDERS.c.due_at, REMINDERS.c.id)
        .limit(limit)
        # Another replica skips the rows this one holds instead of waiting for them (PostgreSQL; SQLite
        # transactions are serialised anyway).
        .with_for_update(skip_locked=True)
    )
    rows = connection.execute(due).all()
    if not rows:
        return []
    connection.execute(
        update(REMINDERS)
        .where(REMINDERS.c.id.in_([row.id for row in rows]))
        .values(leased_until=now + lease, attempts=REMINDERS.c.attempts + 1)
    )
    bookings = _bookings(connection, {row.booking_id for row in rows})
    return [DueReminder(row.id, timedelta(minutes=row.before_minutes), bookings[row.booking_id]) for row in rows]


def _claim_writes(connection: Connection, now: datetime, lease: timedelta, limit: int) -> list[DueCalendarWrite]:
    earlier = WRITES.alias("earlier")
    # A consultation's writes go in order: a delete must not overtake the create it undoes.
    waiting_for_earlier = (
        select(earlier.c.id)
        .where(
            earlier.c.booking_id == WRITES.c.booking_id,
            earlier.c.id < WRITES.c.id,
            earlier.c.status == "pending",
        )
        .exists()
    )
    due = (
        select(WRITES.c.id, WRITES.c.action, WRITES.c.attempts, WRITES.c.booking_id)
        .where(
            WRITES.c.status == "pending",
            WRITES.c.next_attempt_at <= now,
            or_(WRITES.c.leased_until.is_(None), WRITES.c.leased_until < now),
            ~waiting_for_earlier,
        )
        .order_by(WRITES.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    rows = connection.execute(due).all()
    if not rows:
        return []
    connection.execute(
        update(WRITES)
        .where(WRITES.c.id.in_([row.id for row in rows]))
        .values(leased_until=now + lease, attempts=WRITES.c.attempts + 1)
    )
    bookings = _bookings(connection, {row.booking_id for row in rows})
    return [
        DueCalendarWrite(
            row.id, cast(Literal["create", "update", "delete"], row.action), row.attempts + 1, bookings[row.booking_id]
        )
        for row in rows
    ]


def _feed_token(connection: Connection, expert_key: str, new_token: Callable[[], str], now: datetime) -> str:
    query = select(FEEDS.c.token).where(FEEDS.c.expert_key == expert_key)
    token = connection.execute(query).scalar_one_or_none()
    if token is not None:
        return str(token)
    try:
        with connection.begin_nested():
            token = new_token()
            connection.execute(insert(FEEDS).values(expert_key=expert_key, token=token, created_at=now))
    except IntegrityError:
        # Another process made the expert's first token at the same moment: theirs stands.
        token = connection.execute(query).scalar_one()
    return str(token)


def _save_chat(
    connection: Connection, chat_key: str, state: dict[str, Any], update_id: int | None, now: datetime
) -> None:
    values = {"state": state, "updated_at": now}
    if update_id is not None:
        values["last_update_id"] = update_id
    changed = connection.execute(update(CHATS).where(CHATS.c.chat_key == chat_key).values(values))
    if changed.rowcount == 0:
        connection.execute(insert(CHATS).values(chat_key=chat_key, **values))


def _booking(connection: Connection, booking_id: int, *, for_update: bool = False) -> Booking | None:
    query = select(BOOKINGS).where(BOOKINGS.c.id == booking_id)
    if for_update:
        query = query.with_for_update()
    row = connection.execute(query).mappings().one_or_none()
    return None if row is None else _record(row)


def _bookings(connection: Connection, booking_ids: Collection[int]) -> dict[int, Booking]:
    query = select(BOOKINGS).where(BOOKINGS.c.id.in_(list(booking_ids)))
    return {row["id"]: _record(row) for row in connection.execute(query).mappings()}


def _record(row: RowMapping) -> Booking:
    values = {name: row[name] for name in _BOOKING_FIELDS}
    values["status"] = cast(BookingStatus, values["status"])
    return Booking(id=row["id"], **values)
