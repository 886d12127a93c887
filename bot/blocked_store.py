"""Who blocked the bot: Telegram answered 403 to a message to them, and they have not written since.

Nothing is sent on the bot's own initiative (reminders, follow-ups) to a prospect who blocked it. Telegram tells
a bot of a block only by refusing its next message, and of an unblock not at all: a user who writes to the bot
again has unblocked it.

So a block is the prospect's `blocked_at` mark with no update from their chat received after it. The update
ledger (bot/update_ledger.py) already records every update with its chat and the moment it came in, so an
incoming update costs no write here: the mark is compared with the ledger when something is about to be sent,
and lifted then. Before the ledger forgets old updates, the marks they answer are lifted (`lift_answered`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, exists, select, update

from bot.update_ledger import UPDATES
from leads.repository import PROSPECTS
from leads.sql_store import SqlStore


class SqlBlockedStore(SqlStore):
    """The prospects' blocked_at mark, by Telegram user id (the id of their private chat with the bot)."""

    async def mark_blocked(self, telegram_user_id: int, *, now: datetime) -> None:
        """Record that the user blocked the bot; a second 403 keeps the first instant."""
        statement = (
            update(PROSPECTS)
            .where(PROSPECTS.c.telegram_user_id == telegram_user_id, PROSPECTS.c.blocked_at.is_(None))
            .values(blocked_at=now)
        )
        await self._run(lambda connection: connection.execute(statement))

    async def is_blocked(self, telegram_user_id: int) -> bool:
        """Whether the user blocked the bot and has not written since (a mark answered since is lifted)."""
        return await self._run(lambda connection: _is_blocked(connection, telegram_user_id))

    async def lift_answered(self) -> int:
        """Lift every mark that an update received after it answers; how many. Run before the ledger prunes."""
        answered = exists().where(
            UPDATES.c.chat_id == PROSPECTS.c.telegram_user_id, UPDATES.c.received_at > PROSPECTS.c.blocked_at
        )
        statement = update(PROSPECTS).where(PROSPECTS.c.blocked_at.is_not(None), answered).values(blocked_at=None)
        return await self._run(lambda connection: connection.execute(statement).rowcount)


def _is_blocked(connection: Connection, telegram_user_id: int) -> bool:
    mark = PROSPECTS.c.blocked_at
    query = select(mark).where(PROSPECTS.c.telegram_user_id == telegram_user_id)
    blocked_at = connection.execute(query).scalar_one_or_none()
    if blocked_at is None:
        return False
    heard_since = select(UPDATES.c.update_id).where(
        UPDATES.c.chat_id == telegram_user_id, UPDATES.c.received_at > blocked_at
    )
    if connection.execute(heard_since.limit(1)).first() is None:
        return True
    lift = update(PROSPECTS).where(PROSPECTS.c.telegram_user_id == telegram_user_id, mark == blocked_at)
    connection.execute(lift.values(blocked_at=None))
    return False
