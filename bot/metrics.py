"""What /metrics reports: updates and their handling time, Telegram's errors, and the state of the database."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from sqlalchemy import text
from telegram import Update
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Conflict,
    EndPointNotFound,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import BaseRateLimiter, BaseUpdateProcessor

from bot import logs
from bot.wiring import Services

log = logging.getLogger("consultbot.updates")

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Most specific first: RetryAfter, Conflict and the others are NetworkError or TelegramError subclasses in PTB.
_ERROR_CODES: tuple[tuple[type[TelegramError], str], ...] = (
    (RetryAfter, "429"),
    (Forbidden, "403"),
    (InvalidToken, "401"),
    (EndPointNotFound, "404"),
    (Conflict, "409"),
    (BadRequest, "400"),
    (ChatMigrated, "400"),
    (TimedOut, "timeout"),
    (NetworkError, "network"),
)


def error_code(error: TelegramError) -> str:
    """The HTTP status Telegram answered with (as far as PTB's error class tells), or what went wrong on the way."""
    for kind, code in _ERROR_CODES:
        if isinstance(error, kind):
            return code
    return "other"


def update_kind(update: object) -> str:
    """Which kind of update this is: message, callback_query, my_chat_member..."""
    if isinstance(update, Update):
        for kind in Update.ALL_TYPES:
            if getattr(update, kind, None) is not None:
                return str(kind)
    return "other"


@dataclass(frozen=True)
class _DatabaseFigures:
    leads: list[tuple[str, int]]
    bookings: list[tuple[str, int]]
    outbox: list[tuple[str, str, int]]
    feeds: list[tuple[str, str, float | None, bool]]


class Metrics:
    """The process's metrics, in a registry of its own (so several bots in one test process do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        registry = self.registry
        # The process's CPU, memory, open files and collections, as the default registry would show them.
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
        self.updates = Counter("consultbot_updates", "Telegram updates handled, by kind", ["kind"], registry=registry)
        self.update_seconds = Histogram(
            "consultbot_update_handling_seconds", "Time the handlers took per update", ["kind"], registry=registry
        )
        self.telegram_errors = Counter(
            "consultbot_telegram_api_errors",
            "Failed Bot API calls, by Telegram's status code (or timeout, network)",
            ["code", "method"],
            registry=registry,
        )
        self.leads = Gauge("consultbot_leads", "Leads by status", ["status"], registry=registry)
        self.bookings = Gauge("consultbot_bookings", "Consultations by status", ["status"], registry=registry)
        self.outbox = Gauge(
            "consultbot_outbox_messages",
            "Outbox messages pending or dead, by destination",
            ["destination", "status"],
            registry=registry,
        )
        self.feed_age = Gauge(
            "consultbot_feed_sync_age_seconds",
            "Seconds since a calendar feed was last read successfully (absent: never)",
            ["expert", "feed"],
            registry=registry,
        )
        self.feed_failing = Gauge(
            "consultbot_feed_failing",
            "1 when the last sync of a calendar feed failed",
            ["expert", "feed"],
            registry=registry,
        )

    async def render(self, services: Services) -> bytes:
        """The Prometheus text exposition, with the database figures read now."""
        figures = await _read_figures(services)
        # No await from here on: a concurrent scrape never sees half-cleared gauges.
        for gauge in (self.leads, self.bookings, self.outbox, self.feed_age, self.feed_failing):
            gauge.clear()
        for status, count in figures.leads:
            self.leads.labels(status).set(count)
        for status, count in figures.bookings:
            self.bookings.labels(status).set(count)
        for destination, status, count in figures.outbox:
            self.outbox.labels(destination, status).set(count)
        for expert, feed, age, failing in figures.feeds:
            if age is not None:
                self.feed_age.labels(expert, feed).set(age)
            self.feed_failing.labels(expert, feed).set(1 if failing else 0)
        return generate_latest(self.registry)


async def _read_figures(services: Services) -> _DatabaseFigures:
    async with services.engine.connect() as connection:
        leads = await connection.execute(text("SELECT status, count(*) FROM leads GROUP BY status"))
        bookings = await connection.execute(text("SELECT status, count(*) FROM bookings GROUP BY status"))
        outbox = await connection.execute(
            text(
                "SELECT destination, status, count(*) FROM outbox WHERE status IN ('pending', 'dead') "
                "GROUP BY destination, status"
            )
        )
        lead_rows = [(str(status), int(count)) for status, count in leads]
        booking_rows = [(str(status), int(count)) for status, count in bookings]
        outbox_rows = [(str(destination), str(status), int(count)) for destination, status, count in outbox]
    now = services.clock()
    feeds = [
        # The feed's id, not its location: a location may carry a secret token or a password.
        (
            feed.expert_key,
            str(feed.id),
            None if feed.last_success_at is None else (now - feed.last_success_at).total_seconds(),
            feed.failing,
        )
        for feed in await services.calendar_sync.feeds()
    ]
    return _DatabaseFigures(lead_rows, booking_rows, outbox_rows, feeds)


class Outcome(enum.Enum):
    """What became of an update handed to the bot."""

    HANDLED = "handled"
    DROPPED = "dropped"
    """Not handled here: the ledger found it handled already, or in hand elsewhere."""
    CANCELLED = "cancelled"
    """Cut short (a shutdown's grace ran out) or failed outside its handlers: it is to be delivered again."""


class ObservedUpdateProcessor(BaseUpdateProcessor):
    """Counts and times each update and puts its ids on the log lines, around another processor's ordering."""

    def __init__(self, inner: BaseUpdateProcessor, metrics: Metrics) -> None:
        super().__init__(inner.max_concurrent_updates)
        self._inner = inner
        self._metrics = metrics
        self._in_hand: set[asyncio.Task[Any]] = set()
        self._awaited: dict[int, collections.deque[asyncio.Future[Outcome]]] = {}

    def when_done(self, update_id: int) -> asyncio.Future[Outcome]:
        """What becomes of the update with this id that is about to be queued: handled, dropped or cancelled."""
        done: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._awaited.setdefault(update_id, collections.deque()).append(done)
        return done

    async def cancel_in_hand(self) -> int:
        """Cancel the updates still being handled (at the end of a shutdown's grace); how many there were."""
        tasks = list(self._in_hand)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return len(tasks)

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Hand the update to the inner processor, timing only its handlers (not its wait for the chat)."""
        task = asyncio.current_task()
        assert task is not None, "python-telegram-bot handles each update in a task"
        self._in_hand.add(task)
        started: list[bool] = []
        outcome = Outcome.CANCELLED
        try:
            await self._inner.do_process_update(update, self._observed(update, coroutine, ran=started))
            outcome = Outcome.HANDLED if started else Outcome.DROPPED
        finally:
            self._in_hand.discard(task)
            if isinstance(update, Update):
                self._tell(update.update_id, outcome)
            if inspect.iscoroutine(coroutine):
                # The inner processor may drop the update (the ledger's gate: handled elsewhere) and close our
                # wrapper unstarted, which leaves the handlers' coroutine unawaited. Closing one that ran is a no-op.
                coroutine.close()

    def _tell(self, update_id: int, outcome: Outcome) -> None:
        waiting = self._awaited.get(update_id)
        if not waiting:
            return
        done = waiting.popleft()
        if not waiting:
            del self._awaited[update_id]
        if not done.done():
            done.set_result(outcome)

    async def _observed(self, update: object, coroutine: Awaitable[Any], *, ran: list[bool]) -> None:
        ran.append(True)
        kind = update_kind(update)
        if isinstance(update, Update):
            logs.UPDATE_ID.set(update.update_id)
            logs.CHAT_ID.set(update.effective_chat.id if update.effective_chat else None)
        started = time.perf_counter()
        try:
            await coroutine
        finally:
            seconds = time.perf_counter() - started
            self._metrics.update_seconds.labels(kind).observe(seconds)
            self._metrics.updates.labels(kind).inc()
            # The kind and the time only: the ids are on the line from the context, the content never is.
            log.info("handled %s update in %.0f ms", kind, seconds * 1000)

    async def initialize(self) -> None:
        """Set up the inner processor."""
        await self._inner.initialize()

    async def shutdown(self) -> None:
        """Release the inner processor."""
        await self._inner.shutdown()


class CountingLimiter(BaseRateLimiter[Any]):
    """Counts every failed Bot API attempt by status code, including those another limiter then retries."""

    def __init__(self, inner: BaseRateLimiter[Any], metrics: Metrics) -> None:
        self._inner = inner
        self._metrics = metrics

    async def initialize(self) -> None:
        """Set up the inner limiter."""
        await self._inner.initialize()

    async def shutdown(self) -> None:
        """Release the inner limiter."""
        await self._inner.shutdown()

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: Any,
    ) -> JSONResult:
        """Let the inner limiter call Telegram, counting each attempt that fails."""

        async def counted(*call_args: Any, **call_kwargs: Any) -> JSONResult:
            try:
                return await callback(*call_args, **call_kwargs)
            except TelegramError as error:
                self._metrics.telegram_errors.labels(error_code(error), endpoint).inc()
                raise

        return await self._inner.process_request(counted, args, kwargs, endpoint, data, rate_limit_args)
