"""Experts and their time: plain values, no I/O."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Numbers are strict: TOML has real integers, so `meeting_minutes = "45"` is a mistake to report.
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    StrictInt,
)


def _known_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')") from None
    return name


TimeZoneName = Annotated[str, AfterValidator(_known_zone)]
"""An IANA time-zone name that this machine's zone database knows."""


MINUTES_PER_DAY = 24 * 60
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""The weekday keys of working hours, in the order of `date.weekday()`."""
_CLOCK_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True, slots=True, order=True)
class LocalRange:
    """A stretch of one local day on the expert's wall clock, in minutes after midnight; it may end at 24:00."""

    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not 0 <= self.start_minute < self.end_minute <= MINUTES_PER_DAY:
            raise ValueError(f"not a range within one day: {self.start_minute} .. {self.end_minute} minutes")

    @classmethod
    def parse(cls, text: str) -> LocalRange:
        """The range written as "HH:MM-HH:MM", e.g. "09:00-12:30" or "18:00-24:00"."""
        match = _CLOCK_RANGE.fullmatch(text.strip())
        if match is None:
            raise ValueError(f"{text!r} is not a time range like '09:00-17:00'")
        start = _minute_of_day(match[1], match[2], text)
        end = _minute_of_day(match[3], match[4], text)
        if start == MINUTES_PER_DAY:
            raise ValueError(f"{text!r} starts at 24:00, the end of the day")
        if end == start:
            raise ValueError(f"{text!r} is empty: it ends when it starts")
        if end < start:
            raise ValueError(f"{text!r} ends before it starts; a range cannot cross midnight, split it at 24:00")
        return cls(start, end)

    @property
    def start(self) -> timedelta:
        """How long after local midnight the range starts."""
        return timedelta(minutes=self.start_minute)

    @property
    def end(self) -> timedelta:
        """How long after local midnight the range ends."""
        return timedelta(minutes=self.end_minute)

    def __str__(self) -> str:
        return f"{_clock(self.start_minute)}-{_clock(self.end_minute)}"


def _minute_of_day(hours: str, minutes: str, text: str) -> int:
    hour, minute = int(hours), int(minutes)
    if hour > 24 or minute > 59 or (hour == 24 and minute > 0):
        raise ValueError(f"{hours}:{minutes} in {text!r} is not a time of day (00:00 to 24:00)")
    return hour * 60 + minute


def _clock(minute_of_day: int) -> str:
    return f"{minute_of_day // 60:02d}:{minute_of_day % 60:02d}"


def _day_hours(value: object) -> tuple[LocalRange, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError('hours are a list of ranges, e.g. ["09:00-12:30", "13:30-17:00"], or [] for a day off')
    ranges = sorted(item if isinstance(item, LocalRange) else LocalRange.parse(_text(item)) for item in value)
    for earlier, later in pairwise(ranges):
        if later.start_minute < earlier.end_minute:
            raise ValueError(f"'{earlier}' and '{later}' overlap")
        if later.start_minute == earlier.end_minute:
            # Two touching ranges would silently forbid a consultation across the seam; one range says what is meant.
            joined = LocalRange(earlier.start_minute, later.end_minute)
            raise ValueError(f"'{earlier}' and '{later}' touch; write them as one range '{joined}'")
    return tuple(ranges)


def _text(item: object) -> str:
    if not isinstance(item, str):
        raise ValueError(f"{item!r} is not a time range like '09:00-17:00'")
    return item


def _calendar_date(value: object) -> date:
    # TOML's local dates arrive as `date`; a `datetime` is a date too, but a time in an override is a mistake.
    if isinstance(value, datetime):
        raise ValueError(f"{value.isoformat()} has a time; an override names a whole day, e.g. 2026-12-24")
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _ISO_DATE.fullmatch(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{value!r} is not a date like 2026-12-24")


DayHours = Annotated[
    tuple[LocalRange, ...],
    PlainValidator(_day_hours, json_schema_input_type=list[str]),
    PlainSerializer(lambda ranges: [str(r) for r in ranges], return_type=list[str]),
]
"""One day's working ranges, written ["09:00-12:30", "13:30-17:00"]: sorted, neither overlapping nor touching."""

CalendarDate = Annotated[date, BeforeValidator(_calendar_date)]
"""A day, written as a TOML date or as the string "YYYY-MM-DD"."""


def _one_per_date(overrides: Sequence[DateOverride]) -> Sequence[DateOverride]:
    seen: set[date] = set()
    for override in overrides:
        if override.date in seen:
            raise ValueError(f"{override.date.isoformat()} is overridden more than once")
        seen.add(override.date)
    return overrides


class DateOverride(BaseModel):
    """Different working hours on one date; no hours means a day off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    date: CalendarDate
    hours: DayHours


class WorkingHours(BaseModel):
    """When an expert works, in their own time zone: hours per weekday, and overrides for particular dates.

    A weekday left out is a day off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    monday: DayHours = ()
    tuesday: DayHours = ()
    wednesday: DayHours = ()
    thursday: DayHours = ()
    friday: DayHours = ()
    saturday: DayHours = ()
    sunday: DayHours = ()
    overrides: Annotated[tuple[DateOverride, ...], AfterValidator(_one_per_date)] = ()

    @classmethod
    def office_hours(cls) -> WorkingHours:
        """Monday to Friday, 09:00 to 17:00: the hours of an expert who configures none."""
        day = (LocalRange(9 * 60, 17 * 60),)
        return cls(monday=day, tuesday=day, wednesday=day, thursday=day, friday=day)

    def on(self, day: date) -> tuple[LocalRange, ...]:
        """The working ranges on a local date: its override if it has one, else its weekday's hours."""
        for override in self.overrides:
            if override.date == day:
                return override.hours
        weekly: tuple[LocalRange, ...] = getattr(self, WEEKDAYS[day.weekday()])
        return weekly


Minutes = Annotated[StrictInt, Field(gt=0, le=MINUTES_PER_DAY)]
BufferMinutes = Annotated[StrictInt, Field(ge=0, le=MINUTES_PER_DAY)]


class SlotRules(BaseModel):
    """How consultations are laid out: their length, spacing, buffers, notice, horizon and daily cap."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    meeting_minutes: Minutes = 45
    step_minutes: Minutes = 15
    """Slot start times are this far apart on the wall clock, counted from the start of each working range."""
    buffer_before_minutes: BufferMinutes = 0
    buffer_after_minutes: BufferMinutes = 15
    notice_minutes: Annotated[StrictInt, Field(gt=0, le=90 * MINUTES_PER_DAY)] = 240
    """The least time between now and the start of a consultation booked now."""
    horizon_days: Annotated[StrictInt, Field(gt=0, le=366)] = 30
    """How far ahead consultations can be booked."""
    max_per_day: Annotated[StrictInt, Field(gt=0, le=100)] = 6
    """The most consultations one expert takes on one local day."""

    @property
    def meeting(self) -> timedelta:
        """How long a consultation lasts."""
        return timedelta(minutes=self.meeting_minutes)

    @property
    def step(self) -> timedelta:
        """The spacing of slot start times."""
        return timedelta(minutes=self.step_minutes)

    @property
    def buffer_before(self) -> timedelta:
        """Time kept free before a consultation."""
        return timedelta(minutes=self.buffer_before_minutes)

    @property
    def buffer_after(self) -> timedelta:
        """Time kept free after a consultation."""
        return timedelta(minutes=self.buffer_after_minutes)

    @property
    def notice(self) -> timedelta:
        """The least time between booking and consultation."""
        return timedelta(minutes=self.notice_minutes)

    @property
    def horizon(self) -> timedelta:
        """How far ahead of now a consultation may start."""
        return timedelta(days=self.horizon_days)


def _calendar_location(location: str) -> str:
    if "://" in location:
        scheme = location.split("://", 1)[0].lower()
        if scheme not in {"http", "https", "webcal", "webcals", "file"}:
            raise ValueError(f"a calendar is an https:// or webcal:// URL or a file path, not a {scheme}:// address")
    elif not location.strip():
        raise ValueError("a calendar location cannot be empty")
    return location


CalendarLocation = Annotated[str, AfterValidator(_calendar_location)]
"""A calendar feed's address: an http(s) or webcal URL, a file:// URL or a file path."""


_ENVIRONMENT_NAME = r"^[A-Z_][A-Z0-9_]*$"


class CalDavAccount(BaseModel):
    """A CalDAV collection the bot writes an expert's consultations into.

    The password is not in the configuration file: it names the environment variable that holds it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    url: Annotated[str, Field(pattern=r"^https?://")]
    """The collection's URL, ending in "/" (e.g. https://dav.example.com/amelia/consultations/)."""
    username: str | None = None
    password_env: Annotated[str, Field(pattern=_ENVIRONMENT_NAME)] | None = None
    """The environment variable holding the password (or app password), e.g. "CALDAV_AMELIA_PASSWORD"."""


class Expert(BaseModel):
    """An outsourcing expert prospects can book."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_]{0,23}$")]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    role: Annotated[str, Field(min_length=1, max_length=100)]
    timezone: TimeZoneName
    specialties: tuple[str, ...] = ()
    """Keys of the services this expert consults on."""
    hours: WorkingHours = Field(default_factory=WorkingHours.office_hours)
    """When the expert takes consultations, in their own time zone."""
    calendars: tuple[CalendarLocation, ...] = ()
    """Where the expert's busy time is read from: iCal or CalDAV URLs, or .ics files."""
    email: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] | None = None
    """The invite's organizer: replies and calendar responses go here."""
    meeting: Annotated[str, Field(min_length=1, max_length=500)] | None = None
    """Where consultations take place: a video-call link or an address."""
    caldav: CalDavAccount | None = None
    """Where booked consultations are written back, if anywhere."""
