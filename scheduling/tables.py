"""Database tables: experts' calendar feeds and busy time, consultations, their reminders and calendar writes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

metadata = SQLModel.metadata
"""The tables of this package (SQLModel keeps one metadata for all models, naming convention included)."""

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class UTCInstant(TypeDecorator[datetime]):
    """An aware instant stored in UTC; SQLite, which keeps no offset, gives it back aware too.

    leads/ has the same column type: the two packages must not import each other, and a shared
    package would be a third core for fifteen lines.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored: pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _instant(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCInstant(), nullable=nullable))


class CalendarFeedRow(SQLModel, table=True):
    """One calendar an expert shares, and how its last syncs went."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (Index("uq_calendar_feeds_expert_key_location", "expert_key", "location", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    expert_key: str = Field(sa_column=Column(String(24), nullable=False))
    location: str = Field(sa_column=Column(Text, nullable=False))
    """URL or file path as configured; a secret iCal URL is a credential, so it is shown redacted."""
    etag: str | None = Field(default=None, sa_column=Column(Text))
    last_modified: str | None = Field(default=None, sa_column=Column(String(64)))
    content_hash: str | None = Field(default=None, sa_column=Column(String(64)))
    events: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    problems: list[str] = Field(sa_column=Column(JSONDocument, nullable=False))
    """Parts of the feed skipped by the last parse, and why."""
    covered_from: datetime | None = _instant(nullable=True)
    covered_until: datetime | None = _instant(nullable=True)
    """The window the stored busy intervals were read for."""
    last_attempt_at: datetime | None = _instant(nullable=True)
    last_success_at: datetime | None = _instant(nullable=True)
    last_changed_at: datetime | None = _instant(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    last_error_at: datetime | None = _instant(nullable=True)


class BusyIntervalRow(SQLModel, table=True):
    """A stretch of time a feed says its expert is busy."""

    __tablename__ = "busy_intervals"
    # Slot queries ask for one expert's intervals that end after a window starts.
    __table_args__ = (Index("ix_busy_intervals_expert_key_ends_at", "expert_key", "ends_at"),)

    id: int | None = Field(default=None, primary_key=True)
    feed_id: int = Field(
        sa_column=Column(ForeignKey("calendar_feeds.id", ondelete="CASCADE"), nullable=False, index=True)
    )
    expert_key: str = Field(sa_column=Column(String(24), nullable=False))
    """Denormalised from the feed so a slot query reads one table."""
    starts_at: datetime = _instant()
    ends_at: datetime = _instant()


class BookingRow(SQLModel, table=True):
    """A consultation booked with an expert.

    No two confirmed consultations of one expert may overlap, buffers included: PostgreSQL enforces it with an
    exclusion constraint, SQLite with triggers, both written by hand in migration 0003 (autogenerate sees neither).
    """

    __tablename__ = "bookings"
    __table_args__ = (
        Index("ix_bookings_expert_key_blocked_until", "expert_key", "blocked_until"),
        Index("ix_bookings_prospect_ref_starts_at", "prospect_ref", "starts_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    uid: str = Field(sa_column=Column(String(128), nullable=False, unique=True))
    expert_key: str = Field(sa_column=Column(String(24), nullable=False))
    starts_at: datetime = _instant()
    ends_at: datetime = _instant()
    blocked_from: datetime = _instant()
    blocked_until: datetime = _instant()
    prospect_ref: int = Field(sa_column=Column(Integer, nullable=False))
    """The leads package's prospect id (no foreign key: the packages share a database, not a schema)."""
    lead_ref: int = Field(sa_column=Column(Integer, nullable=False))
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    attendee_name: str = Field(sa_column=Column(String(200), nullable=False))
    attendee_email: str | None = Field(default=None, sa_column=Column(String(254)))
    attendee_zone: str = Field(sa_column=Column(String(64), nullable=False))
    company: str | None = Field(default=None, sa_column=Column(String(200)))
    topic: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    sequence: int = Field(sa_column=Column(Integer, nullable=False))
    created_at: datetime = _instant()
    updated_at: datetime = _instant()
    cancelled_at: datetime | None = _instant(nullable=True)


class ReminderRow(SQLModel, table=True):
    """A reminder of a consultation, due at a moment: sent once, or dropped when the consultation changes."""

    __tablename__ = "reminders"
    __table_args__ = (Index("ix_reminders_status_due_at", "status", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    booking_id: int = Field(sa_column=Column(ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False, index=True))
    due_at: datetime = _instant()
    before_minutes: int = Field(sa_column=Column(Integer, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    """pending, sent, dropped (the consultation moved or was cancelled), blocked (the prospect cannot be reached),
    skipped (no longer worth sending: the consultation started, or a nearer reminder went instead)."""
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    leased_until: datetime | None = _instant(nullable=True)
    sent_at: datetime | None = _instant(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))


class CalendarWriteRow(SQLModel, table=True):
    """An outbox entry: write a consultation's current state to the expert's CalDAV collection."""

    __tablename__ = "calendar_writes"
    __table_args__ = (Index("ix_calendar_writes_status_next_attempt_at", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    booking_id: int = Field(sa_column=Column(ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False, index=True))
    expert_key: str = Field(sa_column=Column(String(24), nullable=False))
    action: str = Field(sa_column=Column(String(16), nullable=False))
    """create, update or delete."""
    status: str = Field(sa_column=Column(String(16), nullable=False))
    """pending, done, or dead (a permanent failure, or too many attempts)."""
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime = _instant()
    leased_until: datetime | None = _instant(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _instant()
    done_at: datetime | None = _instant(nullable=True)


class BookingChatRow(SQLModel, table=True):
    """A chat's place in booking (or moving) a consultation, so a restart carries on where the prospect was."""

    __tablename__ = "booking_chats"

    id: int | None = Field(default=None, primary_key=True)
    chat_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    state: dict[str, Any] = Field(sa_column=Column(JSONDocument, nullable=False))
    last_update_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    updated_at: datetime = _instant()


class ExpertFeedRow(SQLModel, table=True):
    """The secret token of an expert's published feed of consultations."""

    __tablename__ = "expert_feeds"

    expert_key: str = Field(sa_column=Column(String(24), primary_key=True))
    token: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = _instant()


class BookingEventRow(SQLModel, table=True):
    """What happened to a consultation (created, rescheduled, cancelled), written in the same transaction as the
    change: the bot relays each to sales (card, CRM webhook) once, marking it relayed."""

    __tablename__ = "booking_events"
    __table_args__ = (Index("ix_booking_events_relayed_at_id", "relayed_at", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    booking_id: int = Field(sa_column=Column(ForeignKey("bookings.id", ondelete="CASCADE"), nullable=False, index=True))
    lead_ref: int = Field(sa_column=Column(Integer, nullable=False))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    """created, rescheduled or cancelled."""
    at: datetime = _instant()
    detail: dict[str, Any] = Field(sa_column=Column(JSONDocument, nullable=False))
    """The consultation as it is after the change (and, when rescheduled, where it was before)."""
    leased_until: datetime | None = _instant(nullable=True)
    relayed_at: datetime | None = _instant(nullable=True)
