"""Conversation throughput and reply latency through the fake Bot API, beside a bare python-telegram-bot bot.

Run from the project root:

    TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m benchmarks.conversation

Saturation: prospects answer as fast as the bot replies; updates handled per second for consultbot and for a
bare python-telegram-bot echo bot, measured in interleaved rounds, and consultbot's median as a ratio of the
echo bot's (goal: >= 0.5). Realistic load: 200 prospects pausing like people between answers; latency from
the fake server handing an update to the bot to the bot's reply arriving there (goal: p99 < 100 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field, replace

from benchmarks.common import DATABASES, database_list, percentile, progress
from bot import callbacks, texts
from bot.config import BUNDLED_EXAMPLE, Messages, load_config
from leads import flow
from leads.model import AnswerValue, Question, Questionnaire
from leads.scoring import assess
from tests.conftest import _postgres_database
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.harness import BotProcess

REFERENCE = "bare PTB echo"
RATIO_GOAL = 0.5
P99_GOAL_MS = 100.0
REPLY_TIMEOUT = 30.0
"""Seconds a prospect waits for a reply before giving up; far beyond any healthy latency."""

FIRST_NAMES = ("Ada", "Grace", "Alan", "Katherine", "Linus", "Margaret", "Radia", "Dennis", "Barbara", "Tim")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Johnson", "Torvalds", "Hamilton", "Perlman", "Ritchie", "Liskov")
COMPANY_SUFFIXES = ("Ltd", "GmbH", "Inc.", "& Partners", "Holdings", "Logistics")
SOURCES = ("website", "linkedin", "newsletter")


@dataclass(frozen=True)
class Step:
    """One update a prospect sends, and the reply that shows the bot handled it."""

    typed: str | None = None
    """Text typed, or None for a button press."""
    button: str = ""
    """Label of the button pressed."""
    data: str = ""
    """That button's callback data: checked against consultbot's keyboard, sent as is to the echo bot."""
    expect: str | None = None
    """Text consultbot's reply shows; None when the reply only updates the buttons on screen (a tick)."""
    in_place: bool = False
    """The reply is the message on screen edited into the next question, not a new message."""
    replies: int = 1
    """New messages consultbot sends for this update, the last one the reply (/start greets first); 0 in place."""


@dataclass(frozen=True)
class Prospect:
    """A simulated person: who they are, what they answer and how long they think before each answer."""

    user_id: int
    first_name: str
    last_name: str
    username: str | None
    plan: tuple[Step, ...]
    pauses: tuple[float, ...]


@dataclass
class Load:
    """What one run of prospects against one bot measured."""

    updates: int = 0
    seconds: float = 0.0
    bot_cpu_seconds: float = math.nan
    """CPU the bot's own process used during the run: independent of the harness's share of the machine."""
    latencies_ms: list[float] = field(default_factory=list)
    busiest_second: int = 0
    """Most updates handed to the bot within one second of the run: the offered load at its height."""
    unfinished: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        """Updates handled per second of wall time."""
        return self.updates / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_update(self) -> float:
        """Milliseconds of the bot process's CPU per update handled."""
        return 1000 * self.bot_cpu_seconds / self.updates if self.updates else math.nan


@dataclass
class Figures:
    """Everything measured for one bot: saturation rounds and the realistic run."""

    name: str
    rounds: list[Load] = field(default_factory=list)
    realistic: Load | None = None

    @property
    def median_rate(self) -> float:
        """Median updates per second over the saturation rounds."""
        return statistics.median(load.per_second for load in self.rounds) if self.rounds else 0.0

    @property
    def median_cpu_ms(self) -> float:
        """Median CPU milliseconds per update over the saturation rounds."""
        return statistics.median(load.cpu_ms_per_update for load in self.rounds) if self.rounds else math.nan

    def loads(self) -> list[Load]:
        """Every run, for totals of failures."""
        return self.rounds + ([self.realistic] if self.realistic is not None else [])


class UnexpectedReply(Exception):
    """The bot answered something other than what the prospect's path calls for."""


Turn = Callable[[FakeUser, Step, SentMessage | None], Awaitable[tuple[int, float, SentMessage]]]
"""Send one step and wait for its reply: (update id, monotonic time the reply arrived, message on screen)."""

CpuClock = Callable[[], float]
"""CPU seconds the bot's process has used so far."""

Serve = Callable[[FakeTelegram], AbstractAsyncContextManager[CpuClock]]
"""A bot process serving a fake Bot API server for the duration of the context."""


# --- Prospects: random but plausible paths through the bundled questionnaire ------------------------------


def make_prospects(
    count: int, *, questionnaire: Questionnaire, messages: Messages, seed: int, mean_pause: float
) -> list[Prospect]:
    """`count` prospects, each with its own path and pauses, the same for a given seed."""
    prospects = []
    for number in range(count):
        rng = random.Random(f"{seed}:{number}")
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        plan = plan_conversation(questionnaire, messages, rng, first_name=first, last_name=last)
        pauses = tuple(rng.expovariate(1 / mean_pause) if mean_pause > 0 else 0.0 for _ in plan)
        username = f"{first}_{last}_{number}".lower() if rng.random() < 0.7 else None
        prospects.append(Prospect(900_000 + number, first, last, username, plan, pauses))
    return prospects


def plan_conversation(
    questionnaire: Questionnaire, messages: Messages, rng: random.Random, *, first_name: str, last_name: str
) -> tuple[Step, ...]:
    """From /start through every question that applies and Confirm to the result message."""
    # Options a later question's ask_when looks for are favoured, so conditional questions get asked too.
    favoured = {
        (question.ask_when.question, option)
        for question in questionnaire.questions
        if question.ask_when is not None
        for option in question.ask_when.any_of or ()
    }
    answers: dict[str, AnswerValue | None] = {}
    screens: list[tuple[str, list[Step]]] = []
    for question in questionnaire.questions:
        if question.applies(answers):
            steps, answers[question.key] = _answer(question, rng, favoured, first_name=first_name, last_name=last_name)
            screens.append((question.prompt, steps))
    asked = len(screens)
    confirm = Step(button=texts.BUTTON_CONFIRM, data=callbacks.encode(flow.Confirm()))
    screens.append((texts.plain(texts.SUMMARY_TITLE), [confirm]))
    result = messages.qualified if assess(questionnaire.scoring, answers).qualified else messages.nurture
    shown_next = [text for text, _ in screens[1:]] + [result]

    start = "/start" if rng.random() < 0.5 else f"/start {rng.choice(SOURCES)}"
    plan = [Step(typed=start, expect=screens[0][0], replies=2)]
    for number, ((_, steps), following) in enumerate(zip(screens, shown_next, strict=True), start=1):
        *ticks, last = steps
        # A press that leads to another question shows it in the pressed message; the summary and
        # the result come as new messages.
        in_place = last.typed is None and number < asked
        plan += [*ticks, replace(last, expect=following, in_place=in_place, replies=0 if in_place else 1)]
    return tuple(plan)


def _answer(
    question: Question,
    rng: random.Random,
    favoured: set[tuple[str, str]],
    *,
    first_name: str,
    last_name: str,
) -> tuple[list[Step], AnswerValue | None]:
    """The steps that answer one question (without the expected reply yet), and the answer they give."""
    at = question.key
    wanted = [option for option in question.options if (at, option.key) in favoured]
    if question.kind == "multi":
        others = [option for option in question.options if option not in wanted]
        chosen = rng.sample(others, k=min(len(others), rng.choice((1, 1, 2, 2, 3))))
        if wanted and (rng.random() < 0.4 or not chosen):
            chosen.append(rng.choice(wanted))
        rng.shuffle(chosen)
        steps = [
            Step(button=option.label, data=callbacks.encode(flow.Toggle(at=at, option=option.key))) for option in chosen
        ]
        steps.append(Step(button=texts.BUTTON_DONE, data=callbacks.encode(flow.Done(at=at))))
        return steps, tuple(option.key for option in chosen)
    if question.kind == "single":
        option = rng.choice(wanted if wanted and rng.random() < 0.4 else list(question.options))
        return [Step(button=option.label, data=callbacks.encode(flow.Choose(at=at, option=option.key)))], option.key
    if question.optional and rng.random() < 0.3:
        return [Step(button=texts.BUTTON_SKIP, data=callbacks.encode(flow.Skip(at=at)))], None
    typed = _typed(question, rng, first_name=first_name, last_name=last_name)
    return [Step(typed=typed)], int(typed) if question.format == "integer" else typed


def _typed(question: Question, rng: random.Random, *, first_name: str, last_name: str) -> str:
    """What a person types for a text question of this format."""
    match question.format:
        case "integer":
            number = rng.choice((rng.randint(1, 9), rng.randint(10, 49), rng.randint(50, 400)))
            low = question.minimum if question.minimum is not None else number
            high = question.maximum if question.maximum is not None else number
            return str(min(max(number, low), high))
        case "email":
            return f"{first_name}.{last_name}@{last_name}-consulting.example".lower()
        case "phone":
            return f"+44 20 7946 {rng.randint(0, 9999):04d}"
        case "url":
            return f"https://{last_name.lower()}.example"
        case "text":
            if question.key == "company":
                return f"{last_name} {rng.choice(COMPANY_SUFFIXES)}"
            return f"{first_name} {last_name}"


# --- Talking to the bots ------------------------------------------------------------------------------------


async def consultbot_turn(user: FakeUser, step: Step, on_screen: SentMessage | None) -> tuple[int, float, SentMessage]:
    """Send one step to consultbot as a person would, and wait for the reply that step calls for."""
    if step.typed is not None:
        update = await user.send_text(step.typed)
    else:
        if on_screen is None:
            raise UnexpectedReply(f"no message on screen to press {step.button!r} on")
        data = on_screen.button(step.button)
        if data != step.data:
            raise UnexpectedReply(f"button {step.button!r} sends {data!r}, expected {step.data!r}")
        update = await user.press(on_screen, data)
    if step.expect is None or step.in_place:
        if on_screen is None:
            raise UnexpectedReply("an edit was expected but there is no message on screen")
        edited = await user.next_edit(on_screen, REPLY_TIMEOUT)
        assert edited.edited_at is not None, "the fake stamps every edit"
        if step.expect is not None and step.expect not in edited.text:
            raise UnexpectedReply(f"expected the message edited to show {step.expect!r}, got {edited.text!r}")
        return update["update_id"], edited.edited_at, edited
    message = [await user.next_message(REPLY_TIMEOUT) for _ in range(step.replies)][-1]
    if step.expect not in message.text:
        raise UnexpectedReply(f"expected a message with {step.expect!r}, got {message.text!r}")
    return update["update_id"], message.sent_at, message


async def reference_turn(user: FakeUser, step: Step, on_screen: SentMessage | None) -> tuple[int, float, SentMessage]:
    """Send the same update to the echo bot (presses are forged: its messages have no buttons) and wait."""
    if step.typed is not None:
        update = await user.send_text(step.typed)
    else:
        if on_screen is None:
            raise UnexpectedReply(f"no message on screen to press {step.button!r} on")
        update = await user.press(on_screen, step.data, forge=True)
    message = await user.next_message(REPLY_TIMEOUT)
    return update["update_id"], message.sent_at, message


@asynccontextmanager
async def echo_bot(fake: FakeTelegram) -> AsyncIterator[CpuClock]:
    """The bare python-telegram-bot echo bot (benchmarks/echo_bot.py) as a process of its own."""
    environment = {**os.environ, "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_BASE_URL": fake.url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.echo_bot", env=environment, stderr=asyncio.subprocess.DEVNULL
    )
    try:
        yield _cpu_clock(process.pid)
    finally:
        process.terminate()
        await process.wait()


def consultbot_on(kind: str, postgres_server: str | None) -> Serve:
    """consultbot serving the fake on a fresh, empty database of this kind, dropped afterwards."""

    @asynccontextmanager
    async def serve(fake: FakeTelegram) -> AsyncIterator[CpuClock]:
        if kind == "sqlite":
            with tempfile.TemporaryDirectory(prefix="consultbot-benchmark-") as directory:
                async with _consultbot_run(fake, f"sqlite+aiosqlite:///{directory}/consultbot.db") as clock:
                    yield clock
            return
        assert postgres_server is not None
        async with _postgres_database(postgres_server) as url, _consultbot_run(fake, url) as clock:
            yield clock

    return serve


@asynccontextmanager
async def _consultbot_run(fake: FakeTelegram, database_url: str) -> AsyncIterator[CpuClock]:
    """`consultbot run`, the production entry point, as a process of its own."""
    bot = BotProcess(fake, database_url, LOG_LEVEL="WARNING")
    await bot.start()
    try:
        yield _cpu_clock(bot.pid)
    finally:
        await bot.stop()


def _cpu_clock(pid: int) -> CpuClock:
    """Seconds of CPU a process has used so far (Linux /proc; NaN elsewhere)."""
    ticks_per_second = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

    def used() -> float:
        try:
            with open(f"/proc/{pid}/stat") as stat:
                # Fields 14 and 15 (after the parenthesised command name): user and system time in ticks.
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return math.nan
        return (int(fields[11]) + int(fields[12])) / ticks_per_second

    return used


# --- Runs ---------------------------------------------------------------------------------------------------


async def run_load(serve: Serve, turn: Turn, prospects: Sequence[Prospect], *, paced: bool) -> Load:
    """All prospects at once against a freshly started bot and fake server; paced=False answers at once."""
    async with FakeTelegram() as fake:
        # The bundled example hands qualified leads to its sales chat: the bot posts their cards there, as in
        # production, so the chat must exist (the echo bot never writes to it).
        sales_chat = load_config(BUNDLED_EXAMPLE).sales.chat_id
        if sales_chat is not None:
            fake.group(sales_chat)
        async with serve(fake) as bot_cpu:
            # Start timing once the bot is up and waiting, so start-up and migrations are not counted.
            await fake.wait_for_long_poll(timeout=60)
            cpu_before = bot_cpu()
            users = [
                fake.user(p.user_id, first_name=p.first_name, last_name=p.last_name, username=p.username)
                for p in prospects
            ]
            started = time.monotonic()
            outcomes = await asyncio.gather(
                *(_converse(user, p, turn, paced=paced) for user, p in zip(users, prospects, strict=True))
            )
            seconds = time.monotonic() - started
            cpu_seconds = bot_cpu() - cpu_before
        load = Load(seconds=seconds, bot_cpu_seconds=cpu_seconds, rejected=len(fake.rejected()))
        load.problems += [f"{call.method}: {call.error}" for call in fake.rejected()[:3]]
        per_second: Counter[int] = Counter()
        for exchanges, problem in outcomes:
            load.updates += len(exchanges)
            for update_id, replied_at in exchanges:
                served_at = fake.update_served_at[update_id]
                load.latencies_ms.append((replied_at - served_at) * 1000)
                per_second[int(served_at - started)] += 1
            if problem is not None:
                load.unfinished += 1
                if len(load.problems) < 6:
                    load.problems.append(problem)
        load.busiest_second = max(per_second.values(), default=0)
    return load


async def _converse(
    user: FakeUser, prospect: Prospect, turn: Turn, *, paced: bool
) -> tuple[list[tuple[int, float]], str | None]:
    """One prospect's whole conversation: (update id, reply time) per answer, and what went wrong if anything."""
    exchanges: list[tuple[int, float]] = []
    on_screen: SentMessage | None = None
    for step, pause in zip(prospect.plan, prospect.pauses, strict=True):
        if paced:
            await asyncio.sleep(pause)
        try:
            update_id, replied_at, on_screen = await turn(user, step, on_screen)
        except (TimeoutError, AssertionError, UnexpectedReply) as error:
            first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
            return exchanges, f"prospect {prospect.user_id}, step {len(exchanges) + 1}: {first_line}"
        exchanges.append((update_id, replied_at))
    return exchanges, None


async def benchmark(arguments: argparse.Namespace) -> int:
    """Measure, print the table and the summary line; the exit status."""
    config = load_config(BUNDLED_EXAMPLE)
    questionnaire = config.questionnaire()

    def prospects(count: int) -> list[Prospect]:
        return make_prospects(
            count,
            questionnaire=questionnaire,
            messages=config.messages,
            seed=arguments.seed,
            mean_pause=arguments.mean_pause,
        )

    postgres_server = os.environ.get("TEST_DATABASE_URL")
    skipped: list[str] = []
    databases = list(arguments.databases)
    if "postgresql" in databases and not postgres_server:
        databases.remove("postgresql")
        skipped.append(
            "postgresql skipped: TEST_DATABASE_URL is not set "
            "(e.g. TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
        progress(skipped[-1])
    if not databases:
        print("conversation: no database to measure")
        return 2

    targets: list[tuple[Figures, Serve, Turn]] = [(Figures(REFERENCE), echo_bot, reference_turn)]
    targets += [(Figures(kind), consultbot_on(kind, postgres_server), consultbot_turn) for kind in databases]

    saturating = prospects(arguments.saturation_prospects)
    for round_number in range(1, arguments.rounds + 1):
        # Interleaved, so that a noisy neighbour slows every bot alike rather than one of them.
        for figures, serve, turn in targets:
            load = await run_load(serve, turn, saturating, paced=False)
            figures.rounds.append(load)
            progress(
                f"saturation round {round_number}/{arguments.rounds}: {figures.name}: "
                f"{load.per_second:.0f} updates/s ({load.updates} in {load.seconds:.1f} s)"
            )

    people = prospects(arguments.prospects)
    for figures, serve, turn in targets:
        progress(f"realistic load: {figures.name}: {len(people)} prospects ...")
        figures.realistic = await run_load(serve, turn, people, paced=True)

    return report(arguments, [figures for figures, _, _ in targets], saturating, people, skipped)


def report(
    arguments: argparse.Namespace,
    measured: list[Figures],
    saturating: Sequence[Prospect],
    people: Sequence[Prospect],
    skipped: list[str],
) -> int:
    """Print the figures and the summary line; 1 if any prospect did not finish or any call was rejected."""
    reference, databases = measured[0], measured[1:]
    sizes = [len(p.plan) for p in people]
    print()
    print(
        f"conversation benchmark (seed {arguments.seed}): the bundled questionnaire, "
        f"{min(sizes)}-{max(sizes)} updates per prospect"
    )
    print(
        f"saturation: {len(saturating)} prospects answering as fast as the bot replies, "
        f"{sum(len(p.plan) for p in saturating)} updates per round, {arguments.rounds} interleaved rounds"
    )
    print(f"  {'bot':<16}{'median/s':>10}  {'rounds (updates/s)':<26}{'ratio':>7}{'CPU ms/update':>15}{'ratio':>7}")
    for figures in measured:
        rounds = "  ".join(f"{load.per_second:6.0f}" for load in figures.rounds)
        relative = "" if figures is reference else f"{figures.median_rate / reference.median_rate:7.2f}"
        cpu_relative = "" if figures is reference else f"{reference.median_cpu_ms / figures.median_cpu_ms:7.2f}"
        print(
            f"  {figures.name:<16}{figures.median_rate:>10.0f}  {rounds:<26}{relative:>7}"
            f"{figures.median_cpu_ms:>15.2f}{cpu_relative:>7}"
        )
    print(
        "  (each bot is a process of its own, as in production; CPU ms/update is that process's own CPU,\n"
        "   so its ratio, the reference's CPU per update over ours, is the share of bare PTB's capacity)"
    )
    print(
        f"realistic: {len(people)} prospects at once, a random pause (exponential, mean "
        f"{arguments.mean_pause:g} s) before every update; latency = update served by getUpdates -> reply arrived"
    )
    print(f"  {'bot':<16}{'updates':>8}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'seconds':>9}{'peak/s':>8}")
    for figures in measured:
        load = figures.realistic
        assert load is not None
        p50, p99 = percentile(load.latencies_ms, 0.50), percentile(load.latencies_ms, 0.99)
        worst = max(load.latencies_ms, default=math.nan)
        print(
            f"  {figures.name:<16}{load.updates:>8}{p50:>9.1f}{p99:>9.1f}{worst:>9.1f}{load.seconds:>9.1f}"
            f"{load.busiest_second:>8}"
        )
    print("  (peak/s: most updates handed to the bot in one second of the run, the offered load at its height)")
    unfinished = sum(load.unfinished for figures in measured for load in figures.loads())
    rejected = sum(load.rejected for figures in measured for load in figures.loads())
    print(f"prospects that did not reach the result: {unfinished}; calls the fake rejected: {rejected}")
    for figures in measured:
        for load in figures.loads():
            for problem in load.problems:
                print(f"  {figures.name}: {problem}")
    for line in skipped:
        print(line)

    ratio = min(figures.median_rate / reference.median_rate for figures in databases)
    p99 = max(percentile(figures.realistic.latencies_ms, 0.99) for figures in databases if figures.realistic)
    goals = [
        f"ratio {'meets' if ratio >= RATIO_GOAL else 'misses'} the goal of {RATIO_GOAL}",
        f"p99 {'meets' if p99 < P99_GOAL_MS else 'misses'} the goal of < {P99_GOAL_MS:g} ms",
    ]
    print(f"worse of {', '.join(figures.name for figures in databases)}: {'; '.join(goals)}")
    print(f"conversation: {ratio:.2f} of bare python-telegram-bot, p99 {p99:.1f} ms")
    return 1 if unfinished or rejected else 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.conversation", description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=database_list, default=list(DATABASES), help="sqlite,postgresql")
    parser.add_argument("--prospects", type=int, default=200, help="prospects in the realistic load")
    parser.add_argument("--saturation-prospects", type=int, default=50, help="prospects in saturation")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved saturation rounds")
    parser.add_argument("--mean-pause", type=float, default=2.0, help="mean seconds a person pauses")
    parser.add_argument("--seed", type=int, default=1, help="seed of the prospects' paths and pauses")
    arguments = parser.parse_args(argv)
    for name in ("prospects", "saturation_prospects", "rounds"):
        if getattr(arguments, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    # Only the figures belong on the terminal; the bots' own warnings and errors still show.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("telegram", "httpx", "httpcore", "aiohttp", "alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return asyncio.run(benchmark(arguments))


if __name__ == "__main__":
    sys.exit(main())
