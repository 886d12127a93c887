"""Real-world calendars read on both paths: the fast path must never change busy time, problems or failures.

The corpus is the set of test calendars recurring-ical-events ships (odd time zones, broken rules, moved and
deleted occurrences, X-WR-TIMEZONE, swapped ends...), plus the benchmark's generated five-year feed.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from importlib.resources import files
from importlib.resources.abc import Traversable
from zoneinfo import ZoneInfo

import pytest

from benchmarks.feedgen import generate_feed
from scheduling import ics
from scheduling.ics import read_busy, read_busy_full
from scheduling.intervals import Interval

CORPUS = sorted(
    (
        entry
        for entry in files("recurring_ical_events").joinpath("test", "calendars").iterdir()
        if entry.name.endswith(".ics")
    ),
    key=lambda entry: entry.name,
)
ZONES = (ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"))
DTSTART_DAY = re.compile(rb"^DTSTART[^:\r\n]*:(\d{8})", re.MULTILINE)


def windows_for(raw: bytes) -> list[Interval]:
    """A month from the day before the earliest DTSTART, the latest, and mid-January 2026."""
    days = sorted(
        {date(int(d[:4]), int(d[4:6]), int(d[6:])) for d in DTSTART_DAY.findall(raw) if 1900 < int(d[:4]) < 2900}
    )
    anchors = [*(days[:1] + days[-1:]), date(2026, 1, 15)]
    return [
        Interval(start, start + timedelta(days=31)) for start in (_midnight(day) - timedelta(days=1) for day in anchors)
    ]


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_the_corpus_is_there() -> None:
    """recurring-ical-events ships its test calendars; without them the comparison below would prove nothing."""
    assert len(CORPUS) > 80


@pytest.mark.parametrize("calendar", CORPUS, ids=lambda entry: entry.name)
def test_the_fast_path_reads_each_corpus_calendar_exactly_like_the_full_parse(calendar: Traversable) -> None:
    """Same busy intervals, events, problems and failure, in every window and zone, and neither path raises."""
    raw = calendar.read_bytes()

    readings = [
        (read_busy(raw, window=window, zone=zone), read_busy_full(raw, window=window, zone=zone))
        for window in windows_for(raw)
        for zone in ZONES
    ]

    for fast, full in readings:
        assert fast == full


def test_the_corpus_comparison_has_teeth() -> None:
    """Most corpus calendars give busy time in some window, and in many the fast path really drops VEVENTs."""
    with_busy_time = with_dropped_events = 0
    for calendar in CORPUS:
        raw = calendar.read_bytes()
        windows = windows_for(raw)
        with_busy_time += any(read_busy(raw, window=window, zone=ZONES[0]).busy for window in windows)
        with_dropped_events += any(_dropped(raw, window) for window in windows)

    assert with_busy_time >= 60
    assert with_dropped_events >= 40


def _dropped(raw: bytes, window: Interval) -> int:
    """How many VEVENTs the fast path leaves unparsed (white-box: the readings alone do not show it)."""
    zone_ids = ics._isolate_time_zone_ids(ics._unfold(ics._decode(raw)))
    feed = ics._scan(zone_ids.text, zone_ids.renamed)
    return 0 if feed is None else ics._normalised(zone_ids.text, feed, window)[1]


BENCHMARK_NOW = datetime(2026, 3, 23, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def benchmark_feed() -> str:
    """The generated five-year feed of the availability benchmark."""
    return generate_feed(now=BENCHMARK_NOW)


@pytest.mark.parametrize("days_back", [1, 400, 5 * 365 + 3], ids=["now", "last-year", "first-week"])
def test_the_fast_path_reads_the_benchmark_feed_exactly_like_the_full_parse(
    benchmark_feed: str, days_back: int
) -> None:
    """Around now, a year ago and at the very start of its history, the five-year feed reads the same both ways."""
    start = BENCHMARK_NOW - timedelta(days=days_back)
    window = Interval(start, start + timedelta(days=31))

    fast = read_busy(benchmark_feed, window=window, zone=ZoneInfo("Europe/London"))
    full = read_busy_full(benchmark_feed, window=window, zone=ZoneInfo("Europe/London"))

    assert fast == full
    assert fast.busy
    assert fast.events > 5000
