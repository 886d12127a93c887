"""Sales' side of leads in the database: the pipeline columns of `leads`, their events, and the outbox.

Each operation is one transaction, written as a plain function of a connection (PostgreSQL on the async engine,
SQLite inline on the blocking twin under the shared writer lock, as the other stores do). Only these functions
write the pipeline columns, each with an UPDATE of those columns alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, insert, select, update

from leads.handoff import BookingNews, Handoff
from leads.model import LeadId
from leads.outbox import OutboxMessage, enqueue
from leads.pipeline import Consultation, Pipeline, PipelineStatus, Refused
from leads.records import Lead, Prospect
from leads.repository import LEAD_EVENTS, LEADS, PROSPECTS, lead_record, prospect_record
from leads.sql_store import SqlStore

_BOOKING_EVENT_KIND = {"created": "booked", "rescheduled": "rescheduled", "cancelled": "booking_cancelled"}


class SqlHandoffStore(SqlStore):
    """The hand-off store on SQLAlchemy Core."""

    async def lead(self, lead_id: LeadId) -> tuple[Lead, Prospect, Handoff] | None:
        return await self._run(lambda connection: _lead(connection, lead_id, for_update=False))

    async def move(
        self,
        lead_id: LeadId,
        decide: Callable[[Pipeline], Pipeline | Refused],
        messages: Callable[[Lead, Pipeline, Pipeline], list[OutboxMessage]],
        *,
        actor: str,
        now: datetime,
    ) -> tuple[Pipeline, Pipeline] | Refused | None:
        return await self._run(lambda connection: _move(connection, lead_id, decide, messages, actor, now))

    async def card_posted(self, lead_id: LeadId, *, chat_id: int, message_id: int) -> None:
        statement = update(LEADS).where(LEADS.c.id == lead_id).values(card_chat_id=chat_id, card_message_id=message_id)
        await self._run(lambda connection: connection.execute(statement))

    async def record_booking(
        self, news: BookingNews, messages: list[OutboxMessage], *, also: Callable[[Any], None]
    ) -> None:
        await self._run(lambda connection: _record_booking(connection, news, messages, also))


def _lead(connection: Connection, lead_id: LeadId, *, for_update: bool) -> tuple[Lead, Prospect, Handoff] | None:
    query = select(LEADS).where(LEADS.c.id == lead_id)
    row = connection.execute(query.with_for_update() if for_update else query).mappings().one_or_none()
    if row is None:
        return None
    prospect = connection.execute(select(PROSPECTS).where(PROSPECTS.c.id == row["prospect_id"])).mappings().one()
    return lead_record(row), prospect_record(prospect), handoff_record(row)


def handoff_record(row: RowMapping) -> Handoff:
    """Sales' side of a leads row: its pipeline columns as a record."""
    pipeline = None
    if row["pipeline"] is not None:
        pipeline = Pipeline(
            status=cast(PipelineStatus, row["pipeline"]),
            owner_user_id=row["owner_user_id"],
            owner_name=row["owner_name"],
            lost_reason=row["lost_reason"],
        )
    consultation = None
    if row["consultation_uid"] is not None:
        consultation = Consultation(
            uid=row["consultation_uid"],
            expert_key=row["consultation_expert"],
            starts_at=row["consultation_starts_at"],
            ends_at=row["consultation_ends_at"],
            status=row["consultation_status"],
        )
    return Handoff(
        pipeline=pipeline,
        routed_user_id=row["routed_user_id"],
        card_chat_id=row["card_chat_id"],
        card_message_id=row["card_message_id"],
        consultation=consultation,
        changed_at=row["pipeline_changed_at"],
    )


def _move(
    connection: Connection,
    lead_id: LeadId,
    decide: Callable[[Pipeline], Pipeline | Refused],
    messages: Callable[[Lead, Pipeline, Pipeline], list[OutboxMessage]],
    actor: str,
    now: datetime,
) -> tuple[Pipeline, Pipeline] | Refused | None:
    # The lead's row stays locked to the commit: two presses at once are decided one after the other.
    found = _lead(connection, lead_id, for_update=True)
    if found is None or found[2].pipeline is None:
        return None
    lead, _, handoff = found
    before = handoff.pipeline
    assert before is not None
    after = decide(before)
    if isinstance(after, Refused):
        return after
    connection.execute(
        update(LEADS)
        .where(LEADS.c.id == lead_id)
        .values(
            pipeline=after.status,
            owner_user_id=after.owner_user_id,
            owner_name=after.owner_name,
            lost_reason=after.lost_reason,
            pipeline_changed_at=now,
        )
    )
    detail = {"from": before.status, "to": after.status, "by": after.owner_name, "reason": after.lost_reason}
    _add_event(connection, lead_id, now, "status_changed", actor, detail)
    enqueue(connection, messages(lead, before, after), now)
    return before, after


def _record_booking(
    connection: Connection, news: BookingNews, messages: list[OutboxMessage], also: Callable[[Any], None]
) -> None:
    # First, so that a second relayer of the same change waits here and then finds it done (see BookingRelay).
    also(connection)
    if connection.execute(select(LEADS.c.id).where(LEADS.c.id == news.lead_id)).first() is None:
        # A consultation booked outside the questionnaire (an operator's import): nothing for sales to update.
        return
    consultation = news.consultation
    connection.execute(
        update(LEADS)
        .where(LEADS.c.id == news.lead_id)
        .values(
            consultation_uid=consultation.uid,
            consultation_expert=consultation.expert_key,
            consultation_starts_at=consultation.starts_at,
            consultation_ends_at=consultation.ends_at,
            consultation_status=consultation.status,
        )
    )
    detail = {
        "uid": consultation.uid,
        "expert_key": consultation.expert_key,
        "starts_at": consultation.starts_at.isoformat(),
        "ends_at": consultation.ends_at.isoformat(),
    }
    _add_event(connection, news.lead_id, news.at, _BOOKING_EVENT_KIND[news.kind], "prospect", detail)
    enqueue(connection, messages, news.at)


def _add_event(
    connection: Connection, lead_id: LeadId, at: datetime, kind: str, actor: str, detail: dict[str, Any]
) -> None:
    connection.execute(insert(LEAD_EVENTS).values(lead_id=lead_id, at=at, kind=kind, actor=actor, detail=detail))
