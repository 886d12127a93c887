"""The lead store in memory: the fake that ships with the port, for fast service tests."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime

from leads.model import ConversationId, LeadId, ProspectId
from leads.outbox import OutboxMessage
from leads.pipeline import PipelineStatus
from leads.records import Conversation, Lead, LeadEvent, Prospect


@dataclass
class _Tables:
    prospects: dict[int, Prospect] = field(default_factory=dict)
    conversations: dict[str, Conversation] = field(default_factory=dict)
    leads: dict[int, Lead] = field(default_factory=dict)
    events: list[LeadEvent] = field(default_factory=list)
    handoffs: dict[int, tuple[PipelineStatus, int | None, datetime]] = field(default_factory=dict)
    """Lead id -> (pipeline, routed rep, when)."""
    outbox: list[OutboxMessage] = field(default_factory=list)


class InMemoryLeadTransaction:
    """Works on a copy of the tables; commit swaps the copy in, as a database would."""

    def __init__(self, store: InMemoryLeadStore) -> None:
        self._store = store
        self._tables = copy.deepcopy(store.tables)
        self.committed = False

    async def prospect(self, prospect_id: ProspectId) -> Prospect | None:
        return copy.deepcopy(self._tables.prospects.get(prospect_id))

    async def prospect_by_telegram_id(self, telegram_user_id: int) -> Prospect | None:
        found = (p for p in self._tables.prospects.values() if p.telegram_user_id == telegram_user_id)
        return copy.deepcopy(next(found, None))

    async def save_prospect(self, prospect: Prospect) -> Prospect:
        if prospect.id is None:
            prospect.id = ProspectId(len(self._tables.prospects) + 1)
        self._tables.prospects[prospect.id] = copy.deepcopy(prospect)
        return prospect

    async def conversation_for_chat(self, chat_key: str) -> Conversation | None:
        return copy.deepcopy(self._tables.conversations.get(chat_key))

    async def save_conversation(self, conversation: Conversation) -> Conversation:
        if conversation.id is None:
            conversation.id = ConversationId(len(self._tables.conversations) + 1)
        self._tables.conversations[conversation.chat_key] = copy.deepcopy(conversation)
        return conversation

    async def lead(self, lead_id: LeadId) -> Lead | None:
        return copy.deepcopy(self._tables.leads.get(lead_id))

    async def save_lead(self, lead: Lead) -> Lead:
        if lead.id is None:
            lead.id = LeadId(len(self._tables.leads) + 1)
        self._tables.leads[lead.id] = copy.deepcopy(lead)
        return lead

    async def add_event(self, event: LeadEvent) -> None:
        self._tables.events.append(replace(event))

    async def events(self, lead_id: LeadId) -> list[LeadEvent]:
        return [event for event in self._tables.events if event.lead_id == lead_id]

    async def last_routed(self, user_ids: Sequence[int]) -> dict[int, datetime]:
        last: dict[int, datetime] = {}
        for _, rep, at in self._tables.handoffs.values():
            if rep is not None and rep in user_ids and (rep not in last or at > last[rep]):
                last[rep] = at
        return last

    async def hand_off(
        self,
        lead_id: LeadId,
        *,
        pipeline: PipelineStatus,
        routed_user_id: int | None,
        messages: list[OutboxMessage],
        now: datetime,
    ) -> None:
        self._tables.handoffs[lead_id] = (pipeline, routed_user_id, now)
        self._tables.outbox.extend(messages)

    async def commit(self) -> None:
        self._store.tables = self._tables
        self._tables = copy.deepcopy(self._tables)
        self.committed = True


class InMemoryLeadStore:
    """Keeps leads in a process's memory; what is not committed is forgotten."""

    def __init__(self) -> None:
        self.tables = _Tables()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[InMemoryLeadTransaction]:
        yield InMemoryLeadTransaction(self)
