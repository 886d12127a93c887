"""Database tables for prospects, conversations, leads and their audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, DateTime, ForeignKey, Index, String, TypeDecorator
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

# Naming convention for constraints, so Alembic migrations can name (and later drop) them on every
# database, SQLite's batch mode included.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = SQLModel.metadata
"""The tables of this package (SQLModel keeps one metadata for all models)."""

JSONDocument = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """An aware instant, stored in UTC; SQLite, which keeps no offset, gives it back aware too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else utc_instant(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_instant(value: datetime) -> datetime:
    """An aware instant in UTC, as UTCDateTime stores it; a naive one is refused."""
    if value.tzinfo is None:
        raise ValueError("naive datetimes are not stored: pass an aware one")
    return value.astimezone(UTC)


def _instant(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


class ProspectRow(SQLModel, table=True):
    """Someone who talked to the bot."""

    __tablename__ = "prospects"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(sa_column=Column(String(16), nullable=False))
    telegram_user_id: int | None = Field(default=None, sa_column=Column(BigInteger, unique=True))
    first_name: str | None = Field(default=None, max_length=128)
    last_name: str | None = Field(default=None, max_length=128)
    username: str | None = Field(default=None, max_length=64)
    language_code: str | None = Field(default=None, max_length=16)
    source: str | None = Field(default=None, max_length=64)
    timezone: str | None = Field(default=None, max_length=64)
    """The IANA zone they said they are in; times are shown to them in it."""
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class LeadRow(SQLModel, table=True):
    """A questionnaire and its outcome."""

    __tablename__ = "leads"
    __table_args__ = (Index("ix_leads_status_created_at", "status", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    prospect_id: int = Field(sa_column=Column(ForeignKey("prospects.id"), nullable=False, index=True))
    source: str | None = Field(default=None, max_length=64)
    status: str = Field(sa_column=Column(String(16), nullable=False))
    outcome: str | None = Field(default=None, sa_column=Column(String(16)))
    answers: dict[str, Any] = Field(sa_column=Column(JSONDocument, nullable=False))
    score: int | None = None
    reasons: list[dict[str, Any]] = Field(sa_column=Column(JSONDocument, nullable=False))
    created_at: datetime = _instant()
    updated_at: datetime = _instant()
    completed_at: datetime | None = _instant(nullable=True)


class ConversationRow(SQLModel, table=True):
    """A chat's place in the questionnaire."""

    __tablename__ = "conversations"

    id: int | None = Field(default=None, primary_key=True)
    chat_key: str = Field(sa_column=Column(String(64), nullable=False, unique=True))
    prospect_id: int = Field(sa_column=Column(ForeignKey("prospects.id"), nullable=False, index=True))
    lead_id: int = Field(sa_column=Column(ForeignKey("leads.id"), nullable=False, index=True))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    stage: str = Field(sa_column=Column(String(16), nullable=False))
    current_question: str | None = Field(default=None, sa_column=Column(String(32)))
    """Denormalised from the state so drop-off per question is one GROUP BY."""
    state: dict[str, Any] = Field(sa_column=Column(JSONDocument, nullable=False))
    last_update_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class LeadEventRow(SQLModel, table=True):
    """One entry of a lead's audit trail."""

    __tablename__ = "lead_events"

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(sa_column=Column(ForeignKey("leads.id"), nullable=False, index=True))
    at: datetime = _instant()
    kind: str = Field(sa_column=Column(String(32), nullable=False))
    actor: str = Field(sa_column=Column(String(64), nullable=False))
    detail: dict[str, Any] = Field(sa_column=Column(JSONDocument, nullable=False))
