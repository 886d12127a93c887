"""Handing qualified leads to sales: routing, the pipeline, the lead card's data, and the events for the CRM.

Every change here is one transaction that also queues what must follow it (a CRM webhook, a card to post or
edit) in the outbox, so a process that dies after the commit loses none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from leads.model import LeadId, Questionnaire
from leads.outbox import OutboxMessage
from leads.pipeline import (
    Action,
    Consultation,
    Pipeline,
    PipelineStatus,
    Refused,
    RoutingMode,
    StaffMember,
    act,
    route,
)
from leads.ports import LeadTransaction
from leads.records import Lead, LeadEvent, Prospect
from leads.service import Clock, LeadSummary, summarise

BookingKind = Literal["created", "rescheduled", "cancelled"]


@dataclass(frozen=True)
class HandoffRules:
    """What the configuration says about handing leads over."""

    staff: tuple[StaffMember, ...] = ()
    routing: RoutingMode = "none"
    service_lines: Mapping[str, str] | None = None
    """Service key -> line (back_office, ...), for routing by service."""
    services_question: str = "services"
    cards: bool = False
    """A sales chat is configured: qualified leads get a card there."""
    webhooks: bool = False
    """A CRM webhook URL is configured: events are queued for it."""


@dataclass(frozen=True)
class Handoff:
    """Sales' side of a lead: the pipeline, who it was routed to, its card and its consultation."""

    pipeline: Pipeline | None
    routed_user_id: int | None = None
    card_chat_id: int | None = None
    card_message_id: int | None = None
    consultation: Consultation | None = None
    changed_at: datetime | None = None


@dataclass(frozen=True)
class LeadCard:
    """Everything a lead card shows."""

    summary: LeadSummary
    handoff: Handoff
    routed_to: StaffMember | None


@dataclass(frozen=True)
class Moved:
    """A pipeline action went through."""

    before: Pipeline
    card: LeadCard


@dataclass(frozen=True)
class BookingNews:
    """A consultation change to hand to sales."""

    event_id: int
    lead_id: LeadId
    kind: BookingKind
    at: datetime
    consultation: Consultation
    previous_starts_at: datetime | None = None


class HandoffStore(Protocol):
    """Sales' side of leads; each call is one transaction."""

    async def lead(self, lead_id: LeadId) -> tuple[Lead, Prospect, Handoff] | None: ...

    async def move(
        self,
        lead_id: LeadId,
        decide: Callable[[Pipeline], Pipeline | Refused],
        messages: Callable[[Lead, Pipeline, Pipeline], list[OutboxMessage]],
        *,
        actor: str,
        now: datetime,
    ) -> tuple[Pipeline, Pipeline] | Refused | None:
        """Lock the lead, decide its new pipeline, store it with a status_changed event and the messages."""

    async def card_posted(self, lead_id: LeadId, *, chat_id: int, message_id: int) -> None: ...

    async def record_booking(
        self, news: BookingNews, messages: list[OutboxMessage], *, also: Callable[[Any], None]
    ) -> None:
        """Store the consultation on the lead with its event and messages, and run `also` in the same transaction
        (the caller marks its booking event relayed there, so that the change is handed over exactly once)."""


class HandoffService:
    """Sales' use cases on leads."""

    def __init__(self, *, store: HandoffStore, questionnaire: Questionnaire, rules: HandoffRules, clock: Clock) -> None:
        self._store = store
        self._questionnaire = questionnaire
        self._rules = rules
        self._clock = clock
        self._staff = {member.user_id: member for member in rules.staff}

    @property
    def rules(self) -> HandoffRules:
        return self._rules

    def staff_member(self, user_id: int) -> StaffMember | None:
        """The configured staff member with this Telegram user id; None for anyone else."""
        return self._staff.get(user_id)

    async def card(self, lead_id: LeadId) -> LeadCard | None:
        """What the lead's card shows now."""
        found = await self._store.lead(lead_id)
        if found is None:
            return None
        lead, prospect, handoff = found
        routed = None if handoff.routed_user_id is None else self._staff.get(handoff.routed_user_id)
        return LeadCard(summarise(lead, prospect, self._questionnaire), handoff, routed)

    async def move(
        self, lead_id: LeadId, action: Action, by: StaffMember, *, reason: str | None = None
    ) -> Moved | Refused | None:
        """Apply a staff member's pipeline action; None if there is no such lead in the pipeline."""
        moved = await self._store.move(
            lead_id,
            lambda pipeline: act(pipeline, action, by, reason=reason),
            lambda lead, before, after: self._status_messages(lead, before, after, by),
            actor=f"staff:{by.user_id}",
            now=self._clock(),
        )
        if moved is None or isinstance(moved, Refused):
            return moved
        card = await self.card(lead_id)
        assert card is not None
        return Moved(moved[0], card)

    async def card_posted(self, lead_id: LeadId, *, chat_id: int, message_id: int) -> None:
        """Remember where the lead's card is, so later changes edit it."""
        await self._store.card_posted(lead_id, chat_id=chat_id, message_id=message_id)

    async def booking_changed(self, news: BookingNews, *, also: Callable[[Any], None]) -> None:
        """Hand a consultation change to sales: the lead's card is refreshed and the CRM told."""
        messages = []
        if self._rules.webhooks:
            messages.append(
                OutboxMessage(
                    "crm",
                    f"booking.{news.kind}",
                    f"booking.{news.kind}:{news.event_id}",
                    news.lead_id,
                    booking_payload(news),
                )
            )
        if self._rules.cards:
            messages.append(card_refresh(news.lead_id, f"booking:{news.event_id}"))
        await self._store.record_booking(news, messages, also=also)

    def _status_messages(self, lead: Lead, before: Pipeline, after: Pipeline, by: StaffMember) -> list[OutboxMessage]:
        if not self._rules.webhooks:
            return []
        assert lead.id is not None
        changed_at = self._clock()
        payload = {
            "lead_id": lead.id,
            "from": before.status,
            "to": after.status,
            "owner": None
            if after.owner_user_id is None
            else {"user_id": after.owner_user_id, "name": after.owner_name},
            "by": {"user_id": by.user_id, "name": by.name},
            "lost_reason": after.lost_reason,
            "changed_at": changed_at.isoformat(),
        }
        key = f"lead.status_changed:{lead.id}:{after.status}:{changed_at.timestamp():.6f}"
        return [OutboxMessage("crm", "lead.status_changed", key, lead.id, payload)]


def card_refresh(lead_id: LeadId, cause: str) -> OutboxMessage:
    """A card job: post the lead's card, or edit it to show the lead as it is when the job runs."""
    return OutboxMessage("card", "card", f"card:{lead_id}:{cause}", lead_id, {"lead_id": lead_id})


def qualified_messages(
    lead: Lead, prospect: Prospect, questionnaire: Questionnaire, rules: HandoffRules, routed: StaffMember | None
) -> list[OutboxMessage]:
    """What a newly qualified lead queues: its card, and the lead.qualified event."""
    assert lead.id is not None
    messages = [card_refresh(lead.id, "qualified")] if rules.cards else []
    if rules.webhooks:
        document = lead_document(summarise(lead, prospect, questionnaire), lead, routed)
        messages.append(OutboxMessage("crm", "lead.qualified", f"lead.qualified:{lead.id}", lead.id, document))
    return messages


def lead_document(summary: LeadSummary, lead: Lead, routed: StaffMember | None) -> dict[str, Any]:
    """The lead as the CRM receives it: plain JSON values."""
    prospect = summary.prospect
    return {
        "lead_id": summary.lead_id,
        "status": "new",
        "outcome": summary.outcome,
        "score": summary.score,
        "reasons": [{"text": reason.text, "points": reason.points} for reason in summary.reasons],
        "source": summary.source,
        "completed_at": None if summary.completed_at is None else summary.completed_at.isoformat(),
        "prospect": {
            "telegram_user_id": prospect.telegram_user_id,
            "first_name": prospect.first_name,
            "last_name": prospect.last_name,
            "username": prospect.username,
            "language_code": prospect.language_code,
        },
        "answers": {
            key: {"question": label, "answer": text, "value": _json_value(lead.answers.get(key))}
            for key, (label, text) in summary.answers_by_key.items()
        },
        "routed_to": None if routed is None else {"user_id": routed.user_id, "name": routed.name},
    }


def booking_payload(news: BookingNews) -> dict[str, Any]:
    """A consultation change as the CRM receives it."""
    consultation = news.consultation
    return {
        "lead_id": news.lead_id,
        "uid": consultation.uid,
        "expert": consultation.expert_key,
        "starts_at": consultation.starts_at.isoformat(),
        "ends_at": consultation.ends_at.isoformat(),
        "status": consultation.status,
        "previous_starts_at": None if news.previous_starts_at is None else news.previous_starts_at.isoformat(),
        "changed_at": news.at.isoformat(),
    }


def first_pipeline(outcome: str | None) -> PipelineStatus:
    """Where a completed lead enters the pipeline."""
    return "new" if outcome == "qualified" else "nurture"


def routed_services(lead: Lead, rules: HandoffRules) -> Sequence[str]:
    """The service keys the lead asked for, as routing by service reads them."""
    value = lead.answers.get(rules.services_question)
    if isinstance(value, tuple):
        return value
    return () if value is None else (str(value),)


def _json_value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


class QualifiedHandoff:
    """Hands each completed lead to sales inside the transaction that completes it: a qualified lead enters the
    pipeline as new, routed by the configured rules, with its card and lead.qualified event queued; a nurtured
    one enters as nurture."""

    def __init__(self, *, rules: HandoffRules, questionnaire: Questionnaire, clock: Clock) -> None:
        self._rules = rules
        self._questionnaire = questionnaire
        self._clock = clock

    async def completed(self, tx: LeadTransaction, lead: Lead) -> None:
        assert lead.id is not None
        now = self._clock()
        status = first_pipeline(lead.outcome)
        if status != "new":
            await tx.hand_off(lead.id, pipeline=status, routed_user_id=None, messages=[], now=now)
            return
        prospect = await tx.prospect(lead.prospect_id)
        assert prospect is not None
        routed = await self._route(tx, lead)
        messages = qualified_messages(lead, prospect, self._questionnaire, self._rules, routed)
        routed_id = None if routed is None else routed.user_id
        await tx.hand_off(lead.id, pipeline=status, routed_user_id=routed_id, messages=messages, now=now)
        if routed is not None:
            detail = {"to_user_id": routed.user_id, "to": routed.name}
            await tx.add_event(LeadEvent(lead.id, now, "routed", "system", detail))

    async def _route(self, tx: LeadTransaction, lead: Lead) -> StaffMember | None:
        rules = self._rules
        if rules.routing == "none" or not rules.staff:
            return None
        last = await tx.last_routed([member.user_id for member in rules.staff])
        return route(
            rules.staff,
            rules.routing,
            services=routed_services(lead, rules),
            service_lines=rules.service_lines or {},
            last_routed=last,
        )
