"""Background work the running bot does from the outbox tables: reminders to prospects, writes to experts' calendars.

Both claim due rows with a lease, so two replicas never do the same row at once, and a process that dies
mid-way leaves its rows to be claimed again once the lease runs out: a reminder or a write may then be done
twice (at least once, never lost), never zero times.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

import aiohttp
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot import texts
from bot.config import BusinessConfig, ConfigError
from scheduling.caldav import CalDavFailed, delete_event, put_event
from scheduling.feeds import redact
from scheduling.invites import stored_event
from scheduling.model import Expert
from scheduling.ports import BookingStore, DueCalendarWrite, DueReminder
from scheduling.service import Clock

log = logging.getLogger(__name__)

REMINDER_EVERY = timedelta(seconds=30)
"""How often the running bot looks for due reminders: a reminder goes out at most this late."""
REMINDER_LEASE = timedelta(minutes=2)
"""How long a claimed reminder is left to its sender; a failed one is tried again once this has passed."""
CALENDAR_WRITE_EVERY = timedelta(seconds=30)
"""How often the running bot looks for due calendar writes."""
RETENTION_EVERY = timedelta(hours=1)
"""Retention is counted in days: an hourly round anonymises a prospect within an hour of their time running out."""
CALENDAR_WRITE_LEASE = timedelta(minutes=5)
"""How long a claimed calendar write is left to its writer: well over one CalDAV request's time limit."""
BATCH = 50
"""Rows claimed per round trip to the database."""

FIRST_RETRY = timedelta(seconds=30)
LONGEST_RETRY = timedelta(hours=1)
RETRY_JITTER = 0.2
"""Each retry waits up to this fraction more or less, so writes that failed together do not retry together."""

NO_EMAIL = "consultations@consultbot.invalid"
"""The organizer of an expert's events when neither they nor the company have an e-mail address (.invalid: RFC 2606)."""


STOPPING: ContextVar[asyncio.Event | None] = ContextVar("stopping", default=None)
"""Set by `consultbot run` for its workers: once the event is set, each ends after the round in hand."""


async def keep_doing(
    work: Callable[[], Awaitable[object]], *, every: timedelta, what: str, wake: asyncio.Event | None = None
) -> None:
    """Do `work` now, then again whenever `wake` is set or once per `every`, until cancelled or told to stop.

    A failure (a database hiccup, say) is logged and tried again next round: it must not end the work for the life
    of the process. Told to stop (STOPPING), the round in hand is finished rather than cut off, so what it claimed
    is recorded and its leases end with it instead of holding the items from other replicas until they run out.
    """
    stopping = STOPPING.get()
    while stopping is None or not stopping.is_set():
        if wake is not None:
            wake.clear()
        try:
            await work()
        except Exception:
            log.exception("%s failed; trying again in %s", what, every)
        await _pause(every, wake, stopping)


async def until_stopping(work: Coroutine[Any, Any, None]) -> None:
    """Run `work` (a loop that does not look at STOPPING) until told to stop, then cancel it at once.

    For work whose interruption costs nothing, like fetching calendar feeds: a fetch cut off is done next time.
    """
    stopping = STOPPING.get()
    running = asyncio.ensure_future(work)
    if stopping is None:
        await running
        return
    told = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait([running, told], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (running, told):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def _pause(every: timedelta, *events: asyncio.Event | None) -> None:
    """Sleep for `every`, or until one of the events is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events if event is not None]
    try:
        if waits:
            await asyncio.wait(waits, timeout=every.total_seconds(), return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(every.total_seconds())
    finally:
        for waiting in waits:
            waiting.cancel()


class BlockedUsers(Protocol):
    """Who blocked the bot (bot/blocked_store.py): nothing is sent to them on the bot's own initiative."""

    async def is_blocked(self, telegram_user_id: int) -> bool: ...


def fallback_email(config: BusinessConfig) -> str:
    """The organizer address of events of experts without an e-mail address of their own."""
    return config.company.email or NO_EMAIL


class ReminderSender:
    """Sends prospects the reminders of their consultations that are due, each once.

    Not sent at all, recorded as "blocked": a reminder to a prospect known to have blocked the bot (see
    bot/telegram_io.py, TelegramLimiter, which records every 403 in a private chat).

    Failure policy. Forbidden (the prospect blocked the bot) and "chat not found" are recorded as "blocked" and never
    tried again. Any other Telegram or network error is recorded as "failed" and tried again when the lease runs out,
    for as long as the reminder is still worth sending: once the consultation has started, it is given up (recorded
    as "skipped", with the reason in its error). That bounds the tries
    by time rather than by a count: a reminder one hour ahead gets about thirty, which rides out a Telegram outage.
    Given up the same way: a reminder overtaken by a later one of the same consultation that is due too (after a
    downtime, only the nearest reminder is sent).
    """

    def __init__(
        self,
        *,
        store: BookingStore,
        bot: Bot,
        config: BusinessConfig,
        experts: Sequence[Expert],
        clock: Clock,
        lease: timedelta = REMINDER_LEASE,
        blocked: BlockedUsers | None = None,
    ) -> None:
        self._store = store
        self._blocked = blocked
        self._bot = bot
        self._config = config
        self._experts = {expert.key: expert for expert in experts}
        self._clock = clock
        self._lease = lease
        self._change_notice = timedelta(hours=config.booking.change_notice_hours)

    async def send_due(self) -> int:
        """Send every reminder that is due and not claimed by another sender; how many were sent."""
        sent = 0
        while True:
            claimed = await self._store.claim_reminders(now=self._clock(), lease=self._lease, limit=BATCH)
            sent += await self._send_batch(claimed)
            # A claimed row stays leased whatever happened to it, so the next claim only finds new ones.
            if len(claimed) < BATCH:
                return sent

    async def keep_sending(self, every: timedelta = REMINDER_EVERY) -> None:
        """Send due reminders now and then once per `every`, until cancelled."""
        await keep_doing(self.send_due, every=every, what="sending reminders")

    async def _send_batch(self, claimed: Sequence[DueReminder]) -> int:
        sent = 0
        nearest = _nearest_per_booking(claimed)
        waiting = list(claimed)
        while waiting:
            due = waiting.pop(0)
            now = self._clock()
            booking = due.booking
            if booking.status != "confirmed" or booking.chat_id is None:
                await self._finish(due, "skipped", "not sent: the consultation is no longer confirmed", now)
            elif now >= booking.starts_at:
                await self._finish(due, "skipped", "given up: the consultation has started", now)
            elif nearest[booking.uid] is not due:
                await self._finish(due, "skipped", "not sent: a nearer reminder of the consultation is due", now)
            elif self._blocked is not None and await self._blocked.is_blocked(booking.chat_id):
                await self._finish(due, "blocked", "not sent: the prospect blocked the bot", now)
            else:
                outcome = await self._send(due, now)
                sent += outcome == "sent"
                if outcome == "flood":
                    # Telegram asks the whole bot to wait: the rest of the batch waits for its lease to run out.
                    for rest in waiting:
                        await self._finish(rest, "failed", "not tried: Telegram asked the bot to slow down", now)
                    waiting = []
        return sent

    async def _send(self, due: DueReminder, now: datetime) -> Literal["sent", "blocked", "failed", "flood"]:
        booking = due.booking
        assert booking.chat_id is not None
        assert booking.id is not None
        expert = self._experts.get(booking.expert_key)
        changeable = now <= booking.starts_at - self._change_notice
        text = texts.reminder(
            start=booking.starts_at,
            end=booking.ends_at,
            zone=booking.attendee_zone,
            now=now,
            expert=None if expert is None else expert.name,
            role=None if expert is None else expert.role,
            company=self._config.company.name,
            topic=booking.topic,
            meeting=None if expert is None else expert.meeting,
            changeable=changeable,
            contact=self._config.booking.contact,
        )
        # Buttons only while the prospect may still change the consultation; later the text names whom to ask.
        buttons = (
            InlineKeyboardMarkup(
                [
                    [
                        InlineKeyboardButton(texts.REMINDER_BUTTON_RESCHEDULE, callback_data=f"mr:{booking.id}"),
                        InlineKeyboardButton(texts.REMINDER_BUTTON_CANCEL, callback_data=f"mc:{booking.id}"),
                    ]
                ]
            )
            if changeable
            else None
        )
        try:
            await self._bot.send_message(
                booking.chat_id,
                text,
                parse_mode=ParseMode.HTML,
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=buttons,
            )
        except Forbidden as error:
            await self._finish(due, "blocked", f"blocked: {error.message}", now)
            return "blocked"
        except BadRequest as error:
            # "Chat not found": the account is gone or never opened the chat; no retry will reach it.
            status: Literal["blocked", "failed"] = "blocked" if "chat not found" in error.message.lower() else "failed"
            await self._finish(due, status, f"{status}: {error.message}", now)
            return status
        except RetryAfter as error:
            await self._finish(due, "failed", f"flood control: {error.message}", now)
            return "flood"
        except TelegramError as error:
            # Network errors and timeouts are TelegramErrors too (NetworkError, TimedOut).
            log.warning("reminder %d of consultation %d not sent, will retry: %s", due.reminder_id, booking.id, error)
            await self._finish(due, "failed", f"{type(error).__name__}: {error.message}", now)
            return "failed"
        await self._finish(due, "sent", None, now)
        return "sent"

    async def _finish(
        self,
        due: DueReminder,
        status: Literal["sent", "blocked", "skipped", "failed"],
        error: str | None,
        now: datetime,
    ) -> None:
        if status != "sent":
            log.info("reminder %d of consultation %s: %s", due.reminder_id, due.booking.id, error)
        await self._store.finish_reminder(due.reminder_id, status=status, error=error, now=now)


def _nearest_per_booking(claimed: Sequence[DueReminder]) -> dict[str, DueReminder]:
    nearest: dict[str, DueReminder] = {}
    for due in claimed:
        known = nearest.get(due.booking.uid)
        if known is None or due.before < known.before:
            nearest[due.booking.uid] = due
    return nearest


def caldav_passwords(experts: Sequence[Expert], environment: Mapping[str, str] = os.environ) -> dict[str, str | None]:
    """Each CalDAV-writing expert's password, read from the variable their account names; ConfigError if unset."""
    passwords: dict[str, str | None] = {}
    missing = []
    for expert in experts:
        if expert.caldav is None:
            continue
        name = expert.caldav.password_env
        if name is None:
            passwords[expert.key] = None
        elif environment.get(name):
            passwords[expert.key] = environment[name]
        else:
            missing.append((name, f"is not set; experts.{expert.key}.caldav.password_env names it"))
    if missing:
        raise ConfigError("the environment", missing)
    return passwords


def retry_delay(attempt: int, *, jitter: float) -> timedelta:
    """How long to wait after the `attempt`-th failed try: 30 s doubling to at most an hour, `jitter` in [-1, 1]."""
    base = min(FIRST_RETRY * (1 << min(max(attempt, 1) - 1, 30)), LONGEST_RETRY)
    return base * (1 + RETRY_JITTER * jitter)


class CalendarWriter:
    """Writes consultations into experts' CalDAV collections from the outbox: create, update, delete, in order.

    Retry policy. A failure CalDAV calls temporary (a timeout, a refused connection, 5xx, 423, 429) is tried again
    after 30 s, 1 min, 2 min, … up to an hour between tries, each ±20 %; after `max_attempts` tries the write is
    dead. A permanent failure (401, 403, 404 on PUT, a bad URL) is dead at once: repeating it cannot help, and
    an operator has to fix the account first. Dead writes stay in the table with their last error.
    """

    def __init__(
        self,
        *,
        store: BookingStore,
        experts: Sequence[Expert],
        session: aiohttp.ClientSession,
        passwords: Mapping[str, str | None],
        company: str,
        fallback_email: str,
        clock: Clock,
        max_attempts: int = 10,
        lease: timedelta = CALENDAR_WRITE_LEASE,
        jitter: Callable[[], float] = lambda: random.uniform(-1, 1),
    ) -> None:
        self._store = store
        self._experts = {expert.key: expert for expert in experts}
        self._session = session
        self._passwords = dict(passwords)
        self._company = company
        self._fallback_email = fallback_email
        self._clock = clock
        self._max_attempts = max_attempts
        self._lease = lease
        self._jitter = jitter

    async def write_due(self) -> int:
        """Do every calendar write that is due and not claimed by another writer; how many went through."""
        done = 0
        while True:
            claimed = await self._store.claim_calendar_writes(now=self._clock(), lease=self._lease, limit=BATCH)
            outcomes = [await self._write(write) for write in claimed]
            done += outcomes.count("done")
            # A consultation's later write becomes due once its earlier one is finished (done or dead), so claim
            # again after any such progress, even after a short batch; writes left to retry are not due again yet.
            if all(outcome == "retry" for outcome in outcomes):
                return done

    async def keep_writing(self, every: timedelta = CALENDAR_WRITE_EVERY) -> None:
        """Do due calendar writes now and then once per `every`, until cancelled."""
        await keep_doing(self.write_due, every=every, what="writing to calendars")

    async def _write(self, write: DueCalendarWrite) -> Literal["done", "retry", "dead"]:
        booking = write.booking
        expert = self._experts.get(booking.expert_key)
        if expert is None or expert.caldav is None:
            return await self._finish(write, CalDavFailed("the expert no longer has a CalDAV calendar", retry=False))
        account, password = expert.caldav, self._passwords.get(expert.key)
        if write.action == "delete":
            result = await delete_event(self._session, account, password=password, uid=booking.uid)
        else:
            try:
                body = stored_event(
                    booking, expert, company=self._company, fallback_email=self._fallback_email, now=self._clock()
                )
            except ValueError as error:
                # Data no calendar can take (an unusable e-mail address): no later try would write it either.
                return await self._finish(write, CalDavFailed(f"cannot write the event: {error}", retry=False))
            result = await put_event(
                self._session, account, password=password, uid=booking.uid, body=body, create=write.action == "create"
            )
        return await self._finish(write, result if isinstance(result, CalDavFailed) else None)

    async def _finish(self, write: DueCalendarWrite, failure: CalDavFailed | None) -> Literal["done", "retry", "dead"]:
        now = self._clock()
        if failure is None:
            await self._store.finish_calendar_write(write.write_id, outcome="done", error=None, at=now)
            return "done"
        where = f"{write.action} of consultation {write.booking.id} for {write.booking.expert_key}"
        account = self._experts[write.booking.expert_key].caldav if write.booking.expert_key in self._experts else None
        target = "" if account is None else f" in {redact(account.url)}"
        if failure.retry and write.attempts < self._max_attempts:
            retry_at = now + retry_delay(write.attempts, jitter=self._jitter())
            log.warning(
                "calendar %s%s failed (try %d of %d), retrying at %s: %s",
                where,
                target,
                write.attempts,
                self._max_attempts,
                retry_at.isoformat(timespec="seconds"),
                failure.reason,
            )
            await self._store.finish_calendar_write(write.write_id, outcome="retry", error=failure.reason, at=retry_at)
            return "retry"
        why = f"gave up after {write.attempts} tries" if failure.retry else "permanent failure"
        log.error("calendar %s%s is dead (%s): %s", where, target, why, failure.reason)
        await self._store.finish_calendar_write(write.write_id, outcome="dead", error=failure.reason, at=now)
        return "dead"
