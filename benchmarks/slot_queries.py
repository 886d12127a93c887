"""Availability benchmark sections that need the database: an unchanged feed's sync, and slot queries.

(a') What a sync of an unchanged feed costs: the real fetcher against a local feed server, the real store on
SQLite, once answered 304 Not Modified (ETag) and once served whole by a server without validators (the content
hash matches, nothing is parsed).

(b) Slot queries for 20 experts over 30 days from stored busy intervals (each expert with a generated feed of a
few thousand events, synced once), p50 and p99 per expert query and per sweep of all 20, on SQLite and, when
TEST_DATABASE_URL is set, PostgreSQL; beside the same slots computed by parsing each expert's raw feed on every
request with icalendar + recurring-ical-events, as schedulers that re-read feeds per availability check do.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from benchmarks.feedgen import generate_feed
from bot import database
from scheduling.feeds import FetchLimits, FetchResult, Validators, feed_session, fetch_feed
from scheduling.intervals import Interval
from scheduling.model import Expert, SlotRules, WorkingHours
from scheduling.repository import SqlAvailabilityStore
from scheduling.service import LOOK_BACK, AvailabilityService, CalendarSync, SyncPolicy
from scheduling.slots import free_slots
from tests.calendar_servers import FeedServer
from tests.conftest import FixedClock, _postgres_database

EXPERTS = 20
DAYS = 30
ZONES = ("Europe/London", "America/New_York", "Asia/Kolkata", "Europe/Berlin", "Australia/Sydney")
RULES = SlotRules(meeting_minutes=45, step_minutes=15, buffer_before_minutes=5, buffer_after_minutes=10)
LIMITS = FetchLimits(connect_timeout=5, total_timeout=30)


@dataclass(frozen=True)
class Latency:
    """Milliseconds of a series of runs."""

    runs: list[float]

    @property
    def p50(self) -> float:
        """The median."""
        return statistics.median(self.runs)

    @property
    def p99(self) -> float:
        """The 99th percentile (nearest rank)."""
        ordered = sorted(self.runs)
        return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


async def _timed(work: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await work()
    return (time.perf_counter() - started) * 1000


@asynccontextmanager
async def _store(kind: str, directory: Path) -> AsyncIterator[SqlAvailabilityStore]:
    """An availability store on a fresh, migrated database of this kind."""
    if kind == "sqlite":
        async with _store_on(f"sqlite+aiosqlite:///{directory}/bench.db") as store:
            yield store
        return
    async with _postgres_database(os.environ["TEST_DATABASE_URL"]) as url, _store_on(url) as store:
        yield store


@asynccontextmanager
async def _store_on(url: str) -> AsyncIterator[SqlAvailabilityStore]:
    engine: AsyncEngine = database.create_engine(url)
    transactions = database.store_engine(engine)
    try:
        await database.upgrade(engine)
        yield SqlAvailabilityStore(transactions)
    finally:
        if isinstance(transactions, Engine):
            transactions.dispose()
        await engine.dispose()


async def unchanged_feed(body: bytes, *, now: datetime, rounds: int) -> dict[str, Latency]:
    """Section (a'): milliseconds per sync of a feed that has not changed, by how the server says so."""
    results: dict[str, Latency] = {}
    with tempfile.TemporaryDirectory(prefix="consultbot-bench-") as directory:
        async with (
            FeedServer() as server,
            feed_session(limits=LIMITS) as session,
            _store("sqlite", Path(directory)) as store,
        ):

            async def fetch(location: str, validators: Validators) -> FetchResult:
                return await fetch_feed(session, location, validators=validators, limits=LIMITS)

            published = {
                "304 Not Modified (ETag)": server.publish("tagged.ics", body),
                "same content hash": server.publish("untagged.ics", body, etag=False, last_modified=None),
            }
            for label, url in published.items():
                expert = _expert(0, [url])
                sync = CalendarSync(store=store, fetch=fetch, experts=[expert], policy=_policy(), clock=FixedClock(now))
                await sync.configure()
                [first] = await sync.sync()
                assert first.outcome == "updated", first.detail
                runs = []
                for _ in range(rounds):
                    runs.append(await _timed(sync.sync))
                [last] = await sync.sync()
                assert last.outcome == "unchanged", last.detail
                results[label] = Latency(runs)
    return results


@dataclass(frozen=True)
class SlotQueryResult:
    """Section (b) on one database."""

    database: str
    per_expert: Latency
    per_sweep: Latency


async def slot_queries(
    kind: str, bodies: list[bytes], *, now: datetime, rounds: int
) -> tuple[SlotQueryResult, dict[str, list[Interval]]]:
    """Section (b) on one database: stored-interval queries, and the slots they gave per expert."""
    with tempfile.TemporaryDirectory(prefix="consultbot-bench-") as directory:
        paths = []
        for number, body in enumerate(bodies):
            path = Path(directory) / f"expert{number}.ics"
            path.write_bytes(body)
            paths.append(str(path))
        experts = [_expert(number, [path]) for number, path in enumerate(paths)]
        async with _store(kind, Path(directory)) as store, feed_session(limits=LIMITS) as session:
            clock = FixedClock(now)

            async def fetch(location: str, validators: Validators) -> FetchResult:
                return await fetch_feed(session, location, validators=validators, limits=LIMITS)

            sync = CalendarSync(store=store, fetch=fetch, experts=experts, policy=_policy(), clock=clock)
            await sync.configure()
            reports = await sync.sync()
            assert all(report.outcome == "updated" for report in reports), [r.detail for r in reports]
            service = AvailabilityService(
                store=store, sync=None, experts=experts, rules=RULES, policy=_policy(), clock=clock
            )
            slots = {expert.key: list((await service.availability(expert.key, days=DAYS)).slots) for expert in experts}
            per_expert: list[float] = []
            per_sweep: list[float] = []
            for _ in range(rounds):
                started = time.perf_counter()
                for expert in experts:
                    query_started = time.perf_counter()
                    await service.availability(expert.key, days=DAYS)
                    per_expert.append((time.perf_counter() - query_started) * 1000)
                per_sweep.append((time.perf_counter() - started) * 1000)
    return SlotQueryResult(kind, Latency(per_expert), Latency(per_sweep)), slots


BusyReader = Callable[..., tuple[Interval, ...]]
"""Reads busy time from a raw feed body for a window and zone."""


def slots_parsing_each_request(
    bodies: list[bytes], *, now: datetime, read: BusyReader
) -> tuple[Latency, dict[str, list[Interval]]]:
    """The comparison for (b): every query parses its expert's raw feed (with `read`) before computing slots."""
    runs: list[float] = []
    found: dict[str, list[Interval]] = {}
    for number, body in enumerate(bodies):
        expert = _expert(number, [])
        zone = ZoneInfo(expert.timezone)
        started = time.perf_counter()
        busy = read(body, window=Interval(now - LOOK_BACK, now + timedelta(days=DAYS + 1)), zone=zone)
        slots = free_slots(hours=expert.hours, zone=zone, rules=RULES, busy=busy, booked=(), now=now)
        found[expert.key] = [slot for slot in slots if slot.start < now + timedelta(days=DAYS)]
        runs.append((time.perf_counter() - started) * 1000)
    return Latency(runs), found


def generated_feeds(*, now: datetime) -> list[bytes]:
    """One generated feed per expert, each with its own seed."""
    return [generate_feed(now=now, seed=100 + number).encode() for number in range(EXPERTS)]


def _expert(number: int, calendars: list[str]) -> Expert:
    return Expert(
        key=f"expert{number}",
        name=f"Expert {number}",
        role="Consultant",
        timezone=ZONES[number % len(ZONES)],
        calendars=tuple(calendars),
        hours=WorkingHours.office_hours(),
    )


def _policy() -> SyncPolicy:
    return SyncPolicy(horizon=RULES.horizon, stale_after=timedelta(days=365), refresh_after=timedelta(days=365))
