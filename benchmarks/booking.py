"""Booking under contention: many prospects booking one expert's week at once, and no double booking.

Run from the project root:

    TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test python -m benchmarks.booking \
        [--databases sqlite,postgresql] [--attempts 10000] [--concurrency 50] [--max-per-day 5] [--seed 1]

One expert with no calendar (built here, not read from a file), Mon-Fri 09:00-17:00 in Europe/Berlin, and the
bundled example's slot rules: 45-minute consultations on a 15-minute grid, 5 minutes kept before and 10 after, at
most 5 a day. The clock stands still (FixedClock) on the Friday before the week booked, so every attempt sees the
same week: 150 grid starts, room for at most 25 consultations. Each attempt is `BookingService.book` of a random
grid start of that week by a prospect of its own, in waves of `--concurrency` concurrent attempts (asyncio.gather),
so most attempts collide with each other or with what is booked already.

A week fills after a few waves, and from then on every attempt is refused. That is realistic but says little about
bookings per second, and a larger horizon would not help: no one expert's month holds more than a few hundred
consultations, far fewer than 10,000 attempts. So the run has two phases of half the attempts each:

  fill:  no cancellations. The week fills, then every attempt is refused: the cost of a refusal under contention.
  churn: in every wave, half of the confirmed consultations (chosen at random) are cancelled through
         `BookingService.cancel` concurrently with the wave's attempts, so slots keep freeing up and being fought
         over, and cancellations interleave with bookings as they do in production.

Per database: attempts, bookings, refusals (SlotTaken), attempts/s and bookings/s (over the waves' wall time),
p50/p99 latency of one attempt, and this process's CPU per attempt. Latency runs from the call to its answer: on
PostgreSQL it includes queueing for a pooled connection and for the expert's advisory lock; on SQLite the stores
run inline on the event loop, so an attempt never waits behind another and its latency is its own service time.
The invariant is checked after every wave: the expert's confirmed consultations read back from the database, the
pairs whose blocked ranges (buffers included) overlap, and the local days holding more than the daily cap. At the
end the stored rows must agree with what the service answered (one row per booking, confirmed unless cancelled).

Reference, measured in the same run on the same database: a plain INSERT of a bookings row (of another expert,
with no overlap) through the stores' own transaction machinery, one per transaction, with no check, lock,
savepoint or reminders. After each wave of attempts comes a wave of as many concurrent inserts, so that other load
on the machine hits both alike; the inserts' rate over the attempts' rate is what an attempt costs in inserts.

The last line is PostgreSQL's attempts and churn-phase bookings/s (SQLite's when PostgreSQL is not measured), and
the double bookings summed over every database measured. Exit status 1 if any double booking, day over the cap or
disagreement between the service and the stored rows is found; 2 if there is no database to measure.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from itertools import combinations
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.common import DATABASES, database_list, percentile, progress
from bot import database
from bot.config import BUNDLED_EXAMPLE, BusinessConfig, load_config
from bot.settings import Settings
from bot.wiring import Services, open_services
from scheduling.bookings import Attendee, SlotTaken
from scheduling.model import Expert, WorkingHours
from scheduling.records import Booking
from scheduling.repository import BOOKINGS, SqlStore
from tests.conftest import FixedClock, _postgres_database

ZONE = ZoneInfo("Europe/Berlin")
EXPERT = Expert(
    key="bench",
    name="Bea Brandt",
    role="Principal consultant, finance outsourcing",
    timezone=ZONE.key,
    specialties=("finance",),
    hours=WorkingHours.office_hours(),
)
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""Friday noon: the clock of the whole run, the working week after it is the one booked."""
WEEK = [date(2026, 11, 23) + timedelta(days=offset) for offset in range(5)]
REFERENCE = "plain INSERT"


@dataclass
class Phase:
    """What one phase of attempts measured."""

    name: str
    attempts: int = 0
    bookings: int = 0
    refusals: int = 0
    cancellations: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    """CPU this process used during the waves: the bot's side of the work (PostgreSQL's own is not counted)."""
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def attempts_per_second(self) -> float:
        """Attempts answered per second of the waves' wall time."""
        return self.attempts / self.seconds if self.seconds > 0 else math.nan

    @property
    def bookings_per_second(self) -> float:
        """Consultations booked per second of the waves' wall time."""
        return self.bookings / self.seconds if self.seconds > 0 else math.nan

    def add(self, other: Phase) -> None:
        """Count another phase's figures into this one."""
        self.attempts += other.attempts
        self.bookings += other.bookings
        self.refusals += other.refusals
        self.cancellations += other.cancellations
        self.seconds += other.seconds
        self.cpu_seconds += other.cpu_seconds
        self.latencies_ms += other.latencies_ms


@dataclass
class Invariant:
    """What the checks after each wave found."""

    checks: int = 0
    overlapping: set[tuple[int, int]] = field(default_factory=set)
    """Pairs of confirmed consultations (by id) whose blocked ranges overlap."""
    over_cap: set[date] = field(default_factory=set)
    """Local days that held more consultations than the daily cap."""
    most_in_a_day: int = 0
    rows_agree: bool = True
    problems: list[str] = field(default_factory=list)


@dataclass
class Reference:
    """The plain inserts measured beside the attempts."""

    inserts: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        """Inserts per second of the waves' wall time."""
        return self.inserts / self.seconds if self.seconds > 0 else math.nan


@dataclass
class Figures:
    """Everything measured on one database."""

    kind: str
    phases: list[Phase]
    invariant: Invariant
    reference: Reference

    @property
    def total(self) -> Phase:
        """Both phases together."""
        total = Phase("all")
        for phase in self.phases:
            total.add(phase)
        return total

    @property
    def churn(self) -> Phase:
        """The phase in which bookings keep being made."""
        return self.phases[-1]


# --- The attempts ------------------------------------------------------------------------------------------------


def grid_starts() -> list[datetime]:
    """Every start of the week's 15-minute grid at which a 45-minute consultation fits in 09:00-17:00 Berlin."""
    last = timedelta(hours=17) - timedelta(minutes=45)
    starts = []
    for day in WEEK:
        moment = timedelta(hours=9)
        while moment <= last:
            starts.append(datetime.combine(day, clock_time(), tzinfo=ZONE) + moment)
            moment += timedelta(minutes=15)
    return starts


def attendee(number: int) -> Attendee:
    """Prospect `number`, booking from a Telegram chat of their own (so reminders are written too)."""
    return Attendee(
        prospect_ref=number,
        lead_ref=number,
        chat_id=10_000_000 + number,
        name=f"Prospect {number}",
        email=f"prospect{number}@northwind.example",
        zone="Europe/London",
        company="Northwind Traders",
        topic="Accounting & finance",
    )


async def _attempt(services: Services, start: datetime, number: int) -> tuple[Booking | None, float]:
    """One booking attempt: the consultation, or None when the slot was taken; and how long the answer took."""
    started = time.perf_counter()
    try:
        booking: Booking | None = await services.bookings.book(
            expert_key=EXPERT.key, start=start, attendee=attendee(number)
        )
    except SlotTaken:
        booking = None
    return booking, (time.perf_counter() - started) * 1000


async def _cancel(services: Services, booking: Booking) -> None:
    assert booking.id is not None
    await services.bookings.cancel(booking.id, prospect_ref=booking.prospect_ref)


class Run:
    """Waves of attempts against one database, with the bookkeeping the invariant needs."""

    def __init__(
        self, services: Services, reference: ReferenceWaves, *, rng: random.Random, concurrency: int, cap: int
    ) -> None:
        self.services = services
        self.reference = reference
        self.rng = rng
        self.concurrency = concurrency
        self.cap = cap
        self.starts = grid_starts()
        self.confirmed: dict[int, Booking] = {}
        """What the service says is booked and not cancelled, by id."""
        self.cancelled = 0
        self.numbers = 0
        self.invariant = Invariant()

    async def phase(self, name: str, attempts: int, *, churn: bool) -> Phase:
        """`attempts` attempts in waves; with churn, half the confirmed consultations cancelled in each wave."""
        phase = Phase(name)
        while phase.attempts < attempts:
            size = min(self.concurrency, attempts - phase.attempts)
            leaving = self.rng.sample(sorted(self.confirmed), len(self.confirmed) // 2) if churn else []
            await self._wave(phase, size, [self.confirmed.pop(key) for key in leaving])
            await self.check()
            await self.reference.wave(size)
        return phase

    async def _wave(self, phase: Phase, size: int, leaving: list[Booking]) -> None:
        attempts: list[Awaitable[tuple[Booking | None, float]]] = []
        for _ in range(size):
            self.numbers += 1
            attempts.append(_attempt(self.services, self.rng.choice(self.starts), self.numbers))
        started, cpu = time.perf_counter(), time.process_time()
        outcomes, _ = await asyncio.gather(
            asyncio.gather(*attempts), asyncio.gather(*(_cancel(self.services, b) for b in leaving))
        )
        phase.seconds += time.perf_counter() - started
        phase.cpu_seconds += time.process_time() - cpu
        for booking, latency in outcomes:
            phase.attempts += 1
            phase.latencies_ms.append(latency)
            if booking is None:
                phase.refusals += 1
            else:
                assert booking.id is not None
                phase.bookings += 1
                self.confirmed[booking.id] = booking
        phase.cancellations += len(leaving)
        self.cancelled += len(leaving)

    async def check(self) -> None:
        """Read the expert's confirmed consultations back and record any overlap or day over the cap."""
        query = (
            select(BOOKINGS.c.id, BOOKINGS.c.starts_at, BOOKINGS.c.blocked_from, BOOKINGS.c.blocked_until)
            .where(BOOKINGS.c.expert_key == EXPERT.key, BOOKINGS.c.status == "confirmed")
            .order_by(BOOKINGS.c.blocked_from)
        )
        async with self.services.engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        invariant = self.invariant
        invariant.checks += 1
        for first, second in combinations(rows, 2):
            if first.blocked_from < second.blocked_until and second.blocked_from < first.blocked_until:
                invariant.overlapping.add((min(first.id, second.id), max(first.id, second.id)))
        per_day = Counter(row.starts_at.astimezone(ZONE).date() for row in rows)
        invariant.most_in_a_day = max([invariant.most_in_a_day, *per_day.values()])
        invariant.over_cap |= {day for day, count in per_day.items() if count > self.cap}
        if {row.id for row in rows} != set(self.confirmed):
            invariant.rows_agree = False
            invariant.problems.append(
                f"after wave {invariant.checks}: {len(rows)} confirmed rows, the service answered {len(self.confirmed)}"
            )

    async def count_rows(self) -> None:
        """At the end: one stored row per booking the service confirmed, whatever became of it."""
        query = select(BOOKINGS.c.status).where(BOOKINGS.c.expert_key == EXPERT.key)
        async with self.services.engine.connect() as connection:
            statuses = Counter((await connection.execute(query)).scalars())
        expected = Counter({"confirmed": len(self.confirmed), "cancelled": self.cancelled})
        if statuses != expected:
            self.invariant.rows_agree = False
            self.invariant.problems.append(f"stored rows {dict(statuses)}, expected {dict(expected)}")


# --- The reference ---------------------------------------------------------------------------------------------


class PlainInserts(SqlStore):
    """The reference: one INSERT into bookings per transaction, on the stores' own machinery, with no check."""

    async def insert(self, row: dict[str, Any]) -> None:
        """Insert one row as the booking store does, RETURNING its id, and nothing else."""
        statement = insert(BOOKINGS).values(row).returning(BOOKINGS.c.id)
        await self._run(lambda connection: connection.execute(statement).scalar_one())


def reference_row(number: int) -> dict[str, Any]:
    """A confirmed consultation of another expert, an hour after the previous one: it never overlaps."""
    start = NOW + timedelta(days=7, hours=number)
    return {
        "uid": f"reference-{number}@consultbot",
        "expert_key": "reference",
        "starts_at": start,
        "ends_at": start + timedelta(minutes=45),
        "blocked_from": start - timedelta(minutes=5),
        "blocked_until": start + timedelta(minutes=55),
        "prospect_ref": number,
        "lead_ref": number,
        "chat_id": 20_000_000 + number,
        "attendee_name": f"Reference {number}",
        "attendee_email": None,
        "attendee_zone": "Europe/London",
        "company": None,
        "topic": "Accounting & finance",
        "status": "confirmed",
        "sequence": 0,
        "created_at": NOW,
        "updated_at": NOW,
        "cancelled_at": None,
    }


class ReferenceWaves:
    """Plain inserts in waves, taken in turns with the attempts' waves so that load on the machine hits both alike."""

    def __init__(self, transactions: AsyncEngine | Engine) -> None:
        self.store = PlainInserts(transactions)
        self.figures = Reference()

    async def wave(self, size: int) -> None:
        """`size` concurrent plain inserts, timed."""

        async def one(number: int) -> float:
            started = time.perf_counter()
            await self.store.insert(reference_row(number))
            return (time.perf_counter() - started) * 1000

        started, cpu = time.perf_counter(), time.process_time()
        latencies = await asyncio.gather(*(one(self.figures.inserts + n) for n in range(size)))
        self.figures.seconds += time.perf_counter() - started
        self.figures.cpu_seconds += time.process_time() - cpu
        self.figures.inserts += size
        self.figures.latencies_ms += latencies


# --- Per database ----------------------------------------------------------------------------------------------


def bench_config(cap: int) -> BusinessConfig:
    """The bundled example with the one benchmark expert and the daily cap asked for."""
    config = load_config(BUNDLED_EXAMPLE)
    slots = config.slots.model_copy(update={"max_per_day": cap})
    return config.model_copy(update={"experts": (EXPERT,), "slots": slots})


@asynccontextmanager
async def database_url(kind: str, postgres_server: str | None) -> AsyncIterator[str]:
    """A fresh, empty database of this kind, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="consultbot-booking-") as directory:
            yield f"sqlite+aiosqlite:///{directory}/bench.db"
        return
    assert postgres_server is not None
    async with _postgres_database(postgres_server) as url:
        yield url


async def measure(kind: str, arguments: argparse.Namespace, postgres_server: str | None) -> Figures:
    """Both phases, the final count and the reference, on a fresh database of this kind."""
    config = bench_config(arguments.max_per_day)
    fill_attempts = arguments.attempts // 2
    async with (
        database_url(kind, postgres_server) as url,
        open_services(Settings(database_url=url), config, clock=FixedClock(NOW)) as services,
    ):
        # The reference runs on the engine the stores use: the async engine, or SQLite's blocking twin.
        transactions = database.store_engine(services.engine)
        try:
            reference = ReferenceWaves(transactions)
            run = Run(
                services,
                reference,
                rng=random.Random(arguments.seed),
                concurrency=arguments.concurrency,
                cap=arguments.max_per_day,
            )
            progress(f"{kind}: fill, {fill_attempts} attempts (and as many plain inserts) ...")
            fill = await run.phase("fill", fill_attempts, churn=False)
            progress(f"{kind}: churn, {arguments.attempts - fill_attempts} attempts (and as many plain inserts) ...")
            churn = await run.phase("churn", arguments.attempts - fill_attempts, churn=True)
            await run.count_rows()
        finally:
            if isinstance(transactions, Engine):
                transactions.dispose()
    return Figures(kind, [fill, churn], run.invariant, reference.figures)


# --- Report ----------------------------------------------------------------------------------------------------


def report(arguments: argparse.Namespace, measured: Sequence[Figures], skipped: Sequence[str]) -> int:
    """Print the figures and the summary line; 1 if the invariant failed anywhere."""
    starts = grid_starts()
    print(
        f"booking benchmark (seed {arguments.seed}): one expert, Mon-Fri 09:00-17:00 {ZONE.key}, the week of "
        f"{WEEK[0]:%a %d %b %Y}, {len(starts)} grid starts; 45-minute consultations, 5 min before / 10 after, "
        f"at most {arguments.max_per_day} a day"
    )
    print(
        f"{arguments.attempts} attempts in waves of {arguments.concurrency} concurrent BookingService.book calls "
        f"at random starts; fill: no cancellations; churn: half the confirmed cancelled in every wave"
    )
    print("(CPU ms: this process's CPU per attempt or insert, cancellations in the same waves included)")
    for figures in measured:
        print(figures.kind)
        print(
            f"  {'phase':<7}{'attempts':>9}{'bookings':>9}{'refused':>9}{'cancels':>9}"
            f"{'attempts/s':>12}{'bookings/s':>12}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>8}"
        )
        for phase in [*figures.phases, figures.total]:
            print(
                f"  {phase.name:<7}{phase.attempts:>9}{phase.bookings:>9}{phase.refusals:>9}{phase.cancellations:>9}"
                f"{phase.attempts_per_second:>12.0f}{phase.bookings_per_second:>12.1f}"
                f"{percentile(phase.latencies_ms, 0.5):>9.1f}{percentile(phase.latencies_ms, 0.99):>9.1f}"
                f"{1000 * phase.cpu_seconds / phase.attempts:>8.2f}"
            )
        reference, total = figures.reference, figures.total
        p50, p99 = percentile(reference.latencies_ms, 0.5), percentile(reference.latencies_ms, 0.99)
        print(
            f"  reference, {REFERENCE} into bookings, one per transaction, in turns with the same waves: "
            f"{reference.inserts} at {reference.per_second:.0f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
            f"CPU {1000 * reference.cpu_seconds / reference.inserts:.2f} ms"
        )
        print(
            f"  attempts/s is {total.attempts_per_second / reference.per_second:.2f} of {REFERENCE}s/s: "
            f"an attempt costs {reference.per_second / total.attempts_per_second:.1f} plain inserts"
        )
        invariant = figures.invariant
        print(
            f"  invariant, checked after each of {invariant.checks} waves: double bookings (overlapping confirmed "
            f"pairs) {len(invariant.overlapping)}, days over the cap {len(invariant.over_cap)} "
            f"(most in a day {invariant.most_in_a_day}), stored rows agree: {'yes' if invariant.rows_agree else 'NO'}"
        )
        for problem in invariant.problems[:5]:
            print(f"    {problem}")
    for line in skipped:
        print(line)

    headline = next((figures for figures in measured if figures.kind == "postgresql"), measured[-1])
    double_bookings = sum(len(figures.invariant.overlapping) for figures in measured)
    failed = double_bookings or any(
        figures.invariant.over_cap or not figures.invariant.rows_agree for figures in measured
    )
    print(
        f"booking: {headline.total.attempts} attempts, {headline.churn.bookings_per_second:.0f} bookings/s, "
        f"double bookings: {double_bookings}"
    )
    return 1 if failed else 0


async def benchmark(arguments: argparse.Namespace) -> int:
    """Measure each database in turn and report."""
    postgres_server = os.environ.get("TEST_DATABASE_URL")
    databases = list(arguments.databases)
    skipped: list[str] = []
    if "postgresql" in databases and not postgres_server:
        databases.remove("postgresql")
        skipped.append(
            "postgresql skipped: TEST_DATABASE_URL is not set "
            "(e.g. TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test)"
        )
        progress(skipped[-1])
    if not databases:
        print("booking: no database to measure")
        return 2
    measured = [await measure(kind, arguments, postgres_server) for kind in databases]
    return report(arguments, measured, skipped)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.booking", description=__doc__.splitlines()[0])
    parser.add_argument("--databases", type=database_list, default=list(DATABASES), help="sqlite,postgresql")
    parser.add_argument("--attempts", type=int, default=10_000, help="booking attempts per database")
    parser.add_argument("--concurrency", type=int, default=50, help="concurrent attempts per wave")
    parser.add_argument("--max-per-day", type=int, default=5, help="the daily cap (the bundled example's: 5)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the starts tried and the cancellations")
    arguments = parser.parse_args(argv)
    if arguments.attempts < 2:
        parser.error("--attempts must be at least 2")
    if arguments.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    if not 1 <= arguments.max_per_day <= 100:
        parser.error("--max-per-day must be 1 to 100")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "sqlalchemy"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return asyncio.run(benchmark(arguments))


if __name__ == "__main__":
    sys.exit(main())
