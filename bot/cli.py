"""The `consultbot` command: run the bot, chat in a terminal, manage the database."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import signal
import sys
from collections.abc import Sequence
from datetime import timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.exc import SQLAlchemyError
from telegram.error import InvalidToken, NetworkError

from bot import console, database, reports
from bot.config import BusinessConfig, ConfigError, load_config
from bot.settings import Settings, load_settings
from bot.wiring import open_services

log = logging.getLogger("consultbot")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script."""
    arguments = _parser().parse_args(argv)
    try:
        settings = load_settings()
        logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # Libraries log every HTTP request at INFO; keep the bot's own lines readable.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        if arguments.command in {"chat", "sync", "slots"}:
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
    commands.add_parser("run", help="serve prospects on Telegram (long polling)")
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
                    return await console.chat(services.qualification, config, console.stdio())
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


async def _serve(settings: Settings, config: BusinessConfig) -> int:
    """Poll Telegram until SIGINT or SIGTERM, then finish the updates in hand and stop."""
    from bot.application import build_application

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    async with open_services(settings, config) as services:
        application = build_application(settings, services)
        try:
            async with application:
                await application.start()
                assert application.updater is not None
                await application.updater.start_polling(poll_interval=0, timeout=30, drop_pending_updates=False)
                # Everything built so far lives as long as the process: out of the collector's sight, it is
                # not traversed again by every full collection while updates are handled.
                gc.freeze()
                gc.set_threshold(10_000, 20, 20)
                every = timedelta(minutes=config.calendars.sync_minutes)
                syncing = asyncio.create_task(services.calendar_sync.keep_in_sync(every))
                log.info("consultbot is serving @%s", application.bot.username)
                await stop.wait()
                log.info("stopping: finishing the updates in hand")
                syncing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncing
                await application.updater.stop()
                await application.stop()
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


def _safe(url: str) -> str:
    """A database URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
