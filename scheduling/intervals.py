"""Half-open intervals of instants, and the set operations availability is made of. Pure: no I/O, no clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter


@dataclass(frozen=True, slots=True, order=True)
class Interval:
    """The instants from `start` (included) to `end` (excluded), held in UTC.

    Both ends are converted to UTC on construction: Python compares two datetimes that share a tzinfo
    by wall time, which is wrong across a DST change, so nothing here ever holds a local time.
    """

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError(f"an interval needs aware datetimes, got {self.start!r} .. {self.end!r}")
        if self.start.tzinfo is not UTC:
            object.__setattr__(self, "start", self.start.astimezone(UTC))
        if self.end.tzinfo is not UTC:
            object.__setattr__(self, "end", self.end.astimezone(UTC))
        if self.end <= self.start:
            raise ValueError(f"an interval must end after it starts: {self.start} .. {self.end}")

    @property
    def duration(self) -> timedelta:
        """How long the interval lasts."""
        return self.end - self.start

    def overlaps(self, other: Interval) -> bool:
        """Whether the two share at least one instant (touching ends do not)."""
        return self.start < other.end and other.start < self.end

    def contains(self, other: Interval) -> bool:
        """Whether every instant of `other` lies inside this interval."""
        return self.start <= other.start and other.end <= self.end

    def padded(self, before: timedelta, after: timedelta) -> Interval:
        """The interval widened by `before` at its start and `after` at its end (buffers around a meeting)."""
        return Interval(self.start - before, self.end + after)


_start = attrgetter("start")


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """The same instants as sorted, disjoint intervals; overlapping or touching ones become one."""
    merged: list[Interval] = []
    # Sorting by start alone is enough here, and a key is several times faster than the dataclass's tuple ordering.
    for interval in sorted(intervals, key=_start):
        if merged and interval.start <= merged[-1].end:
            if interval.end > merged[-1].end:
                merged[-1] = Interval(merged[-1].start, interval.end)
        else:
            merged.append(interval)
    return merged


def subtract(base: Iterable[Interval], holes: Iterable[Interval]) -> list[Interval]:
    """The instants of `base` that lie in none of `holes`, as sorted, disjoint intervals."""
    remaining: list[Interval] = []
    cut = merge(holes)
    index = 0
    for piece in merge(base):
        start = piece.start
        # Holes that end before this piece can never cut a later piece either: both lists are sorted.
        while index < len(cut) and cut[index].end <= start:
            index += 1
        probe = index
        while probe < len(cut) and cut[probe].start < piece.end:
            if cut[probe].start > start:
                remaining.append(Interval(start, cut[probe].start))
            start = max(start, cut[probe].end)
            probe += 1
        if start < piece.end:
            remaining.append(Interval(start, piece.end))
    return remaining


def clip(intervals: Iterable[Interval], window: Interval) -> list[Interval]:
    """The parts of `intervals` inside `window`, sorted and merged."""
    clipped = (
        Interval(max(interval.start, window.start), min(interval.end, window.end))
        for interval in intervals
        if interval.overlaps(window)
    )
    return merge(clipped)
