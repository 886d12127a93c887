"""Reading leads for staff: pages by status, one lead with its history, the funnel's counts and the export.

Read-only queries, each one transaction on the same engines as the other leads stores. Pages and export batches
use keyset paging on the lead id (newest first for pages, oldest first for the export), so a page costs the same
however far back it is and a lead added meanwhile neither repeats nor hides another.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, RowMapping, Select, and_, func, select

from leads.handoff_repository import handoff_record
from leads.model import LeadId
from leads.pipeline import PipelineStatus
from leads.records import LeadEvent
from leads.reports import Funnel, LeadHistory, LeadRecord, Week
from leads.repository import CONVERSATIONS, LEAD_EVENTS, LEADS, PROSPECTS, lead_record, prospect_record
from leads.sql_store import SqlStore

EXPORT_BATCH = 500
"""Leads read per transaction while exporting: the export never holds every lead in memory at once."""


class SqlReportStore(SqlStore):
    """The staff reports' reads on SQLAlchemy Core."""

    async def page(
        self, status: PipelineStatus | None, *, limit: int, before: LeadId | None = None
    ) -> list[LeadRecord]:
        """Up to `limit` leads in `status` (any when None), newest first, older than lead `before` if given."""
        query = _records_query().order_by(LEADS.c.id.desc()).limit(limit)
        if status is not None:
            query = query.where(LEADS.c.pipeline == status)
        if before is not None:
            query = query.where(LEADS.c.id < before)
        return await self._run(_reader(query))

    async def history(self, lead_id: LeadId) -> LeadHistory | None:
        """The lead with its events, oldest first; None if there is no such lead."""
        return await self._run(lambda connection: _history(connection, lead_id))

    async def funnel(self, week: Week, *, now: datetime) -> Funnel:
        """What happened to leads within `week`: each step counted when it happened."""
        return await self._run(lambda connection: _funnel(connection, week, now))

    async def stopped_at(self, week: Week) -> dict[str | None, int]:
        """Leads started within `week` and not completed, by the question they were last asked (None: the summary)."""
        query = (
            select(CONVERSATIONS.c.current_question, func.count())
            .select_from(LEADS.join(CONVERSATIONS, CONVERSATIONS.c.lead_id == LEADS.c.id))
            .where(_within(LEADS.c.created_at, week), LEADS.c.status.in_(("in_progress", "cancelled")))
            .group_by(CONVERSATIONS.c.current_question)
        )
        return await self._run(lambda connection: {row[0]: row[1] for row in connection.execute(query)})

    async def everything(self, *, batch: int = EXPORT_BATCH) -> AsyncIterator[list[LeadRecord]]:
        """Every lead, oldest first, a batch (one short transaction) at a time."""
        after = 0
        while True:
            query = _records_query().where(LEADS.c.id > after).order_by(LEADS.c.id).limit(batch)
            records = await self._run(_reader(query))
            if records:
                yield records
            if len(records) < batch:
                return
            last = records[-1].lead.id
            assert last is not None
            after = last


def _records_query() -> Select[Any]:
    prospect = [column.label(f"p__{column.name}") for column in PROSPECTS.c]
    return select(LEADS, *prospect).select_from(LEADS.join(PROSPECTS, PROSPECTS.c.id == LEADS.c.prospect_id))


def _reader(query: Select[Any]) -> Callable[[Connection], list[LeadRecord]]:
    return lambda connection: [_record(row) for row in connection.execute(query).mappings()]


def _record(row: RowMapping) -> LeadRecord:
    columns = {column.name: row[f"p__{column.name}"] for column in PROSPECTS.c}
    prospect = prospect_record(cast(RowMapping, columns))
    handoff = handoff_record(row)
    return LeadRecord(lead_record(row), prospect, handoff.pipeline, handoff.consultation)


def _history(connection: Connection, lead_id: LeadId) -> LeadHistory | None:
    row = connection.execute(_records_query().where(LEADS.c.id == lead_id)).mappings().one_or_none()
    if row is None:
        return None
    query = select(LEAD_EVENTS).where(LEAD_EVENTS.c.lead_id == lead_id).order_by(LEAD_EVENTS.c.at, LEAD_EVENTS.c.id)
    events = tuple(
        LeadEvent(lead_id, event["at"], event["kind"], event["actor"], dict(event["detail"]))
        for event in connection.execute(query).mappings()
    )
    return LeadHistory(_record(row), events)


def _funnel(connection: Connection, week: Week, now: datetime) -> Funnel:
    def count(query: Select[Any]) -> int:
        return int(connection.execute(query).scalar_one())

    leads = select(func.count()).select_from(LEADS)
    # A restart replaces the lead it interrupts with a new one: only the new one counts as started.
    started = leads.where(_within(LEADS.c.created_at, week), LEADS.c.status != "restarted")
    completed = leads.where(_within(LEADS.c.completed_at, week))
    booked = (
        select(func.count(func.distinct(LEAD_EVENTS.c.lead_id)))
        .where(LEAD_EVENTS.c.kind == "booked")
        .where(_within(LEAD_EVENTS.c.at, week))
    )
    held = leads.where(
        _within(LEADS.c.consultation_ends_at, week),
        LEADS.c.consultation_ends_at <= now,
        LEADS.c.consultation_status != "cancelled",
    )
    # A won lead is closed: its pipeline changes no more, so the time of its last change is when it was won.
    won = leads.where(LEADS.c.pipeline == "won", _within(LEADS.c.pipeline_changed_at, week))
    return Funnel(
        started=count(started),
        completed=count(completed),
        qualified=count(completed.where(LEADS.c.outcome == "qualified")),
        booked=count(booked),
        held=count(held),
        won=count(won),
    )


def _within(column: Any, week: Week) -> Any:
    return and_(column >= week.start, column < week.end)
