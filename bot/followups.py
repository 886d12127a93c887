"""Sends prospects the follow-ups that are due: the unfinished nudge, the unbooked reminder, the nurture resources.

Failure policy, as for consultation reminders: Forbidden (the prospect blocked the bot) and "chat not found" are
recorded as "blocked" and never tried again, and so is a follow-up to a prospect known to have blocked the bot, without
trying; any other Telegram or network error as "failed", claimed again when
the lease runs out, for a while (leads/followup_store.py, RETRY_FOR), then given up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Literal

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot import texts
from bot.config import BusinessConfig
from bot.render import Message
from bot.workers import BlockedUsers, keep_doing
from leads.followup_store import DueFollowUp, Finish, SqlFollowUpStore
from leads.followups import verdict
from leads.model import LeadId
from scheduling.ports import BookingStore

log = logging.getLogger(__name__)

FOLLOWUP_EVERY = timedelta(minutes=1)
"""How often the running bot looks for due follow-ups: one goes out at most this late."""
FOLLOWUP_LEASE = timedelta(minutes=2)
"""How long a claimed follow-up is left to its sender before another may claim it."""
BATCH = 50

CALLBACK_PATTERN = r"^fu:"
_CALLBACK = re.compile(r"^fu:(c|b):([1-9][0-9]{0,17})$")
Action = Literal["c", "b"]
"""c: continue the questionnaire; b: see free times to book."""


def callback_data(action: Action, lead_id: LeadId) -> str:
    """A follow-up button's data: the action and the lead it was sent about (at most 24 bytes)."""
    return f"fu:{action}:{lead_id}"


def parse_callback(data: str | None) -> tuple[Action, LeadId] | None:
    """The action and lead of a follow-up button, or None for data this bot never wrote."""
    found = _CALLBACK.match(data or "")
    if found is None:
        return None
    action: Action = "c" if found.group(1) == "c" else "b"
    return action, LeadId(int(found.group(2)))


def followup_message(due: DueFollowUp, config: BusinessConfig) -> Message:
    """The message of a follow-up, with its button, ending with how to stop such messages."""
    if due.kind == "unfinished":
        button = InlineKeyboardButton(texts.FOLLOWUP_CONTINUE_BUTTON, callback_data=callback_data("c", due.lead_id))
        return Message(texts.followup(texts.FOLLOWUP_UNFINISHED), InlineKeyboardMarkup([[button]]))
    if due.kind == "unbooked":
        button = InlineKeyboardButton(texts.FOLLOWUP_SEE_TIMES_BUTTON, callback_data=callback_data("b", due.lead_id))
        return Message(texts.followup(texts.FOLLOWUP_UNBOOKED), InlineKeyboardMarkup([[button]]))
    return Message(texts.followup(texts.escape(config.followups.resources)))


class FollowUpSender:
    """Sends each due follow-up once, checking just before that it is still due."""

    def __init__(
        self,
        *,
        store: SqlFollowUpStore,
        bookings: BookingStore,
        bot: Bot,
        config: BusinessConfig,
        clock: Callable[[], datetime],
        lease: timedelta = FOLLOWUP_LEASE,
        blocked: BlockedUsers | None = None,
    ) -> None:
        self._store = store
        self._blocked = blocked
        self._bookings = bookings
        self._bot = bot
        self._config = config
        self._clock = clock
        self._lease = lease

    async def send_due(self) -> int:
        """Send every due follow-up not claimed by another sender; how many were sent."""
        sent = 0
        while True:
            claimed = await self._store.claim(now=self._clock(), lease=self._lease, limit=BATCH)
            for due in claimed:
                outcome = await self._send(due)
                sent += outcome == "sent"
            # A claimed row stays leased or finished whatever happened to it, so the next claim only finds new ones.
            if len(claimed) < BATCH:
                return sent

    async def keep_sending(self, every: timedelta = FOLLOWUP_EVERY) -> None:
        """Send due follow-ups now and then once per `every`, until cancelled."""
        await keep_doing(self.send_due, every=every, what="sending follow-ups")

    async def _send(self, due: DueFollowUp) -> Finish:
        now = self._clock()
        why_not = await self._no_longer_due(due, now)
        if why_not is not None:
            return await self._finish(due, "skipped", why_not, now)
        if self._blocked is not None and await self._blocked.is_blocked(due.chat_id):
            return await self._finish(due, "blocked", "not sent: the prospect blocked the bot", now)
        shown = followup_message(due, self._config)
        try:
            await self._bot.send_message(
                due.chat_id, shown.html, parse_mode=ParseMode.HTML, reply_markup=shown.keyboard
            )
        except Forbidden as error:
            return await self._finish(due, "blocked", f"blocked: {error.message}", now)
        except BadRequest as error:
            # "Chat not found": the account is gone or never opened the chat; no retry will reach it.
            status: Finish = "blocked" if "chat not found" in error.message.lower() else "failed"
            return await self._finish(due, status, f"{status}: {error.message}", now)
        except (RetryAfter, TelegramError) as error:
            log.warning("%s follow-up of lead %d not sent, will retry: %s", due.kind, due.lead_id, error)
            return await self._finish(due, "failed", f"{type(error).__name__}: {error.message}", now)
        return await self._finish(due, "sent", None, now)

    async def _no_longer_due(self, due: DueFollowUp, now: datetime) -> str | None:
        """Why the follow-up must not go after all (the prospect stopped, finished or booked meanwhile), or None."""
        facts = await self._store.lead_facts(due.lead_id)
        delays = self._store.delays
        if facts is None or verdict(due.kind, facts, delays, now=now) != "send":
            return "not sent: no longer due"
        # The lead learns of a booking only once the relay has passed it on; the booking side knows at once.
        if due.kind == "unbooked" and await self._bookings.upcoming(since=now, prospect_ref=due.prospect_id):
            return "not sent: a consultation is booked"
        return None

    async def _finish(self, due: DueFollowUp, status: Finish, error: str | None, now: datetime) -> Finish:
        if status != "sent":
            log.info("%s follow-up of lead %d: %s", due.kind, due.lead_id, error)
        await self._store.finish(due.followup_id, status=status, error=error, now=now)
        return status
