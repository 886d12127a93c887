"""Webhook throughput and reply latency of one and of two `consultbot run` replicas on PostgreSQL, beside bare PTB.

Run from the project root:

    TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m benchmarks.serving

Prospects (default 100) answer the bundled questionnaire as fast as the bot replies; the fake Bot API posts
each update to a replica's webhook as Telegram would (each chat's updates in order, a random replica each, a
share of them to two replicas at once with --duplicates). Per bot: updates handled per second (median of
interleaved rounds, fresh database and processes each round) and latency from the update's first post to the
reply arriving at the fake (p50, p99 over all rounds). The reference is a bare python-telegram-bot echo bot fed
by the same webhook dispatcher (benchmarks/echo_webhook.py). Figures only; nothing here passes or fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import socket
import statistics
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

import aiohttp

from benchmarks.common import percentile, progress
from benchmarks.conversation import Prospect, Turn, _converse, consultbot_turn, make_prospects, reference_turn
from bot.config import BUNDLED_EXAMPLE, load_config
from tests.conftest import _postgres_database
from tests.fake_telegram import FakeTelegram
from tests.harness import BotProcess

WEBHOOK_URL = "https://bot.example.com/telegram/webhook"
SECRET = "benchmark_webhook-secret"
STARTUP = 60.0
REFERENCE = "bare PTB webhook"

Serve = Callable[[FakeTelegram], AbstractAsyncContextManager[list[str]]]
"""Bot processes serving a fake Bot API for the context's duration: their webhooks' local addresses."""


@dataclass
class Figures:
    """One bot's rounds: updates per second each, and every reply's latency."""

    name: str
    rates: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    unfinished: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _listening(port: int) -> None:
    """Wait until something accepts connections on the port."""
    deadline = time.monotonic() + STARTUP
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise TimeoutError(f"nothing listened on port {port} within {STARTUP}s")


@asynccontextmanager
async def reference(fake: FakeTelegram) -> AsyncIterator[list[str]]:
    """The bare PTB echo bot in webhook mode, as a process of its own."""
    port = _free_port()
    environment = {
        **os.environ,
        "TELEGRAM_BOT_TOKEN": fake.token,
        "TELEGRAM_BASE_URL": fake.url,
        "HTTP_PORT": str(port),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.echo_webhook", env=environment, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        await _listening(port)
        yield [f"http://127.0.0.1:{port}/telegram/webhook"]
    finally:
        process.terminate()
        await process.wait()


def consultbot(replicas: int, postgres_server: str) -> Serve:
    """`replicas` consultbot run processes in webhook mode on one fresh PostgreSQL database."""

    @asynccontextmanager
    async def serve(fake: FakeTelegram) -> AsyncIterator[list[str]]:
        async with _postgres_database(postgres_server) as url, AsyncExitStack() as stack:
            webhooks = []
            # One after another: each brings the schema up to date on start-up.
            for _ in range(replicas):
                port = _free_port()
                process = BotProcess(
                    fake,
                    url,
                    WEBHOOK_URL=WEBHOOK_URL,
                    WEBHOOK_SECRET=SECRET,
                    HTTP_PORT=str(port),
                    LOG_LEVEL="WARNING",
                )
                await process.start()
                stack.push_async_callback(process.stop)
                await _healthy(port)
                webhooks.append(f"http://127.0.0.1:{port}/telegram/webhook")
            for _ in range(int(STARTUP * 10)):
                if fake.webhook_secret_token:
                    break
                await asyncio.sleep(0.1)
            yield webhooks

    return serve


async def _healthy(port: int) -> None:
    await _listening(port)
    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + STARTUP
        while time.monotonic() < deadline:
            async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                if response.status == 200:
                    return
            await asyncio.sleep(0.1)
    raise TimeoutError(f"consultbot on port {port} was not healthy within {STARTUP}s")


async def run_round(
    serve: Serve, turn: Turn, prospects: Sequence[Prospect], figures: Figures, *, duplicates: float, seed: int
) -> None:
    """All prospects at once against freshly started bots; adds this round's rate and latencies to `figures`."""
    async with FakeTelegram() as fake:
        sales_chat = load_config(BUNDLED_EXAMPLE).sales.chat_id
        if sales_chat is not None:
            fake.group(sales_chat)
        async with serve(fake) as webhooks:
            dispatcher = asyncio.create_task(
                fake.dispatch_webhooks(webhooks, duplicate_ratio=duplicates, rng=random.Random(seed))
            )
            users = [
                fake.user(p.user_id, first_name=p.first_name, last_name=p.last_name, username=p.username)
                for p in prospects
            ]
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(_converse(user, p, turn, paced=False) for user, p in zip(users, prospects, strict=True))
            )
            seconds = time.monotonic() - started
            dispatcher.cancel()
            await asyncio.gather(dispatcher, return_exceptions=True)
    updates = 0
    for exchanges, problem in outcomes:
        updates += len(exchanges)
        for update_id, replied_at in exchanges:
            figures.latencies_ms.append((replied_at - fake.update_served_at[update_id]) * 1000)
        if problem is not None:
            figures.unfinished += 1
            if len(figures.problems) < 5:
                figures.problems.append(problem)
    figures.rates.append(updates / seconds if seconds > 0 else 0.0)
    progress(f"{figures.name}: {figures.rates[-1]:.0f} updates/s ({updates} in {seconds:.1f} s)")


async def benchmark(arguments: argparse.Namespace) -> int:
    """Measure and print the table; the exit status (1 if a prospect did not finish)."""
    postgres_server = os.environ.get("TEST_DATABASE_URL")
    if not postgres_server:
        print("serving: set TEST_DATABASE_URL (e.g. postgresql+asyncpg://postgres@127.0.0.1:5432/test)")
        return 2
    config = load_config(BUNDLED_EXAMPLE)
    prospects = make_prospects(
        arguments.prospects,
        questionnaire=config.questionnaire(),
        messages=config.messages,
        seed=arguments.seed,
        mean_pause=0.0,
    )
    targets: list[tuple[Figures, Serve, Turn]] = [
        (Figures(REFERENCE), reference, reference_turn),
        (Figures("1 replica, PG"), consultbot(1, postgres_server), consultbot_turn),
        (Figures("2 replicas, PG"), consultbot(2, postgres_server), consultbot_turn),
    ]
    for round_number in range(1, arguments.rounds + 1):
        progress(f"round {round_number}/{arguments.rounds}")
        # Interleaved, so that a noisy neighbour slows every bot alike rather than one of them.
        for figures, serve, turn in targets:
            await run_round(
                serve, turn, prospects, figures, duplicates=arguments.duplicates, seed=arguments.seed + round_number
            )

    measured = [figures for figures, _, _ in targets]
    base = measured[0]
    print()
    print(
        f"serving benchmark (seed {arguments.seed}): {len(prospects)} prospects through the bundled questionnaire "
        f"by webhook, {sum(len(p.plan) for p in prospects)} updates a round, {arguments.rounds} interleaved rounds, "
        f"{arguments.duplicates:.0%} of updates posted to two replicas at once"
    )
    print("latency: update first posted to a webhook -> its reply arrived at the fake Bot API (all rounds)")
    print(f"  {'bot':<18}{'median/s':>9}  {'rounds (updates/s)':<24}{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}")
    for figures in measured:
        rounds = "  ".join(f"{rate:5.0f}" for rate in figures.rates)
        ratio = "" if figures is base else f"{figures.median_rate / base.median_rate:7.2f}"
        p50, p99 = percentile(figures.latencies_ms, 0.50), percentile(figures.latencies_ms, 0.99)
        print(f"  {figures.name:<18}{figures.median_rate:>9.0f}  {rounds:<24}{ratio:>7}{p50:>9.1f}{p99:>9.1f}")
    one, two = measured[1], measured[2]
    print(f"two replicas / one: {two.median_rate / one.median_rate:.2f}")
    unfinished = sum(figures.unfinished for figures in measured)
    print(f"prospects that did not finish: {unfinished}")
    for figures in measured:
        for problem in figures.problems:
            print(f"  {figures.name}: {problem}")
    return 1 if unfinished else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--prospects", type=int, default=100, help="prospects answering at once")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--duplicates", type=float, default=0.0, help="share of updates posted to two replicas")
    parser.add_argument("--seed", type=int, default=1, help="seed of the prospects' paths and of the dispatcher")
    arguments = parser.parse_args(argv)
    if arguments.prospects < 1 or arguments.rounds < 1:
        parser.error("--prospects and --rounds must be at least 1")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("telegram", "httpx", "httpcore", "aiohttp", "alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return asyncio.run(benchmark(arguments))


if __name__ == "__main__":
    sys.exit(main())
