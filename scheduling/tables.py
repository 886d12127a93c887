"""Database tables for experts' calendar feeds and the busy time read from them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Index, Integer, String, Text, TypeDecorator
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
