"""Telegram handlers of follow-ups: /stop, and the Continue and See free times buttons on follow-up messages."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from telegram import Message, Update
from telegram.ext import ContextTypes

from bot import texts
from bot.followups import parse_callback
from bot.handlers.booking import BookingHandlers, chat_key
from bot.handlers.qualification import QualificationHandlers, quietly
from bot.render import booking_keyboard
from leads.followup_store import SqlFollowUpStore
from leads.service import QualificationService

Context = ContextTypes.DEFAULT_TYPE


class FollowUpHandlers:
    """The prospect's side of follow-ups."""

    def __init__(
        self,
        *,
        store: SqlFollowUpStore,
        service: QualificationService,
        qualification: QualificationHandlers,
        booking: BookingHandlers,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._service = service
        self._qualification = qualification
        self._booking = booking
        self._clock = clock

    async def on_stop(self, update: Update, context: Context) -> None:
        """Turn every follow-up off for this prospect and say so; sending /stop again says the same."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:
            return
        await self._store.stop(user.id, now=self._clock())
        await chat.send_message(texts.FOLLOWUPS_STOPPED)

    async def on_button(self, update: Update, context: Context) -> None:
        """Continue the questionnaire, or show free times, from a follow-up's button, if it still applies."""
        query, chat, user = update.callback_query, update.effective_chat, update.effective_user
        if query is None or chat is None or user is None:
            return
        # Never trusted: the lead must be the one this chat is on now, and still where the follow-up found it.
        parsed = parse_callback(query.data)
        if parsed is None:
            await query.answer(texts.INVALID_BUTTON)
            return
        action, lead_id = parsed
        current = await self._service.chat_lead(chat_key(chat))
        facts = None if current is None or current.lead_id != lead_id else await self._store.lead_facts(lead_id)
        if facts is None or not (facts.status == "in_progress" if action == "c" else facts.outcome == "qualified"):
            await query.answer(texts.FOLLOWUP_STALE, show_alert=True)
            return
        if action == "b" and facts.booked:
            await query.answer(texts.FOLLOWUP_ALREADY_BOOKED, show_alert=True)
            return
        await query.answer()
        if isinstance(query.message, Message):
            await quietly(query.message.edit_reply_markup(None))
        if action == "c":
            # Exactly what /start does for a questionnaire under way: "welcome back" and the question they left.
            await self._qualification.on_start(update, context)
            return
        shown = await self._booking.begin(chat, user.language_code)
        await chat.send_message(shown.html, reply_markup=booking_keyboard(shown))
