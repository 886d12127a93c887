"""The webhook reference: the bare python-telegram-bot echo bot (benchmarks/echo_bot.py) fed by Telegram's webhook.

    TELEGRAM_BOT_TOKEN=... TELEGRAM_BASE_URL=http://127.0.0.1:8081 HTTP_PORT=8080 python -m benchmarks.echo_webhook

python-telegram-bot's custom-webhook pattern: a small aiohttp server puts each posted update on the
Application's queue and answers 200 at once; nothing else (no secret, no database, no ledger).
"""

from __future__ import annotations

import asyncio
import os
import signal

from aiohttp import web
from telegram import Update
from telegram.ext import Application, CallbackQueryHandler, MessageHandler, filters

from benchmarks.echo_bot import echo_press, echo_text


async def serve() -> None:
    """Take webhook posts on HTTP_PORT until SIGTERM or SIGINT."""
    base_url = os.environ["TELEGRAM_BASE_URL"].rstrip("/")
    application = (
        Application.builder().token(os.environ["TELEGRAM_BOT_TOKEN"]).base_url(f"{base_url}/bot").updater(None).build()
    )
    application.add_handler(MessageHandler(filters.TEXT, echo_text))
    application.add_handler(CallbackQueryHandler(echo_press))

    async def webhook(request: web.Request) -> web.Response:
        await application.update_queue.put(Update.de_json(await request.json(), application.bot))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/telegram/webhook", webhook)
    runner = web.AppRunner(app, access_log=None)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    async with application:
        await application.start()
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", int(os.environ["HTTP_PORT"])).start()
        await stop.wait()
        await runner.cleanup()
        await application.stop()


if __name__ == "__main__":
    asyncio.run(serve())
