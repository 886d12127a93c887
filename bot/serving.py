"""Serving in production: Telegram's webhook, /healthz, /readyz and /metrics beside the experts' feeds."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web
from sqlalchemy import text
from telegram import Bot, Update

from bot import database
from bot.metrics import CONTENT_TYPE, Metrics, ObservedUpdateProcessor, Outcome
from bot.settings import Settings
from bot.update_ledger import UpdateLedger
from bot.wiring import Services, sync_policy

if TYPE_CHECKING:
    from bot.application import BotApplication

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
CHECK_TIMEOUT = 5.0
"""Seconds one readiness check may take before it counts as failed."""


@dataclass
class Intake:
    """Where webhook updates go, and whether they are still taken (not once the process is stopping)."""

    application: BotApplication
    secret: str
    accepting: bool = field(default=True)
    ledger: UpdateLedger | None = None
    """Asked whether an update dropped as in hand elsewhere is done yet; None: a drop is acknowledged."""


@dataclass(frozen=True)
class Operations:
    """What the health, readiness and metrics routes read."""

    services: Services
    metrics: Metrics


INTAKE = web.AppKey("intake", Intake)
OPERATIONS = web.AppKey("operations", Operations)


def routes(
    settings: Settings, services: Services, metrics: Metrics, intake: Intake | None
) -> Callable[[web.Application], None]:
    """Adds the operational routes, and the webhook route when there is an intake, to the bot's HTTP server."""

    def extend(app: web.Application) -> None:
        app[OPERATIONS] = Operations(services, metrics)
        app.router.add_get("/healthz", healthz)
        app.router.add_get("/readyz", readyz)
        app.router.add_get("/metrics", prometheus_metrics)
        if intake is not None:
            app[INTAKE] = intake
            app.router.add_post(settings.webhook_path, telegram_webhook)

    return extend


async def telegram_webhook(request: web.Request) -> web.Response:
    """One update posted by Telegram: checked, queued for the handlers, acknowledged once they are done."""
    intake = request.app[INTAKE]
    if not intake.accepting:
        # Telegram retries an update it could not deliver, so another replica (or this one restarted) gets it.
        raise web.HTTPServiceUnavailable(text="stopping")
    sent = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(sent.encode(), intake.secret.encode()):
        log.warning("webhook request refused: missing or wrong secret token")
        raise web.HTTPForbidden
    try:
        data = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
        raise web.HTTPBadRequest(text="not an update")
    try:
        update = Update.de_json(data, intake.application.bot)
    except Exception:  # PTB's parsers raise whatever a malformed field trips over; none of it is an update
        raise web.HTTPBadRequest(text="not an update") from None
    processor = intake.application.update_processor
    if not isinstance(processor, ObservedUpdateProcessor):
        await intake.application.update_queue.put(update)
        return web.Response(text="ok")
    # Acknowledged once handled, not once queued: an update in hand when the process dies (SIGKILL, OOM) got
    # no 200, so Telegram delivers it again, to another replica or to this one restarted.
    outcome = processor.when_done(update.update_id)
    await intake.application.update_queue.put(update)
    match await outcome:
        case Outcome.CANCELLED:
            raise web.HTTPServiceUnavailable(text="not handled")
        case Outcome.DROPPED if intake.ledger is not None and not await intake.ledger.done(update.update_id):
            # In hand under another replica's lease, which outlives a replica killed mid-update: Telegram
            # keeps delivering it until the lease runs out and it is handled here or elsewhere.
            raise web.HTTPServiceUnavailable(text="in hand elsewhere")
    return web.Response(text="ok")


async def healthz(_request: web.Request) -> web.Response:
    """Alive: the process runs its event loop."""
    return web.Response(text="ok")


async def readyz(request: web.Request) -> web.Response:
    """Ready: the database answers, its schema is current, and no calendar feed is stale; 503 names what is not."""
    services = request.app[OPERATIONS].services
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(CHECK_TIMEOUT), services.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # any failure to reach the database means not ready
        checks["database"] = f"unreachable ({type(error).__name__})"
    if checks["database"] == "ok":
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                pending = await database.pending_migrations(services.engine)
            checks["migrations"] = "pending: " + ", ".join(pending) if pending else "ok"
        except Exception as error:  # a schema that cannot be read is not current
            checks["migrations"] = f"unknown ({type(error).__name__})"
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                checks["feeds"] = await _feeds_check(services)
        except Exception as error:  # feed states that cannot be read are not fresh
            checks["feeds"] = f"unknown ({type(error).__name__})"
    ready = all(outcome == "ok" for outcome in checks.values())
    return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503, dumps=json.dumps)


async def _feeds_check(services: Services) -> str:
    limit = sync_policy(services.config).stale_after
    now = services.clock()
    # Feed ids, not locations: a location may carry a secret.
    stale = [
        f"{feed.expert_key}#{feed.id}"
        for feed in await services.calendar_sync.feeds()
        if feed.stale(now=now, limit=limit)
    ]
    return "stale: " + ", ".join(stale) if stale else "ok"


async def prometheus_metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition of the process's metrics."""
    operations = request.app[OPERATIONS]
    body = await operations.metrics.render(operations.services)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE})


async def register_webhook(bot: Bot, settings: Settings) -> None:
    """Ask Telegram to post updates to WEBHOOK_URL with the secret token; pending updates are kept."""
    assert settings.webhook_url is not None
    assert settings.webhook_secret is not None
    await bot.set_webhook(
        settings.webhook_url,
        secret_token=settings.webhook_secret.get_secret_value(),
        allowed_updates=Update.ALL_TYPES,
        drop_pending_updates=False,
    )
