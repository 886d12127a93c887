"""Who blocked the bot: Telegram answered 403 to a message to them, and they have not written since.

Nothing is sent on the bot's own initiative (reminders, follow-ups) to a prospect who blocked it. Telegram tells
a bot of a block only by refusing its next message, and of an unblock not at all; a user who writes to the bot
again has unblocked it, so any update from them clears the mark.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

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

    async def clear_blocked(self, telegram_user_id: int) -> None:
        """Forget a block: the user wrote to the bot again."""
        # Only a blocked row is written, so the common case (never blocked) is an index lookup and no write.
        statement = (
            update(PROSPECTS)
            .where(PROSPECTS.c.telegram_user_id == telegram_user_id, PROSPECTS.c.blocked_at.is_not(None))
            .values(blocked_at=None)
        )
        await self._run(lambda connection: connection.execute(statement))

    async def is_blocked(self, telegram_user_id: int) -> bool:
        """Whether the user blocked the bot and has not written since."""
        query = select(PROSPECTS.c.blocked_at).where(PROSPECTS.c.telegram_user_id == telegram_user_id)
        found = await self._run(lambda connection: connection.execute(query).scalar_one_or_none())
        return found is not None
