"""How the bot treats Telegram's servers: within its sending limits, retrying failures, one chat's updates in order."""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
import time
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, Protocol

from telegram import Update
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import BaseRateLimiter, BaseUpdateProcessor
from telegram.warnings import PTBDeprecationWarning

from bot.ratelimit import ChatWindows, SendLimits, SlidingWindow, backoff
from bot.telegram_http import NEVER_SENT

log = logging.getLogger(__name__)

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


def retry_after_seconds(error: RetryAfter) -> float:
    """The wait Telegram asked for, in seconds, whichever type this PTB version returns."""
    with warnings.catch_warnings():
        # PTB 22 warns that retry_after becomes a timedelta; accept both without the warning.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


SENDING_PREFIXES = ("send", "edit", "copy", "forward", "stop")
"""Methods that put a message in a chat (sendMessage, editMessageText, copyMessage, forwardMessages,
stopPoll, ...): these count against Telegram's sending limits."""
NOT_SENDING = frozenset({"sendChatAction"})
"""A typing indicator is no message: pacing it would halve how fast real replies go."""


def is_sending(endpoint: str) -> bool:
    """Whether a Bot API method sends or edits a message, and so counts against the sending limits."""
    return endpoint.startswith(SENDING_PREFIXES) and endpoint not in NOT_SENDING


def is_new_message(endpoint: str) -> bool:
    """Whether a method adds a message to a chat, which sending twice would show twice (an edit made twice is one)."""
    return endpoint.startswith(("send", "copy", "forward")) and endpoint not in NOT_SENDING


def already_shown(error: BadRequest) -> bool:
    """Whether Telegram refused an edit because the message already shows exactly that ("message is not
    modified"): the edit's purpose is met, and nothing more need be sent."""
    return "not modified" in error.message.lower()


def surely_not_sent(error: NetworkError) -> bool:
    """Whether a failed request cannot have reached Telegram, so that trying again cannot duplicate it.

    True for a 5xx answer (Telegram's servers did not take it) and for a connection that was never made (refused,
    connect or pool timeout); false for a connection lost after the request was written, or a read timeout.
    """
    cause = error.__cause__
    if "Pool timeout" in error.message:
        # PTB's own words for a request that never left: every pooled connection was busy.
        return True
    if cause is None:
        # PTB raises a 5xx answer as a plain NetworkError; a failure in the HTTP library always has a cause.
        return not isinstance(error, TimedOut)
    if isinstance(cause, NEVER_SENT):
        # The bot's own transport (bot/telegram_http.py): no connection was made, or none was free in time.
        return True
    # PTB's default transport, httpx, by name: it is python-telegram-bot's dependency, not this project's.
    return type(cause).__name__ in {"ConnectError", "ConnectTimeout", "PoolTimeout"}


class TelegramLimiter(BaseRateLimiter[None]):
    """Keeps the bot within Telegram's sending limits and retries what Telegram or the network failed.

    - Pacing: messages (see `is_sending`) wait for a place in their chat's sliding window (20 a minute for a
      group, 3 in 3 s for a private chat), then in the overall one (30 a second).
    - Order: each chat's requests go one at a time, in the order they were made (a FIFO lock per chat held
      across pacing, sending and retrying), so a retried message is never overtaken by the next one.
    - 429: wait the retry_after Telegram asked for and try again. The chat's lock is held meanwhile, which
      pauses that chat; a 429 outside any chat pauses every request. Given up (raised) once the waits of one
      request would pass `max_flood_wait`.
    - 5xx, failed connections and timeouts (NetworkError): retried after a back-off of 0.5 s doubling to 8 s
      with jitter, `max_attempts` tries in all. A 5xx answer means Telegram did not take the message, and a
      connection never made cannot have delivered it (see `surely_not_sent`). A connection lost or a read
      timed out after the request was written may have delivered it, so such a message is retried once only:
      at worst the prospect sees it twice rather than never. Edits and other calls are idempotent enough.
    - 400 (BadRequest, which PTB makes a NetworkError) and 403 (Forbidden) are never retried. A 403 in a
      private chat means the user blocked the bot: it is reported to `on_blocked` (which records it), then
      raised to the caller.
    - Only requests to a chat are retried on errors: a long poll, getMe or setWebhook has its own caller's
      retry policy (PTB's updater, the start-up), which back-off here would only slow down.

    Failed attempts are counted for /metrics by the CountingLimiter around this one (bot/metrics.py).
    """

    def __init__(
        self,
        *,
        limits: SendLimits | None = None,
        on_blocked: Callable[[int], Awaitable[None]] | None = None,
        max_flood_wait: float = 60.0,
        max_attempts: int = 5,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = lambda: random.uniform(-1, 1),
    ) -> None:
        self.limits = limits or SendLimits()
        self._on_blocked = on_blocked
        self._max_flood_wait = max_flood_wait
        self._max_attempts = max_attempts
        self._clock = clock
        self._jitter = jitter
        self._overall = SlidingWindow(self.limits.overall, clock)
        self._chats = ChatWindows(self.limits, clock)
        self._locks: dict[int | str, tuple[asyncio.Lock, int]] = {}
        self._paused_until = 0.0

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""

    async def process_request(
        self,
        callback: Callable[..., Coroutine[Any, Any, JSONResult]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> JSONResult:
        """Call Telegram within the limits, in order per chat, retrying what may be retried."""
        chat_id = _chat_id(data)
        if chat_id is None:
            return await self._call(lambda: callback(*args, **kwargs), endpoint, chat_id=None, paced=False)
        lock, users = self._locks.get(chat_id, (asyncio.Lock(), 0))
        self._locks[chat_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._call(
                    lambda: callback(*args, **kwargs), endpoint, chat_id=chat_id, paced=is_sending(endpoint)
                )
        finally:
            lock, users = self._locks[chat_id]
            if users == 1:
                del self._locks[chat_id]
            else:
                self._locks[chat_id] = (lock, users - 1)

    async def _call(
        self,
        call: Callable[[], Coroutine[Any, Any, JSONResult]],
        endpoint: str,
        *,
        chat_id: int | str | None,
        paced: bool,
    ) -> JSONResult:
        flood_waited = 0.0
        failures = 0
        maybe_delivered = 0
        while True:
            await self._wait_for_place(chat_id if paced else None, paced=paced)
            try:
                return await call()
            except RetryAfter as error:
                wait = retry_after_seconds(error)
                flood_waited += wait
                if flood_waited > self._max_flood_wait:
                    raise
                if chat_id is None:
                    self._paused_until = max(self._paused_until, self._clock() + wait)
                log.warning("telegram flood control on %s to %s: waiting %.1f s", endpoint, chat_id, wait)
                await asyncio.sleep(wait)
            except Forbidden as error:
                if isinstance(chat_id, int) and chat_id > 0 and self._on_blocked is not None:
                    await self._report_blocked(chat_id, error)
                raise
            except BadRequest:
                # PTB's BadRequest is a NetworkError too; but a 400 says the request is wrong: again is wrong again.
                raise
            except NetworkError as error:
                # A 5xx, a connection that failed, or a timeout (TimedOut is a NetworkError).
                failures += 1
                if is_new_message(endpoint) and not surely_not_sent(error):
                    maybe_delivered += 1
                if chat_id is None or failures >= self._max_attempts or maybe_delivered > 1:
                    raise
                delay = backoff(failures, first=0.5, longest=8.0, jitter=self._jitter())
                log.warning("telegram %s to %s failed (try %d): %s", endpoint, chat_id, failures, error)
                await asyncio.sleep(delay)

    async def _wait_for_place(self, chat_id: int | str | None, *, paced: bool) -> None:
        if chat_id is not None:
            await _sleep(self._chats.reserve(chat_id))
        if paced:
            await _sleep(self._overall.reserve())
        # A flood wait may have been ordered while this request waited for its place, or during that one.
        while (pause := self._paused_until - self._clock()) > 0:  # noqa: ASYNC110 - a deadline, not an event
            await asyncio.sleep(pause)

    async def _report_blocked(self, chat_id: int, error: Forbidden) -> None:
        log.info("chat %d: %s", chat_id, error.message)
        assert self._on_blocked is not None
        try:
            await self._on_blocked(chat_id)
        except Exception:
            # Failing to record the block must not hide the 403 itself from the caller.
            log.exception("could not record that chat %d blocked the bot", chat_id)


def _chat_id(data: dict[str, Any]) -> int | str | None:
    chat_id = data.get("chat_id")
    if isinstance(chat_id, int) or chat_id is None:
        return chat_id
    text = str(chat_id)
    return int(text) if text.lstrip("-").isdigit() else text


async def _sleep(seconds: float) -> None:
    if seconds > 0:
        await asyncio.sleep(seconds)


class PerChatUpdateProcessor(BaseUpdateProcessor):
    """Handles different chats concurrently, and each chat's updates one after another, in order.

    With a `gate` (the update ledger), an update is handled only if the gate lets it through: once across
    replicas, and one chat's updates one at a time across replicas too.
    """

    def __init__(self, max_concurrent_updates: int = 64, *, gate: UpdateGate | None = None) -> None:
        super().__init__(max_concurrent_updates)
        self._chats: dict[int, tuple[asyncio.Lock, int]] = {}
        self._gate = gate

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        """Run one update's handlers once the chat's earlier updates are done."""
        chat = update.effective_chat if isinstance(update, Update) else None
        if chat is None:
            await self._handle(update, None, coroutine)
            return
        lock, users = self._chats.get(chat.id, (asyncio.Lock(), 0))
        self._chats[chat.id] = (lock, users + 1)
        try:
            async with lock:
                await self._handle(update, chat.id, coroutine)
        finally:
            lock, users = self._chats[chat.id]
            if users == 1:
                del self._chats[chat.id]
            else:
                self._chats[chat.id] = (lock, users - 1)

    async def _handle(self, update: object, chat_id: int | None, coroutine: Awaitable[Any]) -> None:
        if self._gate is None or not isinstance(update, Update):
            await coroutine
            return
        try:
            async with self._gate.handling(update.update_id, chat_id=chat_id) as claimed:
                if claimed:
                    await coroutine
                    return
        finally:
            if inspect.iscoroutine(coroutine):
                # A dropped (or never reached) update's handlers are not run: close them, so that Python does
                # not warn of a coroutine never awaited. Closing one that ran is a no-op.
                coroutine.close()

    async def initialize(self) -> None:
        """Nothing to set up."""

    async def shutdown(self) -> None:
        """Nothing to release."""


class UpdateGate(Protocol):
    """Whether an update is to be handled here, and what to hold while it is (bot/update_ledger.py)."""

    def handling(self, update_id: int, *, chat_id: int | None) -> AbstractAsyncContextManager[bool]:
        """True: handle it (recorded done when the block ends normally); False: drop it."""
        ...
