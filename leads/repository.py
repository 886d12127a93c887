"""The lead store on SQLAlchemy Core: SQLite or PostgreSQL behind one async connection.

Core rather than the ORM: answering one question is a SELECT ... FOR UPDATE of the conversation,
its UPDATE, an INSERT of the audit events and the COMMIT, and the ORM's unit of work tripled the
round trips and the CPU time of every update.

On PostgreSQL the hot path goes further (see _AsyncpgStatements). Its statements run on the asyncpg
connection underneath: through SQLAlchemy's async layer (a greenlet hand-off per statement, its
compiled cache, result processing) the transaction cost about 0.6 ms of the bot's CPU, directly
about 0.3 ms. And the conversation's UPDATE waits for the commit, where one statement writes it
with the events: four round trips (BEGIN, SELECT, the write, COMMIT) where there were five. The
rest of the store, seldom run, stays on SQLAlchemy, in the same transaction.
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    RowMapping,
    Table,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from leads import tables
from leads.flow import FlowState
from leads.model import ConversationId, LeadId, ProspectId
from leads.outbox import OUTBOX, OutboxMessage, outbox_rows
from leads.pipeline import PipelineStatus
from leads.records import Conversation, ConversationStatus, Lead, LeadEvent, LeadStatus, Prospect
from leads.tables import utc_instant

log = logging.getLogger(__name__)

PROSPECTS = tables.metadata.tables[tables.ProspectRow.__tablename__]
CONVERSATIONS = tables.metadata.tables[tables.ConversationRow.__tablename__]
LEADS = tables.metadata.tables[tables.LeadRow.__tablename__]
LEAD_EVENTS = tables.metadata.tables[tables.LeadEventRow.__tablename__]

# The statements every update runs are built once: building them again per update (coercing
# columns, deriving cache keys) cost as much CPU as executing them.
_CONVERSATION_FOR_CHAT = (
    select(CONVERSATIONS).where(CONVERSATIONS.c.chat_key == bindparam("chat_key")).with_for_update()
)
_UPDATE_CONVERSATION = (
    update(CONVERSATIONS)
    .where(CONVERSATIONS.c.id == bindparam("conversation_id"))
    .values(
        {
            column: bindparam(column)
            for column in ("lead_id", "status", "stage", "current_question", "state", "last_update_id", "updated_at")
        }
    )
)
_INSERT_EVENTS = insert(LEAD_EVENTS)

# The hot path as asyncpg runs it on PostgreSQL (see _AsyncpgStatements), in SQL for the reader;
# the PostgreSQL tests run every one of these.
_PG_CONVERSATION_FOR_CHAT = """
SELECT id, chat_key, prospect_id, lead_id, status, state, last_update_id
FROM conversations WHERE chat_key = $1 FOR UPDATE
"""
# ORDER BY the position keeps the event ids in the order the events were added.
_PG_INSERT_EVENTS = """
INSERT INTO lead_events (lead_id, at, kind, actor, detail)
SELECT e.lead_id, e.at, e.kind, e.actor, e.detail
FROM unnest($1::integer[], $2::timestamptz[], $3::varchar[], $4::varchar[], $5::jsonb[])
    WITH ORDINALITY AS e (lead_id, at, kind, actor, detail, position)
ORDER BY e.position
"""
# The conversation's UPDATE as a data-modifying WITH in front of that INSERT: one round trip for
# both (the events' arrays may be empty). PostgreSQL runs it once whether or not it is read.
_PG_UPDATE_CONVERSATION_AND_INSERT_EVENTS = f"""
WITH updated_conversation AS (
    UPDATE conversations
    SET lead_id = $7, status = $8, stage = $9, current_question = $10, state = $11, last_update_id = $12,
        updated_at = $13
    WHERE id = $6
)
{_PG_INSERT_EVENTS}"""

Row = Mapping[Any, Any]
"""A row by column name: SQLAlchemy's RowMapping, or asyncpg's Record."""


class _Statements(Protocol):
    """Where a transaction's statements run: the hot path's own statements, and any other."""

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]: ...

    async def conversation_for_chat(self, chat_key: str) -> Row | None:
        """The chat's conversation row, locked until the transaction ends."""

    async def write(self, conversation: dict[str, Any] | None, events: list[dict[str, Any]]) -> None:
        """Update a conversation (_UPDATE_CONVERSATION's parameters) and insert events, in that order."""

    async def commit(self) -> None: ...


class _CoreStatements(ABC):
    """The hot path as SQLAlchemy Core statements, on whichever connection `execute` uses."""

    @abstractmethod
    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]: ...

    async def conversation_for_chat(self, chat_key: str) -> Row | None:
        return (await self.execute(_CONVERSATION_FOR_CHAT, {"chat_key": chat_key})).mappings().one_or_none()

    async def write(self, conversation: dict[str, Any] | None, events: list[dict[str, Any]]) -> None:
        if conversation is not None:
            await self.execute(_UPDATE_CONVERSATION, conversation)
        if events:
            await self.execute(_INSERT_EVENTS, events)


class _AwaitedStatements(_CoreStatements):
    """Statements on an async driver other than asyncpg."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return await self._connection.execute(statement, parameters)

    async def commit(self) -> None:
        await self._connection.commit()


class _InlineStatements(_CoreStatements):
    """SQLite statements run right here, on the event loop.

    A statement on a local SQLite file takes microseconds; aiosqlite's hand-off to its thread and
    back costs a loop wake-up per call, some thirty per transaction, which tripled the CPU of every
    update. Transactions are queued on an asyncio lock (SQLite has one writer anyway), so the only
    wait that can block the loop is another process holding the file's write lock.
    """

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return self._connection.execute(statement, parameters)

    async def commit(self) -> None:
        self._connection.commit()


class _Asyncpg(Protocol):
    """What this module uses of an asyncpg connection (asyncpg ships no types)."""

    async def execute(self, query: str, *args: Any) -> str: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    def is_in_transaction(self) -> bool: ...

    def is_closed(self) -> bool: ...


class _AsyncpgStatements:
    """PostgreSQL: the hot path's statements on the asyncpg connection, the rest through SQLAlchemy.

    The transaction is this class's own BEGIN and COMMIT on the asyncpg connection; SQLAlchemy's
    connection is in autocommit mode, so the statements it runs join that transaction instead of
    beginning one of their own. asyncpg prepares each statement once per connection and keeps it.
    Its connection decodes JSON as SQLAlchemy set it up to (text in; parsed values out).
    """

    def __init__(self, connection: AsyncConnection, driver: _Asyncpg) -> None:
        self._connection = connection
        self._driver = driver

    async def execute(self, statement: Executable, parameters: Any = None) -> CursorResult[Any]:
        return await self._connection.execute(statement, parameters)

    async def conversation_for_chat(self, chat_key: str) -> Row | None:
        return cast(Row | None, await self._driver.fetchrow(_PG_CONVERSATION_FOR_CHAT, chat_key))

    async def write(self, conversation: dict[str, Any] | None, events: list[dict[str, Any]]) -> None:
        columns = (
            [e["lead_id"] for e in events],
            [utc_instant(e["at"]) for e in events],
            [e["kind"] for e in events],
            [e["actor"] for e in events],
            [json.dumps(e["detail"]) for e in events],
        )
        if conversation is None:
            await self._driver.execute(_PG_INSERT_EVENTS, *columns)
            return
        await self._driver.execute(
            _PG_UPDATE_CONVERSATION_AND_INSERT_EVENTS,
            *columns,
            conversation["conversation_id"],
            conversation["lead_id"],
            conversation["status"],
            conversation["stage"],
            conversation["current_question"],
            json.dumps(conversation["state"]),
            conversation["last_update_id"],
            utc_instant(conversation["updated_at"]),
        )

    async def commit(self) -> None:
        await self._driver.execute("COMMIT")


@asynccontextmanager
async def _asyncpg_transaction(engine: AsyncEngine) -> AsyncIterator[_AsyncpgStatements]:
    """A transaction on one of the engine's (autocommit) connections, rolled back unless committed."""
    connection, driver = await _begin(engine)
    try:
        yield _AsyncpgStatements(connection, driver)
    finally:
        # In one shielded task, as SQLAlchemy shields its own clean-up: a cancelled update must leave
        # no locks behind, nor its connection back in the pool before the rollback is through.
        await asyncio.shield(_release(connection, driver))


STALE_CONNECTIONS = 21
"""How many dead pooled connections BEGIN passes over: the engine's whole pool (10 + 10 overflow), and one more."""


async def _begin(engine: AsyncEngine) -> tuple[AsyncConnection, _Asyncpg]:
    """A pooled connection with a transaction begun on it, passing over connections the server has dropped.

    The hot path talks to asyncpg directly, where SQLAlchemy does not see a dropped connection and so does not
    discard the pool's other, equally dead ones (as it does for its own statements). BEGIN is the first thing
    said on a checked-out connection: when it fails, the connection is dead (pg_terminate_backend, a failover),
    nothing has been done on it, and the next one is tried.
    """
    for attempt in range(1, STALE_CONNECTIONS + 1):
        connection = await engine.connect()
        try:
            driver = cast(_Asyncpg, (await connection.get_raw_connection()).driver_connection)
            await driver.execute("BEGIN")
        except Exception:
            await asyncio.shield(_discard(connection))
            if attempt == STALE_CONNECTIONS:
                raise
            log.warning("database connection lost before BEGIN; trying another", exc_info=attempt == 1)
            continue
        except BaseException:
            await asyncio.shield(_discard(connection))
            raise
        return connection, driver
    raise AssertionError("unreachable: the loop returns or raises")


async def _discard(connection: AsyncConnection) -> None:
    """Close a connection so that the pool opens a new one in its place."""
    try:
        await connection.invalidate()
    finally:
        await connection.close()


async def _release(connection: AsyncConnection, driver: _Asyncpg | None) -> None:
    """Roll back what was not committed, then give the connection back to the pool."""
    try:
        # On a closed connection the ROLLBACK fails too, which discards the connection below.
        if driver is not None and (driver.is_in_transaction() or driver.is_closed()):
            await driver.execute("ROLLBACK")
    except Exception:
        # Broken: the pool must not hand it out again. Not raised, as SQLAlchemy's pool does not
        # either, so that an update answered without a commit still succeeds.
        log.warning("rollback failed; the connection is discarded", exc_info=True)
        await connection.invalidate()
    finally:
        await connection.close()


class SqlLeadTransaction:
    """One database transaction, speaking in records rather than rows."""

    def __init__(self, statements: _Statements, clock: Callable[[], datetime]) -> None:
        self._statements = statements
        self._clock = clock
        # Writes held back until the commit, to go in one statement (see _write).
        self._conversation: dict[str, Any] | None = None
        self._events: list[dict[str, Any]] = []
        self.committed = False

    async def prospect(self, prospect_id: ProspectId) -> Prospect | None:
        row = await self._one(select(PROSPECTS).where(PROSPECTS.c.id == prospect_id))
        return None if row is None else prospect_record(row)

    async def prospect_by_telegram_id(self, telegram_user_id: int) -> Prospect | None:
        row = await self._one(select(PROSPECTS).where(PROSPECTS.c.telegram_user_id == telegram_user_id))
        return None if row is None else prospect_record(row)

    async def save_prospect(self, prospect: Prospect) -> Prospect:
        values = {k: v for k, v in asdict(prospect).items() if k != "id"}
        prospect.id = ProspectId(await self._save(PROSPECTS, prospect.id, values))
        return prospect

    async def conversation_for_chat(self, chat_key: str) -> Conversation | None:
        # FOR UPDATE queues a chat's updates on PostgreSQL; SQLite transactions begin IMMEDIATE
        # (see bot/database.py), which serialises writers in the same way.
        await self._write()
        row = await self._statements.conversation_for_chat(chat_key)
        return None if row is None else _conversation(row)

    async def save_conversation(self, conversation: Conversation) -> Conversation:
        values = {
            "lead_id": conversation.lead_id,
            "status": conversation.status,
            "stage": conversation.state.stage,
            "current_question": conversation.state.current,
            "state": conversation.state.model_dump(mode="json"),
            "last_update_id": conversation.last_update_id,
        }
        if conversation.id is None:
            identity = {"chat_key": conversation.chat_key, "prospect_id": conversation.prospect_id}
            conversation.id = ConversationId(await self._save(CONVERSATIONS, None, {**identity, **values}))
        else:
            if self._conversation is not None:
                await self._write()
            self._conversation = {**values, "conversation_id": conversation.id, "updated_at": self._clock()}
        return conversation

    async def lead(self, lead_id: LeadId) -> Lead | None:
        row = await self._one(select(LEADS).where(LEADS.c.id == lead_id))
        return None if row is None else lead_record(row)

    async def save_lead(self, lead: Lead) -> Lead:
        values = {k: v for k, v in asdict(lead).items() if k != "id"}
        values["answers"] = FlowState(answers=lead.answers).model_dump(mode="json")["answers"]
        lead.id = LeadId(await self._save(LEADS, lead.id, values))
        return lead

    async def add_event(self, event: LeadEvent) -> None:
        # Written in one batch at commit: an update usually adds one or two events.
        self._events.append(asdict(event))

    async def events(self, lead_id: LeadId) -> list[LeadEvent]:
        await self._write()
        query = select(LEAD_EVENTS).where(LEAD_EVENTS.c.lead_id == lead_id).order_by(LEAD_EVENTS.c.id)
        rows = (await self._statements.execute(query)).mappings()
        return [
            LeadEvent(lead_id=LeadId(r["lead_id"]), at=r["at"], kind=r["kind"], actor=r["actor"], detail=r["detail"])
            for r in rows
        ]

    async def last_routed(self, user_ids: Sequence[int]) -> dict[int, datetime]:
        if not user_ids:
            return {}
        query = (
            select(LEADS.c.routed_user_id.label("rep"), func.max(LEADS.c.completed_at).label("last"))
            .where(LEADS.c.routed_user_id.in_(list(user_ids)))
            .group_by(LEADS.c.routed_user_id)
        )
        rows = (await self._statements.execute(query)).mappings().all()
        # max() keeps the column's type, so the instants come back aware and in UTC on both databases.
        return {int(row["rep"]): row["last"] for row in rows if row["last"] is not None}

    async def hand_off(
        self,
        lead_id: LeadId,
        *,
        pipeline: PipelineStatus,
        routed_user_id: int | None,
        messages: list[OutboxMessage],
        now: datetime,
    ) -> None:
        values = {"pipeline": pipeline, "routed_user_id": routed_user_id, "pipeline_changed_at": now}
        await self._statements.execute(update(LEADS).where(LEADS.c.id == lead_id).values(**values))
        if messages:
            await self._statements.execute(insert(OUTBOX), outbox_rows(messages, now))

    async def commit(self) -> None:
        await self._write()
        await self._statements.commit()
        self.committed = True

    async def _write(self) -> None:
        """Write what was held back: at the commit, and before reading the conversations or events again.

        Neither the conversation nor the events are read by anything else in between, and every row
        they refer to exists by then, so writing them late changes no result; on PostgreSQL it saves
        a round trip.
        """
        if self._conversation is not None or self._events:
            conversation, events = self._conversation, self._events
            self._conversation, self._events = None, []
            await self._statements.write(conversation, events)

    async def _one(self, query: Any) -> RowMapping | None:
        return (await self._statements.execute(query)).mappings().one_or_none()

    async def _save(self, table: Table, row_id: int | None, values: dict[str, Any]) -> int:
        """Insert a new row or update an existing one; the row's id."""
        now = self._clock()
        if row_id is None:
            values = {"created_at": now, **values} if "created_at" in table.c else values
            inserted = insert(table).values(**values, updated_at=now).returning(table.c.id)
            return int((await self._statements.execute(inserted)).scalar_one())
        await self._statements.execute(update(table).where(table.c.id == row_id).values(**values, updated_at=now))
        return row_id


class SqlLeadStore:
    """Opens lead transactions: on an async engine, or on a blocking SQLite engine run inline."""

    def __init__(
        self,
        engine: AsyncEngine | Engine,
        *,
        one_writer: asyncio.Lock | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._engine = engine
        # updated_at is when the prospect last did something: follow-ups are timed from it, on the clock tests set.
        self._clock = clock
        # Transactions on asyncpg are begun and ended by _AsyncpgStatements, not by SQLAlchemy.
        self._asyncpg: AsyncEngine | None = None
        if isinstance(engine, AsyncEngine) and engine.dialect.driver == "asyncpg":
            self._asyncpg = engine.execution_options(isolation_level="AUTOCOMMIT")
        # Every store on the same blocking SQLite engine must share this lock: a transaction that waited on
        # SQLite's file lock while another store's transaction was paused at an await would block the loop
        # that transaction needs to finish.
        self._one_writer = one_writer or asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[SqlLeadTransaction]:
        # Leaving without commit() rolls back: the connection returns to the pool mid-transaction, or
        # _asyncpg_transaction ends it.
        if self._asyncpg is not None:
            async with _asyncpg_transaction(self._asyncpg) as statements:
                yield SqlLeadTransaction(statements, self._clock)
            return
        if isinstance(self._engine, AsyncEngine):
            async with self._engine.connect() as connection:
                yield SqlLeadTransaction(_AwaitedStatements(connection), self._clock)
            return
        async with self._one_writer:
            with self._engine.connect() as blocking:
                yield SqlLeadTransaction(_InlineStatements(blocking), self._clock)


def prospect_record(row: RowMapping) -> Prospect:
    """A prospects row as a record."""
    return Prospect(
        telegram_user_id=row["telegram_user_id"],
        first_name=row["first_name"],
        last_name=row["last_name"],
        username=row["username"],
        language_code=row["language_code"],
        source=row["source"],
        channel=row["channel"],
        timezone=row["timezone"],
        id=ProspectId(row["id"]),
    )


def _conversation(row: Row) -> Conversation:
    return Conversation(
        chat_key=row["chat_key"],
        prospect_id=ProspectId(row["prospect_id"]),
        lead_id=LeadId(row["lead_id"]),
        state=FlowState.model_validate(row["state"]),
        status=cast(ConversationStatus, row["status"]),
        last_update_id=row["last_update_id"],
        id=ConversationId(row["id"]),
    )


def lead_record(row: RowMapping) -> Lead:
    """A leads row as a record (the questionnaire's side; the pipeline columns are the hand-off store's)."""
    return Lead(
        prospect_id=ProspectId(row["prospect_id"]),
        created_at=row["created_at"],
        source=row["source"],
        status=cast(LeadStatus, row["status"]),
        outcome=cast(Literal["qualified", "nurture"] | None, row["outcome"]),
        answers=FlowState.model_validate({"answers": row["answers"]}).answers,
        score=row["score"],
        reasons=list(row["reasons"]),
        completed_at=row["completed_at"],
        id=LeadId(row["id"]),
    )
