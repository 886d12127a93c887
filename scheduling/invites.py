"""Consultations as iCalendar: the prospect's invite, the event stored in the expert's calendar, the expert's feed.

Pure: no I/O, no clock. Every instant is written in UTC ("…Z", no TZID, no VTIMEZONE), which Google, Outlook and
Apple Calendar all read without guessing. icalendar folds lines at 75 octets without splitting a UTF-8 character,
ends them with CRLF and quotes parameters; text values go through `_Text`, RFC 5545 escaping without the one
icalendar slip described there.

Two audiences see a consultation, each with the other party in the title: the prospect's invite reads
"Consultation with <expert> (<consultancy>)", the expert's copy "Consultation with <prospect> (<their company>)".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

from icalendar import Alarm, Calendar, Event, vCalAddress, vDuration, vText

from scheduling.model import Expert
from scheduling.records import Booking

__all__ = ["FEED_REFRESH", "PRODID", "InviteMethod", "expert_feed", "invite", "stored_event"]

PRODID = "-//consultbot//consultbot//EN"
"""The product identifier: a constant, so no configured or typed text ever lands in the formal public identifier."""
FEED_REFRESH = timedelta(minutes=15)
"""How often a subscribed calendar app is asked to fetch the expert's feed again."""

InviteMethod = Literal["REQUEST", "CANCEL"]

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_SPACES = re.compile(r"\s+")
_WEB_LINK = re.compile(r"https?://\S+", re.IGNORECASE)
_MAILBOX = re.compile(r"[^\s@\x00-\x1f\x7f]+@[^\s@\x00-\x1f\x7f]+")


class _Text(vText):
    """An RFC 5545 TEXT value, escaped as §3.3.11 says.

    icalendar 7.3's own escaping first turns a literal backslash followed by "N" into a line break, so a topic
    like "C:\\Notes" would come back as two lines; every other rule is the same.
    """

    __slots__ = ()

    def to_ical(self) -> bytes:
        """The escaped value, as it goes between the colon and the line end."""
        escaped = self.replace("\\", "\\\\").replace(";", "\\;").replace(",", "\\,").replace("\n", "\\n")
        return escaped.encode("utf-8")


def invite(
    booking: Booking,
    expert: Expert,
    *,
    method: InviteMethod,
    company: str,
    fallback_email: str,
    now: datetime,
    alarm_before: timedelta = timedelta(minutes=15),
) -> bytes:
    """The .ics the prospect opens: an RFC 5546 REQUEST for a booked or moved consultation, or its CANCEL."""
    # A CANCEL keeps the UID and carries the SEQUENCE the caller raised, so calendars remove the event they hold.
    cancelled = method == "CANCEL"
    summary = f"Consultation with {_name(expert.name)} ({_name(company)})"
    lines = ["This consultation has been cancelled."] if cancelled else []
    lines += _topic_and_place(booking, expert)
    lines.append(f"With {expert.name}, {expert.role} at {company}.")
    event = _event(
        booking,
        expert,
        summary=summary,
        description="\n".join(lines),
        stamp=now,
        status="CANCELLED" if cancelled else "CONFIRMED",
    )
    event.add("organizer", _organizer(expert, fallback_email))
    if booking.attendee_email:
        event.add("attendee", _attendee(booking, booking.attendee_email))
    if not cancelled:
        alarm = Alarm()
        alarm.add("action", "DISPLAY")
        alarm.add("description", _Text(summary))
        alarm.add("trigger", -alarm_before)
        event.add_component(alarm)
    return _serialised(_calendar(method, [event]))


def stored_event(booking: Booking, expert: Expert, *, company: str, fallback_email: str, now: datetime) -> bytes:
    """The consultation as the expert's CalDAV collection stores it: one VEVENT and no METHOD (RFC 4791 §4.1).

    `now` is the DTSTAMP only for a booking that carries no time of its own change.
    """
    event = _expert_event(booking, expert, company=company, fallback_email=fallback_email, now=now)
    if booking.attendee_email:
        # With the expert as ORGANIZER a server doing RFC 6638 scheduling (sabre/dav: Nextcloud, Baïkal) would
        # e-mail the prospect a second invite; SCHEDULE-AGENT=CLIENT says the bot has sent it already. The attendee
        # stays in the event so the reply the prospect's calendar mails to the organizer can update this copy.
        event.add("attendee", _attendee(booking, booking.attendee_email, scheduled_by_client=True))
    return _serialised(_calendar(None, [event]))


def expert_feed(
    bookings: Sequence[Booking], expert: Expert, *, company: str, fallback_email: str, now: datetime
) -> bytes:
    """The expert's subscribable feed of the consultations passed, by start: the same bookings, the same bytes.

    METHOD:PUBLISH is what Google's and Outlook's own published calendars carry, so every subscribing app knows it.
    RFC 5546 then asks for an ORGANIZER in each event and forbids ATTENDEEs: the prospect's details are in the
    DESCRIPTION. DTSTAMP is when each booking last changed, not `now`, so an unchanged feed keeps its ETag; `now`
    stands in only for a booking that carries no time of its own change.
    """
    events = [
        _expert_event(booking, expert, company=company, fallback_email=fallback_email, now=now)
        for booking in sorted(bookings, key=lambda booking: (_utc(booking.starts_at), booking.uid))
    ]
    calendar = _calendar("PUBLISH", events)
    name = _Text(_name(f"{company} consultations \N{EN DASH} {expert.name}"))
    calendar.add("name", name)
    calendar.add("x-wr-calname", name)
    calendar.add("x-wr-timezone", expert.timezone)
    calendar.add("refresh-interval", vDuration(FEED_REFRESH), parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", vDuration(FEED_REFRESH))
    return _serialised(calendar)


def _calendar(method: str | None, events: Iterable[Event]) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    if method is not None:
        calendar.add("method", method)
    for event in events:
        calendar.add_component(event)
    return calendar


def _serialised(calendar: Calendar) -> bytes:
    ics: bytes = calendar.to_ical()
    return ics


def _expert_event(booking: Booking, expert: Expert, *, company: str, fallback_email: str, now: datetime) -> Event:
    """The consultation as the expert sees it: the prospect in the title and all they told in the description."""
    summary = f"Consultation with {_name(booking.attendee_name)}"
    if booking.company:
        summary += f" ({_name(booking.company)})"
    lines = ["Cancelled."] if booking.status == "cancelled" else []
    lines.append(f"Prospect: {booking.attendee_name}")
    if booking.attendee_email:
        lines.append(f"Email: {booking.attendee_email}")
    if booking.company:
        lines.append(f"Company: {booking.company}")
    lines += _topic_and_place(booking, expert)
    lines.append(f"Booked through the {company} assistant.")
    # RFC 5545 §3.8.7.2: without a METHOD, DTSTAMP is when the stored information was last revised.
    revised = booking.updated_at or booking.created_at or now
    event = _event(
        booking,
        expert,
        summary=summary,
        description="\n".join(lines),
        stamp=revised,
        status="CANCELLED" if booking.status == "cancelled" else "CONFIRMED",
    )
    event.add("organizer", _organizer(expert, fallback_email))
    return event


def _event(
    booking: Booking,
    expert: Expert,
    *,
    summary: str,
    description: str,
    stamp: datetime,
    status: Literal["CONFIRMED", "CANCELLED"],
) -> Event:
    """The properties every copy of a consultation shares."""
    start, end = _utc(booking.starts_at), _utc(booking.ends_at)
    if end <= start:
        raise ValueError(f"consultation {booking.uid} ends at {end.isoformat()}, not after its start")
    event = Event()
    event.add("uid", booking.uid)
    event.add("sequence", booking.sequence)
    event.add("dtstamp", _utc(stamp))
    event.add("dtstart", start)
    event.add("dtend", end)
    if booking.created_at is not None:
        event.add("created", _utc(booking.created_at))
    if booking.updated_at is not None:
        event.add("last-modified", _utc(booking.updated_at))
    event.add("summary", _Text(_clean(summary)))
    event.add("description", _Text(_clean(description)))
    if expert.meeting is not None:
        event.add("location", _Text(_clean(expert.meeting)))
        if (link := _web_link(expert.meeting)) is not None:
            event.add("url", link)
    event.add("status", status)
    event.add("transp", "OPAQUE")
    return event


def _topic_and_place(booking: Booking, expert: Expert) -> list[str]:
    lines = [f"Topic: {booking.topic}"] if booking.topic.strip() else []
    if expert.meeting is not None:
        label = "Join" if _web_link(expert.meeting) is not None else "Where"
        lines.append(f"{label}: {expert.meeting}")
    return lines


def _organizer(expert: Expert, fallback_email: str) -> vCalAddress:
    organizer = vCalAddress(_mailto(expert.email or fallback_email))
    organizer.params["CN"] = _common_name(expert.name)
    return organizer


def _attendee(booking: Booking, email: str, *, scheduled_by_client: bool = False) -> vCalAddress:
    attendee = vCalAddress(_mailto(email))
    attendee.params["CN"] = _common_name(booking.attendee_name)
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "TRUE"
    if scheduled_by_client:
        attendee.params["SCHEDULE-AGENT"] = "CLIENT"
    return attendee


def _mailto(email: str) -> str:
    # The address is written unescaped after the colon: a line break or space in it would forge or break lines.
    if not _MAILBOX.fullmatch(email):
        raise ValueError(f"not an e-mail address: {email!r}")
    return f"mailto:{email}"


def _web_link(meeting: str) -> str | None:
    text = meeting.strip()
    return text if _WEB_LINK.fullmatch(text) else None


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{moment.isoformat()} has no time zone; every instant here must be aware")
    return moment.astimezone(UTC).replace(microsecond=0)


def _clean(text: str) -> str:
    """`text` fit for a TEXT value: line breaks as "\\n", no control characters, nothing UTF-8 cannot encode."""
    # Typed text arrives from Telegram's JSON, which can carry lone surrogates; to_ical() would fail on them.
    text = text.encode("utf-8", "replace").decode("utf-8")
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def _name(text: str) -> str:
    """A name on one line: a CN parameter or a title has no place for line breaks."""
    return _SPACES.sub(" ", _clean(text)).strip()


def _common_name(text: str) -> str:
    """A name for a CN parameter, where a double quote cannot stand."""
    # RFC 6868 would write it as ^' and Apple reads that back, but Outlook and Google show the caret literally.
    return _name(text).replace('"', "'")
