"""The storage the qualification use cases need, as small protocols they own."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from leads.model import LeadId, ProspectId
from leads.outbox import OutboxMessage
from leads.pipeline import PipelineStatus
from leads.records import Conversation, Lead, LeadEvent, Prospect


class LeadTransaction(Protocol):
    """Reads and writes inside one transaction; nothing is kept unless `commit` is called."""

    async def prospect(self, prospect_id: ProspectId) -> Prospect | None: ...

    async def prospect_by_telegram_id(self, telegram_user_id: int) -> Prospect | None: ...

    async def save_prospect(self, prospect: Prospect) -> Prospect: ...

    async def conversation_for_chat(self, chat_key: str) -> Conversation | None:
        """The chat's conversation, locked until the transaction ends so one chat's updates queue up."""

    async def save_conversation(self, conversation: Conversation) -> Conversation: ...

    async def lead(self, lead_id: LeadId) -> Lead | None: ...

    async def save_lead(self, lead: Lead) -> Lead: ...

    async def add_event(self, event: LeadEvent) -> None: ...

    async def events(self, lead_id: LeadId) -> list[LeadEvent]: ...

    async def last_routed(self, user_ids: Sequence[int]) -> dict[int, datetime]:
        """When each of these sales reps was last routed a lead (reps never routed one are absent)."""

    async def hand_off(
        self,
        lead_id: LeadId,
        *,
        pipeline: PipelineStatus,
        routed_user_id: int | None,
        messages: list[OutboxMessage],
        now: datetime,
    ) -> None:
        """Put a completed lead into the sales pipeline and queue what follows (its card, the CRM event)."""

    async def commit(self) -> None: ...


class LeadStore(Protocol):
    """Opens transactions."""

    def transaction(self) -> AbstractAsyncContextManager[LeadTransaction]: ...
