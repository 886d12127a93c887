"""`consultbot outbox`: how the hand-off outbox stands, and dead letters sent again once their cause is fixed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import datetime

from bot.config import BusinessConfig
from bot.settings import Settings
from bot.wiring import open_services
from leads.outbox import OutboxEntry, SqlOutbox


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The `outbox` command's own arguments: nothing to list, or `retry` with ids or --all-dead."""
    commands = parser.add_subparsers(dest="outbox_command")
    retry = commands.add_parser("retry", help="send dead letters again (after fixing what made them fail)")
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("ids", nargs="*", type=int, default=[], metavar="ID", help="the dead letters' ids, as listed")
    which.add_argument("--all-dead", action="store_true", help="every dead letter")


async def run(arguments: argparse.Namespace, settings: Settings, config: BusinessConfig) -> int:
    """List the outbox, or retry dead letters; the exit status."""
    async with open_services(settings, config) as services:
        if arguments.outbox_command == "retry":
            return await retry(services.outbox, arguments.ids, every=arguments.all_dead, now=services.clock())
        print(await listing(services.outbox))
        return 0


async def listing(outbox: SqlOutbox) -> str:
    """How many messages wait, and every dead letter with its id, topic, tries and last error."""
    pending = await outbox.pending_count()
    dead = await outbox.dead_letters()
    crm = await outbox.pending_count("crm")
    lines = [f"pending       {pending} (CRM webhooks {crm})", f"dead letters  {len(dead)}"]
    lines += [_dead_line(entry) for entry in dead]
    if dead:
        lines.append("send them again with: consultbot outbox retry ID [ID ...] or consultbot outbox retry --all-dead")
    return "\n".join(lines)


def _dead_line(entry: OutboxEntry) -> str:
    tries = f"{entry.attempts} {'try' if entry.attempts == 1 else 'tries'}"
    when = entry.done_at.isoformat(timespec="seconds") if entry.done_at else "unknown"
    return f"  #{entry.message_id}  {entry.destination}  {entry.topic}  {tries}, gave up {when}: {entry.last_error}"


async def retry(outbox: SqlOutbox, ids: Sequence[int], *, every: bool, now: datetime) -> int:
    """Make dead letters pending again, due now; unknown ids and messages not dead are named, not retried."""
    if every:
        print(f"{await outbox.retry(now=now)} dead letters will be sent again")
        return 0
    found = {entry.message_id: entry for entry in await outbox.entries(ids)}
    problems = [f"no outbox message #{i}" for i in ids if i not in found]
    problems += [
        f"#{e.message_id} is not a dead letter (it is {e.status})" for e in found.values() if e.status != "dead"
    ]
    for problem in problems:
        print(f"consultbot: {problem}", file=sys.stderr)
    dead = [entry.message_id for entry in found.values() if entry.status == "dead"]
    if dead:
        await outbox.retry(dead, now=now)
        print(f"will send again: {', '.join(f'#{i}' for i in dead)}")
    return 2 if problems else 0
