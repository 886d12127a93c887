"""The `consultbot` command: run the bot, chat in a terminal, manage the database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Coroutine, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import aiohttp
from sqlalchemy.exc import SQLAlchemyError
from telegram import Bot
from telegram.error import InvalidToken, NetworkError

from bot import console, crm, database, logs, outbox_command, reports, staff_cli, update_ledger, web, workers
from bot.cards import CardPoster
from bot.config import BusinessConfig, ConfigError, load_config
from bot.followups import FollowUpSender
from bot.relay import BookingRelay
from bot.settings import Settings, load_settings
from bot.wiring import Services, open_services, utc_now
from scheduling.feeds import redact, user_agent
from scheduling.model import Expert

if TYPE_CHECKING:
    from bot.application import BotApplication
    from bot.serving import Intake

log = logging.getLogger("consultbot")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    arguments = _parser().parse_args(argv)
    try:
        settings = load_settings()
        logs.configure(level=settings.log_level, style=settings.log_format)
        # Libraries log every HTTP request at INFO; keep the bot's own lines readable.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if arguments.command in {"chat", "sync", "slots", "experts"}:
            # The terminal is the conversation, or the report: only trouble belongs beside it.
            logging.getLogger().setLevel(logging.WARNING)
        config = load_config(settings.config_path)
        return asyncio.run(_run_command(arguments, settings, config))
    except ConfigError as error:
        print(f"consultbot: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="consultbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="serve prospects on Telegram (long polling, or a webhook with WEBHOOK_URL)")
    commands.add_parser("chat", help="the prospect conversation in this terminal")
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply pending migrations")
    db_commands.add_parser("status", help="list pending migrations")
    commands.add_parser("check", help="check the configuration and the environment, then exit")
    commands.add_parser("sync", help="read every expert's calendars now and show how each feed stands")
    slots = commands.add_parser("slots", help="free consultation slots, grouped by day")
    slots.add_argument("--expert", metavar="ID", help="only this expert (a key from the configuration)")
    slots.add_argument("--days", type=_positive, metavar="N", help="days ahead to show (default: the horizon)")
    slots.add_argument("--tz", type=_zone, metavar="ZONE", help="show times in this IANA zone (default: the expert's)")
    experts = commands.add_parser("experts", help="the experts, their calendars and the links of their feeds")
    experts_commands = experts.add_subparsers(dest="experts_command")
    rotate = experts_commands.add_parser("rotate-token", help="give an expert's feed a new link; the old one stops")
    rotate.add_argument("key", metavar="ID", help="the expert (a key from the configuration)")
    staff_cli.add_parser(commands)
    outbox_command.add_arguments(commands.add_parser("outbox", help="pending CRM webhooks and cards, dead letters"))
    return parser


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, 1 or more, got {text!r}")
    return int(text)


def _zone(text: str) -> ZoneInfo:
    try:
        return ZoneInfo(text)
    except (ValueError, ZoneInfoNotFoundError):
        raise argparse.ArgumentTypeError(
            f"unknown time zone {text!r} (use an IANA name such as Europe/Berlin)"
        ) from None


async def _run_command(arguments: argparse.Namespace, settings: Settings, config: BusinessConfig) -> int:
    try:
        match arguments.command:
            case "run":
                settings.require_token()
                return await _serve(settings, config)
            case "chat":
                async with open_services(settings, config) as services:
                    return await console.chat(
                        services.qualification,
                        config,
                        console.stdio(),
                        journey=services.journey,
                        clock=services.clock,
                    )
            case "db":
                return await _database(arguments.db_command, settings)
            case "check":
                print(f"configuration OK: {settings.config_path}")
                return 0
            case "sync":
                async with open_services(settings, config) as services:
                    synced = await services.calendar_sync.sync()
                    print(reports.feeds(synced, await services.calendar_sync.feeds()))
                    return 1 if any(report.outcome == "failed" for report in synced) else 0
            case "slots":
                return await _slots(arguments, settings, config)
            case "experts":
                return await _experts(arguments, settings, config)
            case "leads":
                async with open_services(settings, config) as services:
                    return await staff_cli.run(arguments, services.reports)
            case "outbox":
                return await outbox_command.run(arguments, settings, config)
    except (OSError, SQLAlchemyError) as error:
        print(f"consultbot: cannot use the database {_safe(settings.database_url)}: {error}", file=sys.stderr)
        return 1
    raise AssertionError(f"unhandled command {arguments.command}")


async def _slots(arguments: argparse.Namespace, settings: Settings, config: BusinessConfig) -> int:
    experts = [expert.key for expert in config.experts]
    if arguments.expert is not None and arguments.expert not in experts:
        print(f"consultbot: no expert {arguments.expert!r}; the experts are: {', '.join(experts)}", file=sys.stderr)
        return 2
    async with open_services(settings, config) as services:
        for key in [arguments.expert] if arguments.expert else experts:
            found = await services.availability.availability(key, days=arguments.days)
            print(reports.slots(found, zone=arguments.tz))
    return 0


async def _experts(arguments: argparse.Namespace, settings: Settings, config: BusinessConfig) -> int:
    keys = [expert.key for expert in config.experts]
    if arguments.experts_command == "rotate-token" and arguments.key not in keys:
        print(f"consultbot: no expert {arguments.key!r}; the experts are: {', '.join(keys)}", file=sys.stderr)
        return 2
    async with open_services(settings, config) as services:
        if arguments.experts_command == "rotate-token":
            token = await services.bookings.rotate_feed_token(arguments.key)
            print(f"new feed link for {arguments.key} (the old one no longer works):")
            print(_feed_url(settings, token))
            return 0
        blocks = []
        for expert in config.experts:
            token = await services.bookings.feed_token(expert.key)
            blocks.append(_expert_block(expert, _feed_url(settings, token)))
        print("\n\n".join(blocks) if blocks else "no experts configured (experts in the configuration)")
    return 0


def _expert_block(expert: Expert, feed_url: str) -> str:
    caldav = "none"
    if expert.caldav is not None:
        caldav = redact(expert.caldav.url)
        if expert.caldav.username:
            caldav += f" as {expert.caldav.username}"
        if expert.caldav.password_env:
            caldav += f" (password in ${expert.caldav.password_env})"
    lines = [
        f"{expert.key}  {expert.name}",
        f"  role         {expert.role}",
        f"  zone         {expert.timezone}",
        f"  specialties  {', '.join(expert.specialties) or 'none'}",
        f"  calendars    {', '.join(redact(location) for location in expert.calendars) or 'none'}",
        f"  caldav       {caldav}",
        f"  feed         {feed_url}",
    ]
    return "\n".join(lines)


def _feed_url(settings: Settings, token: str) -> str:
    return f"{settings.feed_base_url}/calendars/{token}.ics"


async def _database(command: str, settings: Settings) -> int:
    engine = database.create_engine(settings.database_url)
    try:
        if command == "upgrade":
            await database.upgrade(engine)
            print("database is up to date")
            return 0
        pending = await database.pending_migrations(engine)
        print("pending migrations: " + ", ".join(pending) if pending else "database is up to date")
        return 0
    finally:
        await engine.dispose()


def _sales_workers(services: Services, bot: Bot) -> list[Coroutine[Any, Any, None]]:
    """The hand-off's background work: relaying consultation changes to sales, the lead cards, and CRM webhooks."""
    config = services.config
    poster = None
    if config.sales.chat_id is not None:
        poster = CardPoster(
            outbox=services.outbox,
            handoff=services.handoff,
            bot=bot,
            chat_id=config.sales.chat_id,
            sales_zone=config.sales.timezone,
            experts=config.experts,
            clock=utc_now,
        )
    deliverer = None
    if config.crm.webhook_url is not None:
        deliverer = crm.CrmDeliverer.for_config(config, outbox=services.outbox, clock=utc_now)
    # A completed questionnaire (bot/handlers/qualification.py) and relayed booking changes queue card and CRM
    # messages: wake whichever workers there are.
    for worker in (poster, deliverer):
        if worker is not None:
            services.queued.add(worker.wake)
    relay = BookingRelay(
        bookings=services.booking_store, handoff=services.handoff, clock=utc_now, relayed=services.queued
    )
    return (
        [relay.keep_relaying()]
        + ([] if poster is None else [poster.keep_posting()])
        + ([] if deliverer is None else [deliverer.keep_delivering()])
    )


def _privacy_workers(services: Services) -> list[Coroutine[Any, Any, None]]:
    """Anonymising prospects inactive for longer than the configured retention, if one is set."""
    days = services.config.privacy.retention_days
    if days == 0:
        return []
    retention = timedelta(days=days)
    return [
        workers.keep_doing(
            lambda: services.privacy.anonymise_inactive(retention=retention),
            every=workers.RETENTION_EVERY,
            what="anonymising inactive prospects",
        )
    ]


async def forget_old_updates(services: Services) -> int:
    """Prune the update ledger, first lifting the blocks that its updates answer (bot/blocked_store.py)."""
    # Forgotten, an update from a user who blocked the bot and then wrote again would no longer lift the block.
    await services.blocked.lift_answered()
    return await services.ledger.prune()


def _followup_sender(services: Services, bot: Bot) -> FollowUpSender:
    """The sender of the nudges, reminders and resources that follow the questionnaire."""
    return FollowUpSender(
        store=services.followups,
        bookings=services.booking_store,
        bot=bot,
        config=services.config,
        clock=utc_now,
        blocked=services.blocked,
    )


async def _serve(settings: Settings, config: BusinessConfig) -> int:
    """Take Telegram's updates, serve feeds and health, send reminders and write calendars until SIGINT or SIGTERM."""
    from bot import serving
    from bot.application import build_application
    from bot.metrics import Metrics

    # Read once, before anything starts: a missing CalDAV password stops start-up with the variable's name.
    passwords = workers.caldav_passwords(config.experts)
    if config.crm.webhook_url is not None:
        crm.webhook_secret(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_services(settings, config) as services, contextlib.AsyncExitStack() as running:
        metrics = Metrics()
        application = build_application(settings, services, metrics=metrics)
        intake = None
        if settings.webhook_secret is not None and settings.webhook_url is not None:
            intake = serving.Intake(application, settings.webhook_secret.get_secret_value(), ledger=services.ledger)
        try:
            server = await web.start_feed_server(
                settings, services, extend=serving.routes(settings, services, metrics, intake)
            )
        except OSError as error:
            print(
                f"consultbot: cannot serve HTTP on {settings.http_host}:{settings.http_port}: {error}", file=sys.stderr
            )
            return 1
        running.push_async_callback(server.stop)
        log.info(
            "serving experts' calendar feeds on %s (links: %s/calendars/…), and /healthz, /readyz, /metrics",
            server.url,
            settings.feed_base_url,
        )
        try:
            async with application:
                await application.start()
                assert application.updater is not None
                if intake is not None:
                    await serving.register_webhook(application.bot, settings)
                    log.info("taking updates from Telegram's webhook on %s", settings.webhook_path)
                else:
                    await application.updater.start_polling(poll_interval=0, timeout=30, drop_pending_updates=False)
                background = [
                    workers.until_stopping(
                        services.calendar_sync.keep_in_sync(timedelta(minutes=config.calendars.sync_minutes))
                    ),
                    workers.ReminderSender(
                        store=services.booking_store,
                        bot=application.bot,
                        config=config,
                        experts=config.experts,
                        clock=utc_now,
                        blocked=services.blocked,
                    ).keep_sending(workers.REMINDER_EVERY),
                ]
                background += _sales_workers(services, application.bot)
                background += _privacy_workers(services)
                background.append(_followup_sender(services, application.bot).keep_sending())
                background.append(
                    workers.keep_doing(
                        lambda: forget_old_updates(services),
                        every=update_ledger.PRUNE_EVERY,
                        what="forgetting old Telegram updates",
                    )
                )
                if any(expert.caldav is not None for expert in config.experts):
                    session = aiohttp.ClientSession(headers={"User-Agent": user_agent()})
                    running.push_async_callback(session.close)
                    writer = workers.CalendarWriter(
                        store=services.booking_store,
                        experts=config.experts,
                        session=session,
                        passwords=passwords,
                        company=config.company.name,
                        fallback_email=workers.fallback_email(config),
                        clock=utc_now,
                    )
                    background.append(writer.keep_writing(workers.CALENDAR_WRITE_EVERY))
                # The workers see this event (their tasks copy the context): on SIGTERM they finish their round.
                workers_stopping = asyncio.Event()
                workers.STOPPING.set(workers_stopping)
                tasks = [asyncio.create_task(work) for work in background]
                # Everything built so far lives as long as the process: out of the collector's sight, it is
                # not traversed again by every full collection while updates are handled.
                gc.freeze()
                gc.set_threshold(10_000, 20, 20)
                log.info("consultbot is serving @%s", application.bot.username)
                await stop.wait()
                await _stop_gracefully(
                    application, intake, tasks, workers_stopping, grace=settings.shutdown_grace_seconds
                )
        except InvalidToken:
            print("consultbot: Telegram refused TELEGRAM_BOT_TOKEN (unauthorized)", file=sys.stderr)
            return 2
        except NetworkError as error:
            print(
                f"consultbot: cannot reach the Bot API at {settings.telegram_base_url}: {error}",
                file=sys.stderr,
            )
            return 1
    return 0


async def _stop_gracefully(
    application: BotApplication,
    intake: Intake | None,
    tasks: list[asyncio.Task[None]],
    workers_stopping: asyncio.Event,
    *,
    grace: float,
) -> None:
    """Take no more updates, finish those in hand and the workers' rounds within `grace` seconds, then stop."""
    from bot.metrics import ObservedUpdateProcessor

    deadline = asyncio.get_running_loop().time() + grace
    workers_stopping.set()
    log.info("stopping: taking no more updates, finishing those in hand (up to %.0f s)", grace)
    if intake is not None:
        intake.accepting = False
    assert application.updater is not None
    if application.updater.running:
        await application.updater.stop()
    try:
        async with asyncio.timeout(grace):
            await application.stop()
    except TimeoutError:
        # Cancelled rather than cut off mid-request by the shutdown: their transactions roll back.
        processor = application.update_processor
        cancelled = await processor.cancel_in_hand() if isinstance(processor, ObservedUpdateProcessor) else 0
        log.warning("stopping: %d update(s) still in hand after %.0f s were cancelled", cancelled, grace)
    # Each worker ends after its round in hand, recording what it claimed; one still busy when the grace is over is
    # cancelled, and the rows it claimed keep their lease until it runs out (then another replica takes them).
    remaining = max(0.0, deadline - asyncio.get_running_loop().time())
    if tasks and remaining > 0:
        await asyncio.wait(tasks, timeout=remaining)
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _safe(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
