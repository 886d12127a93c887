"""Busy time from an iCalendar feed, read for one window. Pure: no I/O, no clock; `now` lives in the window.

icalendar parses, x-wr-timezone applies Google's X-WR-TIMEZONE, recurring-ical-events expands RRULE, RDATE,
EXDATE and RECURRENCE-ID (RANGE=THISANDFUTURE too). Parsing every VEVENT of years of history is most of the cost
of a feed, so `read_busy` first drops, on the text, every VEVENT that provably cannot touch the window nor cause
a problem, and parses the rest; `read_busy_full` parses everything and is the yardstick the fast path is tested
against. Both first keep only what busy time is made of, so that no reminder or to-do can fail a whole feed.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, available_timezones

import x_wr_timezone
from icalendar import Calendar, Component
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from recurring_ical_events import EventAdapter, Series

from scheduling.intervals import Interval, clip
from scheduling.records import is_own_uid

__all__ = ["FeedReading", "busy_interval", "read_busy", "read_busy_full"]


@dataclass(frozen=True, slots=True)
class FeedReading:
    """What one feed says about busy time inside a window, and what in it could not be used."""

    busy: tuple[Interval, ...]
    """Busy time inside the window: sorted, merged, clipped."""
    events: int
    """VEVENT components in the feed, counted whether or not they touch the window."""
    problems: tuple[str, ...] = ()
    """Parts skipped or guessed at, each naming its component; the rest of the feed still counts."""
    failure: str | None = None
    """Why the body as a whole is not a usable calendar; then `busy` is empty and the caller keeps older data."""


def read_busy(ics: bytes | str, *, window: Interval, zone: ZoneInfo) -> FeedReading:
    """The busy time `ics` gives inside `window`, skipping the VEVENTs that cannot reach it before parsing."""
    return _read(ics, window=window, zone=zone, prescan=True)


def read_busy_full(ics: bytes | str, *, window: Interval, zone: ZoneInfo) -> FeedReading:
    """The busy time `ics` gives inside `window`, parsing every component (the reference for `read_busy`)."""
    return _read(ics, window=window, zone=zone, prescan=False)


def busy_interval(occurrence: Component, *, zone: tzinfo) -> Interval | None:
    """The time one occurrence (as recurring-ical-events returns it) blocks, or None if it leaves its owner free.

    Dates are whole days in `zone` (a day can be 23 or 25 hours), floating times are wall-clock times in `zone`.
    An occurrence of zero length blocks nothing: RFC 5545 gives a DATE-TIME start without DTEND or DURATION no
    duration at all, and a reminder-like entry should not make an expert unbookable.
    """
    first, last = _time_of(occurrence, "DTSTART"), _time_of(occurrence, "DTEND")
    if first is None or _is_free(occurrence):
        return None
    start = _instant(first, zone)
    end = start if last is None else _instant(last, zone)
    # A local time in a DST gap can come out after its end in UTC; like a zero-length event it blocks nothing.
    return Interval(start, end) if start < end else None


# ---------------------------------------------------------------------------------------------------------------
# The pipeline both readers share
#
# 1. Decode and unfold as icalendar does; reject bodies that are no calendar at all.
# 2. Give custom time zones ids of their own (see "Time-zone ids").
# 3. Scan the structure on the text, and keep only what busy time is made of: VEVENTs without their VALARMs,
#    VTIMEZONEs, the readable FREEBUSY lines of VFREEBUSYs, and the calendar's own basic properties. icalendar is
#    strict everywhere but in VEVENT: one bad line in a reminder, a to-do or a calendar property would otherwise
#    fail the whole feed, and none of them says anything about busy time.
# 4. Only in `read_busy`: drop the VEVENTs that cannot touch the window, and thin the rest to the properties read.
# 5. Parse with icalendar, apply X-WR-TIMEZONE, expand with recurring-ical-events, apply the busy rules.


def _read(ics: bytes | str, *, window: Interval, zone: ZoneInfo, prescan: bool) -> FeedReading:
    try:
        text = _decode(ics)
        failure = _body_failure(text)
        if failure is not None:
            return FeedReading(busy=(), events=0, failure=failure)
        zone_ids = _isolate_time_zone_ids(_unfold(text))
        text, dropped, problems = zone_ids.text, 0, list[str]()
        # A carriage return without its line feed stays inside a line for icalendar but cuts short the lines the
        # scan reads; such a rare body is read as it is.
        lone_carriage_return = "\r" in text and text.count("\r") != text.count("\r\n")
        feed = None if lone_carriage_return else _scan(text, zone_ids.renamed)
        if feed is not None:
            text, dropped, problems = _normalised(text, feed, window if prescan else None)
            if not feed.components and problems:
                # Nothing but unreadable lines inside the wrapper: junk, not an empty calendar.
                return FeedReading(busy=(), events=0, failure=f"not a readable iCalendar body: {problems[0]}")
        return _read_calendar(
            text, window=window, zone=zone, dropped=dropped, problems=problems, zone_names=zone_ids.originals
        )
    except Exception as error:  # the sync layer must get a reading, never an exception, whatever the body
        return FeedReading(busy=(), events=0, failure=f"unexpected error reading the feed: {error!r}")


def _decode(ics: bytes | str) -> str:
    if isinstance(ics, str):
        return ics.removeprefix("\ufeff")
    # The decoding icalendar itself applies to bytes, so the reader and plain icalendar see the same text.
    try:
        return ics.decode("utf-8-sig")
    except UnicodeDecodeError:
        return ics.decode("utf-8-sig", "replace")


def _body_failure(text: str) -> str | None:
    body = text.strip()
    if not body:
        return "empty body: no VCALENDAR"
    if body[:15].upper() != "BEGIN:VCALENDAR":
        kind = "HTML or XML" if body.startswith("<") else "not an iCalendar body"
        return f"{kind}: no VCALENDAR, it starts with {body[:60]!r}"
    # A download cut short ends inside a component; a whole one ends with END:VCALENDAR.
    if "END:VCALENDAR" not in body[-200:].upper():
        return f"truncated: no END:VCALENDAR at the end, it ends with {body[-60:]!r}"
    return None


# icalendar's own unfolding pattern (RFC 5545 section 3.1, tolerant of blank lines inside a fold), copied so that
# the scan sees exactly the lines icalendar will see.
_FOLD = re.compile(r"(?:(?<!\n)\r\n|(?<![\r\n])\n)(?:\r?\n)*[ \t]")
_CRLF_FOLD = re.compile(r"\r\n[ \t]")
_LF_FOLD = re.compile(r"\n[ \t]")


def _unfold(text: str) -> str:
    """The text with folded lines joined, exactly as icalendar joins them."""
    # With every line ending alike and no blank line, the pattern above only ever matches one line end and one
    # blank, and a pattern with a literal start runs several times faster on a large feed.
    if "\r" not in text:
        return _FOLD.sub("", text) if "\n\n" in text else _LF_FOLD.sub("", text)
    if text.count("\r") == text.count("\n") == text.count("\r\n") and "\n\r\n" not in text:
        return _CRLF_FOLD.sub("", text)
    return _FOLD.sub("", text)


# ---------------------------------------------------------------------------------------------------------------
# Time-zone ids
#
# icalendar keeps the zone it builds from a VTIMEZONE in one process-wide cache keyed by TZID, and the first
# definition wins. Two experts' Outlook feeds that both define "Customized Time Zone" differently would share one
# definition, so a zone whose TZID is not an IANA name gets a TZID of its own, derived from its definition.

_VTIMEZONE_TZID = re.compile(r"^TZID((?:;[^:\r\n]*)?):([^\r\n]*?)(\r?)$", re.MULTILINE | re.IGNORECASE)
_TZID_PARAMETER = re.compile(r';TZID=("[^"\r\n]*"|[^";:\r\n]*)', re.IGNORECASE)
_TEXT_ESCAPE = re.compile(r"\\([\\;,nN])")
_UNSAFE_IN_NAME = re.compile(r'[\\";:,\x00-\x1f]')


@cache
def _iana_names() -> frozenset[str]:
    return frozenset(available_timezones())


@dataclass(frozen=True)
class _ZoneIds:
    """The feed's text with its TZIDs made safe, and what was changed."""

    text: str
    renamed: frozenset[str] = frozenset()
    """The new ids given to the zones this feed defines itself."""
    originals: dict[str, str] = field(default_factory=dict)
    """The TZID as written, for each new id that is no IANA name; for messages."""


def _isolate_time_zone_ids(text: str) -> _ZoneIds:
    """The text with custom VTIMEZONE ids made unique per definition, and every TZID made safe to look up.

    A vendor-prefixed id gets the IANA name at its end (icalendar makes the same guess, but warns every time);
    an id that makes icalendar's lookup crash (TZID=Europe names a directory of the zone database, a very long one
    overflows a file name) gets a harmless unknown name, so that it costs one event a guess instead of the feed.
    """
    renamed: dict[str, str] = {}
    pieces: list[str] = []
    done = 0
    for start, end in _component_spans(text, "VTIMEZONE"):
        block = text[start:end]
        match = _VTIMEZONE_TZID.search(block)
        if match is None:
            continue
        tzid = _TEXT_ESCAPE.sub(lambda escape: escape.group(1).replace("n", "\n").replace("N", "\n"), match.group(2))
        if tzid in renamed or '"' in tzid or "\n" in tzid or _is_iana(tzid):
            continue
        digest = hashlib.sha256(block.encode()).hexdigest()[:16]
        renamed[tzid] = f"{_UNSAFE_IN_NAME.sub('', tzid)[:60].strip('/ ')} ~{digest}"
        pieces += [text[done : start + match.start()], f"TZID{match.group(1)}:{renamed[tzid]}{match.group(3)}"]
        done = start + match.end()
    text = "".join([*pieces, text[done:]])
    replacements = dict(renamed)
    for value in set(_TZID_PARAMETER.findall(text)):
        tzid = value[1:-1] if value.startswith('"') else value
        if tzid in replacements:
            continue
        guess = _vendor_prefixed_zone(tzid) if tzid.startswith("/") else None
        if guess is not None:
            replacements[tzid] = guess
        elif tzid.startswith("/") or not _looks_up_safely(tzid):
            replacements[tzid] = f"{_UNSAFE_IN_NAME.sub('', tzid)[:60].strip('/ ')} ?"
    if not replacements:
        return _ZoneIds(text)

    def replace(match: re.Match[str]) -> str:
        value = match.group(1)
        tzid = value[1:-1] if value.startswith('"') else value
        return f";TZID={replacements[tzid]}" if tzid in replacements else match.group(0)

    originals = {new: old for old, new in replacements.items() if new not in _iana_names()}
    return _ZoneIds(_TZID_PARAMETER.sub(replace, text), frozenset(renamed.values()), originals)


def _looks_up_safely(tzid: str) -> bool:
    try:
        tzp.timezone(tzid)
    except Exception:  # icalendar's zoneinfo lookup lets OSError through, and would fail the whole parse with it
        return False
    return True


def _is_iana(tzid: str) -> bool:
    return tzid in _iana_names() or tzid.strip("/") in _iana_names()


def _vendor_prefixed_zone(tzid: str) -> str | None:
    """The IANA name at the end of a "globally unique" TZID such as /mozilla.org/20050126_1/Europe/Berlin."""
    parts = tzid.strip("/").split("/")
    for first in range(1, len(parts)):
        candidate = "/".join(parts[first:])
        if candidate in _iana_names():
            return candidate
    return None


def _zone_named(name: str) -> tzinfo | None:
    """The zone an X-WR-TIMEZONE value names: IANA, Windows or vendor-prefixed."""
    name = name.strip()
    if name in _iana_names():
        return ZoneInfo(name)
    if name in WINDOWS_TO_OLSON:
        return ZoneInfo(WINDOWS_TO_OLSON[name])
    guess = _vendor_prefixed_zone(name)
    return None if guess is None else ZoneInfo(guess)


def _component_spans(text: str, name: str) -> Iterator[tuple[int, int]]:
    """Where each BEGIN:`name` .. END:`name` block starts and ends (in upper case, as producers write them)."""
    begin, end = f"BEGIN:{name}", f"END:{name}"
    position = text.find(begin)
    while position != -1:
        stop = text.find(end, position)
        if stop == -1:
            return
        stop += len(end)
        if position == 0 or text[position - 1] == "\n":
            yield position, stop
        position = text.find(begin, stop)


# ---------------------------------------------------------------------------------------------------------------
# The structure scan and what is kept of a feed

# Each match is a line (after a line feed; the scan puts one before the text) that matters here, or an odd one: a
# line that is not NAME;params:value with an upper-case NAME. A line whose name has a lower-case letter (legal, read
# by icalendar, but written by virtually nobody) is odd and keeps its component whole. Starting with a literal
# line feed rather than ^ lets the regular expression engine skip ahead quickly.
_SCAN = re.compile(
    r"\n(?:(BEGIN|END|UID|DTSTART|DTEND|DURATION|RRULE|RDATE|EXDATE|EXRULE|RECURRENCE-ID|SEQUENCE|TZID)(?=[;:])"
    r"|(?![A-Z0-9-]+[;:]))([^\r\n]*)"
)
_COMPONENT = re.compile(r":[A-Za-z0-9-]+")
_PLAIN_NAME = re.compile(r"([A-Za-z0-9-]+)[;:]")
_VALUE = r'(?:"[^"\\\x00-\x1f]*"|[^";:,=\\\x00-\x1f]*)'
_PARAMETERS = rf"(?:;[A-Za-z0-9-]+={_VALUE}(?:,{_VALUE})*)*"
_PARAMETERS_SECTION = re.compile(_PARAMETERS)
_PROPERTY_REST = re.compile(rf"({_PARAMETERS}):(.*)", re.DOTALL)
_CALENDAR_PROPERTIES = frozenset({"VERSION", "PRODID", "CALSCALE", "METHOD"})
# Every property of a VEVENT that recurring-ical-events, x-wr-timezone or this module reads.
_READ_PROPERTIES = frozenset(
    {
        *("BEGIN", "END", "UID", "SUMMARY", "SEQUENCE", "STATUS", "TRANSP"),
        *("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID"),
        *("X-MICROSOFT-CDO-BUSYSTATUS", "X-MICROSOFT-CDO-INTENDEDSTATUS"),
    }
)


class _Component:
    """One component directly inside the VCALENDAR, as the scan sees it."""

    __slots__ = ("end", "name", "nested", "odd", "properties", "start", "uid_key")

    def __init__(self, name: str, start: int) -> None:
        self.name = name
        self.start = start
        self.end = 0
        self.odd = False
        """Whether a line directly in it is not a plain NAME;params:value line."""
        self.properties: dict[str, list[str]] = {}
        """The lines that matter here, directly in it, by name: what follows the name."""
        self.nested: list[tuple[int, int]] = []
        self.uid_key = ""
        """Its UID, loosely compared, if it has a plain one."""


@dataclass
class _Feed:
    """What the scan learnt about the whole feed."""

    own_zones: frozenset[str] = frozenset()
    """The zones the feed defines, by the ids it was given (see "Time-zone ids")."""
    calendar_start: int = 0
    """Just after the BEGIN:VCALENDAR line."""
    calendar_end: int = 0
    """Where the END:VCALENDAR line starts."""
    components: list[_Component] = field(default_factory=list)
    uid_counts: Counter[str] = field(default_factory=Counter)
    """How often each VEVENT UID (loosely compared) occurs."""
    odd_uids: list[str] = field(default_factory=list)
    """UID lines too odd to key; a UID found inside one of them counts as shared."""
    known_zones: dict[str, bool] = field(default_factory=dict)
    """Per TZID, whether icalendar resolves it."""
    sections: dict[str, str | None] = field(default_factory=dict)
    """Per parameter section of a DTSTART-like line, its kind (these repeat thousands of times)."""


def _scan(text: str, renamed_zones: frozenset[str]) -> _Feed | None:
    """The feed's components and the lines that matter; None when the structure is too odd to judge."""
    feed = _Feed()
    stack: list[str] = []
    component: _Component | None = None
    nested_start = 0
    uid_counts, components = feed.uid_counts, feed.components
    kinds: dict[str, str | None] = {}  # ":VEVENT" -> "VEVENT": a few values, met thousands of times
    lined = "\n" + text  # positions in `lined` are one past those in `text`
    for match in _SCAN.finditer(lined):
        name, rest = match.group(1, 2)
        if name == "BEGIN" or name == "END":
            if rest not in kinds:
                kinds[rest] = rest[1:].upper() if _COMPONENT.fullmatch(rest) else None
            kind = kinds[rest]
            if kind is None:
                return None
            depth = len(stack)
            if name == "BEGIN":
                if depth == 0:
                    if kind != "VCALENDAR" or feed.calendar_start:
                        return None  # more than one calendar: icalendar refuses the body, and so shall we
                    feed.calendar_start = _line_end(text, match.end() - 1)
                elif depth == 1:
                    component = _Component(kind, match.start())
                elif depth == 2:
                    nested_start = match.start()
                stack.append(kind)
                continue
            if not stack or stack.pop() != kind:
                return None
            if depth == 1:
                feed.calendar_end = match.start()
            elif component is not None and depth == 2:
                component.end = _line_end(text, match.end() - 1)
                components.append(component)
                component = None
            elif component is not None and depth == 3:
                component.nested.append((nested_start, _line_end(text, match.end() - 1)))
        elif name is not None:
            if component is None or len(stack) != 2:
                continue
            if name == "UID" and component.name == "VEVENT":
                if rest.startswith(":"):
                    component.uid_key = _uid_key(rest[1:])
                    uid_counts[component.uid_key] += 1
                else:
                    feed.odd_uids.append(_uid_key(rest))
            component.properties.setdefault(name, []).append(rest)
        elif rest:  # an odd line; icalendar skips empty ones
            odd_name = _name_of(rest)
            if odd_name in {"BEGIN", "END"}:
                return None  # icalendar would read this line as structure; judging it is not worth the risk
            if component is not None and len(stack) == 2:
                component.odd = True
                if odd_name == "UID" and component.name == "VEVENT":
                    feed.odd_uids.append(_uid_key(rest))
    if stack or not feed.calendar_start:
        return None
    # A renamed zone is the feed's own only if icalendar will meet its definition: a VTIMEZONE kept at the top,
    # with the TZID directly in it.
    feed.own_zones = frozenset(
        tzid
        for component in components
        if component.name == "VTIMEZONE"
        for line in component.properties.get("TZID", ())
        if (tzid := line.rpartition(":")[2]) in renamed_zones
    )
    return feed


def _name_of(line: str) -> str:
    """The property name icalendar reads from a line: before the first ; or :, blanks removed, upper case."""
    return re.sub(r"[ \t]+", "", re.split(r"[;:]", line, maxsplit=1)[0]).upper()


def _uid_key(value: str) -> str:
    # Looser than icalendar's equality on purpose: UIDs that might be equal count as one, which only keeps more.
    return value.replace("\\", "").strip().casefold()


def _line_end(text: str, position: int) -> int:
    if text.startswith("\r\n", position):
        return position + 2
    if text.startswith("\n", position):
        return position + 1
    return position


def _normalised(text: str, feed: _Feed, window: Interval | None) -> tuple[str, int, list[str]]:
    """The text with only what busy time is made of; with a window, also without what cannot touch it.

    Also returns how many VEVENTs were dropped and the problems found on the way.
    """
    problems: list[str] = []
    dropped = set() if window is None else _events_outside(feed, window)
    pieces = [text[: feed.calendar_start]]
    cursor = feed.calendar_start
    for component in feed.components:
        pieces.append(_calendar_lines(text[cursor : component.start], problems))
        cursor = component.end
        if component.name == "VEVENT":
            if component.start not in dropped:
                pieces.append(_event_text(text, component, thin=window is not None))
        elif component.name == "VTIMEZONE":
            pieces.append(text[component.start : component.end])
        elif component.name == "VFREEBUSY":
            pieces.append(_free_busy_text(text, component, problems))
    pieces.append(_calendar_lines(text[cursor : feed.calendar_end], problems))
    pieces.append(text[feed.calendar_end :])
    return "".join(pieces), len(dropped), problems


def _calendar_lines(lines: str, problems: list[str]) -> str:
    """The calendar's own lines this reader needs (and X- ones, which icalendar never rejects)."""
    if not lines:
        return ""
    kept: list[str] = []
    for line in lines.split("\n"):
        match = _PLAIN_NAME.match(line)
        if match is None:
            if line.strip():
                problems.append(f"unreadable line {line.strip()[:60]!r} in the calendar; skipped")
                continue
        elif (name := match.group(1).upper()) not in _CALENDAR_PROPERTIES and not name.startswith("X-"):
            continue
        kept.append(line)
    return "\n".join(kept)


def _without_nested(text: str, component: _Component) -> str:
    if not component.nested:
        return text[component.start : component.end]
    pieces: list[str] = []
    cursor = component.start
    for start, end in component.nested:
        pieces.append(text[cursor:start])
        cursor = end
    pieces.append(text[cursor : component.end])
    return "".join(pieces)


def _event_text(text: str, event: _Component, *, thin: bool) -> str:
    """The VEVENT without nested components; thinned, without the properties nothing here reads.

    icalendar reads a VEVENT's bad properties as broken values instead of failing, and none of the thinned-out
    ones is reported, so thinning changes nothing but the time spent parsing descriptions and attendees.
    """
    body = _without_nested(text, event)
    if not thin:
        return body
    kept: list[str] = []
    for line in body.split("\n"):
        match = _PLAIN_NAME.match(line)
        if match is None or match.group(1).upper() in _READ_PROPERTIES:
            kept.append(line)
    return "\n".join(kept)


def _free_busy_text(text: str, free_busy: _Component, problems: list[str]) -> str:
    """The VFREEBUSY with its UID and readable FREEBUSY lines only (icalendar fails the feed on a bad one)."""
    uids = free_busy.properties.get("UID", [])
    uid = uids[0][1:] if uids and uids[0].startswith(":") else None
    label = "VFREEBUSY" if uid is None else f"VFREEBUSY {_shortened(uid)!r}"
    kept: list[str] = []
    for line in _without_nested(text, free_busy).split("\n"):
        match = _PLAIN_NAME.match(line)
        name = match.group(1).upper() if match else ""
        if name == "FREEBUSY" and not _readable_periods(line[len(name) :].removesuffix("\r")):
            problems.append(f"{label}: unreadable {line.strip()[:80]!r}; skipped")
        elif name in {"BEGIN", "END", "UID", "FREEBUSY"} or not line.strip():
            kept.append(line)
    return "\n".join(kept)


def _readable_periods(rest: str) -> bool:
    """Whether icalendar reads every period of a FREEBUSY line: start/end or start/duration, never backwards."""
    match = _PROPERTY_REST.fullmatch(rest)
    if match is None:
        return False
    for period in match.group(2).split(","):
        start, _, end = period.partition("/")
        begins = _stamp_as_utc(start) if _TIME_STAMP.fullmatch(start) else None
        if begins is None:
            return False
        if _TIME_STAMP.fullmatch(end):
            # icalendar cannot compare a UTC time with a floating one, and refuses a period that runs backwards.
            ends = _stamp_as_utc(end)
            if ends is None or start.endswith("Z") != end.endswith("Z") or ends < begins:
                return False
        else:
            length = _duration_value(end)
            if length is None or length < timedelta(0):
                return False
    return True


# ---------------------------------------------------------------------------------------------------------------
# The fast path: which VEVENTs cannot touch the window
#
# VEVENTs are judged by UID, as recurring-ical-events groups them: a master, its overrides (RECURRENCE-ID) and
# duplicates with another SEQUENCE. A group is dropped only when all of this holds, so that dropping it can change
# neither the busy time nor the problems reported:
# - no other VEVENT carries its UID, and each VEVENT in it holds only plain NAME;params:value lines, and at most one
#   SEQUENCE, a plain number (recurring-ical-events compares them, and fails on one that is not a number);
# - at most one master, without RDATE or EXRULE and with at most one RRULE that is plain (DAILY to YEARLY, ending
#   with UNTIL) and plain EXDATEs; overrides have a plain RECURRENCE-ID without RANGE and no rules of their own;
# - every DTSTART, DTEND, DURATION is one of the forms icalendar reads without complaint, in a zone it knows, and
#   no VEVENT ends before it starts;
# - from the master's DTSTART to its UNTIL plus its length, and every override's own time, lies wholly before the
#   window or wholly after it, even with the widest UTC offset there is.

# Times are compared as wall clock read as UTC. No UTC offset a VTIMEZONE can write (two-digit hours) plus a DST
# shift reaches this far, so wall-clock times this far outside the window are outside it in every zone.
_SLACK = timedelta(days=5)
_PARAMETER = re.compile(r';([A-Za-z0-9-]+)=("[^"]*"|[^";:,]*)')
_QUOTED = re.compile(r'"[^"]*"')
_STAMP = re.compile(r"\d{8}(?:T\d{6}Z?)?")
_TIME_STAMP = re.compile(r"\d{8}T\d{6}Z?")
_SEQUENCE = re.compile(r":-?\d{1,9}")
_DATES_OR_TIMES = re.compile(rf"({_PARAMETERS}):(\d{{8}}(?:T\d{{6}}Z?)?(?:,\d{{8}}(?:T\d{{6}}Z?)?)*)")
_DURATION_VALUE = re.compile(
    r"([-+]?)P(?:(\d{1,6})W)?(?:(\d{1,6})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,6})S)?)?"
)
_WEEKDAY = "(?:MO|TU|WE|TH|FR|SA|SU)"
_RULE_PARTS = {
    "FREQ": re.compile("DAILY|WEEKLY|MONTHLY|YEARLY"),
    "UNTIL": re.compile(r"\d{8}(?:T\d{6}Z?)?"),
    "INTERVAL": re.compile(r"[1-9]\d{0,2}"),
    "BYDAY": re.compile(rf"(?:[+-]?[1-5])?{_WEEKDAY}(?:,(?:[+-]?[1-5])?{_WEEKDAY})*"),
    "BYMONTHDAY": re.compile(r"-?(?:[1-9]|[12]\d|3[01])(?:,-?(?:[1-9]|[12]\d|3[01]))*"),
    "BYMONTH": re.compile(r"(?:[1-9]|1[0-2])(?:,(?:[1-9]|1[0-2]))*"),
    "WKST": re.compile(_WEEKDAY),
}
_Span = tuple[datetime, datetime]


def _events_outside(feed: _Feed, window: Interval) -> set[int]:
    """Where the VEVENTs start that cannot touch `window`."""
    earliest, latest = window.start - _SLACK, window.end + _SLACK
    outside: set[int] = set()
    for group in _uid_groups(feed):
        span = _group_span(group, feed)
        if span is not None and (span[1] < earliest or span[0] > latest):
            outside.update(event.start for event in group)
    return outside


def _uid_groups(feed: _Feed) -> Iterator[list[_Component]]:
    """The VEVENTs recurring-ical-events will take as one series each, where the UIDs can be told apart for sure."""
    by_uid: defaultdict[str, list[_Component]] = defaultdict(list)
    for event in feed.components:
        if event.name != "VEVENT":
            continue
        uids = event.properties.get("UID")
        if uids is None:
            yield [event]  # recurring-ical-events gives a VEVENT without UID a series of its own
        elif len(uids) == 1 and uids[0].startswith(":"):
            by_uid[event.uid_key].append(event)
    for key, group in by_uid.items():
        if feed.uid_counts[key] == len(group) and not any(key in odd for odd in feed.odd_uids):
            yield group


def _group_span(group: list[_Component], feed: _Feed) -> _Span | None:
    """When the occurrences of one UID can happen at the earliest and the latest; None if it must be kept."""
    if len(group) == 1:
        return _event_span(group[0], feed)
    if sum("RECURRENCE-ID" not in event.properties for event in group) > 1:
        return None
    spans = [_event_span(event, feed) for event in group]
    if None in spans:
        return None
    return min(span[0] for span in spans if span), max(span[1] for span in spans if span)


def _event_span(event: _Component, feed: _Feed) -> _Span | None:
    """When one VEVENT's occurrences can happen: a master's whole series, an override's own time; or None."""
    properties = event.properties
    if event.odd or "RDATE" in properties or "EXRULE" in properties:
        return None
    # recurring-ical-events compares SEQUENCE numbers even for a lone event; a bad one makes it raise.
    if "SEQUENCE" in properties and (
        len(properties["SEQUENCE"]) > 1 or not _SEQUENCE.fullmatch(properties["SEQUENCE"][0])
    ):
        return None
    span = _wall_clock_span(properties, feed)
    if span is None:
        return None
    if "RECURRENCE-ID" in properties:
        plain = "RRULE" not in properties and "EXDATE" not in properties and _plain_recurrence_id(properties, feed)
        return span if plain else None
    if "RRULE" not in properties:
        return None if "EXDATE" in properties else span
    return _series_span(span, properties, feed)


def _series_span(span: _Span, properties: dict[str, list[str]], feed: _Feed) -> _Span | None:
    """From a master's first start to its last possible end, if its RRULE and EXDATEs are plain enough."""
    rules = properties["RRULE"]
    if len(rules) > 1 or not all(_plain_dates(exdate, feed) for exdate in properties.get("EXDATE", ())):
        return None
    until = _rule_until(rules[0])
    if until is None:
        return None
    start, end = span
    return start, max(start, until) + (end - start)


def _rule_until(line_rest: str) -> datetime | None:
    """The latest start a plain RRULE allows (wall clock read as UTC); None for any rule that is not plain."""
    if not line_rest.startswith(":"):
        return None
    parts: dict[str, str] = {}
    for part in line_rest[1:].split(";"):
        key, _, value = part.partition("=")
        grammar = _RULE_PARTS.get(key)
        if grammar is None or key in parts or not grammar.fullmatch(value):
            return None
        parts[key] = value
    if "FREQ" not in parts or "UNTIL" not in parts:
        return None
    if parts["FREQ"] in {"DAILY", "WEEKLY"} and any(c.isdigit() for c in parts.get("BYDAY", "")):
        return None  # a numbered weekday only means something monthly or yearly
    until = _stamp_as_utc(parts["UNTIL"])
    if until is None:
        return None
    # An UNTIL date lets its whole day through.
    return until + timedelta(days=1) if len(parts["UNTIL"]) == 8 else until


def _plain_recurrence_id(properties: dict[str, list[str]], feed: _Feed) -> bool:
    """Whether an override has one RECURRENCE-ID icalendar reads without complaint, and no RANGE."""
    ids = properties["RECURRENCE-ID"]
    return len(ids) == 1 and "RANGE=" not in ids[0].upper() and _wall_clock(ids[0], feed) is not None


def _plain_dates(line_rest: str, feed: _Feed) -> bool:
    """Whether an EXDATE line is a list of dates or date-times icalendar reads without complaint."""
    match = _DATES_OR_TIMES.fullmatch(line_rest)
    if match is None:
        return False
    values = match.group(2).split(",")
    # One kind of value per line, each of them readable; mixed lines are legal but too odd to vouch for.
    return len({len(value) for value in values}) == 1 and all(
        _wall_clock(f"{match.group(1)}:{value}", feed) is not None for value in values
    )


def _wall_clock_span(properties: dict[str, list[str]], feed: _Feed) -> _Span | None:
    """Start and end of one VEVENT as wall clock read as UTC, if plain enough to vouch for; else None."""
    starts, ends, durations = properties.get("DTSTART"), properties.get("DTEND"), properties.get("DURATION")
    if starts is None or len(starts) != 1 or (ends and durations) or len(ends or durations or ()) > 1:
        return None
    start = _wall_clock(starts[0], feed)
    if start is None:
        return None
    start_time, start_kind = start
    try:
        if ends:
            end = _wall_clock(ends[0], feed)
            # Only times of one kind compare the same way here and in recurring-ical-events.
            if end is None or end[1] != start_kind or end[0] < start_time:
                return None
            return start_time, end[0]
        if durations:
            length = _duration_value(durations[0][1:]) if durations[0].startswith(":") else None
            if length is None or length < timedelta(0):
                return None
            return start_time, start_time + length
        return start_time, start_time + (timedelta(days=1) if start_kind == "date" else timedelta(0))
    except OverflowError:
        return None


def _wall_clock(line_rest: str, feed: _Feed) -> tuple[datetime, str] | None:
    """A DTSTART/DTEND value as (wall clock read as UTC, kind); kinds tell dates, UTC, floating and each zone apart."""
    section, _, value = line_rest.rpartition(":")
    if section not in feed.sections:
        feed.sections[section] = _section_kind(section, feed)
    kind = feed.sections[section]
    wall = None if kind is None else _stamp_as_utc(value)
    if kind is None or wall is None:
        return None
    if len(value) == 8:
        # icalendar makes a DATE with a TZID a DATE-TIME at midnight; too odd to vouch for.
        return (wall, "date") if not kind else None
    return wall, kind or ("utc" if value.endswith("Z") else "floating")


def _section_kind(section: str, feed: _Feed) -> str | None:
    """For the parameters of a DTSTART-like line: "" without TZID, "zone <TZID>" for a known zone, else None."""
    parameters = _parameters(section) if _PARAMETERS_SECTION.fullmatch(section) else None
    if parameters is None or parameters.get("VALUE", "DATE-TIME").upper() not in {"DATE", "DATE-TIME"}:
        return None
    tzid = parameters.get("TZID")
    if tzid is None:
        return ""
    return f"zone {tzid}" if _zone_is_known(tzid, feed) else None


def _stamp_as_utc(value: str) -> datetime | None:
    """A YYYYMMDD[THHMMSS[Z]] value as that wall clock read as UTC, or None if it is no real time or far from now."""
    if not _STAMP.fullmatch(value) or not "1900" <= value[:4] <= "2999":
        return None  # far enough from any window; and arithmetic near year 1 or 9999 would overflow
    try:
        # Digits in the basic ISO 8601 form, which fromisoformat reads in C, rejecting what icalendar rejects:
        # 30 February, hour 24, second 60.
        return datetime.fromisoformat(value.removesuffix("Z")).replace(tzinfo=UTC)
    except ValueError:
        return None


def _parameters(section: str) -> dict[str, str] | None:
    """A line's parameters, names upper-cased and values unquoted; None if a name repeats or a value is a list."""
    if "," in _QUOTED.sub("", section):
        return None
    found: dict[str, str] = {}
    for name, value in _PARAMETER.findall(section):
        key = name.upper()
        if key in found:
            return None
        found[key] = value[1:-1] if value.startswith('"') else value
    return found


def _zone_is_known(tzid: str, feed: _Feed) -> bool:
    """Whether icalendar resolves this TZID: IANA, Windows, a VTIMEZONE of this feed, or one it has cached."""
    if tzid not in feed.known_zones:
        # A TZID still starting with "/" here has neither a definition nor an IANA name at its end.
        feed.known_zones[tzid] = tzid in feed.own_zones or (
            not tzid.startswith("/") and _looks_up_safely(tzid) and tzp.timezone(tzid) is not None
        )
    return feed.known_zones[tzid]


def _duration_value(value: str) -> timedelta | None:
    match = _DURATION_VALUE.fullmatch(value)
    if match is None:
        return None
    weeks, days, hours, minutes, seconds = (int(match.group(i) or 0) for i in range(2, 7))
    length = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    return -length if match.group(1) == "-" else length


# ---------------------------------------------------------------------------------------------------------------
# Reading the parsed calendar

_TIME_PROPERTIES = frozenset({"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID"})
_ZONED_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "EXDATE")
# recurring-ical-events steps through a rule from its start, about half a million steps a second; an old minutely
# or secondly rule would stall the sync worker for minutes or hours, so a rule needing more steps is skipped.
_MAX_RULE_STEPS = 2_000_000
_STEP = {"SECONDLY": timedelta(seconds=1), "MINUTELY": timedelta(minutes=1), "HOURLY": timedelta(hours=1)}


def _read_calendar(
    text: str, *, window: Interval, zone: ZoneInfo, dropped: int, problems: list[str], zone_names: dict[str, str]
) -> FeedReading:
    try:
        calendar = Calendar.from_ical(text)
    except Exception as error:  # icalendar raises a variety of types on a malformed body
        return FeedReading(busy=(), events=0, failure=f"not a readable iCalendar body: {error}")
    scale = str(calendar.get("CALSCALE", "GREGORIAN")).upper()
    if scale != "GREGORIAN":
        return FeedReading(busy=(), events=0, failure=f"calendar scale {scale} is not supported")

    local_zone, x_wr = _x_wr_timezone(calendar, zone, problems)
    events = calendar.walk("VEVENT")
    # x-wr-timezone's to_standard, one top-level event at a time, so that an event it chokes on costs only itself.
    top_level = {id(component) for component in calendar.subcomponents}
    series: defaultdict[str, list[EventAdapter]] = defaultdict(list)
    labels: dict[str, str] = {}  # recurring-ical-events names a series without UID after a Python object id
    for original in events:
        if is_own_uid(str(original.get("UID", ""))):
            # A consultation the bot booked, echoed back by the expert's calendar: the booking itself already
            # blocks that time (with its buffers), and when it moves or is cancelled the echo must not linger.
            continue
        label = _label(original)
        problems.extend(f"{label}: {note}" for note in _unknown_zones(original, local_zone, zone_names))
        # Judged as written: X-WR-TIMEZONE turns UTC times into local ones, and two of them in the hour repeated
        # when clocks fall back compare (by wall clock, as Python compares times of one zone) the wrong way round.
        reason = _unusable(original)
        if reason is not None:
            problems.append(f"{label}: {reason}; skipped")
            continue
        try:
            event = x_wr.walk_event(original) if x_wr is not None and id(original) in top_level else original
        except Exception as error:  # an overflow near year 1 or 9999, say
            problems.append(f"{label}: X-WR-TIMEZONE could not be applied ({error}); skipped")
            continue
        adapter = EventAdapter(event)
        series[adapter.uid].append(adapter)
        labels.setdefault(adapter.uid, f"VEVENT {_shortened(str(adapter.uid))!r}" if "UID" in original else label)

    # Floating times and dates take the zone of the span, so the span is given in the expert's zone.
    span_start, span_end = window.start.astimezone(zone), window.end.astimezone(zone)
    busy: list[Interval] = []
    for uid, adapters in series.items():
        label = labels[uid]
        try:
            too_long = _too_many_steps(adapters, span_end, zone)
            if too_long is not None:
                problems.append(f"{label}: {too_long}; skipped")
                continue
            occurrences = [o.as_component(False) for o in Series(adapters).between(span_start, span_end)]
        except Exception as error:  # recurring-ical-events raises many types on odd series
            problems.append(f"{label}: recurrence could not be expanded ({type(error).__name__}: {error}); skipped")
            continue
        busy.extend(interval for o in occurrences if (interval := busy_interval(o, zone=zone)) is not None)

    busy.extend(_free_busy_periods(calendar, local_zone, problems))
    return FeedReading(
        busy=tuple(clip(busy, window)), events=len(events) + dropped, problems=tuple(problems), failure=None
    )


def _x_wr_timezone(calendar: Calendar, zone: ZoneInfo, problems: list[str]) -> tuple[tzinfo, Any]:
    """The zone floating times are in, and the x-wr-timezone walker that applies Google's X-WR-TIMEZONE, if any."""
    name = calendar.get("X-WR-TIMEZONE")
    if name is None:
        return zone, None
    wr_zone = _zone_named(str(name))
    if wr_zone is None:
        problems.append(f"unknown X-WR-TIMEZONE {str(name)!r}; floating times read in {zone.key}")
        return zone, None
    return wr_zone, x_wr_timezone.UTCChangingWalker(wr_zone)


def _label(event: Component) -> str:
    uid = event.get("UID")
    label = "VEVENT without UID" if uid is None else f"VEVENT {_shortened(str(uid))!r}"
    summary = event.get("SUMMARY")
    if summary is not None:
        label += f" ({_shortened(str(summary))!r})"
    return label


def _shortened(text: str) -> str:
    return text if len(text) <= 60 else text[:59] + "\N{HORIZONTAL ELLIPSIS}"


def _unknown_zones(event: Component, local_zone: tzinfo, zone_names: dict[str, str]) -> Iterator[str]:
    """A note for each TZID icalendar could not resolve; it leaves such a time floating, i.e. in `local_zone`."""
    seen: set[tuple[str, str]] = set()
    for name in _ZONED_PROPERTIES:
        for value in _as_list(event.get(name)):
            tzid = getattr(value, "params", {}).get("TZID")
            if tzid is None or (name, tzid) in seen:
                continue
            times = getattr(value, "dts", [value])
            if any(isinstance(getattr(t, "dt", None), datetime) and t.dt.tzinfo is None for t in times):
                seen.add((name, tzid))
                written = _shortened(zone_names.get(tzid, tzid))
                yield f"unknown time zone {written!r} in {name}, read as local time in {_zone_name(local_zone)}"


def _unusable(event: Component) -> str | None:
    """Why this VEVENT cannot be used at all, or None."""
    broken = sorted({name for name, _ in event.errors if name in _TIME_PROPERTIES})
    if broken:
        return f"unreadable {', '.join(broken)}"
    for name in ("UID", "DTSTART", "DTEND", "DURATION", "RECURRENCE-ID"):
        if isinstance(event.get(name), list):
            return f"more than one {name}"
    if "DTSTART" not in event:
        return "no DTSTART"
    start, end = _time_of(event, "DTSTART"), _time_of(event, "DTEND")
    if start is None:
        return "DTSTART is not a date or a date-time"
    if "DTEND" in event:
        if end is None:
            return "DTEND is not a date or a date-time"
        if _ends_before(start, end):
            return f"DTEND {end} is before DTSTART {start}"
    elif "DURATION" in event:
        duration = getattr(event["DURATION"], "dt", None)
        if not isinstance(duration, timedelta):
            return "DURATION is not a duration"
        if duration < timedelta(0):
            return f"negative DURATION {duration}"
    if "RECURRENCE-ID" in event and _time_of(event, "RECURRENCE-ID") is None:
        return "RECURRENCE-ID is not a date or a date-time"
    return None


def _time_of(component: Component, name: str) -> date | None:
    """The date or date-time of a property, or None if it is missing or something else."""
    value = getattr(component.get(name), "dt", None)
    return value if isinstance(value, date) else None


def _ends_before(start: date, end: date) -> bool:
    """Whether end < start as recurring-ical-events compares them: by wall clock unless the zones differ."""
    if not isinstance(start, datetime) and not isinstance(end, datetime):
        return end < start
    common = next((t.tzinfo for t in (start, end) if isinstance(t, datetime) and t.tzinfo is not None), UTC)
    return _instant(end, common) < _instant(start, common)


def _instant(value: date, zone: tzinfo) -> datetime:
    """An aware datetime: a date starts at midnight in `zone`, a floating time is wall clock in `zone`."""
    if not isinstance(value, datetime):
        return datetime.combine(value, time(), tzinfo=zone)
    return value if value.tzinfo is not None else value.replace(tzinfo=zone)


def _is_free(occurrence: Component) -> bool:
    if _upper(occurrence.get("STATUS")) == "CANCELLED" or _upper(occurrence.get("TRANSP")) == "TRANSPARENT":
        return True
    # Outlook's status of the calendar's owner; INTENDEDSTATUS is what an organiser asked for and only fills a gap.
    status = _upper(occurrence.get("X-MICROSOFT-CDO-BUSYSTATUS")) or _upper(
        occurrence.get("X-MICROSOFT-CDO-INTENDEDSTATUS")
    )
    return status == "FREE"


def _upper(value: object) -> str:
    return value.strip().upper() if isinstance(value, str) else ""


def _too_many_steps(adapters: list[EventAdapter], span_end: datetime, zone: tzinfo) -> str | None:
    """Why expanding this series would take too long, or None."""
    for adapter in adapters:
        start = _instant(adapter.start, zone)
        for rule in adapter.rrules:
            parts = dict(part.split("=", 1) for part in rule.split(";") if "=" in part)
            step = _STEP.get(parts.get("FREQ", "").upper())
            if step is None:
                continue
            interval = int(parts["INTERVAL"]) if parts.get("INTERVAL", "").isdigit() else 1
            until = _stamp_as_utc(parts.get("UNTIL", ""))
            steps = (min(span_end, until or span_end) - start) / (step * max(interval, 1))
            count = int(parts["COUNT"]) if parts.get("COUNT", "").isdigit() else None
            if steps > _MAX_RULE_STEPS and (count is None or count > _MAX_RULE_STEPS):
                return f"RRULE {rule} from {start:%Y-%m-%d} needs {steps:,.0f} steps to reach the window"
    return None


def _free_busy_periods(calendar: Calendar, local_zone: tzinfo, problems: list[str]) -> Iterator[Interval]:
    """Busy periods of VFREEBUSY components: FBTYPE BUSY (the default), BUSY-TENTATIVE, BUSY-UNAVAILABLE."""
    for free_busy in calendar.walk("VFREEBUSY"):
        uid = free_busy.get("UID")
        label = "VFREEBUSY" if uid is None else f"VFREEBUSY {_shortened(str(uid))!r}"
        for period in _as_list(free_busy.get("FREEBUSY")):
            # RFC 5545: an FBTYPE this reader does not know counts as BUSY.
            if str(period.params.get("FBTYPE", "BUSY")).upper() == "FREE":
                continue
            start, end_or_length = period.dt
            end = start + end_or_length if isinstance(end_or_length, timedelta) else end_or_length
            begins, ends = _instant(start, local_zone), _instant(end, local_zone)
            if ends <= begins:
                problems.append(f"{label}: FREEBUSY period {start} .. {end} does not end after it starts; skipped")
                continue
            yield Interval(begins, ends)


def _as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _zone_name(zone: tzinfo) -> str:
    return str(getattr(zone, "key", zone))
