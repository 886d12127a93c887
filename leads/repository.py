"""The lead store on SQLAlchemy: SQLite or PostgreSQL behind one async session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal, cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlmodel import col

from leads.flow import FlowState
from leads.model import ConversationId, LeadId, ProspectId
from leads.records import Conversation, ConversationStatus, Lead, LeadEvent, LeadStatus, Prospect
from leads.tables import ConversationRow, LeadEventRow, LeadRow, ProspectRow


class SqlLeadTransaction:
    """One database transaction, speaking in records rather than rows."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def prospect(self, prospect_id: ProspectId) -> Prospect | None:
        row = await self._session.get(ProspectRow, prospect_id)
        return None if row is None else _prospect(row)

    async def prospect_by_telegram_id(self, telegram_user_id: int) -> Prospect | None:
        query = select(ProspectRow).where(col(ProspectRow.telegram_user_id) == telegram_user_id)
        row = (await self._session.execute(query)).scalar_one_or_none()
        return None if row is None else _prospect(row)

    async def save_prospect(self, prospect: Prospect) -> Prospect:
        now = datetime.now(UTC)
        fields = {k: v for k, v in asdict(prospect).items() if k != "id"}
        row = await self._session.get(ProspectRow, prospect.id) if prospect.id is not None else None
        if row is None:
            row = ProspectRow(**fields, created_at=now, updated_at=now)
            self._session.add(row)
        else:
            _assign(row, fields, now)
        await self._session.flush()
        prospect.id = ProspectId(_id(row.id))
        return prospect

    async def conversation_for_chat(self, chat_key: str) -> Conversation | None:
        # FOR UPDATE queues a chat's updates on PostgreSQL; SQLite transactions begin IMMEDIATE
        # (see bot/database.py), which serialises writers in the same way.
        query = select(ConversationRow).where(col(ConversationRow.chat_key) == chat_key).with_for_update()
        row = (await self._session.execute(query)).scalar_one_or_none()
        return None if row is None else _conversation(row)

    async def save_conversation(self, conversation: Conversation) -> Conversation:
        now = datetime.now(UTC)
        fields: dict[str, Any] = {
            "chat_key": conversation.chat_key,
            "prospect_id": conversation.prospect_id,
            "lead_id": conversation.lead_id,
            "status": conversation.status,
            "stage": conversation.state.stage,
            "current_question": conversation.state.current,
            "state": conversation.state.model_dump(mode="json"),
            "last_update_id": conversation.last_update_id,
        }
        row = await self._session.get(ConversationRow, conversation.id) if conversation.id is not None else None
        if row is None:
            row = ConversationRow(**fields, created_at=now, updated_at=now)
            self._session.add(row)
        else:
            _assign(row, fields, now)
        await self._session.flush()
        conversation.id = ConversationId(_id(row.id))
        return conversation

    async def lead(self, lead_id: LeadId) -> Lead | None:
        row = await self._session.get(LeadRow, lead_id)
        return None if row is None else _lead(row)

    async def save_lead(self, lead: Lead) -> Lead:
        now = datetime.now(UTC)
        fields = {k: v for k, v in asdict(lead).items() if k != "id"}
        fields["answers"] = FlowState(answers=lead.answers).model_dump(mode="json")["answers"]
        row = await self._session.get(LeadRow, lead.id) if lead.id is not None else None
        if row is None:
            row = LeadRow(**fields, updated_at=now)
            self._session.add(row)
        else:
            _assign(row, fields, now)
        await self._session.flush()
        lead.id = LeadId(_id(row.id))
        return lead

    async def add_event(self, event: LeadEvent) -> None:
        self._session.add(LeadEventRow(**asdict(event)))
        await self._session.flush()

    async def events(self, lead_id: LeadId) -> list[LeadEvent]:
        query = select(LeadEventRow).where(col(LeadEventRow.lead_id) == lead_id).order_by(col(LeadEventRow.id))
        rows = (await self._session.execute(query)).scalars()
        return [
            LeadEvent(lead_id=LeadId(r.lead_id), at=r.at, kind=r.kind, actor=r.actor, detail=r.detail) for r in rows
        ]

    async def commit(self) -> None:
        await self._session.commit()


class SqlLeadStore:
    """Opens lead transactions on a session factory."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlLeadTransaction]:
        # Leaving without commit() rolls back: the session closes with its transaction open.
        async with self._sessions() as session:
            yield SqlLeadTransaction(session)


def _id(value: int | None) -> int:
    if value is None:
        raise RuntimeError("the database assigned no id")
    return value


def _assign(row: Any, fields: dict[str, Any], now: datetime) -> None:
    for name, value in fields.items():
        setattr(row, name, value)
    row.updated_at = now


def _prospect(row: ProspectRow) -> Prospect:
    return Prospect(
        telegram_user_id=row.telegram_user_id,
        first_name=row.first_name,
        last_name=row.last_name,
        username=row.username,
        language_code=row.language_code,
        source=row.source,
        channel=row.channel,
        id=ProspectId(_id(row.id)),
    )


def _conversation(row: ConversationRow) -> Conversation:
    return Conversation(
        chat_key=row.chat_key,
        prospect_id=ProspectId(row.prospect_id),
        lead_id=LeadId(row.lead_id),
        state=FlowState.model_validate(row.state),
        status=cast(ConversationStatus, row.status),
        last_update_id=row.last_update_id,
        id=ConversationId(_id(row.id)),
    )


def _lead(row: LeadRow) -> Lead:
    return Lead(
        prospect_id=ProspectId(row.prospect_id),
        created_at=row.created_at,
        source=row.source,
        status=cast(LeadStatus, row.status),
        outcome=cast(Literal["qualified", "nurture"] | None, row.outcome),
        answers=FlowState.model_validate({"answers": row.answers}).answers,
        score=row.score,
        reasons=list(row.reasons),
        completed_at=row.completed_at,
        id=LeadId(_id(row.id)),
    )
