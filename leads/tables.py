"""Database tables for prospects, conversations, leads and their audit trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
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
    followups_stopped_at: datetime | None = _instant(nullable=True)
    """When they sent /stop: no follow-up message goes to them after that."""
    blocked_at: datetime | None = _instant(nullable=True)
    """When Telegram first answered 403 (they blocked the bot): nothing is sent to them after that."""
    created_at: datetime = _instant()
    updated_at: datetime = _instant()


class LeadRow(SQLModel, table=True):
    """A questionnaire and its outcome, and where sales stand with it (the pipeline columns)."""

    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_status_created_at", "status", "created_at"),
        Index("ix_leads_pipeline_completed_at", "pipeline", "completed_at"),
        # The follow-up sender's search for qualified and nurtured leads that finished long enough ago.
        Index("ix_leads_outcome_completed_at", "outcome", "completed_at"),
    )

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
    # Sales' side: written only by the hand-off store, with UPDATEs of these columns alone, so a
    # questionnaire save never overwrites a claim (and the reverse).
    pipeline: str | None = Field(default=None, sa_column=Column(String(16)))
    """new, claimed, contacted, won, lost, disqualified; nurture for leads not qualified; None before completion."""
    owner_user_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    owner_name: str | None = Field(default=None, sa_column=Column(String(100)))
    routed_user_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    """The sales rep the routing rules gave the lead to on creation."""
    lost_reason: str | None = Field(default=None, sa_column=Column(String(200)))
    pipeline_changed_at: datetime | None = _instant(nullable=True)
    card_chat_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    card_message_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    """Where the lead's card is in the sales chat, once posted; the card is edited there."""
    consultation_uid: str | None = Field(default=None, sa_column=Column(String(128)))
    consultation_expert: str | None = Field(default=None, sa_column=Column(String(24)))
    consultation_starts_at: datetime | None = _instant(nullable=True)
    consultation_ends_at: datetime | None = _instant(nullable=True)
    consultation_status: str | None = Field(default=None, sa_column=Column(String(16)))
    """The lead's latest consultation as the booking events told it: confirmed or cancelled."""


class ConversationRow(SQLModel, table=True):
    """A chat's place in the questionnaire."""

    __tablename__ = "conversations"
    # The follow-up sender's search for questionnaires left active and untouched for long enough.
    __table_args__ = (Index("ix_conversations_status_updated_at", "status", "updated_at"),)

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


class OutboxRow(SQLModel, table=True):
    """Work for sales written in the same transaction as the change that caused it: a CRM webhook to deliver,
    or a lead card to post or edit. Claimed by workers with a lease; delivered at least once, deduplicated by the
    receiver with the idempotency key."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_status_next_attempt_at", "status", "next_attempt_at"),)

    id: int | None = Field(default=None, primary_key=True)
    destination: str = Field(sa_column=Column(String(16), nullable=False))
    """crm (a webhook) or card (post or edit the lead's card in the sales chat)."""
    topic: str = Field(sa_column=Column(String(40), nullable=False))
    """The event type: lead.qualified, lead.status_changed, booking.created, ..."""
    idempotency_key: str = Field(sa_column=Column(String(120), nullable=False, unique=True))
    lead_id: int | None = Field(default=None, sa_column=Column(ForeignKey("leads.id"), index=True))
    payload: dict[str, Any] = Field(sa_column=Column(JSONDocument, nullable=False))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    """pending, done, or dead (gave up after the configured number of attempts, or a permanent failure)."""
    attempts: int = Field(default=0, sa_column=Column(Integer, nullable=False))
    next_attempt_at: datetime = _instant()
    leased_until: datetime | None = _instant(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _instant()
    done_at: datetime | None = _instant(nullable=True)


class FollowUpRow(SQLModel, table=True):
    """A follow-up message to a prospect: at most one of each kind per lead, whatever the replicas do."""

    __tablename__ = "followups"
    __table_args__ = (UniqueConstraint("lead_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    lead_id: int = Field(sa_column=Column(ForeignKey("leads.id"), nullable=False, index=True))
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    """unfinished (stopped mid-questionnaire), unbooked (qualified, no consultation), nurture (resources)."""
    status: str = Field(sa_column=Column(String(16), nullable=False))
    """sending (claimed, under a lease), sent, blocked (the prospect blocked the bot), skipped (no longer due)."""
    leased_until: datetime | None = _instant(nullable=True)
    sent_at: datetime | None = _instant(nullable=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _instant()
