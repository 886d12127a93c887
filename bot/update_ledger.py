"""Handling each Telegram update once, and each chat's updates one at a time, across replicas on one database.

The ledger is the `telegram_updates` table (see bot/tables.py): an update is claimed with a lease before its
handlers run and marked done after, so a redelivered update (the same update_id, on this replica or another)
is dropped, and one whose replica died mid-way is handled again once the lease has run out.

On PostgreSQL a chat's update is handled holding a session-level advisory lock on the chat, on a connection
of a pool of its own (bot/database.py, lock_engine): two presses in quick succession on two replicas are
applied one after the other, and the second sees what the first did (so the state checks refuse it if stale).

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
from typing import Any

from sqlalchemy import Connection, Engine, Executable, bindparam, delete, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.tables import TelegramUpdateRow
from leads.sql_store import Result, SqlStore
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

CHAT_LOCKS = 0x43420001
"""The first key of the chats' advisory locks (pg_advisory_lock(int, int)): "CB", 1; the second is the chat."""


def chat_lock_key(chat_id: int) -> int:
    """A chat id (up to 52 bits, negative for groups) folded into a signed 32-bit advisory lock key.

    Two chats that fold together only wait for each other now and then, which is harmless.
    """
    folded = (chat_id ^ (chat_id >> 32)) & 0xFFFFFFFF
    return folded - (1 << 32) if folded >= 1 << 31 else folded


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
        async with self._chat_lock(chat_id) as held:
            claimed = await self._claim_or_handle(update_id, chat_id, held)
            if not claimed:
                log.info("update %d already handled or in hand: dropped", update_id)
            try:
                yield claimed
            except asyncio.CancelledError:
                if claimed:
                    await asyncio.shield(self._release(update_id, held))
                raise
            if claimed:
                await self._finish(update_id, held)

    async def _release(self, update_id: int, held: AsyncConnection | None) -> None:
        now = self._clock()
        try:
            await self._run_on(held, lambda connection: _release(connection, update_id, now))
        except Exception:
            log.exception("update %d could not be given up; its lease will run out instead", update_id)

    async def claim(self, update_id: int, *, chat_id: int | None, held: AsyncConnection | None = None) -> bool:
        """Lease the update to this replica: True if it is new, or its last claim ran out without being done.

        A chat's update is claimed holding the chat's lock, which the replica handling it would hold: a claim of
        it made before this process started is taken over at once, as its process is gone (after a crash, long
        polling delivers the update again as soon as the bot is back, well inside the lease).
        """
        now = self._clock()
        gone = max(now, self._started + self._lease) if chat_id is not None else now
        return await self._run_on(held, lambda c: _claim(c, update_id, chat_id, now, now + self._lease, gone))

    async def done(self, update_id: int) -> bool:
        """Whether the update has been handled, here or on another replica."""
        return await self._run(lambda connection: _done(connection, update_id))

    async def prune(self, *, keep: timedelta = KEEP) -> int:
        """Forget updates received longer than `keep` ago; how many."""
        before = self._clock() - keep
        return await self._run(lambda connection: _prune(connection, before))

    async def _run_on(self, held: AsyncConnection | None, work: Callable[[Connection], Result]) -> Result:
        """Run one statement's work on the connection holding the chat's lock, else as a transaction of its own.

        The lock's connection is in autocommit and already in hand: no pool checkout, no BEGIN and COMMIT, half
        the round trips. If it has been lost, the statement runs on the stores' pool instead.
        """
        if held is not None and not held.invalidated:
            try:
                return await held.run_sync(work)
            except DBAPIError as error:
                if not error.connection_invalidated:
                    raise
        return await self._run(work)

    async def _claim_or_handle(self, update_id: int, chat_id: int | None, held: AsyncConnection | None) -> bool:
        try:
            return await self.claim(update_id, chat_id=chat_id, held=held)
        except Exception:
            # Without the ledger the update is still handled: an answer lost is worse than one perhaps applied
            # twice (and the conversation's last_update_id still drops a replayed answer).
            log.exception("update %d could not be claimed; handling it anyway", update_id)
            return True

    async def _finish(self, update_id: int, held: AsyncConnection | None) -> None:
        now = self._clock()
        try:
            await self._run_on(held, lambda connection: _finish(connection, update_id, now))
        except Exception:
            # Handled all the same; a redelivery after the lease would be handled again (at least once).
            log.exception("update %d handled but not recorded as done", update_id)

    @asynccontextmanager
    async def _chat_lock(self, chat_id: int | None) -> AsyncIterator[AsyncConnection | None]:
        """The connection holding the chat's lock, if one was taken (PostgreSQL)."""
        if self._locks is None or chat_id is None:
            yield None
            return
        connection = await self._lock(chat_lock_key(chat_id))
        try:
            yield connection
        finally:
            if connection is not None:
                # Shielded: a cancelled update must still give its chat back before its connection.
                await asyncio.shield(_unlock(connection, chat_lock_key(chat_id)))

    async def _lock(self, key: int) -> AsyncConnection | None:
        """A lock connection holding the chat's lock; None (handle unlocked) if the database cannot be reached."""
        assert self._locks is not None
        # A connection the server dropped fails, and SQLAlchemy then discards the pool's older ones: one more try.
        attempts = 2
        for attempt in range(1, attempts + 1):
            try:
                connection = await self._locks.connect()
            except Exception:
                log.exception("no connection for the chat's lock; handling the update without it")
                return None
            try:
                await connection.execute(_LOCK, {"space": CHAT_LOCKS, "key": key})
            except DBAPIError as error:
                await asyncio.shield(_discard(connection))
                if error.connection_invalidated and attempt < attempts:
                    continue
                log.exception("the chat's lock was not taken; handling the update without it")
                return None
            except BaseException:
                # Cancelled while waiting: the lock may yet be granted on this connection; closing it releases it.
                await asyncio.shield(_discard(connection))
                raise
            return connection
        raise AssertionError("unreachable: the loop returns")


_LOCK = text("SELECT pg_advisory_lock(:space, :key)")
_UNLOCK = text("SELECT pg_advisory_unlock(:space, :key)")


async def _unlock(connection: AsyncConnection, key: int) -> None:
    try:
        await connection.execute(_UNLOCK, {"space": CHAT_LOCKS, "key": key})
    except Exception:
        # A connection that cannot unlock must not go back to the pool still holding the lock.
        log.warning("the chat's lock was not released; its connection is discarded", exc_info=True)
        await _discard(connection)
        return
    await connection.close()


async def _discard(connection: AsyncConnection) -> None:
    try:
        await connection.invalidate()
    finally:
        await connection.close()


def _claim_statement(dialect: Any) -> Executable:
    columns = ("update_id", "chat_id", "leased_until", "received_at")
    statement = dialect.insert(UPDATES).values({**{c: bindparam(c) for c in columns}, "status": "handling"})
    # Taken over only while in hand under a lease that ran out before `gone`: its handler died.
    upsert: Executable = statement.on_conflict_do_update(
        index_elements=[UPDATES.c.update_id],
        set_={"leased_until": statement.excluded.leased_until},
        where=(UPDATES.c.status == "handling") & (UPDATES.c.leased_until < bindparam("gone", type_=UTCDateTime())),
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


def _release(connection: Connection, update_id: int, now: datetime) -> None:
    # A lease that ended a moment ago: the next claim takes the update over.
    connection.execute(
        update(UPDATES)
        .where(UPDATES.c.update_id == update_id, UPDATES.c.status == "handling")
        .values(leased_until=now - timedelta(microseconds=1))
    )


def _done(connection: Connection, update_id: int) -> bool:
    status = connection.execute(select(UPDATES.c.status).where(UPDATES.c.update_id == update_id)).scalar()
    return status == "done"


def _prune(connection: Connection, before: datetime) -> int:
    # By received_at alone, which is indexed: an update is done after it is received.
    return connection.execute(delete(UPDATES).where(UPDATES.c.received_at < before)).rowcount
