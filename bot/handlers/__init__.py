"""Every Telegram handler, registered in one place and in order."""

from __future__ import annotations

import logging
from typing import Any

from telegram import Update
from telegram.error import Forbidden, TelegramError
from telegram.ext import (
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    filters,
)

from bot import texts
from bot.booking_view import CALLBACK_PATTERN
from bot.followups import CALLBACK_PATTERN as FOLLOWUP_PATTERN
from bot.handlers.booking import BookingHandlers
from bot.handlers.followups import FollowUpHandlers
from bot.handlers.privacy import CALLBACK_PATTERN as PRIVACY_PATTERN
from bot.handlers.privacy import PrivacyHandlers
from bot.handlers.qualification import QualificationHandlers
from bot.handlers.sales import CALLBACK_PATTERN as SALES_PATTERN
from bot.handlers.sales import SalesHandlers
from bot.handlers.staff import StaffHandlers, register_staff

log = logging.getLogger(__name__)


def register(
    application: Application[Any, Any, Any, Any, Any, Any],
    qualification: QualificationHandlers,
    booking: BookingHandlers,
    sales: SalesHandlers | None = None,
    *,
    privacy: PrivacyHandlers | None = None,
    staff: StaffHandlers | None = None,
    sales_chat_id: int | None = None,
    followups: FollowUpHandlers | None = None,
) -> None:
    """Route prospects' private messages, and prospects' and sales staff's button presses, to the handlers."""
    private = filters.ChatType.PRIVATE
    new_message = filters.UpdateType.MESSAGE & private
    if staff is not None:
        # First: a staff member's /leads must not reach the prospect handlers' unknown-command reply.
        register_staff(application, staff, sales_chat_id=sales_chat_id)
    application.add_handler(CommandHandler("start", qualification.on_start, filters=private))
    application.add_handler(CommandHandler("restart", qualification.on_restart, filters=private))
    application.add_handler(CommandHandler("cancel", qualification.on_cancel, filters=private))
    application.add_handler(CommandHandler("help", qualification.on_help, filters=private))
    application.add_handler(CommandHandler("privacy", qualification.on_privacy, filters=private))
    application.add_handler(CommandHandler("mybookings", booking.on_my_bookings, filters=private))
    application.add_handler(CommandHandler("timezone", booking.on_timezone, filters=private))
    if privacy is not None:
        application.add_handler(CommandHandler("mydata", privacy.on_my_data, filters=private))
        application.add_handler(CommandHandler("forget", privacy.on_forget, filters=private))
        application.add_handler(CallbackQueryHandler(privacy.on_button, pattern=PRIVACY_PATTERN))
    if followups is not None:
        application.add_handler(CommandHandler("stop", followups.on_stop, filters=private))
        application.add_handler(CallbackQueryHandler(followups.on_button, pattern=FOLLOWUP_PATTERN))
    if sales is not None:
        application.add_handler(CallbackQueryHandler(sales.on_button, pattern=SALES_PATTERN))
    application.add_handler(CallbackQueryHandler(booking.on_button, pattern=CALLBACK_PATTERN))
    application.add_handler(CallbackQueryHandler(qualification.on_button))
    application.add_handler(MessageHandler(new_message & filters.TEXT & ~filters.COMMAND, qualification.on_text))
    application.add_handler(MessageHandler(new_message & filters.COMMAND, qualification.on_unknown_command))
    application.add_handler(MessageHandler(new_message, qualification.on_other))
    application.add_error_handler(on_error)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log a failed update and tell the prospect, so nobody waits for a reply that will not come."""
    update_id = update.update_id if isinstance(update, Update) else None
    log.error("update %s failed", update_id, exc_info=context.error)
    chat = update.effective_chat if isinstance(update, Update) else None
    if chat is None or isinstance(context.error, Forbidden):
        return
    try:
        await chat.send_message(texts.SOMETHING_WENT_WRONG)
    except TelegramError as error:
        log.warning("could not tell chat about the failure: %s", error)
