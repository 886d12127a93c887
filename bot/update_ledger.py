"""Handling each Telegram update once, and each chat's updates one at a time, across replicas on one database.

The ledger is the `telegram_updates` table (see bot/tables.py): an update is claimed with a lease before its
handlers run and marked done after, so a redelivered update (the same update_id, on this replica or another)
is dropped, and one whose replica died mid-way is handled again once the lease has run out.

On PostgreSQL a chat's update is handled holding a session-level advisory lock on the chat, on a connection
of a pool of its own (bot/database.py, lock_engine): two presses in quick succession on two replicas are
applied one after the other, and the second sees what the first did (so the state checks refuse it if stale).
Every update pays for this, so it costs two round trips in all: one statement takes the chat's lock and claims
the update, one records it done and gives the lock back, both said to asyncpg directly on the lock's connection
(autocommit, already in hand: no pool checkout, BEGIN or COMMIT of the stores' pool).

Why no deadlock and no exhausted pool: each update in hand holds at most one advisory lock, taken before any
transaction and released after its last; transactions never wait for an advisory lock, so no cycle forms.
Updates waiting for a chat wait on lock connections, never on the stores' pool, and the lock pool has a
connection for each update the processor handles at once (PerChatUpdateProcessor's bound; within a process,
its per-chat asyncio lock means at most one update per chat waits here). A replica whose lock connection
dies (pg_terminate_backend) loses the lock mid-update: the ledger's lease and the conversation row lock
(SELECT ... FOR UPDATE, last_update_id) still keep a duplicate from being applied twice.

SQLite (a single process) keeps the ledger too: it costs two small writes per update, and it drops what
Telegram redelivers after a crash or restart between handling an update and confirming it, for every
handler (staff commands and sales buttons included), not only the questionnaire. No advisory lock there:
PerChatUpdateProcessor's asyncio lock already serialises a chat in the one process.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

from sqlalchemy import Connection, Engine, Executable, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.tables import TelegramUpdateRow
from leads.sql_store import SqlStore
from leads.tables import UTCDateTime

log = logging.getLogger(__name__)

UPDATES = TelegramUpdateRow.metadata.tables[TelegramUpdateRow.__tablename__]

LEASE = timedelta(seconds=60)
"""How long a claimed update is left to its handler: a redelivery after this is handled again.

Well over an update's handling (a calendar refresh waits at most 5 s), and short, since another replica drops a
redelivery inside the lease of a handler that died; while the handler lives, its chat lock keeps duplicates
waiting anyway. (A restarted process takes over its predecessors' claims at once: see UpdateLedger.claim.)
"""
KEEP = timedelta(days=2)
"""How long handled updates are remembered: Telegram keeps an unconfirmed update for 24 hours; a day more."""
PRUNE_EVERY = timedelta(hours=1)
"""How often the running bot forgets updates older than KEEP."""

LOCK_CONNECTIONS = 16
"""The pool of connections holding chats' advisory locks: at least the updates handled at once (application.py)."""

CHAT_LOCKS = 0x43420001
"""The first key of the chats' advisory locks (pg_advisory_lock(int, int)): "CB", 1; the second is the chat."""


def chat_lock_key(chat_id: int) -> int:
    """A chat id (up to 52 bits, negative for groups) folded into a signed 32-bit advisory lock key.

    Two chats that fold together only wait for each other now and then, which is harmless.
    """
    folded = (chat_id ^ (chat_id >> 32)) & 0xFFFFFFFF
    return folded - (1 << 32) if folded >= 1 << 31 else folded


_Lease = tuple[datetime, datetime, datetime]
"""A claim's times: now, the end of the lease it takes, and before when an earlier lease means its handler died."""


class UpdateLedger(SqlStore):
    """Claims updates before they are handled and records them done after; holds a chat's lock meanwhile."""

    def __init__(
        self,
        engine: AsyncEngine | Engine,
        *,
        locks: AsyncEngine | None,
        clock: Callable[[], datetime],
        one_writer: asyncio.Lock | None = None,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(engine, one_writer=one_writer)
        self._locks = locks
        self._clock = clock
        self._lease = lease
        self._started = clock()

    @asynccontextmanager
    async def handling(self, update_id: int, *, chat_id: int | None) -> AsyncIterator[bool]:
        """Whether to handle the update (False: done or in hand elsewhere); done when the block ends normally.

        A block left by cancellation (the update outlasted a shutdown's grace) gives the claim up at once, so
        Telegram's redelivery is handled by another replica without waiting for the lease; one left by a crash
        leaves the claim to run out.
        """
        # One lease for every try at claiming, so that a claim made again after a lost connection is the same one.
        lease = self._lease_times(chat_id)
        held: _HeldChat | None = None
        if self._locks is not None and chat_id is not None:
            held = await self._lock_and_claim(update_id, chat_id, lease)
        claimed = held.claimed if held is not None else await self._claim_or_handle(update_id, chat_id, lease)
        if not claimed:
            log.info("update %d already handled or in hand: dropped", update_id)
        try:
            try:
                yield claimed
            except asyncio.CancelledError:
                if claimed:
                    await asyncio.shield(self._end(update_id, held, finished=False))
                raise
            if claimed:
                await self._end(update_id, held, finished=True)
        finally:
            if held is not None:
                # Shielded: a cancelled update must still give its chat back before its connection.
                await asyncio.shield(held.hand_back())

    async def claim(self, update_id: int, *, chat_id: int | None) -> bool:
        """Lease the update to this replica: True if it is new, or its last claim ran out without being done.

        A chat's update is claimed holding the chat's lock, which the replica handling it would hold: a claim of
        it made before this process started is taken over at once, as its process is gone (after a crash, long
        polling delivers the update again as soon as the bot is back, well inside the lease).
        """
        return await self._claim(update_id, chat_id, self._lease_times(chat_id))

    async def _claim(self, update_id: int, chat_id: int | None, lease: _Lease) -> bool:
        return await self._run(lambda connection: _claim(connection, update_id, chat_id, *lease))

    async def done(self, update_id: int) -> bool:
        """Whether the update has been handled, here or on another replica."""
        return await self._run(lambda connection: _done(connection, update_id))

    async def prune(self, *, keep: timedelta = KEEP) -> int:
        """Forget updates received longer than `keep` ago; how many."""
        before = self._clock() - keep
        return await self._run(lambda connection: _prune(connection, before))

    def _lease_times(self, chat_id: int | None) -> _Lease:
        """Now, the end of a lease taken now, and before when an earlier lease counts as its handler's death."""
        now = self._clock()
        gone = max(now, self._started + self._lease) if chat_id is not None else now
        return now, now + self._lease, gone

    async def _claim_or_handle(self, update_id: int, chat_id: int | None, lease: _Lease) -> bool:
        try:
            return await self._claim(update_id, chat_id, lease)
        except Exception:
            # Without the ledger the update is still handled: an answer lost is worse than one perhaps applied
            # twice (and the conversation's last_update_id still drops a replayed answer).
            log.exception("update %d could not be claimed; handling it anyway", update_id)
            return True

    async def _lock_and_claim(self, update_id: int, chat_id: int, lease: _Lease) -> _HeldChat | None:
        """The chat's lock taken and the update claimed, in one statement; None: handle it without the lock.

        A pooled connection the server has dropped fails at once; the next is tried, up to the whole pool. The
        claim is idempotent (a lease of exactly the same instant is this very claim), so one that reached the
        database before its connection failed is claimed again on the next.
        """
        assert self._locks is not None
        key = chat_lock_key(chat_id)
        now, until, gone = lease
        for attempt in range(1, LOCK_CONNECTIONS + 2):
            try:
                connection = await self._locks.connect()
            except Exception:
                log.exception("no connection for the chat's lock; handling the update without it")
                return None
            try:
                driver = cast(_Asyncpg, (await connection.get_raw_connection()).driver_connection)
                row = await driver.fetchval(_PG_LOCK_AND_CLAIM, update_id, chat_id, until, now, CHAT_LOCKS, key, gone)
            except Exception:
                await asyncio.shield(_discard(connection))
                if attempt <= LOCK_CONNECTIONS:
                    log.warning("the chat's lock connection failed; trying another", exc_info=attempt == 1)
                    continue
                log.exception("the chat's lock was not taken; handling the update without it")
                return None
            except BaseException:
                # Cancelled while waiting: the lock may yet be granted on this connection; closing it releases it.
                await asyncio.shield(_discard(connection))
                raise
            return _HeldChat(connection, driver, key, claimed=row is not None)
        raise AssertionError("unreachable: the loop returns")

    async def _end(self, update_id: int, held: _HeldChat | None, *, finished: bool) -> None:
        """Record the update done (finished) or give its claim up (cancelled), giving the chat's lock back too."""
        # Done now; or given up as a lease that ended a moment ago, which the next claim takes over.
        at = self._clock() if finished else self._clock() - timedelta(microseconds=1)
        if held is not None and await held.end(update_id, at, finished=finished):
            return
        # No lock, or its connection was lost mid-update: through the stores' pool.
        work = _finish if finished else _release
        try:
            await self._run(lambda connection: work(connection, update_id, at))
        except Exception:
            if finished:
                # Handled all the same; a redelivery after the lease would be handled again (at least once).
                log.exception("update %d handled but not recorded as done", update_id)
            else:
                log.exception("update %d could not be given up; its lease will run out instead", update_id)


class _Asyncpg(Protocol):
    """What the ledger uses of an asyncpg connection (asyncpg ships no types)."""

    async def fetchval(self, query: str, *args: Any) -> Any: ...


class _HeldChat:
    """A lock connection holding a chat's advisory lock, and whether the update was claimed with it."""

    def __init__(self, connection: AsyncConnection, driver: _Asyncpg, key: int, *, claimed: bool) -> None:
        self.claimed = claimed
        self._connection = connection
        self._driver = driver
        self._key = key
        self._locked = True
        self._broken = False

    async def end(self, update_id: int, at: datetime, *, finished: bool) -> bool:
        """Record the update done at `at`, or its lease ended at `at`, and unlock, in one statement; False if it
        failed."""
        statement = _PG_FINISH_AND_UNLOCK if finished else _PG_RELEASE_AND_UNLOCK
        try:
            await self._driver.fetchval(statement, update_id, at, CHAT_LOCKS, self._key)
        except Exception:
            log.warning("the chat's lock connection failed; it is discarded", exc_info=True)
            self._broken = True
            return False
        self._locked = False
        return True

    async def hand_back(self) -> None:
        """Unlock the chat if still locked, and give the connection back (or discard it, if it failed)."""
        if self._locked and not self._broken:
            try:
                await self._driver.fetchval(_PG_UNLOCK, CHAT_LOCKS, self._key)
                self._locked = False
            except Exception:
                # A connection that cannot unlock must not go back to the pool still holding the lock.
                log.warning("the chat's lock was not released; its connection is discarded", exc_info=True)
                self._broken = True
        if self._broken:
            await _discard(self._connection)
        else:
            await self._connection.close()


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
    finally:
        await connection.close()


# The chat's lock, then the claim: the lock is granted before the row is inserted, as the SELECT feeding the
# INSERT produces its one row only then. A conflicting row (a duplicate) is taken over only while in hand under a
# lease that ran out before $7 (its handler died), or under this very lease (this claim, made again after its
# connection failed). The snapshot predates the wait, which does not matter: ON CONFLICT always reads the row's
# newest version.
_PG_LOCK_AND_CLAIM = """
INSERT INTO telegram_updates AS ledger (update_id, chat_id, status, leased_until, received_at)
SELECT $1::bigint, $2::bigint, 'handling', $3::timestamptz, $4::timestamptz
FROM (SELECT pg_advisory_lock($5::int4, $6::int4)) AS chat_lock
ON CONFLICT (update_id) DO UPDATE SET leased_until = excluded.leased_until
WHERE ledger.status = 'handling'
    AND (ledger.leased_until < $7::timestamptz OR ledger.leased_until = excluded.leased_until)
RETURNING ledger.update_id
"""
# The chat is unlocked as the statement runs, before it commits: a duplicate claimed in that moment waits for
# the row, then finds it done.
_PG_FINISH_AND_UNLOCK = """
WITH finished AS (
    UPDATE telegram_updates SET status = 'done', done_at = $2::timestamptz, leased_until = NULL
    WHERE update_id = $1::bigint
)
SELECT pg_advisory_unlock($3::int4, $4::int4)
"""
_PG_RELEASE_AND_UNLOCK = """
WITH released AS (
    UPDATE telegram_updates SET leased_until = $2::timestamptz WHERE update_id = $1::bigint AND status = 'handling'
)
SELECT pg_advisory_unlock($3::int4, $4::int4)
"""
_PG_UNLOCK = "SELECT pg_advisory_unlock($1::int4, $2::int4)"


def _claim_statement(dialect: Any) -> Executable:
    columns = ("update_id", "chat_id", "leased_until", "received_at")
    statement = dialect.insert(UPDATES).values({**{c: bindparam(c) for c in columns}, "status": "handling"})
    # As _PG_LOCK_AND_CLAIM: taken over only from a dead handler, or when this is the same claim made again.
    upsert: Executable = statement.on_conflict_do_update(
        index_elements=[UPDATES.c.update_id],
        set_={"leased_until": statement.excluded.leased_until},
        where=(UPDATES.c.status == "handling")
        & (
            (UPDATES.c.leased_until < bindparam("gone", type_=UTCDateTime()))
            | (UPDATES.c.leased_until == statement.excluded.leased_until)
        ),
    ).returning(UPDATES.c.update_id)
    return upsert


# Built once: every update runs them.
_CLAIM = {"postgresql": _claim_statement(postgresql), "sqlite": _claim_statement(sqlite)}
_FINISH = (
    update(UPDATES)
    .where(UPDATES.c.update_id == bindparam("id"))
    .values(status="done", done_at=bindparam("now"), leased_until=None)
)


def _claim(
    connection: Connection, update_id: int, chat_id: int | None, now: datetime, until: datetime, gone: datetime
) -> bool:
    values = {"update_id": update_id, "chat_id": chat_id, "leased_until": until, "received_at": now, "gone": gone}
    return connection.execute(_CLAIM[connection.dialect.name], values).first() is not None


def _finish(connection: Connection, update_id: int, now: datetime) -> None:
    connection.execute(_FINISH, {"id": update_id, "now": now})


def _release(connection: Connection, update_id: int, ended: datetime) -> None:
    connection.execute(
        update(UPDATES)
        .where(UPDATES.c.update_id == update_id, UPDATES.c.status == "handling")
        .values(leased_until=ended)
    )


def _done(connection: Connection, update_id: int) -> bool:
    status = connection.execute(select(UPDATES.c.status).where(UPDATES.c.update_id == update_id)).scalar()
    return status == "done"


def _prune(connection: Connection, before: datetime) -> int:
    # By received_at alone, which is indexed: an update is done after it is received.
    return connection.execute(delete(UPDATES).where(UPDATES.c.received_at < before)).rowcount
