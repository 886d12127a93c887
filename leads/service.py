"""Qualification use cases: start, answer, cancel; every step stored before the reply is shown."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Protocol

from leads import flow
from leads.flow import FlowState, Reply
from leads.model import AnswerValue, LeadId, ProspectId, Questionnaire
from leads.ports import LeadStore, LeadTransaction
from leads.records import Conversation, Lead, LeadEvent, Prospect, describe_answer
from leads.scoring import Reason

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Visitor:
    """Who is writing, as their channel describes them."""

    telegram_user_id: int | None
    first_name: str | None = None
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None
    channel: str = "telegram"


@dataclass(frozen=True)
class Turn:
    """What one update did to a conversation, for the adapter to render."""

    reply: Reply
    lead_id: LeadId
    resumed: bool = False
    """/start found a conversation already under way (or finished) and showed where it stands."""
    finished: bool = False
    """This very input completed the questionnaire."""


class Ignored(Enum):
    """Why an update changed nothing and needs no reply."""

    DUPLICATE = "duplicate"
    """Telegram delivered an update that was applied already."""
    NO_CONVERSATION = "no_conversation"
    """The chat has no questionnaire under way."""


@dataclass(frozen=True)
class LeadSummary:
    """What sales receive about a lead."""

    lead_id: LeadId
    prospect: Prospect
    source: str | None
    status: str
    outcome: str | None
    score: int | None
    reasons: tuple[Reason, ...]
    answers: tuple[tuple[str, str], ...]
    """(question label, answer as a person reads it), in questionnaire order."""
    completed_at: datetime | None
    answer_keys: tuple[str, ...] = ()
    """The question key of each of `answers`."""

    @property
    def answers_by_key(self) -> dict[str, tuple[str, str]]:
        """Question key -> (label, answer as a person reads it)."""
        return dict(zip(self.answer_keys, self.answers, strict=True))


class CompletionHook(Protocol):
    """What else happens, in the same transaction, when a questionnaire is completed (the hand-off to sales)."""

    async def completed(self, tx: LeadTransaction, lead: Lead) -> None: ...


def summarise(lead: Lead, prospect: Prospect, questionnaire: Questionnaire) -> LeadSummary:
    """Everything sales need to know about a lead, answers as the questionnaire labels them."""
    assert lead.id is not None
    asked = [question for question in questionnaire.questions if question.key in lead.answers]
    return LeadSummary(
        lead_id=lead.id,
        prospect=prospect,
        source=lead.source,
        status=lead.status,
        outcome=lead.outcome,
        score=lead.score,
        reasons=tuple(Reason(r["text"], r.get("points")) for r in lead.reasons),
        answers=tuple((question.label, describe_answer(question, lead.answers[question.key])) for question in asked),
        completed_at=lead.completed_at,
        answer_keys=tuple(question.key for question in asked),
    )


@dataclass(frozen=True)
class ChatLead:
    """The lead a chat's conversation is about, with its prospect, as later steps (booking) need them."""

    prospect: Prospect
    lead_id: LeadId
    outcome: str | None
    """qualified or nurture once the questionnaire is complete; None before."""
    answers: dict[str, AnswerValue | None]


class QualificationService:
    """Runs the questionnaire for any channel, keeping every conversation in the store."""

    def __init__(
        self,
        *,
        store: LeadStore,
        questionnaire: Questionnaire,
        clock: Clock,
        on_completed: CompletionHook | None = None,
    ) -> None:
        self._store = store
        self._questionnaire = questionnaire
        self._clock = clock
        self._on_completed = on_completed

    @property
    def questionnaire(self) -> Questionnaire:
        """The questions being asked."""
        return self._questionnaire

    async def begin(
        self,
        *,
        chat_key: str,
        visitor: Visitor,
        source: str | None = None,
        update_id: int | None = None,
        restart: bool = False,
    ) -> Turn | Ignored:
        """Start the questionnaire, or show where a conversation under way stands (unless restarting)."""
        async with self._store.transaction() as tx:
            conversation = await tx.conversation_for_chat(chat_key)
            if conversation is not None and _seen(conversation, update_id):
                return Ignored.DUPLICATE
            prospect = await self._remember(tx, visitor, source)
            if conversation is not None and conversation.status != "cancelled" and not restart:
                conversation.last_update_id = update_id or conversation.last_update_id
                await tx.save_conversation(conversation)
                await tx.commit()
                state = conversation.state
                return Turn(Reply(state, flow.screen(self._questionnaire, state)), conversation.lead_id, resumed=True)
            turn = await self._start_lead(tx, chat_key, prospect, conversation, source, update_id)
            await tx.commit()
            return turn

    async def respond(self, *, chat_key: str, given: flow.Input, update_id: int | None = None) -> Turn | Ignored:
        """Apply a button press or typed answer to the chat's conversation."""
        async with self._store.transaction() as tx:
            conversation = await tx.conversation_for_chat(chat_key)
            if conversation is None or conversation.status == "cancelled":
                return Ignored.NO_CONVERSATION
            if update_id is not None and update_id == conversation.last_update_id:
                # The last update applied, delivered again: the ledger lets one through only when the replica that
                # handled it died, perhaps before replying. Its answer stays applied once; the question now due
                # is shown again (the outcome, if it finished the questionnaire), so the prospect is not left waiting;
                # at worst they see it twice.
                state = conversation.state
                return Turn(Reply(state, flow.screen(self._questionnaire, state)), conversation.lead_id)
            if _seen(conversation, update_id):
                return Ignored.DUPLICATE
            before = conversation.state
            reply = flow.handle(self._questionnaire, before, given)
            if reply.state == before:
                # Refused or stale: nothing to store, and a redelivery would be refused the same way.
                return Turn(reply, conversation.lead_id)
            conversation.state = reply.state
            conversation.last_update_id = update_id or conversation.last_update_id
            await self._record_answers(tx, conversation, before)
            finished = reply.state.stage == "finished"
            if finished:
                conversation.status = "completed"
                await self._complete_lead(tx, conversation.lead_id, reply)
            await tx.save_conversation(conversation)
            await tx.commit()
            return Turn(reply, conversation.lead_id, finished=finished)

    async def cancel(self, *, chat_key: str, update_id: int | None = None) -> bool:
        """Stop the questionnaire under way; False when there was none."""
        async with self._store.transaction() as tx:
            conversation = await tx.conversation_for_chat(chat_key)
            if conversation is None or conversation.status != "active" or _seen(conversation, update_id):
                return False
            conversation.status = "cancelled"
            conversation.last_update_id = update_id or conversation.last_update_id
            await tx.save_conversation(conversation)
            await self._close_lead(tx, conversation.lead_id, "cancelled", actor="prospect")
            await tx.commit()
            return True

    async def lead_summary(self, lead_id: LeadId) -> LeadSummary | None:
        """Everything sales need to know about a lead."""
        async with self._store.transaction() as tx:
            lead = await tx.lead(lead_id)
            prospect = None if lead is None else await tx.prospect(lead.prospect_id)
        if lead is None or prospect is None:
            return None
        return summarise(lead, prospect, self._questionnaire)

    async def chat_lead(self, chat_key: str) -> ChatLead | None:
        """The chat's latest lead and its prospect; None if the chat never started the questionnaire."""
        async with self._store.transaction() as tx:
            conversation = await tx.conversation_for_chat(chat_key)
            if conversation is None:
                return None
            lead = await tx.lead(conversation.lead_id)
            prospect = await tx.prospect(conversation.prospect_id)
        if lead is None or prospect is None:
            return None
        assert lead.id is not None
        return ChatLead(prospect=prospect, lead_id=lead.id, outcome=lead.outcome, answers=dict(lead.answers))

    async def set_timezone(self, prospect_id: ProspectId, zone: str) -> None:
        """Remember the prospect's time zone."""
        async with self._store.transaction() as tx:
            prospect = await tx.prospect(prospect_id)
            if prospect is None:
                raise LookupError(f"no prospect {prospect_id}")
            prospect.timezone = zone
            await tx.save_prospect(prospect)
            await tx.commit()

    async def _remember(self, tx: LeadTransaction, visitor: Visitor, source: str | None) -> Prospect:
        known = None
        if visitor.telegram_user_id is not None:
            known = await tx.prospect_by_telegram_id(visitor.telegram_user_id)
        prospect = known or Prospect(telegram_user_id=visitor.telegram_user_id, channel=visitor.channel)
        prospect.first_name = visitor.first_name
        prospect.last_name = visitor.last_name
        prospect.username = visitor.username
        prospect.language_code = visitor.language_code
        # The first source is the one that brought them; later links do not overwrite it.
        prospect.source = prospect.source or source
        return await tx.save_prospect(prospect)

    async def _start_lead(
        self,
        tx: LeadTransaction,
        chat_key: str,
        prospect: Prospect,
        previous: Conversation | None,
        source: str | None,
        update_id: int | None,
    ) -> Turn:
        now = self._clock()
        if previous is not None and previous.status == "active":
            await self._close_lead(tx, previous.lead_id, "restarted", actor="prospect")
        assert prospect.id is not None
        lead = await tx.save_lead(Lead(prospect_id=prospect.id, created_at=now, source=source or prospect.source))
        assert lead.id is not None
        await tx.add_event(LeadEvent(lead.id, now, "started", "prospect", {"source": lead.source}))
        state = flow.start(self._questionnaire)
        conversation = previous or Conversation(
            chat_key=chat_key, prospect_id=prospect.id, lead_id=lead.id, state=state
        )
        conversation.lead_id = lead.id
        conversation.state = state
        conversation.status = "active"
        conversation.last_update_id = update_id or conversation.last_update_id
        await tx.save_conversation(conversation)
        return Turn(Reply(state, flow.screen(self._questionnaire, state)), lead.id)

    async def _record_answers(self, tx: LeadTransaction, conversation: Conversation, before: FlowState) -> None:
        after = conversation.state.answers
        changed = [key for key in after if key not in before.answers or before.answers[key] != after[key]]
        now = self._clock()
        for key in changed:
            # Only the question, not the answer: the audit trail must not copy personal data.
            await tx.add_event(LeadEvent(conversation.lead_id, now, "answered", "prospect", {"question": key}))

    async def _complete_lead(self, tx: LeadTransaction, lead_id: LeadId, reply: Reply) -> None:
        assert isinstance(reply.screen, flow.Finished)
        assessment = reply.screen.assessment
        lead = await tx.lead(lead_id)
        assert lead is not None
        now = self._clock()
        lead.status = "completed"
        lead.outcome = "qualified" if assessment.qualified else "nurture"
        lead.answers = dict(reply.state.answers)
        lead.score = assessment.score
        lead.reasons = [{"text": reason.text, "points": reason.points} for reason in assessment.reasons]
        lead.completed_at = now
        await tx.save_lead(lead)
        await tx.add_event(LeadEvent(lead_id, now, "completed", "prospect", {}))
        detail = {"score": assessment.score, "reasons": lead.reasons}
        await tx.add_event(LeadEvent(lead_id, now, lead.outcome, "system", detail))
        if self._on_completed is not None:
            await self._on_completed.completed(tx, lead)

    async def _close_lead(self, tx: LeadTransaction, lead_id: LeadId, status: str, *, actor: str) -> None:
        lead = await tx.lead(lead_id)
        if lead is None or lead.status != "in_progress":
            return
        lead.status = "cancelled" if status == "cancelled" else "restarted"
        await tx.save_lead(lead)
        await tx.add_event(LeadEvent(lead_id, self._clock(), status, actor, {}))


def _seen(conversation: Conversation, update_id: int | None) -> bool:
    last = conversation.last_update_id
    return update_id is not None and last is not None and update_id <= last
