"""Bookable consultation times from working hours, busy time and booked consultations. Pure: no I/O, no clock.

Working hours are wall-clock readings in the expert's zone. A reading the clocks skip (spring forward) stands for
the first instant after the gap; a reading they repeat (fall back) stands for its first occurrence, as `fold=0` does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from scheduling.intervals import Interval, clip, merge
from scheduling.model import SlotRules, WorkingHours

__all__ = ["free_slots", "working_intervals"]

_RESOLUTION = timedelta(microseconds=1)
"""The smallest step between datetimes: it turns a half-open bound into a closed one."""
_DAY = timedelta(days=1)
_NEVER_BEFORE = datetime.min.replace(tzinfo=UTC)
_NEVER_AFTER = datetime.max.replace(tzinfo=UTC)


def working_intervals(hours: WorkingHours, zone: ZoneInfo, window: Interval) -> list[Interval]:
    """The expert's working time inside `window`, as sorted, disjoint intervals."""
    return clip((span for _, _, span in _working_ranges(hours, zone, window.start, window.end)), window)


def free_slots(
    *,
    hours: WorkingHours,
    zone: ZoneInfo,
    rules: SlotRules,
    busy: Sequence[Interval],
    booked: Sequence[Interval],
    now: datetime,
) -> list[Interval]:
    """The consultation times the expert can still be booked for, sorted."""
    if now.utcoffset() is None:
        raise ValueError(f"now must be an aware datetime, got {now!r}")
    # In UTC, adding hours adds real time; with a zone attached Python would add wall-clock time instead.
    now = now.astimezone(UTC)
    meeting, step = rules.meeting, rules.step
    earliest = now + rules.notice
    latest = now + rules.horizon - _RESOLUTION
    full = _full_days(booked, zone, rules.max_per_day)
    openings = _openings(busy, booked, rules)
    slots: list[Interval] = []
    # Working ranges and openings both come sorted, so one forward walk over each finds every pairing.
    index = 0
    for day, local_start, span in _working_ranges(hours, zone, earliest, latest):
        if day in full:
            continue
        first, last = max(span.start, earliest), min(span.end - meeting, latest)
        for segment in _segments(zone, local_start, span):
            low, high = max(first, segment.start), min(last, segment.end - _RESOLUTION)
            while index < len(openings) and openings[index][1] < low:
                index += 1
            probe = index
            while probe < len(openings) and openings[probe][0] <= high:
                start = _grid_at_or_after(segment.origin, step, max(low, openings[probe][0]))
                stop = min(high, openings[probe][1])
                while start <= stop:
                    slots.append(Interval(start, start + meeting))
                    start += step
                probe += 1
    return slots


@dataclass(frozen=True, slots=True)
class _Segment:
    """Part of a working range where the zone's UTC offset stays the same, so its grid is evenly spaced in UTC."""

    start: datetime
    end: datetime
    origin: datetime
    """The range's first grid time read with this part's offset; the part's grid times are origin + k·step."""


def _working_ranges(
    hours: WorkingHours, zone: ZoneInfo, since: datetime, until: datetime
) -> Iterator[tuple[date, datetime, Interval]]:
    """Each working range on the local days around `since` .. `until`: its day, its local start and its instants."""
    # A day more on each side: where clocks fall back across midnight, local dates do not follow instants in order.
    day = since.astimezone(zone).date() - _DAY
    last = until.astimezone(zone).date() + _DAY
    while day <= last:
        # Aware datetimes with the zone attached do wall-clock arithmetic: midnight + 9 hours reads 09:00 on any day.
        midnight = datetime.combine(day, time(), tzinfo=zone)
        for local_range in hours.on(day):
            local_start = midnight + local_range.start
            start, end = _instant(local_start, zone), _instant(midnight + local_range.end, zone)
            # A range wholly inside a spring-forward gap never happens on the clock.
            if start < end:
                yield day, local_start, Interval(start, end)
        day += _DAY


def _instant(local: datetime, zone: ZoneInfo) -> datetime:
    """The UTC instant at which the clock in `zone` first reads `local`, or first passes it if it skips that time."""
    instant = local.astimezone(UTC)
    # Python compares two datetimes with the same tzinfo by wall time: exactly the round trip wanted here.
    if instant.astimezone(zone) == local:
        return instant
    # In a gap, fold=0 reads the time with the offset from before the jump and lands after it; fold=1 reads it with
    # the offset from after the jump and lands before it. The jump lies between the two.
    return _transition(zone, local.replace(fold=1).astimezone(UTC), instant)


def _segments(zone: ZoneInfo, local_start: datetime, span: Interval) -> list[_Segment]:
    """The parts of a working range with one UTC offset each (two on a day the clocks change in the range)."""
    segments: list[_Segment] = []
    start = span.start
    offset = _offset(zone, start)
    wall_origin = local_start.replace(tzinfo=UTC)
    while start < span.end:
        changed = _offset(zone, span.end - _RESOLUTION) != offset
        end = _transition(zone, start, span.end - _RESOLUTION) if changed else span.end
        segments.append(_Segment(start, end, wall_origin - offset))
        if not changed:
            break
        previous, offset = offset, _offset(zone, end)
        # After falling back, the clock first repeats readings whose grid times already happened before the change.
        start = end + max(previous - offset, timedelta(0))
    return segments


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    """The zone's UTC offset at `instant`."""
    return instant.astimezone(zone).replace(tzinfo=UTC) - instant


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant after `before`, up to `after`, at which the zone's offset is no longer the one at `before`."""
    offset = _offset(zone, before)
    # Bisection: transitions are rare and need no zone internals; a working range spans at most one in practice.
    while after - before > _RESOLUTION:
        middle = before + (after - before) // 2
        if _offset(zone, middle) == offset:
            before = middle
        else:
            after = middle
    return after


def _full_days(booked: Sequence[Interval], zone: ZoneInfo, cap: int) -> set[date]:
    """The local days that already hold `cap` booked consultations."""
    per_day = Counter(consultation.start.astimezone(zone).date() for consultation in booked)
    return {day for day, count in per_day.items() if count >= cap}


def _openings(
    busy: Sequence[Interval], booked: Sequence[Interval], rules: SlotRules
) -> list[tuple[datetime, datetime]]:
    """The stretches, first and last instant included, in which a slot may start clear of all blocked time."""
    before, after = rules.buffer_before, rules.buffer_after
    blocked = merge([*busy, *(consultation.padded(before, after) for consultation in booked)])
    # A slot starting at s, widened, is [s - before, s + meeting + after): it must end by the next blocked start
    # and begin no earlier than the previous blocked end.
    lead = rules.meeting + after
    starts = [_NEVER_BEFORE, *(interval.end + before for interval in blocked)]
    stops = [*(interval.start - lead for interval in blocked), _NEVER_AFTER]
    return [(start, stop) for start, stop in zip(starts, stops, strict=True) if start <= stop]


def _grid_at_or_after(origin: datetime, step: timedelta, instant: datetime) -> datetime:
    """The first of origin + k·step (k an integer) at or after `instant`."""
    return origin - ((origin - instant) // step) * step
