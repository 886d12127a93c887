"""Intervals: half-open stretches of UTC instants, and the set operations availability is made of."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scheduling.intervals import Interval, clip, merge, subtract

BERLIN = ZoneInfo("Europe/Berlin")
MONDAY = datetime(2026, 3, 23, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def at(minute: int) -> datetime:
    """The instant `minute` minutes into Monday 23 March 2026, UTC."""
    return MONDAY + minute * MINUTE


def span(start: int, end: int) -> Interval:
    """The interval from minute `start` to minute `end` of that Monday."""
    return Interval(at(start), at(end))


def minutes_of(intervals: Iterable[Interval]) -> set[int]:
    """The model: the whole minutes an interval list covers (exact, since every bound here is a whole minute)."""
    return {minute for i in intervals for minute in range((i.start - MONDAY) // MINUTE, (i.end - MONDAY) // MINUTE)}


intervals = st.builds(
    lambda start, length: span(start, start + length),
    st.integers(min_value=0, max_value=600),
    st.integers(min_value=1, max_value=120),
)
interval_lists = st.lists(intervals, max_size=12)


def test_an_interval_holds_its_ends_in_utc_whatever_zone_they_were_given_in() -> None:
    """A consultation written in Berlin time compares and prints as the same instants in UTC."""
    local = Interval(datetime(2026, 3, 23, 10, 0, tzinfo=BERLIN), datetime(2026, 3, 23, 10, 45, tzinfo=BERLIN))

    utc = Interval(datetime(2026, 3, 23, 9, 0, tzinfo=UTC), datetime(2026, 3, 23, 9, 45, tzinfo=UTC))

    assert local == utc
    assert local.start.tzinfo is UTC
    assert local.duration == timedelta(minutes=45)


def test_an_interval_across_the_spring_forward_lasts_real_time_not_wall_time() -> None:
    """01:00 to 04:00 in Berlin on 29 March 2026 is two hours: the clocks skip from 02:00 to 03:00."""
    night = Interval(datetime(2026, 3, 29, 1, 0, tzinfo=BERLIN), datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN))

    duration = night.duration

    assert duration == timedelta(hours=2)


@pytest.mark.parametrize(
    ("start", "end", "problem"),
    [
        (datetime(2026, 3, 23, 9, 0), datetime(2026, 3, 23, 10, 0), "aware"),  # noqa: DTZ001  # the naive input under test
        (at(60), at(60), "end after it starts"),
        (at(60), at(30), "end after it starts"),
    ],
)
def test_an_interval_refuses_naive_times_and_empty_or_backward_spans(
    start: datetime, end: datetime, problem: str
) -> None:
    """A naive time has no place on the time line, and an interval lasts a positive time."""
    with pytest.raises(ValueError, match=problem):
        Interval(start, end)


def test_padding_widens_a_meeting_by_its_buffers() -> None:
    """A 10:00-10:45 meeting with 5 minutes before and 15 after occupies 09:55 to 11:00."""
    meeting = span(600, 645)

    padded = meeting.padded(timedelta(minutes=5), timedelta(minutes=15))

    assert padded == span(595, 660)


def test_touching_intervals_neither_overlap_nor_merge_apart() -> None:
    """Back-to-back meetings share no instant, and merge into one block."""
    first, second = span(540, 600), span(600, 660)

    merged = merge([second, first])

    assert not first.overlaps(second)
    assert merged == [span(540, 660)]


@given(intervals, intervals)
def test_overlap_and_containment_agree_with_the_minutes_covered(a: Interval, b: Interval) -> None:
    """Two intervals overlap exactly when they share a minute; one contains the other when it has all its minutes."""
    mine, theirs = minutes_of([a]), minutes_of([b])

    overlaps, contains = a.overlaps(b), a.contains(b)

    assert overlaps == bool(mine & theirs) == b.overlaps(a)
    assert contains == (theirs <= mine)


@given(interval_lists)
def test_merge_gives_sorted_disjoint_non_touching_intervals_covering_the_same_minutes(
    pieces: list[Interval],
) -> None:
    """Merged busy time is in order, with a real gap between blocks, and covers exactly what went in."""
    merged = merge(pieces)

    assert all(earlier.end < later.start for earlier, later in pairwise(merged))
    assert minutes_of(merged) == minutes_of(pieces)
    assert merge(merged) == merged


@given(interval_lists, interval_lists)
def test_subtract_keeps_exactly_the_minutes_of_the_base_outside_the_holes(
    base: list[Interval], holes: list[Interval]
) -> None:
    """What is left shares nothing with the holes, and with the holes' part of the base it makes up the base."""
    remaining = subtract(base, holes)

    assert minutes_of(remaining) == minutes_of(base) - minutes_of(holes)
    assert not any(piece.overlaps(hole) for piece in remaining for hole in holes)
    assert minutes_of(remaining) | (minutes_of(base) & minutes_of(holes)) == minutes_of(base)
    assert remaining == merge(remaining)


@given(interval_lists, intervals)
def test_clip_keeps_exactly_the_minutes_inside_the_window(pieces: list[Interval], window: Interval) -> None:
    """Clipped intervals lie in the window and cover every minute of the input that the window covers."""
    clipped = clip(pieces, window)

    assert all(window.contains(piece) for piece in clipped)
    assert minutes_of(clipped) == minutes_of(pieces) & minutes_of([window])
    assert clipped == merge(clipped)


@given(interval_lists, interval_lists)
def test_subtracting_the_holes_equals_clipping_to_each_gap_between_them(
    base: list[Interval], holes: list[Interval]
) -> None:
    """Subtract is the base clipped to the complement of the holes: the two routes give the same intervals."""
    gaps = subtract([span(-1, 800)], holes)

    remaining = subtract(base, holes)

    assert remaining == merge(piece for gap in gaps for piece in clip(base, gap))
