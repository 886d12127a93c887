"""Reading busy time from iCalendar feeds: hand-written calendars, each checked against the intervals it must give.

Every reading here goes through both `read_busy` and `read_busy_full`, and the two must agree exactly.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scheduling import ics
from scheduling.ics import FeedReading, read_busy, read_busy_full
from scheduling.intervals import Interval

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
KOLKATA = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 3, 23, 9, 0, tzinfo=UTC)  # a Monday; Berlin springs forward on Sunday 29 March
WINDOW = Interval(NOW - timedelta(days=1), NOW + timedelta(days=30))


def feed(*components: str, header: str = "") -> str:
    """A VCALENDAR holding `components`, CRLF line ends as RFC 5545 asks."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//consultbot//tests//EN", *header.split("\n")]
    return "\r\n".join(line for line in lines if line) + "\r\n" + "".join(components) + "END:VCALENDAR\r\n"


def event(uid: str, *lines: str) -> str:
    """A VEVENT with this UID and these property lines."""
    return "".join(f"{line}\r\n" for line in ("BEGIN:VEVENT", f"UID:{uid}", *lines, "END:VEVENT"))


def read(ics_text: str | bytes, *, window: Interval = WINDOW, zone: ZoneInfo = BERLIN) -> FeedReading:
    """The reading of the fast path, after checking that the full path reads exactly the same."""
    fast = read_busy(ics_text, window=window, zone=zone)
    assert fast == read_busy_full(ics_text, window=window, zone=zone)
    return fast


def berlin(day: int, hour: int, minute: int = 0, *, month: int = 3) -> datetime:
    """A wall-clock time in Berlin in 2026."""
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN)


def span(start: datetime, end: datetime) -> Interval:
    """The interval between two instants."""
    return Interval(start, end)


def test_a_meeting_in_berlin_is_busy_from_its_start_to_its_end() -> None:
    """A 10:00-11:00 meeting with TZID=Europe/Berlin blocks exactly that hour."""
    text = feed(event("a", "DTSTART;TZID=Europe/Berlin:20260324T100000", "DTEND;TZID=Europe/Berlin:20260324T110000"))

    reading = read(text)

    assert reading.busy == (span(berlin(24, 10), berlin(24, 11)),)
    assert reading.events == 1
    assert reading.problems == ()
    assert reading.failure is None


def test_only_the_part_inside_the_window_counts_and_overlapping_meetings_merge() -> None:
    """A trip that began before the window is clipped, and two overlapping calls become one busy stretch."""
    text = feed(
        event("trip", "DTSTART:20260320T080000Z", "DTEND:20260322T120000Z"),
        event("call-1", "DTSTART:20260325T090000Z", "DTEND:20260325T100000Z"),
        event("call-2", "DTSTART:20260325T093000Z", "DTEND:20260325T110000Z"),
    )

    reading = read(text)

    assert reading.busy == (
        span(WINDOW.start, datetime(2026, 3, 22, 12, tzinfo=UTC)),
        span(datetime(2026, 3, 25, 9, tzinfo=UTC), datetime(2026, 3, 25, 11, tzinfo=UTC)),
    )


def test_a_weekly_series_is_busy_at_each_occurrence_and_keeps_local_time_across_dst() -> None:
    """A Tuesday 09:00 Berlin stand-up from 2024 is at 08:00 UTC before 29 March and 07:00 UTC after it."""
    text = feed(
        event(
            "standup",
            "DTSTART;TZID=Europe/Berlin:20240102T090000",
            "DTEND;TZID=Europe/Berlin:20240102T091500",
            "RRULE:FREQ=WEEKLY;BYDAY=TU",
        )
    )

    reading = read(text)

    days = [(3, 24), (3, 31), (4, 7), (4, 14), (4, 21)]
    assert reading.busy == tuple(
        span(berlin(day, 9, month=month), berlin(day, 9, 15, month=month)) for month, day in days
    )
    assert reading.busy[0].start == datetime(2026, 3, 24, 8, tzinfo=UTC)
    assert reading.busy[1].start == datetime(2026, 3, 31, 7, tzinfo=UTC)


def test_an_hourly_series_tens_of_thousands_of_occurrences_old_still_reaches_the_window() -> None:
    """An hourly ten-minute check-in running since 2024 is busy at every hour of a three-hour window."""
    text = feed(event("pulse", "DTSTART:20240101T000000Z", "DURATION:PT10M", "RRULE:FREQ=HOURLY"))
    window = Interval(datetime(2026, 3, 24, 10, tzinfo=UTC), datetime(2026, 3, 24, 13, tzinfo=UTC))

    reading = read(text, window=window)

    assert reading.busy == tuple(
        span(datetime(2026, 3, 24, hour, tzinfo=UTC), datetime(2026, 3, 24, hour, 10, tzinfo=UTC))
        for hour in (10, 11, 12)
    )


def test_a_daily_series_goes_on_far_beyond_365_occurrences() -> None:
    """A daily 08:00 Berlin slot since 2020 (over 2,000 occurrences) is still busy every morning in 2026."""
    text = feed(
        event(
            "daily",
            "DTSTART;TZID=Europe/Berlin:20200106T080000",
            "DTEND;TZID=Europe/Berlin:20200106T083000",
            "RRULE:FREQ=DAILY",
        )
    )
    window = Interval(datetime(2026, 3, 24, tzinfo=UTC), datetime(2026, 3, 27, tzinfo=UTC))

    reading = read(text, window=window)

    assert reading.busy == tuple(span(berlin(day, 8), berlin(day, 8, 30)) for day in (24, 25, 26))


def test_rdate_adds_occurrences_and_exdate_removes_them() -> None:
    """A weekly Wednesday 14:00 series loses 25 March, gains Friday 27 March 16:00 and a two-hour period on 28 March."""
    text = feed(
        event(
            "weekly",
            "DTSTART;TZID=Europe/Berlin:20260107T140000",
            "DTEND;TZID=Europe/Berlin:20260107T150000",
            "RRULE:FREQ=WEEKLY;BYDAY=WE",
            "EXDATE;TZID=Europe/Berlin:20260325T140000",
            "RDATE;TZID=Europe/Berlin:20260327T160000",
            "RDATE;VALUE=PERIOD:20260328T100000Z/PT2H",
        )
    )

    reading = read(text)

    assert reading.busy == (
        span(berlin(27, 16), berlin(27, 17)),
        span(datetime(2026, 3, 28, 10, tzinfo=UTC), datetime(2026, 3, 28, 12, tzinfo=UTC)),
        span(berlin(1, 14, month=4), berlin(1, 15, month=4)),
        span(berlin(8, 14, month=4), berlin(8, 15, month=4)),
        span(berlin(15, 14, month=4), berlin(15, 15, month=4)),
    )


WEEKLY_THURSDAY = (
    "DTSTART;TZID=Europe/Berlin:20260108T100000",
    "DTEND;TZID=Europe/Berlin:20260108T110000",
    "RRULE:FREQ=WEEKLY;BYDAY=TH;UNTIL=20260410T000000Z",
)


def test_a_moved_occurrence_is_busy_at_its_new_time_only() -> None:
    """Thursday 26 March moved from 10:00 to 15:00: the afternoon is busy, the morning free."""
    text = feed(
        event("jour-fixe", *WEEKLY_THURSDAY),
        event(
            "jour-fixe",
            "RECURRENCE-ID;TZID=Europe/Berlin:20260326T100000",
            "DTSTART;TZID=Europe/Berlin:20260326T150000",
            "DTEND;TZID=Europe/Berlin:20260326T160000",
        ),
    )

    reading = read(text)

    assert reading.busy == (
        span(berlin(26, 15), berlin(26, 16)),
        span(berlin(2, 10, month=4), berlin(2, 11, month=4)),
        span(berlin(9, 10, month=4), berlin(9, 11, month=4)),
    )


def test_an_occurrence_moved_from_last_year_into_the_window_is_busy() -> None:
    """A series that ended in 2025 had one occurrence postponed to 27 March 2026; that one still counts."""
    text = feed(
        event(
            "retro",
            "DTSTART;TZID=Europe/Berlin:20250103T090000",
            "DTEND;TZID=Europe/Berlin:20250103T100000",
            "RRULE:FREQ=WEEKLY;BYDAY=FR;UNTIL=20251231T230000Z",
        ),
        event(
            "retro",
            "RECURRENCE-ID;TZID=Europe/Berlin:20251226T090000",
            "DTSTART;TZID=Europe/Berlin:20260327T090000",
            "DTEND;TZID=Europe/Berlin:20260327T100000",
        ),
    )

    reading = read(text)

    assert reading.busy == (span(berlin(27, 9), berlin(27, 10)),)
    assert reading.events == 2


def test_an_occurrence_moved_out_of_the_window_frees_its_original_time() -> None:
    """Tuesday 24 March moved to June: that Tuesday is free, the following ones are not."""
    text = feed(
        event(
            "review",
            "DTSTART;TZID=Europe/Berlin:20260303T120000",
            "DTEND;TZID=Europe/Berlin:20260303T130000",
            "RRULE:FREQ=WEEKLY;BYDAY=TU",
        ),
        event(
            "review",
            "RECURRENCE-ID;TZID=Europe/Berlin:20260324T120000",
            "DTSTART;TZID=Europe/Berlin:20260602T120000",
            "DTEND;TZID=Europe/Berlin:20260602T130000",
        ),
    )

    reading = read(text)

    assert [interval.start for interval in reading.busy] == [
        berlin(day, 12, month=month) for month, day in [(3, 31), (4, 7), (4, 14), (4, 21)]
    ]


def test_this_and_future_moves_every_later_occurrence() -> None:
    """From 30 March on, the Monday 10:00-11:00 meeting is at 14:00-15:30; 23 March keeps the old time."""
    text = feed(
        event(
            "board",
            "DTSTART;TZID=Europe/Berlin:20260105T100000",
            "DTEND;TZID=Europe/Berlin:20260105T110000",
            "RRULE:FREQ=WEEKLY;BYDAY=MO",
        ),
        event(
            "board",
            "RECURRENCE-ID;RANGE=THISANDFUTURE;TZID=Europe/Berlin:20260330T100000",
            "DTSTART;TZID=Europe/Berlin:20260330T140000",
            "DTEND;TZID=Europe/Berlin:20260330T153000",
        ),
    )

    reading = read(text)

    assert reading.busy == (
        span(berlin(23, 10), berlin(23, 11)),
        span(berlin(30, 14), berlin(30, 15, 30)),
        *(span(berlin(day, 14, month=4), berlin(day, 15, 30, month=4)) for day in (6, 13, 20)),
    )


def test_a_cancelled_occurrence_of_a_series_leaves_that_time_free() -> None:
    """One Thursday of the jour fixe is cancelled by an override with STATUS:CANCELLED."""
    text = feed(
        event("jour-fixe", *WEEKLY_THURSDAY),
        event(
            "jour-fixe",
            "RECURRENCE-ID;TZID=Europe/Berlin:20260402T100000",
            "DTSTART;TZID=Europe/Berlin:20260402T100000",
            "DTEND;TZID=Europe/Berlin:20260402T110000",
            "STATUS:CANCELLED",
        ),
    )

    reading = read(text)

    assert reading.busy == (span(berlin(26, 10), berlin(26, 11)), span(berlin(9, 10, month=4), berlin(9, 11, month=4)))


def test_a_google_export_reads_floating_and_utc_times_in_its_x_wr_timezone() -> None:
    """With X-WR-TIMEZONE:America/New_York a floating 09:00 is 09:00 in New York, whatever the expert's zone."""
    text = feed(
        event("floating", "DTSTART:20260324T090000", "DTEND:20260324T100000"),
        event("utc", "DTSTART:20260325T090000Z", "DTEND:20260325T100000Z"),
        header="X-WR-TIMEZONE:America/New_York",
    )

    reading = read(text)

    assert reading.busy == (
        span(datetime(2026, 3, 24, 9, tzinfo=NEW_YORK), datetime(2026, 3, 24, 10, tzinfo=NEW_YORK)),
        span(datetime(2026, 3, 25, 9, tzinfo=UTC), datetime(2026, 3, 25, 10, tzinfo=UTC)),
    )


def test_a_google_event_in_the_hour_repeated_when_clocks_fall_back_is_not_reported_as_backwards() -> None:
    """00:30-01:10 UTC on 26 October 2025 is 01:30 BST to 01:10 GMT: backwards by London's wall clock, not in time."""
    text = feed(
        event("fold", "DTSTART:20251026T003000Z", "DTEND:20251026T011000Z"),
        header="X-WR-TIMEZONE:Europe/London",
    )
    autumn = Interval(datetime(2025, 10, 25, tzinfo=UTC), datetime(2025, 10, 27, tzinfo=UTC))
    london = ZoneInfo("Europe/London")

    around, later = read(text, window=autumn, zone=london), read(text, zone=london)

    assert around.busy
    assert around.problems == later.problems == ()


@pytest.mark.parametrize("zone", [BERLIN, KOLKATA, NEW_YORK], ids=str)
def test_an_all_day_event_blocks_the_whole_day_in_the_experts_zone(zone: ZoneInfo) -> None:
    """An all-day event on 25 March runs from midnight to midnight where the expert lives."""
    text = feed(event("day-off", "DTSTART;VALUE=DATE:20260325", "DTEND;VALUE=DATE:20260326"))

    reading = read(text, zone=zone)

    assert reading.busy == (span(datetime(2026, 3, 25, tzinfo=zone), datetime(2026, 3, 26, tzinfo=zone)),)


def test_an_all_day_event_on_the_day_clocks_spring_forward_lasts_23_hours() -> None:
    """Sunday 29 March 2026 in Berlin has 23 hours, and the all-day event blocks exactly those."""
    text = feed(event("sunday", "DTSTART;VALUE=DATE:20260329", "DTEND;VALUE=DATE:20260330"))

    reading = read(text)

    assert reading.busy == (span(datetime(2026, 3, 28, 23, tzinfo=UTC), datetime(2026, 3, 29, 22, tzinfo=UTC)),)
    assert reading.busy[0].duration == timedelta(hours=23)


def test_an_all_day_event_on_the_day_clocks_fall_back_lasts_25_hours() -> None:
    """Sunday 25 October 2026 in Berlin has 25 hours."""
    text = feed(event("sunday", "DTSTART;VALUE=DATE:20261025", "DTEND;VALUE=DATE:20261026"))
    october = Interval(datetime(2026, 10, 20, tzinfo=UTC), datetime(2026, 10, 30, tzinfo=UTC))

    reading = read(text, window=october)

    assert reading.busy == (span(datetime(2026, 10, 24, 22, tzinfo=UTC), datetime(2026, 10, 25, 23, tzinfo=UTC)),)
    assert reading.busy[0].duration == timedelta(hours=25)


def test_a_conference_over_several_days_blocks_every_one_of_them() -> None:
    """DTSTART 1 April, DTEND 4 April (exclusive): three whole days in Berlin, already on summer time."""
    text = feed(event("conference", "DTSTART;VALUE=DATE:20260401", "DTEND;VALUE=DATE:20260404"))

    reading = read(text)

    assert reading.busy == (span(datetime(2026, 3, 31, 22, tzinfo=UTC), datetime(2026, 4, 3, 22, tzinfo=UTC)),)


@pytest.mark.parametrize("zone", [BERLIN, NEW_YORK], ids=str)
def test_a_floating_time_is_read_in_the_experts_zone(zone: ZoneInfo) -> None:
    """A time without TZID and without Z is wall-clock time where the expert is."""
    text = feed(event("floating", "DTSTART:20260324T150000", "DTEND:20260324T160000"))

    reading = read(text, zone=zone)

    assert reading.busy == (span(datetime(2026, 3, 24, 15, tzinfo=zone), datetime(2026, 3, 24, 16, tzinfo=zone)),)


@pytest.mark.parametrize(
    ("windows_name", "zone"),
    [("W. Europe Standard Time", BERLIN), ("Eastern Standard Time", NEW_YORK), ("India Standard Time", KOLKATA)],
)
def test_a_windows_zone_name_means_its_iana_zone(windows_name: str, zone: ZoneInfo) -> None:
    """Outlook writes TZID=W. Europe Standard Time; icalendar maps it through CLDR's Windows table."""
    text = feed(
        event("outlook", f"DTSTART;TZID={windows_name}:20260324T100000", f"DTEND;TZID={windows_name}:20260324T110000")
    )

    reading = read(text)

    assert reading.busy == (span(datetime(2026, 3, 24, 10, tzinfo=zone), datetime(2026, 3, 24, 11, tzinfo=zone)),)
    assert reading.problems == ()


OUTLOOK_CUSTOM_ZONE = """BEGIN:VTIMEZONE
TZID:Customized Time Zone
BEGIN:STANDARD
DTSTART:16010101T000000
TZOFFSETFROM:{offset}
TZOFFSETTO:{offset}
END:STANDARD
END:VTIMEZONE
"""


def test_two_feeds_defining_the_same_custom_zone_differently_each_keep_their_own() -> None:
    """Two Outlook feeds both call their zone "Customized Time Zone"; icalendar alone would let the first one win."""
    meeting = event(
        "m", "DTSTART;TZID=Customized Time Zone:20260324T100000", "DTEND;TZID=Customized Time Zone:20260324T110000"
    )
    plus_one = feed(OUTLOOK_CUSTOM_ZONE.format(offset="+0100").replace("\n", "\r\n"), meeting)
    minus_five = feed(OUTLOOK_CUSTOM_ZONE.format(offset="-0500").replace("\n", "\r\n"), meeting)

    first, second = read(plus_one), read(minus_five)

    assert first.busy == (span(datetime(2026, 3, 24, 9, tzinfo=UTC), datetime(2026, 3, 24, 10, tzinfo=UTC)),)
    assert second.busy == (span(datetime(2026, 3, 24, 15, tzinfo=UTC), datetime(2026, 3, 24, 16, tzinfo=UTC)),)


def test_an_unknown_time_zone_is_read_in_the_experts_zone_and_reported() -> None:
    """TZID=Mars/Olympus_Mons is no zone anyone knows: the time counts as Berlin time, and the reading says so."""
    text = feed(
        event(
            "mars",
            "SUMMARY:Rover sync",
            "DTSTART;TZID=Mars/Olympus_Mons:20260324T100000",
            "DTEND;TZID=Mars/Olympus_Mons:20260324T110000",
        )
    )

    reading = read(text)

    assert reading.busy == (span(berlin(24, 10), berlin(24, 11)),)
    assert reading.problems == (
        "VEVENT 'mars' ('Rover sync'): unknown time zone 'Mars/Olympus_Mons' in DTSTART, read as local time in "
        "Europe/Berlin",
        "VEVENT 'mars' ('Rover sync'): unknown time zone 'Mars/Olympus_Mons' in DTEND, read as local time in "
        "Europe/Berlin",
    )


@pytest.mark.parametrize("tzid", ["Europe", "X" * 300], ids=["a-directory-of-the-zone-database", "300-characters"])
def test_a_zone_id_that_crashes_icalendars_lookup_costs_a_guess_not_the_feed(tzid: str) -> None:
    """icalendar's zone lookup raises OSError for these and fails the whole parse; here they are unknown zones."""
    text = feed(event("odd", f"DTSTART;TZID={tzid}:20260324T100000", f"DTEND;TZID={tzid}:20260324T110000"))

    reading = read(text)

    assert reading.failure is None
    assert reading.busy == (span(berlin(24, 10), berlin(24, 11)),)
    assert reading.problems[0].startswith(f"VEVENT 'odd': unknown time zone '{tzid[:50]}")
    with pytest.raises(OSError, match=r"directory|too long"):
        icalendar.Calendar.from_ical(text)


def test_a_vendor_prefixed_zone_id_means_the_iana_zone_at_its_end() -> None:
    """Lightning's /mozilla.org/20050126_1/America/New_York is New York, read without a warning or a problem."""
    tzid = "/mozilla.org/20050126_1/America/New_York"
    text = feed(event("lightning", f"DTSTART;TZID={tzid}:20260324T100000", f"DTEND;TZID={tzid}:20260324T110000"))

    reading = read(text)

    assert reading.busy == (
        span(datetime(2026, 3, 24, 10, tzinfo=NEW_YORK), datetime(2026, 3, 24, 11, tzinfo=NEW_YORK)),
    )
    assert reading.problems == ()


def test_duration_gives_the_length_when_dtend_is_missing() -> None:
    """DTSTART 10:00 with DURATION PT45M is busy until 10:45."""
    text = feed(event("d", "DTSTART;TZID=Europe/Berlin:20260324T100000", "DURATION:PT45M"))

    reading = read(text)

    assert reading.busy == (span(berlin(24, 10), berlin(24, 10, 45)),)


def test_a_date_without_end_or_duration_lasts_one_day() -> None:
    """RFC 5545: a DATE start alone is that whole day."""
    text = feed(event("d", "DTSTART;VALUE=DATE:20260325"))

    reading = read(text)

    assert reading.busy == (span(datetime(2026, 3, 25, tzinfo=BERLIN), datetime(2026, 3, 26, tzinfo=BERLIN)),)


def test_a_date_time_without_end_or_duration_blocks_nothing() -> None:
    """RFC 5545: a DATE-TIME start alone lasts no time at all, so the expert stays bookable; it is no problem."""
    text = feed(event("reminder", "DTSTART;TZID=Europe/Berlin:20260324T100000"))

    reading = read(text)

    assert reading.busy == ()
    assert reading.problems == ()


@pytest.mark.parametrize(
    ("lines", "busy"),
    [
        (("TRANSP:TRANSPARENT",), False),
        (("STATUS:CANCELLED",), False),
        (("X-MICROSOFT-CDO-BUSYSTATUS:FREE",), False),
        (("X-MICROSOFT-CDO-INTENDEDSTATUS:FREE",), False),
        (("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", "X-MICROSOFT-CDO-INTENDEDSTATUS:FREE"), True),
        (("STATUS:TENTATIVE",), True),
        (("STATUS:CONFIRMED", "TRANSP:OPAQUE"), True),
        (("X-MICROSOFT-CDO-BUSYSTATUS:OOF",), True),
    ],
    ids=lambda value: "+".join(value) if isinstance(value, tuple) else str(value),
)
def test_free_and_busy_statuses(lines: tuple[str, ...], busy: bool) -> None:
    """Transparent, cancelled and Outlook-free events leave the expert free; tentative ones count as busy."""
    text = feed(event("s", "DTSTART:20260324T100000Z", "DTEND:20260324T110000Z", *lines))

    reading = read(text)

    assert bool(reading.busy) is busy


def test_freebusy_periods_block_time_unless_marked_free() -> None:
    """BUSY (also by default), BUSY-TENTATIVE and BUSY-UNAVAILABLE block; FREE does not; end or duration both work."""
    free_busy = (
        "BEGIN:VFREEBUSY\r\n"
        "UID:fb\r\n"
        "DTSTART:20260301T000000Z\r\n"
        "DTEND:20260501T000000Z\r\n"
        "FREEBUSY:20260324T080000Z/20260324T090000Z,20260325T080000Z/PT30M\r\n"
        "FREEBUSY;FBTYPE=BUSY-TENTATIVE:20260324T100000Z/PT30M\r\n"
        "FREEBUSY;FBTYPE=BUSY-UNAVAILABLE:20260324T120000Z/PT1H\r\n"
        "FREEBUSY;FBTYPE=FREE:20260324T140000Z/PT1H\r\n"
        "END:VFREEBUSY\r\n"
    )

    reading = read(feed(free_busy))

    def utc(day: int, hour: int, minute: int = 0) -> datetime:
        """A time in March 2026, UTC."""
        return datetime(2026, 3, day, hour, minute, tzinfo=UTC)

    assert reading.busy == (
        span(utc(24, 8), utc(24, 9)),
        span(utc(24, 10), utc(24, 10, 30)),
        span(utc(24, 12), utc(24, 13)),
        span(utc(25, 8), utc(25, 8, 30)),
    )


def test_an_unreadable_freebusy_line_is_reported_and_the_rest_still_counts() -> None:
    """A period that runs backwards would make icalendar refuse the whole feed; here only that line is lost."""
    free_busy = (
        "BEGIN:VFREEBUSY\r\nUID:fb\r\n"
        "FREEBUSY:20260324T090000Z/20260324T080000Z\r\n"
        "FREEBUSY:20260324T100000Z/PT1H\r\n"
        "END:VFREEBUSY\r\n"
    )

    reading = read(feed(free_busy))

    assert reading.busy == (span(datetime(2026, 3, 24, 10, tzinfo=UTC), datetime(2026, 3, 24, 11, tzinfo=UTC)),)
    assert reading.problems == ("VFREEBUSY 'fb': unreadable 'FREEBUSY:20260324T090000Z/20260324T080000Z'; skipped",)


def test_an_event_ending_before_it_starts_is_skipped_and_reported_and_the_others_still_count() -> None:
    """One bad VEVENT costs only itself; the problem names it by UID and SUMMARY."""
    text = feed(
        event("bad", "SUMMARY:Backwards", "DTSTART:20260324T110000Z", "DTEND:20260324T100000Z"),
        event("good", "DTSTART:20260325T100000Z", "DTEND:20260325T110000Z"),
    )

    reading = read(text)

    assert reading.busy == (span(datetime(2026, 3, 25, 10, tzinfo=UTC), datetime(2026, 3, 25, 11, tzinfo=UTC)),)
    assert reading.problems == (
        "VEVENT 'bad' ('Backwards'): DTEND 2026-03-24 10:00:00+00:00 is before DTSTART 2026-03-24 11:00:00+00:00; "
        "skipped",
    )


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (("DTEND:20260324T110000Z",), "VEVENT 'x': no DTSTART; skipped"),
        (("DTSTART:tomorrow", "DTEND:20260324T110000Z"), "VEVENT 'x': unreadable DTSTART; skipped"),
        (("DTSTART:20260324T100000Z", "DURATION:-PT1H"), "VEVENT 'x': negative DURATION -1 day, 23:00:00; skipped"),
        (
            ("DTSTART:20260324T100000Z", "DTEND:20260324T110000Z", "RRULE:FREQ=SOMETIMES"),
            "VEVENT 'x': unreadable RRULE; skipped",
        ),
        (
            ("DTSTART:20260324T100000Z", "DTEND:20260324T110000Z", "DTSTART:20260325T100000Z"),
            "VEVENT 'x': more than one DTSTART; skipped",
        ),
    ],
    ids=["no-dtstart", "bad-dtstart", "negative-duration", "bad-rrule", "two-dtstarts"],
)
def test_a_broken_event_is_skipped_and_reported(lines: tuple[str, ...], problem: str) -> None:
    """Events icalendar cannot make sense of are named in the problems, and a good one beside them still counts."""
    text = feed(event("x", *lines), event("good", "DTSTART:20260325T100000Z", "DTEND:20260325T110000Z"))

    reading = read(text)

    assert reading.problems == (problem,)
    assert reading.busy == (span(datetime(2026, 3, 25, 10, tzinfo=UTC), datetime(2026, 3, 25, 11, tzinfo=UTC)),)


def test_a_broken_reminder_a_broken_to_do_and_a_broken_calendar_property_do_not_cost_the_feed() -> None:
    """icalendar alone refuses the whole body for any of these; none of them says anything about busy time."""
    text = feed(
        "BEGIN:VTODO\r\nUID:todo\r\nDUE:someday\r\nEND:VTODO\r\n",
        event(
            "meeting",
            "DTSTART:20260324T100000Z",
            "DTEND:20260324T110000Z",
            "BEGIN:VALARM",
            "ACTION:DISPLAY",
            "TRIGGER:soon",
            "END:VALARM",
        ),
        header="REFRESH-INTERVAL;VALUE=DURATION:P1X",
    )

    reading = read(text)

    assert reading.busy == (span(datetime(2026, 3, 24, 10, tzinfo=UTC), datetime(2026, 3, 24, 11, tzinfo=UTC)),)
    assert reading.failure is None
    with pytest.raises(ValueError, match=r"soon|someday|P1X"):
        icalendar.Calendar.from_ical(text)


def test_a_rule_that_would_take_millions_of_steps_is_skipped_rather_than_stalling_the_sync() -> None:
    """A minutely rule from 2020 needs over three million steps to reach 2026; it is reported and the rest counts."""
    text = feed(
        event("every-minute", "DTSTART:20200101T000000Z", "DURATION:PT10S", "RRULE:FREQ=MINUTELY"),
        event("good", "DTSTART:20260325T100000Z", "DTEND:20260325T110000Z"),
    )

    reading = read(text)

    assert reading.busy == (span(datetime(2026, 3, 25, 10, tzinfo=UTC), datetime(2026, 3, 25, 11, tzinfo=UTC)),)
    assert len(reading.problems) == 1
    assert reading.problems[0].startswith("VEVENT 'every-minute': RRULE FREQ=MINUTELY from 2020-01-01 needs")


@pytest.mark.parametrize(
    ("body", "failure"),
    [
        (b"", "empty body"),
        (b"<!DOCTYPE html><html><body>Sign in to continue</body></html>", "HTML or XML"),
        (b'{"error": "not found"}', "not an iCalendar body"),
        (feed(event("a", "DTSTART:20260324T100000Z", "DTEND:20260324T110000Z")).encode()[:-40], "truncated"),
        (feed().encode() + feed().encode(), "not a readable iCalendar body"),
        (b"BEGIN:VCALENDAR\r\n\x00\x01\x02garbage\xff\xfe\r\nEND:VCALENDAR\r\n", "not a readable iCalendar body"),
    ],
    ids=["empty", "html", "json", "truncated", "two-calendars", "garbage"],
)
def test_a_body_that_is_no_calendar_fails_as_a_whole(body: bytes, failure: str) -> None:
    """The caller keeps its last good data when `failure` is set; busy is then empty."""
    reading = read(body)

    assert reading.failure is not None
    assert reading.failure.startswith(failure)
    assert reading.busy == ()


def test_bytes_with_a_byte_order_mark_read_like_text() -> None:
    """Some Windows exporters start the file with a UTF-8 byte order mark."""
    text = feed(event("a", "SUMMARY:Café", "DTSTART:20260324T100000Z", "DTEND:20260324T110000Z"))

    from_bytes = read(b"\xef\xbb\xbf" + text.encode())

    assert from_bytes == read(text)
    assert from_bytes.busy


def test_the_fast_path_parses_only_what_can_reach_the_window() -> None:
    """Of a thousand meetings in 2023 and one next week, only next week's is parsed; all are counted."""
    old = [
        event(f"old-{n}", f"DTSTART:2023{1 + n % 12:02d}{1 + n % 28:02d}T100000Z", "DURATION:PT1H") for n in range(1000)
    ]
    text = feed(*old, event("next-week", "DTSTART:20260324T100000Z", "DTEND:20260324T110000Z"))
    scanned = ics._scan(text, frozenset())
    assert scanned is not None

    reading = read(text)
    kept, dropped, _ = ics._normalised(text, scanned, WINDOW)

    assert reading.events == 1001
    assert dropped == 1000
    assert kept.count("BEGIN:VEVENT") == 1


def test_an_old_duplicate_with_a_higher_sequence_still_hides_the_current_copy() -> None:
    """Two VEVENTs share a UID without RECURRENCE-ID: recurring-ical-events keeps the higher SEQUENCE, on both paths."""
    text = feed(
        event("dup", "SEQUENCE:0", "DTSTART:20260324T100000Z", "DTEND:20260324T110000Z"),
        event("dup", "SEQUENCE:5", "DTSTART:20230324T100000Z", "DTEND:20230324T110000Z"),
    )

    reading = read(text)

    assert reading.busy == ()


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (("DTSTART:20230324T110000Z", "DTEND:20230324T100000Z"), "DTEND 2023-03-24 10:00:00+00:00 is before DTSTART"),
        (("DTSTART:20230324T110000Z", "SEQUENCE:first"), "recurrence could not be expanded (TypeError"),
        (("DTSTART;TZID=Atlantis/Capital:20230324T110000",), "unknown time zone 'Atlantis/Capital' in DTSTART"),
        (("DTSTART:20230324T110000Z", "RRULE:FREQ=WEEKLY;UNTIL=20230401T000000Z;BYDAY=XX"), "unreadable RRULE"),
        (("DTSTART:20230324T110000Z", "UID:again"), "more than one UID"),
    ],
    ids=["backwards", "bad-sequence", "unknown-zone", "bad-rule", "two-uids"],
)
def test_a_broken_old_event_is_reported_on_the_fast_path_too(lines: tuple[str, ...], problem: str) -> None:
    """The fast path never drops an event it cannot vouch for, so the problems do not depend on the window."""
    text = feed(event("old", *lines), event("now", "DTSTART:20260324T100000Z", "DTEND:20260324T110000Z"))

    reading = read(text)

    assert len(reading.problems) == 1
    assert problem in reading.problems[0]
    assert reading.busy == (span(datetime(2026, 3, 24, 10, tzinfo=UTC), datetime(2026, 3, 24, 11, tzinfo=UTC)),)


@pytest.mark.parametrize(
    "text",
    [
        "a\r\n b\r\n\tc\r\nd",
        "a\n b\n\tc\nd",
        "a\r\n\r\n b\r\n",
        "a\r\r\n b\n c",
        "a\n\n\n b\r\n \r\n c",
    ],
)
def test_unfolding_joins_lines_exactly_as_icalendar_does(text: str) -> None:
    """The prescan must see the same lines icalendar will (RFC 5545 folding, and icalendar's tolerance of blanks)."""
    from icalendar.parser.content_line import UFOLD

    assert ics._unfold(text) == UFOLD.sub("", text)


@settings(deadline=None, max_examples=200)
@given(st.text(alphabet="\r\n \tab:", max_size=40))
def test_unfolding_agrees_with_icalendar_on_any_mix_of_line_ends_and_blanks(text: str) -> None:
    """Whatever the mix of CR, LF, blanks and tabs, the fast unfolding equals icalendar's regular expression."""
    from icalendar.parser.content_line import UFOLD

    assert ics._unfold(text) == UFOLD.sub("", text)


RICH_FEED = feed(
    OUTLOOK_CUSTOM_ZONE.format(offset="+0300").replace("\n", "\r\n"),
    event("weekly", *WEEKLY_THURSDAY, "SUMMARY:Jour fixe", "SEQUENCE:2"),
    event(
        "weekly",
        "RECURRENCE-ID;TZID=Europe/Berlin:20260326T100000",
        "DTSTART;TZID=Europe/Berlin:20260326T150000",
        "DTEND;TZID=Europe/Berlin:20260326T160000",
        "SEQUENCE:3",
    ),
    event(
        "ended",
        "DTSTART;TZID=Europe/Berlin:20240103T090000",
        "DTEND;TZID=Europe/Berlin:20240103T100000",
        "RRULE:FREQ=WEEKLY;BYDAY=WE;UNTIL=20241231T230000Z",
        "EXDATE;TZID=Europe/Berlin:20240110T090000",
    ),
    event("ended", "RECURRENCE-ID;TZID=Europe/Berlin:20240117T090000", "DTSTART:20240117T120000Z", "DURATION:PT1H"),
    event(
        "custom", "DTSTART;TZID=Customized Time Zone:20260324T100000", "DTEND;TZID=Customized Time Zone:20260324T110000"
    ),
    event("day", "DTSTART;VALUE=DATE:20260401", "DTEND;VALUE=DATE:20260402", "TRANSP:OPAQUE"),
    event("old", "DTSTART:20230101T100000Z", "DTEND:20230101T110000Z", "BEGIN:VALARM", "TRIGGER:-PT5M", "END:VALARM"),
    event("old-2", "SEQUENCE:1", "DTSTART;TZID=W. Europe Standard Time:20240105T100000", "DURATION:PT2H"),
    event("floating", "DTSTART:20260327T080000", "DURATION:PT2H", "STATUS:TENTATIVE"),
    event("fold", "DTSTART:20251026T003000Z", "DTEND:20251026T011000Z"),
    "BEGIN:VTODO\r\nUID:todo\r\nDUE:20240101T100000Z\r\nEND:VTODO\r\n",
    "BEGIN:VFREEBUSY\r\nUID:fb\r\nFREEBUSY:20260330T080000Z/PT1H\r\nEND:VFREEBUSY\r\n",
    header="X-WR-CALNAME:Expert",
)
DAMAGE = ["delete", "double", "swap", "move", "digit", "case", "junk", "blank-zone"]


@settings(deadline=None, max_examples=150)
@given(st.data())
def test_both_paths_agree_and_never_raise_on_damaged_calendars(data: st.DataObject) -> None:
    """Lines of a rich calendar deleted, doubled, moved, garbled: no exception, and the same result both ways."""
    lines = RICH_FEED.split("\r\n")
    if data.draw(st.booleans()):
        lines.insert(3, "X-WR-TIMEZONE:America/New_York")
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        index = data.draw(st.integers(min_value=0, max_value=len(lines) - 1))
        change = data.draw(st.sampled_from(DAMAGE))
        if change == "delete":
            del lines[index]
        elif change == "double":
            lines.insert(index, lines[index])
        elif change == "swap" and index + 1 < len(lines):
            lines[index], lines[index + 1] = lines[index + 1], lines[index]
        elif change == "move":
            lines.insert(data.draw(st.integers(min_value=0, max_value=len(lines))), lines.pop(index))
        elif change == "digit":
            lines[index] = re.sub(r"\d", data.draw(st.sampled_from("09")), lines[index], count=1)
        elif change == "case":
            lines[index] = lines[index].lower()
        elif change == "junk":
            position = data.draw(st.integers(min_value=0, max_value=len(lines[index])))
            lines[index] = lines[index][:position] + data.draw(
                st.sampled_from([" ", ";", ":", ",", '"', "Z", "x", "\r"])
            )
            lines[index] += lines[index][position + 1 :]
        elif change == "blank-zone":
            lines[index] = lines[index].replace("Europe/Berlin", "Europe")
    text = "\r\n".join(lines)
    window = data.draw(
        st.sampled_from([WINDOW, Interval(datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 2, 1, tzinfo=UTC))])
    )

    fast = read_busy(text, window=window, zone=BERLIN)
    full = read_busy_full(text, window=window, zone=BERLIN)

    assert fast == full


@settings(deadline=None, max_examples=100)
@given(st.binary(max_size=300))
def test_the_reader_never_raises_on_arbitrary_bytes(body: bytes) -> None:
    """Whatever a server sends back, the reading is a value; both paths agree on it."""
    reading = read(b"BEGIN:VCALENDAR\r\n" + body + b"\r\nEND:VCALENDAR\r\n")

    assert isinstance(reading, FeedReading)
