"""What is remembered about prospects, their conversations and leads: plain records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from leads.flow import FlowState
from leads.model import AnswerValue, ConversationId, LeadId, ProspectId, Question

ConversationStatus = Literal["active", "completed", "cancelled"]
LeadStatus = Literal["in_progress", "completed", "cancelled", "restarted"]


@dataclass
class Prospect:
    """Someone talking to the bot, as their channel knows them."""

    telegram_user_id: int | None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    source: str | None = None
    """Where they first came from: the deep-link payload of their first /start."""
    channel: str = "telegram"
    timezone: str | None = None
    """The IANA zone they said they are in."""
    id: ProspectId | None = None

    @property
    def display_name(self) -> str:
        """Their name as they gave it to Telegram, or their username."""
        name = " ".join(part for part in (self.first_name, self.last_name) if part)
        return name or (f"@{self.username}" if self.username else "(no name)")


@dataclass
class Conversation:
    """One chat's place in the questionnaire, kept in the database between messages."""

    chat_key: str
    prospect_id: ProspectId
    lead_id: LeadId
    state: FlowState
    status: ConversationStatus = "active"
    last_update_id: int | None = None
    """The newest Telegram update applied, so a redelivered update is not applied twice."""
    id: ConversationId | None = None


@dataclass
class Lead:
    """A prospect's questionnaire and its outcome, for sales."""

    prospect_id: ProspectId
    created_at: datetime
    source: str | None = None
    status: LeadStatus = "in_progress"
    outcome: Literal["qualified", "nurture"] | None = None
    answers: dict[str, AnswerValue | None] = field(default_factory=dict)
    score: int | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    """Each reason as {"text": ..., "points": ...}; points is None for a disqualifier."""
    completed_at: datetime | None = None
    id: LeadId | None = None


@dataclass(frozen=True)
class LeadEvent:
    """One entry of a lead's audit trail."""

    lead_id: LeadId
    at: datetime
    kind: str
    actor: str
    detail: dict[str, Any] = field(default_factory=dict)


def describe_answer(question: Question, value: AnswerValue | None) -> str:
    """An answer as a person reads it: option labels rather than keys."""
    if value is None:
        return "—"
    if isinstance(value, tuple):
        return ", ".join(_label(question, key) for key in value)
    if question.kind == "single":
        return _label(question, str(value))
    return str(value)


def _label(question: Question, key: str) -> str:
    option = question.option(key)
    return option.label if option else key
