"""The reference: a bare python-telegram-bot echo bot, run as its own process like `consultbot run`.

    TELEGRAM_BOT_TOKEN=... TELEGRAM_BASE_URL=http://127.0.0.1:8081 python -m benchmarks.echo_bot

Nothing but the token and the server: python-telegram-bot as it comes (one update at a time, its own
connection pool and timeouts), polling as consultbot polls.
"""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes, MessageHandler, filters


async def echo_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Send the text back."""
    message, chat = update.effective_message, update.effective_chat
    if message is not None and chat is not None and message.text:
        await context.bot.send_message(chat.id, message.text)


async def echo_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer the button press and send its data back."""
    query, chat = update.callback_query, update.effective_chat
    if query is not None and chat is not None:
        await query.answer()
        await context.bot.send_message(chat.id, query.data or "?")


def main() -> None:
    """Poll the configured Bot API server until SIGTERM or SIGINT."""
    base_url = os.environ["TELEGRAM_BASE_URL"].rstrip("/")
    application = Application.builder().token(os.environ["TELEGRAM_BOT_TOKEN"]).base_url(f"{base_url}/bot").build()
    application.add_handler(MessageHandler(filters.TEXT, echo_text))
    application.add_handler(CallbackQueryHandler(echo_press))
    application.run_polling(poll_interval=0, timeout=1)


if __name__ == "__main__":
    main()
