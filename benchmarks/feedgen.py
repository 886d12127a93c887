"""A large, realistic, deterministic iCalendar feed: five years of an expert's calendar up to a given `now`.

About 5,000 VEVENTs: 150 recurring series (weekly, daily, monthly; some ending by UNTIL or COUNT, with EXDATEs,
moved and cancelled occurrences, one RANGE=THISANDFUTURE change) and single meetings in Europe/Berlin,
America/New_York, Asia/Kolkata and UTC, some all-day or several days long, some transparent, tentative or
cancelled, most with descriptions long enough to be folded and some with reminders.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

ZONES = ("Europe/Berlin", "America/New_York", "Asia/Kolkata", "UTC")
SERIES = 150
SINGLE_EVENTS = 4_650
HISTORY = timedelta(days=5 * 365)
FUTURE = timedelta(days=90)

# Hand-written VTIMEZONE blocks as Outlook and Google write them (current rules only).
VTIMEZONES = {
    "Europe/Berlin": (
        "BEGIN:VTIMEZONE",
        "TZID:Europe/Berlin",
        "X-LIC-LOCATION:Europe/Berlin",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:+0100",
        "TZOFFSETTO:+0200",
        "TZNAME:CEST",
        "DTSTART:19700329T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0200",
        "TZOFFSETTO:+0100",
        "TZNAME:CET",
        "DTSTART:19701025T030000",
        "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU",
        "END:STANDARD",
        "END:VTIMEZONE",
    ),
    "America/New_York": (
        "BEGIN:VTIMEZONE",
        "TZID:America/New_York",
        "X-LIC-LOCATION:America/New_York",
        "BEGIN:DAYLIGHT",
        "TZOFFSETFROM:-0500",
        "TZOFFSETTO:-0400",
        "TZNAME:EDT",
        "DTSTART:19700308T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU",
        "END:DAYLIGHT",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:-0400",
        "TZOFFSETTO:-0500",
        "TZNAME:EST",
        "DTSTART:19701101T020000",
        "RRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU",
        "END:STANDARD",
        "END:VTIMEZONE",
    ),
    "Asia/Kolkata": (
        "BEGIN:VTIMEZONE",
        "TZID:Asia/Kolkata",
        "X-LIC-LOCATION:Asia/Kolkata",
        "BEGIN:STANDARD",
        "TZOFFSETFROM:+0530",
        "TZOFFSETTO:+0530",
        "TZNAME:IST",
        "DTSTART:19700101T000000",
        "END:STANDARD",
        "END:VTIMEZONE",
    ),
}

DASH = "\N{EN DASH}"  # real titles carry typography, and non-ASCII text exercises folding by octets
TOPICS = (
    "Discovery call",
    "Architecture review",
    "Sprint planning",
    "Retrospective",
    "Vendor due diligence",
    "Steering committee",
    "Security audit follow-up",
    "Data migration workshop",
    "Besprechung über Lieferkette",
    "Hiring panel",
    f"Cost review {DASH} cloud spend",
    "Pairing session",
)
CLIENTS = ("Acme GmbH", "Northwind", "Globex", "Initech", "Umbrella Logistics", "Stark Retail", "Tata Components")
WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


def generate_feed(*, now: datetime, seed: int = 7) -> str:
    """The feed's text, CRLF line ends and RFC 5545 folding, the same for the same `now` and `seed`."""
    rng = random.Random(seed)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//consultbot//feedgen//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "X-WR-CALNAME:Expert calendar",
    ]
    for block in VTIMEZONES.values():
        lines.extend(block)
    first_day = (now - HISTORY).date()
    for number in range(SERIES):
        lines.extend(_series(rng, number, now=now, first_day=first_day))
    for number in range(SINGLE_EVENTS):
        lines.extend(_single(rng, number, now=now, first_day=first_day))
    lines.append("END:VCALENDAR")
    return "".join(_fold(line) for line in lines)


def _series(rng: random.Random, number: int, *, now: datetime, first_day: date) -> Iterator[str]:
    """One recurring series: its master and its overrides."""
    uid = f"series-{number:03d}@feedgen.consultbot"
    zone_name = ZONES[number % len(ZONES)]
    rule = _Rule.random(rng, "weekly" if number % 10 == 0 else ("weekly", "daily", "monthly")[number % 3])
    clock = time(rng.choice((8, 9, 10, 11, 13, 14, 15, 16)), rng.choice((0, 30)))
    starts = rule.occurrences(first_day + timedelta(days=rng.randrange(0, 4 * 365)), clock, ZoneInfo(zone_name))
    start = next(starts)
    length = timedelta(minutes=rng.choice((15, 30, 45, 60, 90)))
    # Most series belong to a project and end with it; a few (a weekly one-to-one, a monthly board) run on.
    ending = rng.random()
    until: datetime | None = None
    count: int | None = None
    text = rule.text
    if ending < 0.7 or rule.kind == "daily":
        until = start + timedelta(days=rng.randrange(14, 400 if rule.kind == "daily" else 900))
        text += f";UNTIL={until.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    elif ending < 0.85:
        count = rng.randrange(4, 60)
        text += f";COUNT={count}"
    horizon = now + timedelta(days=60) if until is None else min(until, now + timedelta(days=60))
    occurrences = [start]
    for occurrence in starts:
        if occurrence > horizon or (count is not None and len(occurrences) == count):
            break
        occurrences.append(occurrence)
    topic, client = rng.choice(TOPICS), rng.choice(CLIENTS)
    # Disjoint picks: deleted, moved and cancelled occurrences, spread over the whole history and the weeks ahead.
    picks = rng.sample(occurrences, min(len(occurrences), rng.choice((0, 1, 2, 3, 4, 5))))
    exdates, moved, cancelled = picks[0::3], picks[1::3], picks[2::3]
    yield from (
        "BEGIN:VEVENT",
        f"UID:{uid}",
        f"DTSTAMP:{now.astimezone(UTC):%Y%m%dT%H%M%SZ}",
        f"SEQUENCE:{rng.randrange(0, 3)}",
        *_start_end(start, start + length, zone_name),
        f"RRULE:{text}",
        *(f"EXDATE{_zone_parameter(zone_name)}:{_stamp(exdate, zone_name)}" for exdate in sorted(exdates)),
        f"SUMMARY:{topic} ({client})",
        f"DESCRIPTION:{_description(rng, topic, client)}",
        f"LOCATION:{rng.choice(('Teams', 'Zoom', 'Office Berlin, Raum 4.12', 'Google Meet'))}",
        f"ORGANIZER;CN=Expert:mailto:expert{number % 7}@consultancy.example",
        "STATUS:CONFIRMED",
        "TRANSP:OPAQUE",
        *_alarm(rng),
        "END:VEVENT",
    )
    for occurrence in moved:
        shift = timedelta(hours=rng.choice((-2, 1, 2, 24)))
        yield from _override(
            uid, occurrence, occurrence + shift, length, zone_name, now=now, summary=f"{topic} (moved)"
        )
    for occurrence in cancelled:
        yield from _override(uid, occurrence, occurrence, length, zone_name, now=now, status="CANCELLED")
    if number == 0:
        # One series changed from a point in the past onwards: an hour later, half an hour longer.
        untouched = [o for o in occurrences if o not in picks and o < now - timedelta(days=60)]
        pivot = untouched[-1] if untouched else occurrences[-1]
        later = pivot + timedelta(hours=1)
        yield from _override(
            uid,
            pivot,
            later,
            length + timedelta(minutes=30),
            zone_name,
            now=now,
            summary=f"{topic} (new time)",
            this_and_future=True,
        )


@dataclass(frozen=True)
class _Rule:
    """The recurrence rules the generator writes, and their expansion (so overrides hit real occurrences)."""

    kind: str
    weekdays: tuple[int, ...]
    """Monday is 0."""
    interval: int = 1
    nth: int = 0
    """For monthly rules: the nth of the weekday in the month."""

    @classmethod
    def random(cls, rng: random.Random, kind: str) -> _Rule:
        if kind == "weekly":
            days = tuple(sorted(rng.sample(range(5), rng.choice((1, 1, 2)))))
            return cls(kind, days, interval=2 if rng.random() < 0.3 else 1)
        if kind == "daily":
            return cls(kind, tuple(range(5)) if rng.random() < 0.7 else tuple(range(7)))
        return cls(kind, (rng.randrange(5),), nth=rng.randint(1, 4))

    @property
    def text(self) -> str:
        days = ",".join(WEEKDAYS[day] for day in self.weekdays)
        if self.kind == "weekly":
            return f"FREQ=WEEKLY;BYDAY={days}" + (f";INTERVAL={self.interval}" if self.interval > 1 else "")
        if self.kind == "daily":
            return f"FREQ=DAILY;BYDAY={days}" if len(self.weekdays) == 5 else "FREQ=DAILY"
        return f"FREQ=MONTHLY;BYDAY={self.nth}{days}"

    def occurrences(self, first: date, clock: time, zone: ZoneInfo) -> Iterator[datetime]:
        """Every start from `first` on, endlessly; the first one is the series' DTSTART."""
        if self.kind == "monthly":
            year, month = first.year, first.month
            while True:
                day = date(year, month, 1)
                day += timedelta(days=(self.weekdays[0] - day.weekday()) % 7 + 7 * (self.nth - 1))
                if day >= first:
                    yield datetime.combine(day, clock, zone)
                year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        monday = first - timedelta(days=first.weekday())
        week = 0
        while True:
            for weekday in self.weekdays:
                day = monday + timedelta(days=7 * week * self.interval + weekday)
                if day >= first:
                    yield datetime.combine(day, clock, zone)
            week += 1


def _override(
    uid: str,
    recurrence: datetime,
    start: datetime,
    length: timedelta,
    zone_name: str,
    *,
    now: datetime,
    summary: str | None = None,
    status: str = "CONFIRMED",
    this_and_future: bool = False,
) -> Iterator[str]:
    yield "BEGIN:VEVENT"
    yield f"UID:{uid}"
    yield f"DTSTAMP:{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    yield "SEQUENCE:3"
    range_parameter = ";RANGE=THISANDFUTURE" if this_and_future else ""
    yield f"RECURRENCE-ID{_zone_parameter(zone_name)}{range_parameter}:{_stamp(recurrence, zone_name)}"
    yield from _start_end(start, start + length, zone_name)
    if summary is not None:
        yield f"SUMMARY:{summary}"
    yield f"STATUS:{status}"
    yield "END:VEVENT"


def _single(rng: random.Random, number: int, *, now: datetime, first_day: date) -> Iterator[str]:
    """One meeting, workshop, all-day event or trip."""
    zone_name = rng.choice(ZONES)
    zone = ZoneInfo(zone_name)
    span_days = (now + FUTURE).date() - first_day
    day = first_day + timedelta(days=rng.randrange(span_days.days))
    topic, client = rng.choice(TOPICS), rng.choice(CLIENTS)
    yield "BEGIN:VEVENT"
    yield f"UID:single-{number:05d}-{rng.getrandbits(32):08x}@feedgen.consultbot"
    yield f"DTSTAMP:{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    if rng.random() < 0.06:
        days = rng.choice((1, 1, 1, 2, 3, 5))
        yield f"DTSTART;VALUE=DATE:{day:%Y%m%d}"
        yield f"DTEND;VALUE=DATE:{day + timedelta(days=days):%Y%m%d}"
        yield f"SUMMARY:{'Conference' if days > 1 else 'Out of office'} {DASH} {client}"
    else:
        start = datetime.combine(day, time(rng.randrange(7, 19), rng.choice((0, 15, 30, 45))), zone)
        yield from _start_end(start, start + timedelta(minutes=rng.choice((30, 45, 60, 60, 90, 120))), zone_name)
        yield f"SUMMARY:{topic} {DASH} {client}"
    if rng.random() < 0.6:
        yield f"DESCRIPTION:{_description(rng, topic, client)}"
    yield f"LOCATION:{rng.choice(('Teams', 'Zoom', 'Client site', 'Office Berlin', 'Mumbai office'))}"
    for attendee in range(rng.randrange(0, 4)):
        yield (
            f'ATTENDEE;CN="Guest {attendee}";ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED:mailto:guest{attendee}@example.org'
        )
    roll = rng.random()
    yield f"STATUS:{'CANCELLED' if roll < 0.03 else 'TENTATIVE' if roll < 0.08 else 'CONFIRMED'}"
    yield f"TRANSP:{'TRANSPARENT' if rng.random() < 0.05 else 'OPAQUE'}"
    yield from _alarm(rng)
    yield "END:VEVENT"


def _start_end(start: datetime, end: datetime, zone_name: str) -> tuple[str, str]:
    return (
        f"DTSTART{_zone_parameter(zone_name)}:{_stamp(start, zone_name)}",
        f"DTEND{_zone_parameter(zone_name)}:{_stamp(end, zone_name)}",
    )


def _zone_parameter(zone_name: str) -> str:
    return "" if zone_name == "UTC" else f";TZID={zone_name}"


def _stamp(moment: datetime, zone_name: str) -> str:
    if zone_name == "UTC":
        return f"{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{moment.astimezone(ZoneInfo(zone_name)):%Y%m%dT%H%M%S}"


def _description(rng: random.Random, topic: str, client: str) -> str:
    agenda = rng.sample(
        (
            "review the open risks",
            "agree on the next milestone",
            "walk through the budget",
            "demo the prototype",
            "clarify the data-protection questions",
            "go over the statement of work",
            "decide on the vendor shortlist",
        ),
        3,
    )
    return (
        f"{topic} with {client}. Agenda: {agenda[0]}\\; {agenda[1]}\\; {agenda[2]}.\\n"
        f"Dial-in: https://meet.example.com/{rng.getrandbits(40):010x} {DASH} please join five minutes early."
    )


def _alarm(rng: random.Random) -> tuple[str, ...]:
    if rng.random() < 0.3:
        return ()
    return (
        "BEGIN:VALARM",
        "ACTION:DISPLAY",
        "DESCRIPTION:Reminder",
        f"TRIGGER:-PT{rng.choice((5, 10, 15))}M",
        "END:VALARM",
    )


def _fold(line: str) -> str:
    """The line folded at 75 octets as RFC 5545 asks, never inside a UTF-8 character, ending in CRLF."""
    encoded = line.encode()
    if len(encoded) <= 75:
        return line + "\r\n"
    pieces: list[str] = []
    start, limit = 0, 75
    while start < len(encoded):
        end = min(start + limit, len(encoded))
        while end < len(encoded) and encoded[end] & 0b1100_0000 == 0b1000_0000:
            end -= 1  # a continuation byte: step back to the start of the character
        pieces.append(encoded[start:end].decode())
        start, limit = end, 74  # continuation lines begin with one space
    return "\r\n ".join(pieces) + "\r\n"
