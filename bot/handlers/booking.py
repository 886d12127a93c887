"""Telegram handlers of booking: time zone, day, time, confirmation, and /mybookings with reschedule and cancel."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime

from telegram import Chat, InputFile, Message, Update
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from bot import booking_view, journey, render, texts
from bot.booking_view import View
from bot.config import BusinessConfig
from bot.handlers.qualification import quietly, show_in_place
from bot.journey import BookingJourney
from bot.render import booking_keyboard

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE

# Screens that replace the message whose button was pressed: the prospect moves through one message.
_IN_PLACE = (journey.ZoneQuestion, journey.ZoneCheck, journey.DayChoice, journey.TimeChoice, journey.SlotCheck)


class BookingHandlers:
    """The prospect's side of booking."""

    def __init__(self, journey: BookingJourney, config: BusinessConfig, clock: Callable[[], datetime]) -> None:
        self._journey = journey
        self._config = config
        self._clock = clock

    async def begin(self, chat: Chat, language_code: str | None) -> View:
        """The first booking screen for a chat whose prospect just qualified, to show under the outcome."""
        screen = await self._journey.begin(chat_key(chat), language_code=language_code)
        shown = self._view(screen)
        await self._tell_sales(chat, shown)
        return shown

    async def on_button(self, update: Update, context: Context) -> None:
        """Apply a booking button and show what follows, in place where the prospect is still choosing."""
        query = update.callback_query
        assert query is not None
        chat = update.effective_chat
        if chat is None:
            return
        given = booking_view.decode(query.data)
        if given is None:
            await query.answer(texts.INVALID_BUTTON)
            return
        screen = await self._journey.press(chat_key(chat), given, update_id=update.update_id)
        if screen is None:
            return
        if isinstance(screen, journey.Refused):
            await query.answer(texts.plain(booking_view.view(screen, config=self._config, now=self._clock()).html))
            return
        shown = self._view(screen)
        message = query.message if isinstance(query.message, Message) else None
        if isinstance(screen, _IN_PLACE):
            in_place = render.Message(shown.html, booking_keyboard(shown))
            answer = query.answer(booking_view.button_answer(screen))
            await asyncio.gather(quietly(answer), show_in_place(chat, message, in_place))
            return
        retire = [] if message is None else [quietly(message.edit_reply_markup(None))]
        await asyncio.gather(quietly(query.answer()), *retire, self._send(chat, shown))

    async def on_text(self, chat: Chat, text: str, update_id: int) -> bool:
        """Take typed text as a time zone if the chat is being asked for one; False if it is not."""
        screen = await self._journey.typed(chat_key(chat), text, update_id=update_id)
        if screen is None:
            return False
        await self._send(chat, self._view(screen))
        return True

    async def on_my_bookings(self, update: Update, context: Context) -> None:
        """List the prospect's upcoming consultations with Reschedule and Cancel buttons."""
        chat = update.effective_chat
        if chat is None:
            return
        screen = await self._journey.my_bookings(chat_key(chat))
        if screen is None:
            await chat.send_message(texts.MY_BOOKINGS_NONE)
            return
        await self._send(chat, self._view(screen))

    async def on_timezone(self, update: Update, context: Context) -> None:
        """Ask the prospect's time zone again."""
        chat = update.effective_chat
        if chat is None:
            return
        await self._send(chat, self._view(await self._journey.change_zone(chat_key(chat))))

    def _view(self, screen: journey.Screen) -> View:
        return booking_view.view(screen, config=self._config, now=self._clock())

    async def _send(self, chat: Chat, shown: View) -> None:
        await chat.send_message(shown.html, reply_markup=booking_keyboard(shown))
        if shown.document is not None:
            name, content, caption = shown.document
            await chat.send_document(InputFile(content, filename=name), caption=caption)
        await self._tell_sales(chat, shown)

    async def _tell_sales(self, chat: Chat, shown: View) -> None:
        sales_chat = self._config.sales.chat_id
        if shown.for_sales is None or sales_chat is None:
            return
        try:
            await chat.get_bot().send_message(sales_chat, shown.for_sales)
        except TelegramError as error:
            # The prospect has their answer already; a sales chat the bot cannot post to is an operator's problem.
            log.warning("could not tell the sales chat about a callback request: %s", error)


def chat_key(chat: Chat) -> str:
    """The key a Telegram chat's conversation is stored under (the same as the questionnaire's)."""
    return f"tg:{chat.id}"
