"""The hand-off outbox: CRM webhooks and lead-card posts, written in the transaction of the change that caused them.

A message is a row of `outbox`; `SqlOutbox` claims due rows with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL),
so each is worked by one worker at a time, and a worker that dies leaves its rows to another once the lease runs
out. Delivery is therefore at least once; the receiver deduplicates by the idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, insert

from leads import tables

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
