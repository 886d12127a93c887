"""The python-telegram-bot Application, built once from settings and services."""

from __future__ import annotations

import os
from typing import Any

from telegram import BotCommand, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.ext import Application, ContextTypes, Defaults, ExtBot, JobQueue

from bot import handlers, texts
from bot.handlers.booking import BookingHandlers
from bot.handlers.followups import FollowUpHandlers
from bot.handlers.privacy import PrivacyHandlers
from bot.handlers.qualification import QualificationHandlers
from bot.handlers.sales import SalesHandlers
from bot.handlers.staff import StaffHandlers
from bot.metrics import CountingLimiter, Metrics, ObservedUpdateProcessor
from bot.settings import Settings
from bot.telegram_http import AiohttpRequest
from bot.telegram_io import PerChatUpdateProcessor, TelegramLimiter
from bot.wiring import Services

CONCURRENT_UPDATES = 8
"""Updates handled at once (one chat's updates are always handled in order)."""

BotApplication = Application[
    ExtBot[None],
    ContextTypes.DEFAULT_TYPE,
    dict[Any, Any],
    dict[Any, Any],
    dict[Any, Any],
    JobQueue[ContextTypes.DEFAULT_TYPE],
]
"""The Application as python-telegram-bot's builder makes it with default types."""


def build_application(settings: Settings, services: Services, *, metrics: Metrics | None = None) -> BotApplication:
    """An Application talking to the configured Bot API server, with every handler registered (and observed)."""
    metrics = metrics or Metrics()
    # PTB 22 builds RetryAfter (and other time periods) with a deprecation warning unless the
    # process opts in to the timedelta form that its next major version makes the only one.
    os.environ.setdefault("PTB_TIMEDELTA", "true")

    async def on_blocked(chat_id: int) -> None:
        await services.blocked.mark_blocked(chat_id, now=services.clock())

    application = (
        Application.builder()
        .token(settings.require_token())
        .base_url(settings.bot_api_base_url)
        .base_file_url(settings.bot_api_file_url)
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=LinkPreviewOptions(is_disabled=True)))
        .rate_limiter(CountingLimiter(TelegramLimiter(limits=settings.send_limits, on_blocked=on_blocked), metrics))
        # A few updates at a time overlap database and HTTP waits; many more only add work in flight.
        # The ledger: each update once across replicas, and one chat's updates one at a time across them too.
        .concurrent_updates(
            ObservedUpdateProcessor(PerChatUpdateProcessor(CONCURRENT_UPDATES, gate=services.ledger), metrics)
        )
        # aiohttp carries the Bot API calls (bot/telegram_http.py says why). An update makes at most two calls
        # at once, hence two connections per update in hand.
        .request(AiohttpRequest(connection_pool_size=CONCURRENT_UPDATES * 2, pool_timeout=10))
        # On stop, PTB confirms the last updates with one more getUpdates while the cancelled long poll may still
        # hold its connection; with a single connection that call timed out and the updates came again later.
        .get_updates_request(AiohttpRequest(connection_pool_size=2))
        .post_init(_set_commands)
        .build()
    )
    booking = BookingHandlers(services.journey, services.config, services.clock)
    config = services.config
    sales = SalesHandlers(
        handoff=services.handoff,
        sales_zone=config.sales.timezone,
        experts=config.experts,
        lost_reasons=config.sales.lost_reasons,
    )
    staff = StaffHandlers(
        reports=services.reports, staff=[member.user_id for member in config.sales.staff], clock=services.clock
    )
    qualification = QualificationHandlers(services.qualification, config, booking, queued=services.queued)
    followups = FollowUpHandlers(
        store=services.followups,
        service=services.qualification,
        qualification=qualification,
        booking=booking,
        clock=services.clock,
    )
    handlers.register(
        application,
        qualification,
        booking,
        sales,
        privacy=PrivacyHandlers(services.privacy, config),
        staff=staff,
        sales_chat_id=config.sales.chat_id,
        followups=followups,
    )
    return application


async def _set_commands(application: BotApplication) -> None:
    await application.bot.set_my_commands([BotCommand(name, about) for name, about in texts.COMMANDS.items()])
