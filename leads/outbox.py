"""The hand-off outbox: CRM webhooks and lead-card posts, written in the transaction of the change that caused them.

A message is a row of `outbox`; `SqlOutbox` claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL),
so each is worked by one worker at a time, and a worker that dies leaves its rows to another once the lease runs
out. Delivery is therefore at least once; the receiver deduplicates by the idempotency key.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, RowMapping, func, insert, or_, select, update

from leads import tables
from leads.sql_store import SqlStore

OUTBOX = tables.metadata.tables[tables.OutboxRow.__tablename__]

Destination = Literal["crm", "card"]


@dataclass(frozen=True)
class OutboxMessage:
    """One thing to deliver: a CRM event (topic lead.qualified, booking.created, ...) or a card refresh."""

    destination: Destination
    topic: str
    idempotency_key: str
    lead_id: int | None
    payload: dict[str, Any]


def outbox_rows(messages: list[OutboxMessage], now: datetime) -> list[dict[str, Any]]:
    """The rows that queue these messages, due at once."""
    return [
        {
            "destination": message.destination,
            "topic": message.topic,
            "idempotency_key": message.idempotency_key,
            "lead_id": message.lead_id,
            "payload": message.payload,
            "status": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
        }
        for message in messages
    ]


def enqueue(connection: Connection, messages: list[OutboxMessage], now: datetime) -> None:
    """Queue the messages inside the caller's transaction."""
    if messages:
        connection.execute(insert(OUTBOX), outbox_rows(messages, now))


Outcome = Literal["done", "retry", "dead"]


@dataclass(frozen=True)
class DueMessage:
    """A claimed message, leased to its worker; `attempts` counts this attempt."""

    message_id: int
    destination: str
    topic: str
    idempotency_key: str
    lead_id: int | None
    payload: dict[str, Any]
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class OutboxEntry:
    """A message as an operator sees it: where it stands, how often it was tried, and why it last failed."""

    message_id: int
    destination: str
    topic: str
    idempotency_key: str
    status: str
    attempts: int
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    done_at: datetime | None


class SqlOutbox(SqlStore):
    """The outbox table: claim due messages under a lease, record how each went, and revive dead letters.

    Each operation is one transaction, written as a plain function of a connection: PostgreSQL runs it on the async
    engine; SQLite runs it inline on the blocking twin engine, holding the lock every store on that engine shares.
    """

    async def claim(self, destination: str, *, now: datetime, lease: timedelta, limit: int) -> list[DueMessage]:
        """Lease up to `limit` due messages of `destination`, oldest first, counting the attempt."""
        return await self._run(lambda connection: _claim(connection, destination, now, lease, limit))

    async def finish(self, message_id: int, *, outcome: Outcome, error: str | None, at: datetime) -> None:
        """Record an attempt: done, dead (given up), or retry (pending again, due `at`)."""
        values: dict[str, Any] = {"last_error": error, "leased_until": None}
        if outcome == "retry":
            values.update(status="pending", next_attempt_at=at)
        else:
            values.update(status=outcome, done_at=at)
        # Only a pending message: a worker whose lease ran out must not undo what the one after it recorded.
        statement = update(OUTBOX).where(OUTBOX.c.id == message_id, OUTBOX.c.status == "pending").values(**values)
        await self._run(lambda connection: connection.execute(statement))

    async def pending_count(self, destination: str | None = None) -> int:
        """How many messages (of `destination`, or of all) wait to be delivered."""
        query = select(func.count()).select_from(OUTBOX).where(OUTBOX.c.status == "pending")
        if destination is not None:
            query = query.where(OUTBOX.c.destination == destination)
        return await self._run(lambda connection: int(connection.execute(query).scalar_one()))

    async def dead_letters(self, destination: str | None = None) -> list[OutboxEntry]:
        """The messages given up on (of `destination`, or of all), oldest first."""
        query = select(OUTBOX).where(OUTBOX.c.status == "dead").order_by(OUTBOX.c.id)
        if destination is not None:
            query = query.where(OUTBOX.c.destination == destination)
        return await self._run(lambda connection: [_entry(row) for row in connection.execute(query).mappings()])

    async def entries(self, message_ids: Collection[int]) -> list[OutboxEntry]:
        """The messages with these ids that exist, by id."""
        query = select(OUTBOX).where(OUTBOX.c.id.in_(list(message_ids))).order_by(OUTBOX.c.id)
        return await self._run(lambda connection: [_entry(row) for row in connection.execute(query).mappings()])

    async def retry(self, message_ids: Collection[int] | None = None, *, now: datetime) -> int:
        """Make dead letters (these, or all of them) pending again, due now with a fresh count; how many."""
        statement = (
            update(OUTBOX)
            .where(OUTBOX.c.status == "dead")
            .values(status="pending", attempts=0, next_attempt_at=now, leased_until=None, done_at=None)
        )
        if message_ids is not None:
            statement = statement.where(OUTBOX.c.id.in_(list(message_ids)))
        return await self._run(lambda connection: connection.execute(statement).rowcount)


def _claim(connection: Connection, destination: str, now: datetime, lease: timedelta, limit: int) -> list[DueMessage]:
    due = (
        select(OUTBOX)
        .where(
            OUTBOX.c.destination == destination,
            OUTBOX.c.status == "pending",
            OUTBOX.c.next_attempt_at <= now,
            or_(OUTBOX.c.leased_until.is_(None), OUTBOX.c.leased_until < now),
        )
        .order_by(OUTBOX.c.id)
        .limit(limit)
        # Replicas claiming at once take different rows instead of queueing behind each other (PostgreSQL; SQLite's
        # writers are queued by BEGIN IMMEDIATE).
        .with_for_update(skip_locked=True)
    )
    rows = connection.execute(due).mappings().all()
    if not rows:
        return []
    connection.execute(
        update(OUTBOX)
        .where(OUTBOX.c.id.in_([row["id"] for row in rows]))
        .values(leased_until=now + lease, attempts=OUTBOX.c.attempts + 1)
    )
    return [
        DueMessage(
            message_id=row["id"],
            destination=row["destination"],
            topic=row["topic"],
            idempotency_key=row["idempotency_key"],
            lead_id=row["lead_id"],
            payload=dict(row["payload"]),
            attempts=row["attempts"] + 1,
            created_at=row["created_at"],
        )
        for row in rows
    ]


def _entry(row: RowMapping) -> OutboxEntry:
    return OutboxEntry(
        message_id=row["id"],
        destination=row["destination"],
        topic=row["topic"],
        idempotency_key=row["idempotency_key"],
        status=row["status"],
        attempts=row["attempts"],
        last_error=row["last_error"],
        created_at=row["created_at"],
        next_attempt_at=row["next_attempt_at"],
        done_at=row["done_at"],
    )
