"""The availability store on SQLAlchemy Core: calendar feeds, busy intervals and booked time, SQLite or PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, RowMapping, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from scheduling import tables
from scheduling.intervals import Interval
from scheduling.records import FeedState

FEEDS = tables.metadata.tables[tables.CalendarFeedRow.__tablename__]
BUSY = tables.metadata.tables[tables.BusyIntervalRow.__tablename__]
BOOKINGS = tables.metadata.tables[tables.BookingRow.__tablename__]

_STATE_COLUMNS = (
    "etag",
    "last_modified",
    "content_hash",
    "events",
    "problems",
    "covered_from",
    "covered_until",
    "last_attempt_at",
    "last_success_at",
    "last_changed_at",
    "last_error",
    "last_error_at",
)
_SAVE_STATE = update(FEEDS).where(FEEDS.c.id == bindparam("feed_id")).values({c: bindparam(c) for c in _STATE_COLUMNS})
# Built once: a slot query runs it for every expert it looks at.
_BUSY_BETWEEN = (
    select(BUSY.c.starts_at, BUSY.c.ends_at)
    .where(
        BUSY.c.expert_key == bindparam("expert_key"),
        BUSY.c.ends_at > bindparam("window_start"),
        BUSY.c.starts_at < bindparam("window_end"),
    )
    .order_by(BUSY.c.starts_at)
)


Result = TypeVar("Result")

log = logging.getLogger(__name__)


class SqlStore:
    """A store whose operations are each one transaction, written as a plain function of a connection.

    PostgreSQL runs the function on the async engine; SQLite runs it inline on the blocking twin engine, holding
    the lock the lead store holds for its transactions (see bot/database.py, store_engine).
    """

    def __init__(self, engine: AsyncEngine | Engine, *, one_writer: asyncio.Lock | None = None) -> None:
        self._engine = engine
        self._one_writer = one_writer or asyncio.Lock()

    async def _run(self, work: Callable[[Connection], Result]) -> Result:
        if isinstance(self._engine, AsyncEngine):
            try:
                async with self._engine.begin() as connection:
                    return await connection.run_sync(work)
            except DBAPIError as error:
                # A connection the server dropped (pg_terminate_backend, a failover) fails its transaction, and
                # SQLAlchemy then discards every pooled connection older than the failure: run the work once more
                # on a fresh one rather than fail the prospect's update. The work is a plain function of its
                # connection, rolled back with it, so running it again from scratch is safe.
                if not error.connection_invalidated:
                    raise
                log.warning("database connection lost; running the transaction again on a new one")
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        async with self._one_writer:
            with self._engine.begin() as connection:
                return work(connection)


class SqlAvailabilityStore(SqlStore):
    """Feeds, busy intervals and booked time in the bot's database."""

    async def configure_feeds(self, feeds: Collection[tuple[str, str]]) -> list[FeedState]:
        await self._run(lambda connection: _configure_feeds(connection, set(feeds)))
        return await self.feeds()

    async def feeds(self, expert_keys: Collection[str] | None = None) -> list[FeedState]:
        keys = None if expert_keys is None else list(expert_keys)
        return await self._run(lambda connection: _feeds(connection, keys))

    async def claim_feed(self, feed: FeedState, *, now: datetime) -> bool:
        return await self._run(lambda connection: _claim_feed(connection, feed, now))

    async def record_attempt(self, feed: FeedState) -> None:
        await self._run(lambda connection: _save_state(connection, feed))

    async def replace_busy(self, feed: FeedState, busy: Sequence[Interval]) -> None:
        await self._run(lambda connection: _replace_busy(connection, feed, busy))

    async def busy_between(self, expert_key: str, window: Interval) -> list[Interval]:
        return await self._run(lambda connection: busy_between(connection, expert_key, window))

    async def booked_between(
        self, expert_key: str, window: Interval, *, excluding: int | None = None
    ) -> list[Interval]:
        return await self._run(lambda connection: booked_between(connection, expert_key, window, excluding=excluding))


def busy_between(connection: Connection, expert_key: str, window: Interval) -> list[Interval]:
    """The expert's busy intervals from all their feeds that overlap the window, soonest first."""
    parameters = {"expert_key": expert_key, "window_start": window.start, "window_end": window.end}
    return [Interval(row.starts_at, row.ends_at) for row in connection.execute(_BUSY_BETWEEN, parameters)]


def booked_between(
    connection: Connection, expert_key: str, window: Interval, *, excluding: int | None
) -> list[Interval]:
    """When the expert's confirmed consultations that reach into the window (buffers included) take place."""
    query = (
        select(BOOKINGS.c.starts_at, BOOKINGS.c.ends_at)
        .where(
            BOOKINGS.c.expert_key == expert_key,
            BOOKINGS.c.status == "confirmed",
            BOOKINGS.c.blocked_until > window.start,
            BOOKINGS.c.blocked_from < window.end,
        )
        .order_by(BOOKINGS.c.starts_at)
    )
    if excluding is not None:
        query = query.where(BOOKINGS.c.id != excluding)
    return [Interval(row.starts_at, row.ends_at) for row in connection.execute(query)]


def _configure_feeds(connection: Connection, wanted: set[tuple[str, str]]) -> None:
    rows = connection.execute(select(FEEDS.c.id, FEEDS.c.expert_key, FEEDS.c.location)).all()
    gone = [row.id for row in rows if (row.expert_key, row.location) not in wanted]
    if gone:
        # Intervals first, rather than trusting ON DELETE CASCADE: SQLite honours it only with foreign keys on.
        connection.execute(delete(BUSY).where(BUSY.c.feed_id.in_(gone)))
        connection.execute(delete(FEEDS).where(FEEDS.c.id.in_(gone)))
    new = wanted - {(row.expert_key, row.location) for row in rows}
    if new:
        values = [{"expert_key": key, "location": place, "events": 0, "problems": []} for key, place in sorted(new)]
        connection.execute(insert(FEEDS), values)


def _feeds(connection: Connection, expert_keys: list[str] | None) -> list[FeedState]:
    counting = select(BUSY.c.feed_id, func.count().label("busy")).group_by(BUSY.c.feed_id)
    query = select(FEEDS).order_by(FEEDS.c.expert_key, FEEDS.c.id)
    if expert_keys is not None:
        # Every slot query checks its expert's feeds: count only their intervals, not the whole table's.
        counting = counting.where(BUSY.c.expert_key.in_(expert_keys))
        query = query.where(FEEDS.c.expert_key.in_(expert_keys))
    counts = counting.subquery()
    query = query.add_columns(func.coalesce(counts.c.busy, 0).label("busy_intervals")).outerjoin(
        counts, counts.c.feed_id == FEEDS.c.id
    )
    return [_feed(row) for row in connection.execute(query).mappings()]


def _replace_busy(connection: Connection, feed: FeedState, busy: Sequence[Interval]) -> None:
    _save_state(connection, feed)
    connection.execute(delete(BUSY).where(BUSY.c.feed_id == feed.id))
    if busy:
        expert_key = feed.expert_key
        rows = [{"feed_id": feed.id, "expert_key": expert_key, "starts_at": i.start, "ends_at": i.end} for i in busy]
        connection.execute(insert(BUSY), rows)


def _claim_feed(connection: Connection, feed: FeedState, now: datetime) -> bool:
    # Compare and set: of two replicas that read the same attempt, one updates the row and the other, waiting
    # for that row lock (PostgreSQL) or the write lock (SQLite), then finds it changed and updates nothing.
    last = FEEDS.c.last_attempt_at
    seen = last.is_(None) if feed.last_attempt_at is None else last == feed.last_attempt_at
    claimed = connection.execute(update(FEEDS).where(FEEDS.c.id == feed.id, seen).values(last_attempt_at=now))
    return claimed.rowcount == 1


def _save_state(connection: Connection, feed: FeedState) -> None:
    if feed.id is None:
        raise ValueError(f"feed {feed.location!r} of {feed.expert_key!r} was never stored")
    values: dict[str, Any] = {column: getattr(feed, column) for column in _STATE_COLUMNS}
    connection.execute(_SAVE_STATE, {"feed_id": feed.id, **values})


def _feed(row: RowMapping) -> FeedState:
    return FeedState(
        id=row["id"],
        expert_key=row["expert_key"],
        location=row["location"],
        busy_intervals=row["busy_intervals"],
        **{column: row[column] for column in _STATE_COLUMNS},
    )
