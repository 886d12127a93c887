"""How the bot treats Telegram's servers: retries on flood control, one chat's updates in order."""

from __future__ import annotations

import asyncio
import inspect
import logging
import warnings
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager
from datetime import timedelta
from typing import Any, Protocol

from telegram import Update
from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter, BaseUpdateProcessor
from telegram.warnings import PTBDeprecationWarning

log = logging.getLogger(__name__)

JSONResult = bool | dict[str, Any] | list[dict[str, Any]]


def retry_after_seconds(error: RetryAfter) -> float:
    """The wait Telegram asked for, in seconds, whichever type this PTB version returns."""
    with warnings.catch_warnings():
        # PTB 22 warns that retry_after becomes a timedelta; accept both without the warning.
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


class RetryAfterLimiter(BaseRateLimiter[None]):
    """Waits as long as a 429 says and tries again, a few times, so no reply is lost to flood control."""

    def __init__(self, *, max_retries: int = 3) -> None:
        self._max_retries = max_retries

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
        """Call Telegram, waiting out flood control."""
        for attempt in range(self._max_retries + 1):
            try:
                return await callback(*args, **kwargs)
            except RetryAfter as error:
                if attempt == self._max_retries:
                    raise
                wait = retry_after_seconds(error)
                log.warning("telegram flood control on %s: waiting %.1f s (attempt %d)", endpoint, wait, attempt + 1)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable: the loop returns or raises")


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
