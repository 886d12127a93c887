"""A prospect's personal data in the leads tables: all of it as one document, and its erasure.

Each operation is one transaction (see leads/sql_store.py). Erasure keeps each lead's row, pipeline and events, so
the funnel still counts it, and removes what names, reaches or quotes the prospect: the prospect's identifying
columns, typed answers, the conversation's stored state (which repeats the answers), and the outbox messages that
carry the lead's document to the CRM. It queues what must follow: the lead card redrawn without the person, and a
`lead.erased` event so the CRM erases its copy too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, RowMapping, Select, and_, case, delete, func, or_, select, update

from leads import tables
from leads.handoff import card_refresh
from leads.model import LeadId, ProspectId, Questionnaire
from leads.outbox import OUTBOX, OutboxMessage, enqueue
from leads.privacy import ERASED_PROSPECT_FIELDS, anonymous_answers
from leads.repository import CONVERSATIONS, LEAD_EVENTS, LEADS, PROSPECTS
from leads.sql_store import SqlStore

FOLLOWUPS = tables.metadata.tables[tables.FollowUpRow.__tablename__]


@dataclass(frozen=True)
class ErasedProspect:
    """Whom erasure found, and the leads it anonymised (the bookings of these are the scheduling side's)."""

    prospect_id: ProspectId
    lead_ids: tuple[LeadId, ...]


@dataclass(frozen=True)
class ErasureNotices:
    """Who else holds copies that erasure must reach."""

    cards: bool
    """The sales chat has lead cards: redraw the prospect's cards without their data."""
    webhooks: bool
    """A CRM receives leads: tell it to erase the lead too."""


class SqlPrivacyStore(SqlStore):
    """Personal data of a prospect, found by their Telegram user id."""

    async def personal_data(self, telegram_user_id: int) -> dict[str, Any] | None:
        """Everything the leads tables hold about the prospect, as plain JSON values; None if nothing."""
        return await self._run(lambda connection: _personal_data(connection, telegram_user_id))

    async def prospect_id(self, telegram_user_id: int) -> ProspectId | None:
        """The prospect's id (the `prospect_ref` of their consultations), if the bot knows them."""
        query = select(PROSPECTS.c.id).where(PROSPECTS.c.telegram_user_id == telegram_user_id)
        found = await self._run(lambda connection: connection.execute(query).scalar_one_or_none())
        return None if found is None else ProspectId(found)

    async def erase(
        self, telegram_user_id: int, *, questionnaire: Questionnaire, notices: ErasureNotices, now: datetime
    ) -> ErasedProspect | None:
        """Erase the prospect's personal data; None if the bot holds none (so erasing twice is harmless)."""
        found = PROSPECTS.c.telegram_user_id == telegram_user_id
        return await self._run(lambda connection: _erase(connection, found, questionnaire, notices, now))

    async def inactive(self, *, before: datetime, limit: int) -> list[tuple[ProspectId, int | None]]:
        """Prospects not yet erased with nothing happening to any of their leads since `before`, oldest first:
        their ids and Telegram user ids."""
        return await self._run(lambda connection: _inactive(connection, before, limit))

    async def erase_inactive(
        self,
        prospect_id: ProspectId,
        *,
        before: datetime,
        questionnaire: Questionnaire,
        notices: ErasureNotices,
        now: datetime,
    ) -> ErasedProspect | None:
        """Erase the prospect if they are still inactive since `before` (they may have come back meanwhile, or
        another replica may have erased them first); None if not."""
        found = and_(PROSPECTS.c.id == prospect_id, PROSPECTS.c.id.in_(_inactive_ids(before)))
        return await self._run(lambda connection: _erase(connection, found, questionnaire, notices, now))


def _prospect(connection: Connection, found: ColumnElement[bool]) -> RowMapping | None:
    return connection.execute(select(PROSPECTS).where(found).with_for_update()).mappings().one_or_none()


def _quiet_since(column: ColumnElement[datetime | None], before: datetime) -> ColumnElement[bool]:
    """Over a prospect's leads: nothing in `column` at or after `before` (NULL everywhere is quiet too)."""
    return or_(func.max(column).is_(None), func.max(column) < before)


def _inactive_ids(before: datetime) -> Select[tuple[int]]:
    """Prospects whose leads saw no answer, no pipeline change and no consultation since `before`, and who were
    not erased already (the erasure's lead event says so; an erased prospect has nothing left to find them by)."""
    erased = select(LEAD_EVENTS.c.lead_id).where(LEAD_EVENTS.c.kind == "erased")
    return (
        select(LEADS.c.prospect_id)
        .group_by(LEADS.c.prospect_id)
        .having(
            _quiet_since(LEADS.c.updated_at, before),
            _quiet_since(LEADS.c.pipeline_changed_at, before),
            _quiet_since(LEADS.c.consultation_ends_at, before),
            func.sum(case((LEADS.c.id.in_(erased), 1), else_=0)) == 0,
        )
    )


def _inactive(connection: Connection, before: datetime, limit: int) -> list[tuple[ProspectId, int | None]]:
    query = (
        select(PROSPECTS.c.id, PROSPECTS.c.telegram_user_id)
        .where(PROSPECTS.c.id.in_(_inactive_ids(before)))
        .order_by(PROSPECTS.c.id)
        .limit(limit)
    )
    return [(ProspectId(row.id), row.telegram_user_id) for row in connection.execute(query)]


def _personal_data(connection: Connection, telegram_user_id: int) -> dict[str, Any] | None:
    prospect = _prospect(connection, PROSPECTS.c.telegram_user_id == telegram_user_id)
    if prospect is None:
        return None
    leads = connection.execute(
        select(LEADS).where(LEADS.c.prospect_id == prospect["id"]).order_by(LEADS.c.id)
    ).mappings()
    return {"prospect": _document(prospect), "leads": [_lead_document(connection, lead) for lead in leads]}


def _lead_document(connection: Connection, lead: RowMapping) -> dict[str, Any]:
    events = connection.execute(
        select(LEAD_EVENTS).where(LEAD_EVENTS.c.lead_id == lead["id"]).order_by(LEAD_EVENTS.c.id)
    ).mappings()
    followups = connection.execute(
        select(FOLLOWUPS).where(FOLLOWUPS.c.lead_id == lead["id"]).order_by(FOLLOWUPS.c.id)
    ).mappings()
    omitted = {"prospect_id", "card_chat_id", "card_message_id"}
    document = {key: value for key, value in _document(lead).items() if key not in omitted}
    document["events"] = [_document(event, omit={"id", "lead_id"}) for event in events]
    document["followups"] = [_document(row, omit={"id", "lead_id", "leased_until"}) for row in followups]
    return document


def _document(row: RowMapping, *, omit: set[str] | None = None) -> dict[str, Any]:
    """A row as JSON values: instants in ISO 8601, the rest as stored."""
    return {
        key: value.isoformat() if isinstance(value, datetime) else value
        for key, value in row.items()
        if key not in (omit or set())
    }


def _erase(
    connection: Connection,
    found: ColumnElement[bool],
    questionnaire: Questionnaire,
    notices: ErasureNotices,
    now: datetime,
) -> ErasedProspect | None:
    prospect = _prospect(connection, found)
    if prospect is None:
        return None
    prospect_id = prospect["id"]
    # Stopping follow-ups too: there is nobody left to nudge, and nothing may try.
    erased: dict[str, Any] = {**dict.fromkeys(ERASED_PROSPECT_FIELDS), "followups_stopped_at": now}
    connection.execute(update(PROSPECTS).where(PROSPECTS.c.id == prospect_id).values(erased))
    # The conversation's state repeats every answer; the prospect starts afresh if they ever come back.
    connection.execute(delete(CONVERSATIONS).where(CONVERSATIONS.c.prospect_id == prospect_id))
    leads = connection.execute(
        select(LEADS.c.id, LEADS.c.answers, LEADS.c.card_message_id)
        .where(LEADS.c.prospect_id == prospect_id)
        .order_by(LEADS.c.id)
        .with_for_update()
    ).all()
    for lead in leads:
        _erase_lead(connection, lead.id, anonymous_answers(lead.answers, questionnaire), now)
    enqueue(connection, _notices(leads, notices, now), now)
    return ErasedProspect(ProspectId(prospect_id), tuple(LeadId(lead.id) for lead in leads))


def _erase_lead(connection: Connection, lead_id: int, answers: dict[str, Any], now: datetime) -> None:
    connection.execute(update(LEADS).where(LEADS.c.id == lead_id).values(answers=answers))
    # Undelivered CRM messages carry the lead's document: they must not leave after the erasure. Delivered ones
    # are kept as bare rows, so their idempotency keys still stop a second delivery, but without the document.
    connection.execute(delete(OUTBOX).where(OUTBOX.c.lead_id == lead_id, OUTBOX.c.status != "done"))
    connection.execute(update(OUTBOX).where(OUTBOX.c.lead_id == lead_id).values(payload={"lead_id": lead_id}))
    connection.execute(LEAD_EVENTS.insert().values(lead_id=lead_id, at=now, kind="erased", actor="prospect", detail={}))


def _notices(leads: Any, notices: ErasureNotices, now: datetime) -> list[OutboxMessage]:
    messages: list[OutboxMessage] = []
    for lead in leads:
        if notices.cards and lead.card_message_id is not None:
            messages.append(card_refresh(LeadId(lead.id), "erased"))
        if notices.webhooks:
            payload = {"lead_id": lead.id, "erased_at": now.isoformat()}
            messages.append(OutboxMessage("crm", "lead.erased", f"lead.erased:{lead.id}", lead.id, payload))
    return messages
