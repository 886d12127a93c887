"""Follow-ups in the database: finding the due ones, claiming each once, recording what became of it, /stop.

A follow-up is claimed by inserting its followups row (status "sending", under a lease) in the transaction that
found it due: the unique (lead_id, kind) key lets one insert win whatever the replicas do, so at most one row,
and one message, exists per kind and lead. A candidate that can never become due (the prospect stopped, booked or
finished) gets a "skipped" row instead, so no later round reads it again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import Connection, Engine, RowMapping, Select, exists, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from leads import tables
from leads.followups import KINDS, Delays, FollowUpKind, LeadFacts, Verdict, due_before, verdict
from leads.model import LeadId, ProspectId
from leads.repository import CONVERSATIONS, LEADS, PROSPECTS
from leads.sql_store import SqlStore

FOLLOWUPS = tables.metadata.tables[tables.FollowUpRow.__tablename__]

RETRY_FOR = timedelta(hours=12)
"""A follow-up that failed for a reason other than a block is tried again for this long, then given up."""

TELEGRAM_CHAT = "tg:"
"""The chat-key prefix of Telegram chats; follow-ups go only there (the terminal has nobody to nudge later)."""

Finish = Literal["sent", "blocked", "skipped", "failed"]


@dataclass(frozen=True)
class DueFollowUp:
    """A follow-up claimed for sending: whom it goes to and about which lead."""

    followup_id: int
    kind: FollowUpKind
    lead_id: LeadId
    prospect_id: ProspectId
    chat_id: int


class SqlFollowUpStore(SqlStore):
    """Finds and claims due follow-ups, records their fate, and turns them off for a prospect."""

    def __init__(self, engine: AsyncEngine | Engine, *, delays: Delays, one_writer: asyncio.Lock | None = None) -> None:
        super().__init__(engine, one_writer=one_writer)
        self._delays = delays

    @property
    def delays(self) -> Delays:
        """The configured delay of each kind."""
        return self._delays

    async def claim(self, *, now: datetime, lease: timedelta, limit: int) -> list[DueFollowUp]:
        """Claim up to `limit` due follow-ups under a lease: failed ones whose lease ran out first, then new ones."""
        return await self._run(lambda connection: self._claim(connection, now, lease, limit))

    async def finish(self, followup_id: int, *, status: Finish, error: str | None, now: datetime) -> None:
        """Record what became of a claimed follow-up; a failed one is claimed again when its lease runs out."""
        values: dict[str, Any] = {"status": status, "last_error": error}
        if status == "sent":
            values.update(sent_at=now, leased_until=None)
        statement = update(FOLLOWUPS).where(FOLLOWUPS.c.id == followup_id).values(**values)
        await self._run(lambda connection: connection.execute(statement))

    async def stop(self, telegram_user_id: int, *, now: datetime) -> None:
        """Turn every follow-up off for this Telegram user, known yet or not; stopping again changes nothing."""
        await self._run(lambda connection: _stop(connection, telegram_user_id, now))

    async def lead_facts(self, lead_id: LeadId) -> LeadFacts | None:
        """What the rules know of a lead now; None if there is no such lead in a chat."""
        query = _facts_query().where(LEADS.c.id == lead_id)
        row = await self._run(lambda connection: connection.execute(query).mappings().one_or_none())
        return None if row is None else _facts(row)

    def _claim(self, connection: Connection, now: datetime, lease: timedelta, limit: int) -> list[DueFollowUp]:
        claimed = self._reclaim(connection, now, lease, limit)
        for kind in KINDS:
            if len(claimed) >= limit:
                break
            claimed += self._claim_new(connection, kind, now, lease, limit - len(claimed))
        return claimed

    def _reclaim(self, connection: Connection, now: datetime, lease: timedelta, limit: int) -> list[DueFollowUp]:
        """Failed follow-ups (and those of a sender that died) whose lease ran out, if they are still due."""
        # SKIP LOCKED: another sender reclaiming at the same moment takes other rows instead of waiting for these.
        query = (
            _facts_query()
            .add_columns(FOLLOWUPS.c.id.label("followup_id"), FOLLOWUPS.c.kind, FOLLOWUPS.c.created_at)
            .join(FOLLOWUPS, FOLLOWUPS.c.lead_id == LEADS.c.id)
            .where(FOLLOWUPS.c.status.in_(("sending", "failed")), FOLLOWUPS.c.leased_until <= now)
            .order_by(FOLLOWUPS.c.id)
            .limit(limit)
            .with_for_update(of=FOLLOWUPS, skip_locked=True)
        )
        claimed = []
        for row in connection.execute(query).mappings().all():
            kind: FollowUpKind = row["kind"]
            still = verdict(kind, _facts(row), self._delays, now=now)
            given_up = row["created_at"] <= now - RETRY_FOR
            values: dict[str, Any] = {"status": "sending", "leased_until": now + lease}
            if still != "send" or given_up:
                why = "given up: still failing" if still == "send" else "not sent: no longer due"
                values = {"status": "skipped", "leased_until": None, "last_error": why}
            connection.execute(update(FOLLOWUPS).where(FOLLOWUPS.c.id == row["followup_id"]).values(**values))
            if values["status"] == "sending":
                claimed.append(_due(row["followup_id"], kind, row))
        return claimed

    def _claim_new(
        self, connection: Connection, kind: FollowUpKind, now: datetime, lease: timedelta, limit: int
    ) -> list[DueFollowUp]:
        cutoff = due_before(kind, self._delays, now=now)
        if cutoff is None:
            return []
        already = exists().where(FOLLOWUPS.c.lead_id == LEADS.c.id, FOLLOWUPS.c.kind == kind)
        query = _candidates(kind, cutoff).where(~already).order_by(LEADS.c.id).limit(limit)
        if connection.dialect.name == "postgresql":
            # A lead the questionnaire is writing right now is left to the next round rather than waited for.
            query = query.with_for_update(of=LEADS, skip_locked=True)
        claimed = []
        for row in connection.execute(query).mappings().all():
            found = verdict(kind, _facts(row), self._delays, now=now)
            if found == "wait":
                continue
            followup_id = _insert_once(connection, row["id"], kind, found, now + lease, now)
            if followup_id is not None and found == "send":
                claimed.append(_due(followup_id, kind, row))
        return claimed


def _facts_query() -> Select[Any]:
    """A lead with its chat's conversation and its prospect: everything LeadFacts and DueFollowUp need."""
    return (
        select(
            LEADS.c.id,
            LEADS.c.prospect_id,
            LEADS.c.status,
            LEADS.c.outcome,
            LEADS.c.completed_at,
            LEADS.c.consultation_uid,
            CONVERSATIONS.c.updated_at.label("last_activity"),
            CONVERSATIONS.c.chat_key,
            PROSPECTS.c.followups_stopped_at,
        )
        .select_from(LEADS)
        # Only the lead a chat's conversation is on now: one the prospect restarted away from is nobody's concern.
        .join(CONVERSATIONS, CONVERSATIONS.c.lead_id == LEADS.c.id)
        .join(PROSPECTS, PROSPECTS.c.id == LEADS.c.prospect_id)
        .where(CONVERSATIONS.c.chat_key.startswith(TELEGRAM_CHAT))
    )


def _candidates(kind: FollowUpKind, cutoff: datetime) -> Select[Any]:
    """Leads whose `kind` of follow-up may be due, narrowed on the indexed columns; `verdict` decides."""
    query = _facts_query()
    if kind == "unfinished":
        return query.where(
            CONVERSATIONS.c.status == "active",
            CONVERSATIONS.c.updated_at <= cutoff,
            LEADS.c.status == "in_progress",
        )
    outcome = "qualified" if kind == "unbooked" else "nurture"
    return query.where(LEADS.c.outcome == outcome, LEADS.c.completed_at <= cutoff)


def _facts(row: RowMapping) -> LeadFacts:
    return LeadFacts(
        status=row["status"],
        outcome=row["outcome"],
        last_activity=row["last_activity"],
        completed_at=row["completed_at"],
        booked=row["consultation_uid"] is not None,
        stopped=row["followups_stopped_at"] is not None,
    )


def _due(followup_id: int, kind: FollowUpKind, row: RowMapping) -> DueFollowUp:
    return DueFollowUp(
        followup_id=followup_id,
        kind=kind,
        lead_id=LeadId(row["id"]),
        prospect_id=ProspectId(row["prospect_id"]),
        chat_id=int(str(row["chat_key"]).removeprefix(TELEGRAM_CHAT)),
    )


def _insert_once(
    connection: Connection, lead_id: int, kind: FollowUpKind, found: Verdict, leased_until: datetime, now: datetime
) -> int | None:
    """Insert the lead's row of `kind`; its id, or None if another sender's row is there already."""
    values: dict[str, Any] = {"lead_id": lead_id, "kind": kind, "created_at": now}
    if found == "send":
        values.update(status="sending", leased_until=leased_until)
    else:
        values.update(status="skipped", last_error="not sent: can never be due for this lead")
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    # ON CONFLICT DO NOTHING: on PostgreSQL a concurrent insert of the same key waits for the other transaction
    # and then inserts nothing, so exactly one sender gets an id back.
    statement = (
        dialect.insert(FOLLOWUPS)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["lead_id", "kind"])
        .returning(FOLLOWUPS.c.id)
    )
    inserted = connection.execute(statement).scalar_one_or_none()
    return None if inserted is None else int(inserted)


def _stop(connection: Connection, telegram_user_id: int, now: datetime) -> None:
    stopped = (
        update(PROSPECTS)
        .where(PROSPECTS.c.telegram_user_id == telegram_user_id, PROSPECTS.c.followups_stopped_at.is_(None))
        .values(followups_stopped_at=now)
    )
    connection.execute(stopped)
    known = connection.execute(select(PROSPECTS.c.id).where(PROSPECTS.c.telegram_user_id == telegram_user_id))
    if known.first() is None:
        # Someone who sends /stop before /start is remembered too, so a later questionnaire does not nudge them.
        prospect = {"channel": "telegram", "telegram_user_id": telegram_user_id, "followups_stopped_at": now}
        connection.execute(insert(PROSPECTS).values(**prospect, created_at=now, updated_at=now))
