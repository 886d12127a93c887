"""Free slots: when a prospect can book an expert, from working hours, busy time, booked consultations and rules."""

from __future__ import annotations

import tomllib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from scheduling.intervals import Interval
from scheduling.model import WEEKDAYS, LocalRange, SlotRules, WorkingHours
from scheduling.slots import free_slots, working_intervals

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")
KOLKATA = ZoneInfo("Asia/Kolkata")
MINUTE = timedelta(minutes=1)
# Quick rules for examples about the clock: no buffers, little notice.
PLAIN = SlotRules(meeting_minutes=45, step_minutes=15, buffer_after_minutes=0, notice_minutes=1, horizon_days=3)

# The days the clocks change in 2026.
CLOCK_CHANGES = [
    pytest.param(BERLIN, date(2026, 3, 29), id="Berlin springs forward"),
    pytest.param(BERLIN, date(2026, 10, 25), id="Berlin falls back"),
    pytest.param(NEW_YORK, date(2026, 3, 8), id="New York springs forward"),
    pytest.param(NEW_YORK, date(2026, 11, 1), id="New York falls back"),
    pytest.param(SYDNEY, date(2026, 10, 4), id="Sydney springs forward"),
    pytest.param(SYDNEY, date(2026, 4, 5), id="Sydney falls back"),
]


def local(zone: ZoneInfo, day: date, hour: int, minute: int = 0) -> datetime:
    """The first instant the expert's clock reads hour:minute on `day`."""
    return datetime.combine(day, time(hour, minute), tzinfo=zone)


def clock(slots: list[Interval], zone: ZoneInfo) -> list[str]:
    """The slots' start times as the expert's clock shows them."""
    return [slot.start.astimezone(zone).strftime("%H:%M") for slot in slots]


def quarter_hours(first: str, last: str) -> list[str]:
    """Every quarter hour from `first` to `last` on the clock, both included."""
    start, stop = (int(text[:2]) * 60 + int(text[3:]) for text in (first, last))
    return [f"{minute // 60:02d}:{minute % 60:02d}" for minute in range(start, stop + 1, 15)]


def only_on(day: date, *ranges: str) -> WorkingHours:
    """Working hours with nothing but `ranges` on `day`."""
    return WorkingHours.model_validate({"overrides": [{"date": day, "hours": list(ranges)}]})


def the_day_of(day: date, zone: ZoneInfo) -> Interval:
    """From local midnight before `day` to local midnight after it."""
    return Interval(local(zone, day, 0), local(zone, day + timedelta(days=1), 0))


# Working hours: configuration


def test_working_hours_read_from_toml_keep_weekdays_ranges_and_date_overrides() -> None:
    """Split days, a day off on Christmas Eve and a short New Year's Eve read as written, dates as dates or text."""
    text = """
    monday = ["13:30-17:00", "09:00-12:30"]
    friday = ["09:00-13:00"]
    overrides = [{ date = 2026-12-24, hours = [] }, { date = "2026-12-31", hours = ["09:00-13:00"] }]
    """

    hours = WorkingHours.model_validate(tomllib.loads(text))

    assert hours.on(date(2026, 12, 21)) == (LocalRange.parse("09:00-12:30"), LocalRange.parse("13:30-17:00"))
    assert hours.on(date(2026, 12, 22)) == ()
    assert hours.on(date(2026, 12, 24)) == ()
    assert hours.on(date(2026, 12, 31)) == (LocalRange(9 * 60, 13 * 60),)
    assert hours.on(date(2026, 12, 25)) == (LocalRange(9 * 60, 13 * 60),)


def test_office_hours_are_monday_to_friday_nine_to_five() -> None:
    """The hours of an expert who configures none are the working week from 09:00 to 17:00."""
    week = {weekday: ["09:00-17:00"] for weekday in WEEKDAYS[:5]}

    hours = WorkingHours.office_hours()

    assert hours == WorkingHours.model_validate(week)
    assert hours.on(date(2026, 3, 28)) == hours.on(date(2026, 3, 29)) == ()


def test_working_hours_survive_a_round_trip_through_their_dump() -> None:
    """Dumped hours are written as they would be in TOML, and read back to the same value."""
    hours = WorkingHours.model_validate(
        {"tuesday": ["08:00-12:00", "18:00-24:00"], "overrides": [{"date": "2026-05-01", "hours": []}]}
    )

    dumped = hours.model_dump()

    assert dumped["tuesday"] == ["08:00-12:00", "18:00-24:00"]
    assert WorkingHours.model_validate(dumped) == hours


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"monday": ["09:00-25:00"]}, "25:00 in '09:00-25:00' is not a time of day"),
        ({"monday": ["09:60-12:00"]}, "09:60 in '09:60-12:00' is not a time of day"),
        ({"monday": ["24:00-24:00"]}, "starts at 24:00"),
        ({"monday": ["17:00-09:00"]}, "'17:00-09:00' ends before it starts; a range cannot cross midnight"),
        ({"monday": ["09:00-09:00"]}, "'09:00-09:00' is empty"),
        ({"monday": ["09:00-12:00", "11:30-14:00"]}, "'09:00-12:00' and '11:30-14:00' overlap"),
        ({"monday": ["12:00-17:00", "09:00-12:00"]}, "touch; write them as one range '09:00-17:00'"),
        ({"monday": ["9am-5pm"]}, "'9am-5pm' is not a time range like '09:00-17:00'"),
        ({"monday": [900]}, "900 is not a time range"),
        ({"monday": "09:00-17:00"}, "hours are a list of ranges"),
        ({"overrides": [{"date": "24.12.2026", "hours": []}]}, "'24.12.2026' is not a date like 2026-12-24"),
        ({"overrides": [{"date": "2026-02-30", "hours": []}]}, "'2026-02-30' is not a date"),
        ({"overrides": [{"date": datetime(2026, 12, 24, 9, tzinfo=UTC), "hours": []}]}, "has a time"),
        (
            {
                "overrides": [
                    {"date": "2026-12-24", "hours": []},
                    {"date": date(2026, 12, 24), "hours": ["09:00-12:00"]},
                ]
            },
            "2026-12-24 is overridden more than once",
        ),
    ],
)
def test_working_hours_that_make_no_sense_are_refused_with_the_reason(config: dict[str, Any], problem: str) -> None:
    """Impossible times, backward, overlapping or touching ranges, bad dates and doubled overrides say what is wrong."""
    with pytest.raises(ValidationError, match=problem):
        WorkingHours.model_validate(config)


def test_a_bad_range_is_reported_at_its_weekday_or_override() -> None:
    """The configuration error points at the key to fix: the weekday, or the override's hours."""
    config = {"friday": ["09:00-25:00"], "overrides": [{"date": "2026-12-31", "hours": ["13:00-09:00"]}]}

    with pytest.raises(ValidationError) as raised:
        WorkingHours.model_validate(config)

    assert [error["loc"] for error in raised.value.errors()] == [("friday",), ("overrides", 0, "hours")]


@pytest.mark.parametrize(
    "config",
    [
        {"mondays": ["09:00-17:00"]},
        {"overrides": [{"date": "2026-12-24", "hours": [], "note": "Christmas"}]},
        {"overrides": [{"day": "2026-12-24", "hours": []}]},
    ],
)
def test_working_hours_refuse_keys_they_do_not_know(config: dict[str, Any]) -> None:
    """A misspelt weekday or override key is an error, not a silent day off."""
    with pytest.raises(ValidationError, match=r"Extra inputs are not permitted|Field required"):
        WorkingHours.model_validate(config)


def test_a_range_may_end_at_midnight() -> None:
    """An evening shift written "18:00-24:00" runs to the end of the day."""
    evening = LocalRange.parse("18:00-24:00")

    shown = str(evening)

    assert (evening.start, evening.end) == (timedelta(hours=18), timedelta(hours=24))
    assert shown == "18:00-24:00"


# Slot rules: configuration


def test_slot_rules_default_to_45_minute_consultations_every_quarter_hour() -> None:
    """With nothing configured: 45 minutes, a quarter-hour grid, 15 minutes after, 4 hours' notice, 30 days, 6 a day."""
    rules = SlotRules()

    assert (rules.meeting, rules.step) == (timedelta(minutes=45), timedelta(minutes=15))
    assert (rules.buffer_before, rules.buffer_after) == (timedelta(0), timedelta(minutes=15))
    assert (rules.notice, rules.horizon, rules.max_per_day) == (timedelta(hours=4), timedelta(days=30), 6)


@pytest.mark.parametrize(
    ("config", "problem"),
    [
        ({"meeting_minutes": 0}, "greater than 0"),
        ({"step_minutes": -15}, "greater than 0"),
        ({"notice_minutes": 0}, "greater than 0"),
        ({"horizon_days": 0}, "greater than 0"),
        ({"max_per_day": 0}, "greater than 0"),
        ({"buffer_after_minutes": -5}, "greater than or equal to 0"),
        ({"meeting_minutes": "45"}, "valid integer"),
        ({"meeting_minutes": 45.0}, "valid integer"),
        ({"buffer_before_minutes": True}, "valid integer"),
        ({"meeting_minute": 45}, "Extra inputs are not permitted"),
    ],
)
def test_slot_rules_refuse_non_positive_quoted_or_unknown_numbers(config: dict[str, Any], problem: str) -> None:
    """Lengths and counts are positive integers, buffers may be zero, and a typo in a key is an error."""
    with pytest.raises(ValidationError, match=problem):
        SlotRules.model_validate(config)


def test_slot_rules_accept_buffers_of_zero() -> None:
    """An expert may take consultations back to back."""
    rules = SlotRules.model_validate({"buffer_before_minutes": 0, "buffer_after_minutes": 0})

    assert rules.buffer_before == rules.buffer_after == timedelta(0)


# Working time across clock changes


@pytest.mark.parametrize(
    ("zone", "day", "hours_worked"),
    [
        (BERLIN, date(2026, 3, 29), 2),
        (BERLIN, date(2026, 10, 25), 4),
        (NEW_YORK, date(2026, 3, 8), 2),
        (NEW_YORK, date(2026, 11, 1), 4),
        (SYDNEY, date(2026, 10, 4), 2),
        (SYDNEY, date(2026, 4, 5), 4),
        (KOLKATA, date(2026, 3, 29), 3),
    ],
)
def test_a_night_range_lasts_the_real_time_the_clocks_let_it(zone: ZoneInfo, day: date, hours_worked: int) -> None:
    """01:00-04:00 lasts two hours when the clocks spring forward, four when they fall back, else three."""
    hours = only_on(day, "01:00-04:00")

    worked = working_intervals(hours, zone, the_day_of(day, zone))

    assert [interval.duration for interval in worked] == [timedelta(hours=hours_worked)]
    assert worked[0].start == local(zone, day, 1).astimezone(UTC)


def test_a_range_starting_in_the_skipped_hour_starts_when_the_clocks_resume() -> None:
    """02:30 does not exist in Berlin on 29 March 2026, so 02:30-05:00 runs from 03:00 CEST: two hours."""
    hours = only_on(date(2026, 3, 29), "02:30-05:00")

    worked = working_intervals(hours, BERLIN, the_day_of(date(2026, 3, 29), BERLIN))

    assert worked == [Interval(datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 29, 3, 0, tzinfo=UTC))]


def test_working_time_is_clipped_to_the_window_asked_about() -> None:
    """Asking from Tuesday noon to Wednesday noon gives Tuesday afternoon and Wednesday morning."""
    window = Interval(local(BERLIN, date(2026, 3, 24), 12), local(BERLIN, date(2026, 3, 25), 12))

    worked = working_intervals(WorkingHours.office_hours(), BERLIN, window)

    assert worked == [
        Interval(local(BERLIN, date(2026, 3, 24), 12), local(BERLIN, date(2026, 3, 24), 17)),
        Interval(local(BERLIN, date(2026, 3, 25), 9), local(BERLIN, date(2026, 3, 25), 12)),
    ]


# Slots across clock changes


@pytest.mark.parametrize(("zone", "day"), CLOCK_CHANGES)
def test_slots_on_the_day_the_clocks_change_start_on_the_quarter_hours_of_the_local_clock(
    zone: ZoneInfo, day: date
) -> None:
    """09:00-12:00 offers 09:00, 09:15, ... 11:15 by the expert's clock, each lasting 45 real minutes."""
    hours = only_on(day, "09:00-12:00")

    slots = free_slots(hours=hours, zone=zone, rules=PLAIN, busy=[], booked=[], now=local(zone, day, 0) - 2 * MINUTE)

    assert clock(slots, zone) == quarter_hours("09:00", "11:15")
    assert slots[0].start == local(zone, day, 9).astimezone(UTC)
    assert all(slot.duration == timedelta(minutes=45) for slot in slots)


def test_the_skipped_hour_offers_no_slot_and_slots_may_run_across_it() -> None:
    """Berlin, 29 March 2026, 01:00-04:00: 01:00 to 01:45, then 03:00 and 03:15; 01:45 CET ends at 03:30 CEST."""
    day = date(2026, 3, 29)

    slots = free_slots(hours=only_on(day, "01:00-04:00"), zone=BERLIN, rules=PLAIN, busy=[], booked=[], now=_eve(day))

    assert clock(slots, BERLIN) == ["01:00", "01:15", "01:30", "01:45", "03:00", "03:15"]
    assert slots[3].end.astimezone(BERLIN) == local(BERLIN, day, 3, 30)


def test_the_repeated_hour_offers_each_clock_time_once_at_its_first_occurrence() -> None:
    """Berlin, 25 October 2026, 01:00-04:00: 01:00 to 02:45 summer time, then 03:00 and 03:15; no time twice."""
    day = date(2026, 10, 25)

    slots = free_slots(hours=only_on(day, "01:00-04:00"), zone=BERLIN, rules=PLAIN, busy=[], booked=[], now=_eve(day))

    assert clock(slots, BERLIN) == [*quarter_hours("01:00", "02:45"), "03:00", "03:15"]
    assert [slot.start.astimezone(BERLIN).tzname() for slot in slots] == ["CEST"] * 8 + ["CET"] * 2


@pytest.mark.parametrize(("zone", "day"), CLOCK_CHANGES)
def test_a_night_range_offers_every_existing_quarter_hour_once(zone: ZoneInfo, day: date) -> None:
    """Across any clock change, the night's slots are the grid times the clock shows, each once and in order."""
    hours = only_on(day, "00:00-06:00")
    existing = [
        text
        for text in quarter_hours("00:00", "05:15")
        if local(zone, day, *map(int, text.split(":"))).astimezone(UTC).astimezone(zone).strftime("%H:%M") == text
    ]

    slots = free_slots(hours=hours, zone=zone, rules=PLAIN, busy=[], booked=[], now=_eve(day))

    assert clock(slots, zone) == existing
    assert all(slot.start.astimezone(zone).fold == 0 for slot in slots)
    assert all(earlier.start < later.start for earlier, later in pairwise(slots))


def test_the_grid_counts_from_the_range_start_even_when_that_time_is_skipped() -> None:
    """02:30-05:00 with a 20-minute step on Berlin's spring-forward day: 02:30 and 02:50 do not exist, 03:10 does."""
    day = date(2026, 3, 29)
    rules = PLAIN.model_copy(update={"step_minutes": 20})

    slots = free_slots(hours=only_on(day, "02:30-05:00"), zone=BERLIN, rules=rules, busy=[], booked=[], now=_eve(day))

    assert clock(slots, BERLIN) == ["03:10", "03:30", "03:50", "04:10"]


# Days off and overrides


def test_no_slots_at_weekends_or_on_a_day_off_and_override_hours_replace_the_weekday() -> None:
    """Christmas Eve (a Thursday) is off, New Year's Eve ends at 13:00, and the weekend has nothing."""
    hours = WorkingHours.model_validate(
        {
            **{weekday: ["09:00-17:00"] for weekday in WEEKDAYS[:5]},
            "overrides": [{"date": "2026-12-24", "hours": []}, {"date": "2026-12-31", "hours": ["09:00-13:00"]}],
        }
    )
    rules = SlotRules(buffer_after_minutes=0, horizon_days=14)

    slots = free_slots(
        hours=hours, zone=BERLIN, rules=rules, busy=[], booked=[], now=local(BERLIN, date(2026, 12, 21), 0)
    )
    days = Counter(slot.start.astimezone(BERLIN).date() for slot in slots)

    assert days[date(2026, 12, 23)] == len(quarter_hours("09:00", "16:15"))
    assert days[date(2026, 12, 24)] == 0
    assert days[date(2026, 12, 26)] == days[date(2026, 12, 27)] == 0
    assert clock([s for s in slots if s.start.astimezone(BERLIN).date() == date(2026, 12, 31)], BERLIN) == (
        quarter_hours("09:00", "12:15")
    )


# Busy time, buffers and booked consultations


def test_buffers_keep_slots_clear_of_a_busy_meeting_but_may_fall_outside_working_hours() -> None:
    """Busy 11:00-12:00, 10 minutes before and 15 after: slots end by 10:45 and resume at 12:15; 09:00 still counts."""
    monday = date(2026, 3, 23)
    rules = SlotRules(buffer_before_minutes=10, buffer_after_minutes=15, notice_minutes=60, horizon_days=1)
    busy = [Interval(local(BERLIN, monday, 11), local(BERLIN, monday, 12))]

    slots = free_slots(
        hours=WorkingHours.office_hours(), zone=BERLIN, rules=rules, busy=busy, booked=[], now=local(BERLIN, monday, 6)
    )

    assert clock(slots, BERLIN) == [*quarter_hours("09:00", "10:00"), *quarter_hours("12:15", "16:15")]


def test_a_booked_consultation_keeps_its_buffers_as_well() -> None:
    """With 15 minutes after each consultation, one booked at 10:00 blocks starts from 09:15 to 10:45."""
    monday = date(2026, 3, 23)
    rules = SlotRules(notice_minutes=60, horizon_days=1)
    booked = [Interval(local(BERLIN, monday, 10), local(BERLIN, monday, 10, 45))]

    slots = free_slots(
        hours=WorkingHours.office_hours(),
        zone=BERLIN,
        rules=rules,
        busy=[],
        booked=booked,
        now=local(BERLIN, monday, 6),
    )

    assert clock(slots, BERLIN) == ["09:00", *quarter_hours("11:00", "16:15")]


def test_a_gap_exactly_one_consultation_and_its_buffers_long_holds_exactly_one_slot() -> None:
    """Booked at 10:00 and 12:00 with 15 minutes after each: 11:00 fits to the minute, 10:45 and 11:15 do not."""
    monday = date(2026, 3, 23)
    rules = SlotRules(notice_minutes=60, horizon_days=1)
    booked = [
        Interval(local(BERLIN, monday, 10), local(BERLIN, monday, 10, 45)),
        Interval(local(BERLIN, monday, 12), local(BERLIN, monday, 12, 45)),
    ]

    slots = free_slots(
        hours=WorkingHours.office_hours(),
        zone=BERLIN,
        rules=rules,
        busy=[],
        booked=booked,
        now=local(BERLIN, monday, 6),
    )

    assert clock(slots, BERLIN) == ["09:00", "11:00", *quarter_hours("13:00", "16:15")]


def test_busy_time_in_another_zone_blocks_the_same_instants() -> None:
    """While only America has moved its clocks, 09:00-10:00 in New York is 14:00-15:00 in Berlin, and blocks it."""
    monday = date(2026, 3, 23)
    rules = SlotRules(notice_minutes=60, horizon_days=1)
    busy = [Interval(local(NEW_YORK, monday, 9), local(NEW_YORK, monday, 10))]

    slots = free_slots(
        hours=WorkingHours.office_hours(), zone=BERLIN, rules=rules, busy=busy, booked=[], now=local(BERLIN, monday, 6)
    )

    assert clock(slots, BERLIN) == [*quarter_hours("09:00", "13:00"), *quarter_hours("15:00", "16:15")]


# Notice, horizon and the daily cap


def test_slots_start_no_sooner_than_the_notice_and_before_the_horizon() -> None:
    """Asked Monday 09:00 with 4 hours' notice and 2 days ahead: the first at 13:00, the last Wednesday 08:45."""
    monday = date(2026, 3, 23)
    rules = SlotRules(buffer_after_minutes=0, notice_minutes=240, horizon_days=2)
    hours = WorkingHours.model_validate({day: ["08:00-18:00"] for day in ("monday", "tuesday", "wednesday")})

    slots = free_slots(hours=hours, zone=BERLIN, rules=rules, busy=[], booked=[], now=local(BERLIN, monday, 9))

    assert slots[0].start == local(BERLIN, monday, 13)
    assert slots[-1].start == local(BERLIN, monday + timedelta(days=2), 8, 45)


def test_a_day_with_as_many_consultations_as_allowed_offers_none_counted_by_the_experts_clock() -> None:
    """Two booked on Wednesday (one at 00:30 Berlin, Tuesday in UTC) fill Wednesday under a cap of 2, not Tuesday."""
    tuesday, wednesday = date(2026, 3, 24), date(2026, 3, 25)
    rules = SlotRules(max_per_day=2, notice_minutes=60, horizon_days=3)
    booked = [
        Interval(local(BERLIN, wednesday, 0, 30), local(BERLIN, wednesday, 1, 15)),
        Interval(local(BERLIN, wednesday, 18), local(BERLIN, wednesday, 18, 45)),
    ]

    slots = free_slots(
        hours=WorkingHours.office_hours(),
        zone=BERLIN,
        rules=rules,
        busy=[],
        booked=booked,
        now=local(BERLIN, tuesday, 0),
    )
    days = Counter(slot.start.astimezone(BERLIN).date() for slot in slots)

    assert booked[0].start.date() == tuesday
    assert days[tuesday] == len(quarter_hours("09:00", "16:15"))
    assert days[wednesday] == 0
    assert days[date(2026, 3, 26)] > 0


def test_the_notice_is_real_time_even_when_now_is_read_on_a_clock_that_changes() -> None:
    """Four hours after 00:30 CET on Berlin's spring-forward night is 05:30 CEST, not 04:30: the clocks skip an hour."""
    day = date(2026, 3, 29)
    rules = PLAIN.model_copy(update={"notice_minutes": 240})
    now = local(BERLIN, day, 0, 30)

    slots = free_slots(hours=only_on(day, "00:00-12:00"), zone=BERLIN, rules=rules, busy=[], booked=[], now=now)

    assert clock(slots[:1], BERLIN) == ["05:30"]


def test_free_slots_refuse_a_naive_now() -> None:
    """The clock's reading must say which zone it is in."""
    naive = datetime(2026, 3, 23, 9, 0)  # noqa: DTZ001  # the naive input under test

    with pytest.raises(ValueError, match="aware"):
        free_slots(hours=WorkingHours.office_hours(), zone=BERLIN, rules=SlotRules(), busy=[], booked=[], now=naive)


def _eve(day: date) -> datetime:
    """Early enough before `day` for any notice used in these examples."""
    return datetime.combine(day - timedelta(days=1), time(), tzinfo=UTC)


# Properties against a simple reading of the rules

# The instants (UTC) the clocks change in 2026 in the zones that change them; scenarios cluster around these, or
# around an ordinary Monday.
CLOCK_CHANGE_INSTANTS = {
    BERLIN: [datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)],
    NEW_YORK: [datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)],
    SYDNEY: [datetime(2026, 4, 4, 16, tzinfo=UTC), datetime(2026, 10, 3, 16, tzinfo=UTC)],
}
ORDINARY = datetime(2026, 6, 15, 8, tzinfo=UTC)
ZONES = [BERLIN, NEW_YORK, SYDNEY, KOLKATA, ZoneInfo("UTC")]
FIVE = timedelta(minutes=5)


@dataclass(frozen=True)
class Scenario:
    """Everything free_slots is asked about, drawn at random."""

    hours: WorkingHours
    zone: ZoneInfo
    rules: SlotRules
    busy: list[Interval]
    booked: list[Interval]
    now: datetime

    def slots(self) -> list[Interval]:
        """What free_slots offers in this scenario."""
        return free_slots(
            hours=self.hours, zone=self.zone, rules=self.rules, busy=self.busy, booked=self.booked, now=self.now
        )

    def clear(self, slot: Interval) -> bool:
        """Whether the slot with its buffers misses all busy time and every booked consultation with its buffers."""
        before, after = self.rules.buffer_before, self.rules.buffer_after
        padded = slot.padded(before, after)
        return not any(padded.overlaps(b) for b in self.busy) and not any(
            padded.overlaps(c.padded(before, after)) for c in self.booked
        )

    def booked_on(self, day: date) -> int:
        """How many booked consultations start on `day` by the expert's clock."""
        return sum(1 for c in self.booked if c.start.astimezone(self.zone).date() == day)


def _clock_text(tick: int) -> str:
    return f"{tick * 5 // 60:02d}:{tick * 5 % 60:02d}"


@st.composite
def day_hours(draw: st.DrawFn) -> list[str]:
    """A day's hours as written in the configuration: all day, office hours, or up to three ranges on 5-minute ticks."""
    ticks = sorted(draw(st.lists(st.integers(min_value=0, max_value=288), unique=True, max_size=6)))
    ranges = [f"{_clock_text(start)}-{_clock_text(end)}" for start, end in zip(ticks[::2], ticks[1::2], strict=False)]
    return draw(st.sampled_from([ranges, ["00:00-24:00"], ["09:00-12:30", "13:30-17:00"]]))


def minutes(least: int, most: int) -> st.SearchStrategy[int]:
    """A number of minutes from `least` to `most`, a multiple of five more often than not."""
    return st.one_of(st.integers(-(-least // 5), most // 5).map(lambda n: n * 5), st.integers(least, most))


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    """A random expert, rules, calendar and moment, often across a night the clocks change."""
    zone = draw(st.sampled_from(ZONES))
    changes = CLOCK_CHANGE_INSTANTS.get(zone, [])
    across_the_change = bool(changes) and draw(st.booleans())
    anchor = draw(st.sampled_from(changes if across_the_change else [*changes, ORDINARY]))
    rules = SlotRules(
        meeting_minutes=draw(st.integers(min_value=1, max_value=18)) * 5,
        step_minutes=draw(st.integers(min_value=1, max_value=12)) * 5,
        buffer_before_minutes=draw(minutes(0, 30)),
        buffer_after_minutes=draw(minutes(0, 30)),
        notice_minutes=draw(minutes(1, 600)),
        horizon_days=draw(st.integers(min_value=1, max_value=3)),
        max_per_day=draw(st.integers(min_value=1, max_value=8)),
    )
    # Most instants fall on five-minute ticks, as grid times do, so that exact fits and exact bounds turn up often.
    seconds = draw(st.one_of(st.just(0), st.integers(1, 299))) * timedelta(seconds=1)
    if across_the_change:
        now = anchor - rules.notice - draw(st.integers(min_value=1, max_value=12 * 12)) * FIVE - seconds
    else:
        now = anchor + draw(st.integers(min_value=-2 * 24 * 12, max_value=6 * 12)) * FIVE + seconds
    config: dict[str, Any] = {weekday: draw(day_hours()) for weekday in WEEKDAYS}
    override_days = draw(st.lists(st.integers(min_value=-1, max_value=4), unique=True, max_size=2))
    overrides = {now.date() + timedelta(days=d): draw(day_hours()) for d in override_days}
    if across_the_change:
        # Work through the night of the change: from 00:00-03:20, for up to four hours.
        start = draw(st.sampled_from(range(41)))
        end = start + draw(st.sampled_from(range(1, 49)))
        overrides[anchor.astimezone(zone).date()] = [f"{_clock_text(start)}-{_clock_text(end)}"]
    config["overrides"] = [{"date": day, "hours": hours} for day, hours in overrides.items()]
    around = st.integers(min_value=-3 * 24 * 12, max_value=4 * 24 * 12).map(lambda tick: anchor + tick * FIVE)
    busy = [Interval(start, start + draw(minutes(1, 240)) * MINUTE) for start in draw(st.lists(around, max_size=8))]
    booked = [Interval(start, start + rules.meeting) for start in draw(st.lists(around, max_size=5))]
    # Consultations booked back to back soon after the notice, some missing: each gap fits one slot exactly, no more.
    first = anchor + (-((anchor - now - rules.notice) // FIVE) + draw(st.integers(-12, 24 * 12))) * FIVE
    pitch = rules.meeting + rules.buffer_before + rules.buffer_after
    booked += [Interval(first + k * pitch, first + k * pitch + rules.meeting) for k in draw(st.sets(st.integers(0, 4)))]
    return Scenario(WorkingHours.model_validate(config), zone, rules, busy, booked, now)


def first_instant_reading(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant the clock reads `wall` or later: its first occurrence, or the end of the gap that skips it."""
    moment = wall.astimezone(UTC)
    # fold=0 reads a skipped time with the offset from before the gap, landing after the gap: walk back to its end.
    while (moment - MINUTE).astimezone(zone) >= wall:
        moment -= MINUTE
    return moment


def reference_slots(scenario: Scenario) -> Iterator[Interval]:
    """Every grid start of every working range, tried one by one against every rule."""
    zone, rules = scenario.zone, scenario.rules
    earliest, horizon = scenario.now + rules.notice, scenario.now + rules.horizon
    day = earliest.astimezone(zone).date() - timedelta(days=2)
    while day <= horizon.astimezone(zone).date() + timedelta(days=2):
        midnight = datetime.combine(day, time(), tzinfo=zone)
        for working in scenario.hours.on(day):
            start_reading, end_reading = midnight + working.start, midnight + working.end
            begins, ends = first_instant_reading(start_reading, zone), first_instant_reading(end_reading, zone)
            reading = start_reading
            while reading < end_reading:
                start = reading.astimezone(UTC)
                slot = Interval(start, start + rules.meeting)
                exists = start.astimezone(zone) == reading
                if (
                    exists
                    and begins <= slot.start
                    and slot.end <= ends
                    and earliest <= slot.start < horizon
                    and scenario.booked_on(day) < rules.max_per_day
                    and scenario.clear(slot)
                ):
                    yield slot
                reading += rules.step
        day += timedelta(days=1)


def inside_working_hours(slot: Interval, scenario: Scenario) -> bool:
    """Whether the slot lies in one working range, judged minute by minute on the expert's clock."""
    zone = scenario.zone
    start = slot.start.astimezone(zone)
    midnight = datetime.combine(start.date(), time(), tzinfo=zone)
    # A clock time shown twice is worked at its first showing; a slot starting at the second would start too late.
    if start.fold:
        return False
    for working in scenario.hours.on(start.date()):
        if midnight + working.start <= start < midnight + working.end:
            minutes = range(slot.duration // MINUTE)
            inside = all((slot.start + k * MINUTE).astimezone(zone) < midnight + working.end for k in minutes)
            # The slot's last instant, not its end, is read on the clock: when the clocks jump forward at the
            # very end of a range (02:00 that never shows), the end reads 03:00 though nothing after 02:00 is used.
            last = (slot.end - timedelta(microseconds=1)).astimezone(zone)
            return inside and last < midnight + working.end
    return False


@settings(deadline=None)
@given(scenarios())
def test_no_slot_with_its_buffers_touches_busy_time_or_a_booked_consultation_with_its_buffers(
    scenario: Scenario,
) -> None:
    """However the calendar looks, an offered consultation with its buffers stays clear of everything blocked."""
    slots = scenario.slots()

    assert all(scenario.clear(slot) for slot in slots)


@settings(deadline=None)
@given(scenarios())
def test_every_slot_lies_inside_one_working_range_on_the_experts_clock(scenario: Scenario) -> None:
    """Read on the expert's own clock, each slot starts and ends within one of that day's working ranges."""
    slots = scenario.slots()

    assert all(inside_working_hours(slot, scenario) for slot in slots)


@settings(deadline=None)
@given(scenarios())
def test_slots_are_sorted_exactly_one_meeting_long_within_notice_and_horizon_and_under_the_daily_cap(
    scenario: Scenario,
) -> None:
    """Slots come in order, last the meeting length, start after the notice and before the horizon, on open days."""
    rules = scenario.rules

    slots = scenario.slots()

    assert all(earlier.start < later.start for earlier, later in pairwise(slots))
    assert all(slot.duration == rules.meeting for slot in slots)
    assert all(scenario.now + rules.notice <= slot.start < scenario.now + rules.horizon for slot in slots)
    assert all(scenario.booked_on(slot.start.astimezone(scenario.zone).date()) < rules.max_per_day for slot in slots)


@settings(deadline=None, max_examples=300)
@given(scenarios())
def test_free_slots_are_exactly_the_grid_starts_a_brute_force_search_accepts(scenario: Scenario) -> None:
    """Nothing allowed is missed and nothing else offered: the fast walk agrees with trying every grid time."""
    expected = list(reference_slots(scenario))

    slots = scenario.slots()

    assert slots == expected


def test_a_range_ending_at_a_skipped_clock_time_offers_a_slot_up_to_the_jump() -> None:
    """Working until 02:00 on Berlin's spring-forward night: a 01:55 slot ends as the clocks jump to 03:00."""
    hours = WorkingHours.model_validate({"overrides": [{"date": "2026-03-29", "hours": ["00:00-02:00"]}]})
    rules = SlotRules(meeting_minutes=5, step_minutes=5, buffer_after_minutes=0, notice_minutes=5, horizon_days=1)

    slots = free_slots(
        hours=hours, zone=BERLIN, rules=rules, busy=[], booked=[], now=datetime(2026, 3, 29, 0, 50, tzinfo=UTC)
    )

    assert [slot.start.astimezone(BERLIN).strftime("%H:%M") for slot in slots] == ["01:55"]
    assert slots[0].end == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
