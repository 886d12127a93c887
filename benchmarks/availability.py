"""Availability benchmarks: what it costs to turn an expert's calendar feed into busy time.

Run from the project root:

    python -m benchmarks.availability [--feed PATH]... [--rounds N] [--now ISO-8601]

(a) Reading a large feed: the generated five-year feed (benchmarks/feedgen.py, about 5,000 VEVENTs) and each
`--feed` file, read for the window [now - 1 day, now + 30 days] in Europe/London by `scheduling.ics.read_busy`,
and by the reference: icalendar parsing the whole body and recurring-ical-events expanding the same window, with
the same busy rules applied to its occurrences. Medians of the rounds, taken in turns so that load on the machine
hits both alike; peak memory from tracemalloc in runs of their own, so that tracing does not distort the times.
`now` is the generated feed's own, and for a file the 90th percentile of its DTSTART dates (a historical export
is read late in its active years, a live feed about today) unless `--now` is given.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import statistics
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from benchmarks import slot_queries
from benchmarks.feedgen import generate_feed
from scheduling.ics import busy_interval, read_busy
from scheduling.intervals import Interval, clip

ZONE = ZoneInfo("Europe/London")
GENERATED_NOW = datetime(2026, 3, 23, 9, 0, tzinfo=UTC)
REFERENCE = "icalendar + recurring-ical-events"
DTSTART_DAY = re.compile(rb"^DTSTART[^:\r\n]*:(\d{8})", re.MULTILINE)
MIB = 1024 * 1024


@dataclass(frozen=True)
class Feed:
    """One feed to read, and the moment it is read at."""

    name: str
    body: bytes
    now: datetime

    @property
    def window(self) -> Interval:
        """What the sync layer asks for: from a day ago to the booking horizon."""
        return Interval(self.now - timedelta(days=1), self.now + timedelta(days=30))


@dataclass(frozen=True)
class FeedReadingResult:
    """Section (a) for one feed."""

    feed: Feed
    ours_ms: float
    reference_ms: float
    ours_peak: int
    reference_peak: int
    busy: int
    identical: bool

    @property
    def ratio(self) -> float:
        """How many times faster read_busy is than the reference."""
        return self.reference_ms / self.ours_ms


def reference_busy(body: bytes, *, window: Interval, zone: ZoneInfo) -> tuple[Interval, ...]:
    """Busy time the plain way: parse everything, expand the window, apply the same busy rules, clip and merge."""
    calendar = icalendar.Calendar.from_ical(body)
    occurrences = recurring_ical_events.of(calendar).between(window.start.astimezone(zone), window.end.astimezone(zone))
    intervals = (interval for occurrence in occurrences if (interval := busy_interval(occurrence, zone=zone)))
    return tuple(clip(intervals, window))


def ours_busy(body: bytes, *, window: Interval, zone: ZoneInfo) -> tuple[Interval, ...]:
    """Busy time as the sync layer reads it."""
    return read_busy(body, window=window, zone=zone).busy


Reader = Callable[..., tuple[Interval, ...]]


def _timed(reader: Reader, feed: Feed) -> float:
    gc.collect()
    started = time.perf_counter()
    reader(feed.body, window=feed.window, zone=ZONE)
    return (time.perf_counter() - started) * 1000


def _peak(reader: Reader, feed: Feed) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        reader(feed.body, window=feed.window, zone=ZONE)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def measure_feed_reading(feed: Feed, rounds: int) -> FeedReadingResult:
    """Section (a) for one feed: medians of `rounds` turns each, then one traced run each."""
    # The first readings, compared, double as the warm-up: imports, icalendar's zone cache, the zone database.
    ours = ours_busy(feed.body, window=feed.window, zone=ZONE)
    reference = reference_busy(feed.body, window=feed.window, zone=ZONE)
    ours_times: list[float] = []
    reference_times: list[float] = []
    for _ in range(rounds):
        ours_times.append(_timed(ours_busy, feed))
        reference_times.append(_timed(reference_busy, feed))
    return FeedReadingResult(
        feed=feed,
        ours_ms=statistics.median(ours_times),
        reference_ms=statistics.median(reference_times),
        ours_peak=_peak(ours_busy, feed),
        reference_peak=_peak(reference_busy, feed),
        busy=len(ours),
        identical=ours == reference,
    )


def feeds(arguments: argparse.Namespace) -> list[Feed]:
    """The generated feed, then each --feed file."""
    generated_now = arguments.now or GENERATED_NOW
    found = [Feed("generated five-year feed", generate_feed(now=generated_now).encode(), generated_now)]
    for path in arguments.feed:
        body = path.read_bytes()
        found.append(Feed(path.name, body, arguments.now or _late_in(body)))
    return found


def _late_in(body: bytes) -> datetime:
    """The 90th percentile of the feed's DTSTART dates, at 09:00 UTC: a moment with plenty going on around it."""
    days = sorted(date(int(d[:4]), int(d[4:6]), int(d[6:])) for d in DTSTART_DAY.findall(body) if int(d[:4]) > 1900)
    if not days:
        return GENERATED_NOW
    day = days[int(0.9 * (len(days) - 1))]
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def feed_reading(arguments: argparse.Namespace) -> list[FeedReadingResult]:
    """Section (a): read each feed both ways and print the figures."""
    print(f"(a) reading a large feed: window [now - 1 day, now + 30 days] in {ZONE.key}, median of {arguments.rounds}")
    results: list[FeedReadingResult] = []
    for feed in feeds(arguments):
        result = measure_feed_reading(feed, arguments.rounds)
        events = feed.body.count(b"BEGIN:VEVENT")
        print(f"  {feed.name}: {events:,} VEVENTs, {len(feed.body) / MIB:.2f} MiB, now {feed.now:%Y-%m-%d %H:%M} UTC")
        print(f"    {'read_busy':<36}{result.ours_ms:>9.1f} ms{result.ours_peak / MIB:>9.1f} MiB peak")
        print(f"    {REFERENCE:<36}{result.reference_ms:>9.1f} ms{result.reference_peak / MIB:>9.1f} MiB peak")
        verdict = "identical" if result.identical else "DIFFERENT"
        print(f"    {result.ratio:.1f}x faster, {result.busy} busy intervals, {verdict}")
        results.append(result)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    """Run the sections in turn and print their figures, then the summary line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.availability", description=__doc__.splitlines()[0])
    parser.add_argument("--feed", type=Path, action="append", default=[], help="an .ics file to read as well")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per reader and feed (default 5)")
    parser.add_argument("--now", type=_aware, default=None, help="read every feed at this instant (ISO 8601)")
    arguments = parser.parse_args(argv)

    reading = feed_reading(arguments)
    asyncio.run(unchanged_and_slot_queries(arguments, reading[0].feed))

    print(summary(reading))


async def unchanged_and_slot_queries(arguments: argparse.Namespace, generated: Feed) -> None:
    """Sections (a') and (b): the sync of an unchanged feed, and slot queries from stored busy time."""
    rounds = max(arguments.rounds, 1)
    print(f"(a') syncing an unchanged feed ({generated.name}, SQLite), ms over {rounds * 20} syncs")
    for label, latency in (
        await slot_queries.unchanged_feed(generated.body, now=generated.now, rounds=rounds * 20)
    ).items():
        print(f"    {label:<36}p50 {latency.p50:7.2f}   p99 {latency.p99:7.2f}")
    bodies = slot_queries.generated_feeds(now=generated.now)
    experts, days = slot_queries.EXPERTS, slot_queries.DAYS
    print(f"(b) slot queries: {experts} experts, each with a generated feed, {days} days of slots, {rounds * 4} rounds")
    databases = ["sqlite", "postgresql"] if os.environ.get("TEST_DATABASE_URL") else ["sqlite"]
    stored: dict[str, list[Interval]] | None = None
    for kind in databases:
        result, stored = await slot_queries.slot_queries(kind, bodies, now=generated.now, rounds=rounds * 4)
        print(
            f"    from stored intervals, {kind:<10}  per expert p50 {result.per_expert.p50:6.2f} ms"
            f"  p99 {result.per_expert.p99:6.2f} ms;  all {experts}: p50 {result.per_sweep.p50:6.1f} ms"
            f"  p99 {result.per_sweep.p99:6.1f} ms"
        )
    parsing, parsed = slot_queries.slots_parsing_each_request(bodies, now=generated.now, read=reference_busy)
    print(
        f"    parsing each raw feed per request ({REFERENCE}): per expert p50 {parsing.p50:.0f} ms,"
        f" all {experts}: {sum(parsing.runs) / 1000:.1f} s"
    )
    print(f"    same slots both ways: {'yes' if parsed == stored else 'NO'}")
    if "postgresql" not in databases:
        print("    (set TEST_DATABASE_URL to measure PostgreSQL too)")


def summary(reading: Sequence[FeedReadingResult]) -> str:
    """The final line: the worst speed-up over the feeds, and whether every feed's busy time matched."""
    worst = min(result.ratio for result in reading)
    verdict = "identical" if all(result.identical for result in reading) else "differ"
    return f"feed reading: {worst:.1f}x faster than {REFERENCE}; busy intervals {verdict}"


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a UTC offset, e.g. {text}+00:00")
    return moment


if __name__ == "__main__":
    main()
