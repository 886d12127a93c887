"""Telegram handlers of the prospect's rights: /mydata sends their data, /forget erases it after asking."""

from __future__ import annotations

from html import escape

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, InputFile, Update
from telegram.ext import ContextTypes

from bot import texts
from bot.config import BusinessConfig
from bot.handlers.booking import chat_key
from bot.privacy import PrivacyService, data_document

Context = ContextTypes.DEFAULT_TYPE

CALLBACK_PATTERN = r"^pv:"
_ERASE, _KEEP = "pv:erase", "pv:keep"


class PrivacyHandlers:
    """/mydata, /forget and its confirmation buttons."""

    def __init__(self, privacy: PrivacyService, config: BusinessConfig) -> None:
        self._privacy = privacy
        self._config = config

    async def on_my_data(self, update: Update, context: Context) -> None:
        """Send the prospect everything stored about them as a JSON document."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:
            return
        document = await self._privacy.personal_data(user.id)
        if document is None:
            await chat.send_message(texts.NO_DATA)
            return
        await chat.send_document(
            InputFile(data_document(document), filename="my-data.json"),
            caption=texts.MY_DATA_CAPTION.format(company=escape(self._config.company.name)),
        )

    async def on_forget(self, update: Update, context: Context) -> None:
        """Say what erasing would do, and ask."""
        chat, user = update.effective_chat, update.effective_user
        if chat is None or user is None:
            return
        coming = await self._privacy.coming_consultations(user.id)
        if coming is None:
            await chat.send_message(texts.NO_DATA)
            return
        keyboard = InlineKeyboardMarkup(
            [
                [InlineKeyboardButton(texts.FORGET_YES, callback_data=_ERASE)],
                [InlineKeyboardButton(texts.FORGET_NO, callback_data=_KEEP)],
            ]
        )
        await chat.send_message(
            texts.FORGET_ASK.format(consultations=_consultations(len(coming))), reply_markup=keyboard
        )

    async def on_button(self, update: Update, context: Context) -> None:
        """Erase, or keep, as the prospect answered; the question is replaced by the outcome."""
        query = update.callback_query
        chat, user = update.effective_chat, update.effective_user
        if query is None or chat is None or user is None:
            return
        if query.data not in {_ERASE, _KEEP}:
            await query.answer(texts.INVALID_BUTTON)
            return
        await query.answer()
        if query.data == _KEEP:
            await query.edit_message_text(texts.FORGET_KEPT)
            return
        forgotten = await self._privacy.forget(user.id, chat_key=chat_key(chat))
        if forgotten is None:
            await query.edit_message_text(texts.NO_DATA)
            return
        count = len(forgotten.cancelled)
        cancelled = "" if count == 0 else f" and {_consultations(count)} cancelled"
        await query.edit_message_text(texts.FORGET_DONE.format(cancelled=cancelled))


def _consultations(count: int) -> str:
    if count == 0:
        return texts.FORGET_NO_CONSULTATIONS
    return "your coming consultation" if count == 1 else f"your {count} coming consultations"
