"""Consultations as iCalendar: the prospect's invite, the expert's stored event and feed, read back with icalendar."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from icalendar import Calendar, Component, Event

from scheduling.invites import PRODID, expert_feed, invite, stored_event
from scheduling.model import Expert
from scheduling.records import Booking, booking_uid

COMPANY = "Meridian Outsourcing Partners"
FALLBACK = "bookings@meridian.example"
NOW = datetime(2026, 11, 24, 9, 30, 5, tzinfo=UTC)
START = datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
END = START + timedelta(minutes=45)
BOOKED_AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
MOVED_AT = datetime(2026, 11, 25, 8, 15, tzinfo=UTC)
HOSTILE = 'Nord, Süd; "Ost" \\ West\\Notes\nline two 🚀 ' + "Ω" * 20
"""Commas, semicolons, quotes, backslashes (one before "N"), a line break, an emoji and two-byte letters."""

AMELIA = Expert(
    key="amelia",
    name="Amelia Hart",
    role="Finance & Accounting Lead",
    timezone="Europe/London",
    email="amelia@meridian.example",
    meeting="https://meet.example.com/amelia-hart",
)
RAHUL = Expert(key="rahul", name="Rahul Mehta", role="Customer Support Lead", timezone="Asia/Kolkata")


def _booking(**changes: object) -> Booking:
    """Jordan Lee of Acme Logistics booked with Amelia for Thursday 14:00 UTC."""
    booking = Booking(
        uid=booking_uid("k3x9f2"),
        expert_key="amelia",
        starts_at=START,
        ends_at=END,
        blocked_from=START,
        blocked_until=END + timedelta(minutes=15),
        prospect_ref=7,
        lead_ref=11,
        chat_id=4242,
        attendee_name="Jordan Lee",
        attendee_email="jordan@acme.example",
        attendee_zone="America/New_York",
        company="Acme Logistics",
        topic="Accounts payable, payroll",
        created_at=BOOKED_AT,
    )
    return replace(booking, **changes)  # type: ignore[arg-type]


def _request(booking: Booking | None = None, expert: Expert = AMELIA, **options: object) -> bytes:
    return invite(
        booking or _booking(),
        expert,
        method="REQUEST",
        company=COMPANY,
        fallback_email=FALLBACK,
        now=NOW,
        **options,  # type: ignore[arg-type]
    )


def _cancel(booking: Booking) -> bytes:
    return invite(booking, AMELIA, method="CANCEL", company=COMPANY, fallback_email=FALLBACK, now=NOW)


def _stored(booking: Booking | None = None, expert: Expert = AMELIA) -> bytes:
    return stored_event(booking or _booking(), expert, company=COMPANY, fallback_email=FALLBACK, now=NOW)


def _feed(bookings: list[Booking], *, now: datetime = NOW, expert: Expert = AMELIA) -> bytes:
    return expert_feed(bookings, expert, company=COMPANY, fallback_email=FALLBACK, now=now)


def _events(ics: bytes) -> list[Event]:
    return [component for component in Calendar.from_ical(ics).walk("VEVENT") if isinstance(component, Event)]


def _only_event(ics: bytes) -> Event:
    events = _events(ics)
    assert len(events) == 1, ics
    return events[0]


def _text(component: Component, name: str) -> str:
    return str(component[name])


def _unfolded_lines(ics: bytes) -> list[str]:
    """The content lines of `ics`, unfolded as RFC 5545 §3.1 says: every CRLF followed by one space is removed."""
    return ics.replace(b"\r\n ", b"").decode("utf-8").split("\r\n")


def _assert_well_formed_lines(ics: bytes) -> None:
    """Every physical line is at most 75 octets, whole UTF-8, and ends in CRLF; no bare CR or LF anywhere."""
    assert ics.endswith(b"\r\n")
    physical = ics.split(b"\r\n")[:-1]
    for line in physical:
        assert len(line) <= 75, line
        assert b"\r" not in line
        assert b"\n" not in line
        line.decode("utf-8")


def _assert_rfc5545_event(event: Event, lines: list[str]) -> None:
    """The VEVENT rules of RFC 5545 §3.6.1 that can be checked on one event, counted on its content lines."""
    uid = _text(event, "UID")
    begin = lines.index(f"UID:{uid}")
    start = max(i for i in range(begin) if lines[i] == "BEGIN:VEVENT")
    end = lines.index("END:VEVENT", begin)
    names, depth = [], 0
    for line in lines[start + 1 : end]:
        depth += line.startswith("BEGIN:") - line.startswith("END:")
        if depth == 0 and not line.startswith("END:"):
            names.append(line.split(":", 1)[0].split(";", 1)[0])
    for required in ("UID", "DTSTAMP", "DTSTART"):
        assert names.count(required) == 1, required
    for at_most_once in ("DTEND", "SUMMARY", "DESCRIPTION", "LOCATION", "URL", "STATUS", "TRANSP", "SEQUENCE"):
        assert names.count(at_most_once) <= 1, at_most_once
    assert "DURATION" not in names
    assert event.DTSTAMP.tzinfo is not None
    assert event.DTSTAMP.utcoffset() == timedelta(0)
    assert event.end > event.start


def _assert_valid_calendar(ics: bytes) -> None:
    _assert_well_formed_lines(ics)
    lines = _unfolded_lines(ics)
    assert lines[0] == "BEGIN:VCALENDAR"
    assert lines[-2:] == ["END:VCALENDAR", ""]
    calendar = Calendar.from_ical(ics)
    for required in ("PRODID", "VERSION"):
        assert sum(line.startswith(f"{required}:") for line in lines) == 1
    assert str(calendar["VERSION"]) == "2.0"
    for event in _events(ics):
        _assert_rfc5545_event(event, lines)


def test_an_invite_is_a_gregorian_icalendar_2_request_with_one_event() -> None:
    """The calendar properties every app checks before it shows an invitation."""
    ics = _request()

    calendar = Calendar.from_ical(ics)

    assert str(calendar["PRODID"]) == PRODID
    assert PRODID.startswith("-//")
    assert PRODID.endswith("//consultbot//EN")
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["CALSCALE"]) == "GREGORIAN"
    assert str(calendar["METHOD"]) == "REQUEST"
    assert len(_events(ics)) == 1
    _assert_valid_calendar(ics)


def test_the_invite_carries_the_bookings_uid_and_sequence() -> None:
    """The UID is the booking's for the consultation's whole life; SEQUENCE is whatever the booking has reached."""
    event = _only_event(_request(_booking(sequence=3)))

    assert _text(event, "UID") == "k3x9f2@consultbot"
    assert event["SEQUENCE"] == 3


def test_start_end_and_stamp_are_written_in_utc_with_no_time_zone_id() -> None:
    """A consultation booked on the expert's clock and a clock in another zone both come out as …Z instants."""
    kolkata = ZoneInfo("Asia/Kolkata")
    booking = _booking(starts_at=START.astimezone(kolkata), ends_at=END.astimezone(kolkata))
    stamp = NOW.astimezone(ZoneInfo("America/Los_Angeles"))

    ics = invite(booking, AMELIA, method="REQUEST", company=COMPANY, fallback_email=FALLBACK, now=stamp)

    lines = _unfolded_lines(ics)
    assert "DTSTART:20261126T140000Z" in lines
    assert "DTEND:20261126T144500Z" in lines
    assert "DTSTAMP:20261124T093005Z" in lines
    assert "TZID" not in ics.decode()
    assert "BEGIN:VTIMEZONE" not in lines
    event = _only_event(ics)
    assert event.start == START
    assert event.end == END
    assert event.DTSTAMP == NOW


def test_created_and_last_modified_come_from_the_booking_when_it_knows_them() -> None:
    """A moved consultation says when it was booked and when it was last changed."""
    moved = _only_event(_request(_booking(updated_at=MOVED_AT, sequence=1)))
    fresh = _only_event(_request(_booking(created_at=None)))

    assert moved.created == BOOKED_AT
    assert moved.last_modified == MOVED_AT
    assert "CREATED" not in fresh
    assert "LAST-MODIFIED" not in fresh


def test_the_prospect_reads_whom_they_meet_what_about_and_where() -> None:
    """Title, description, location and link are written for the prospect."""
    event = _only_event(_request())

    assert _text(event, "SUMMARY") == "Consultation with Amelia Hart (Meridian Outsourcing Partners)"
    assert _text(event, "DESCRIPTION") == (
        "Topic: Accounts payable, payroll\n"
        "Join: https://meet.example.com/amelia-hart\n"
        "With Amelia Hart, Finance & Accounting Lead at Meridian Outsourcing Partners."
    )
    assert _text(event, "LOCATION") == "https://meet.example.com/amelia-hart"
    assert str(event["URL"]) == "https://meet.example.com/amelia-hart"


def test_a_meeting_place_that_is_no_link_is_a_location_without_a_url() -> None:
    """An office address goes to LOCATION and the description says "Where", with no URL property."""
    office = AMELIA.model_copy(update={"meeting": "Meridian House, 4th floor; 1 King St, London"})

    event = _only_event(_request(expert=office))

    assert _text(event, "LOCATION") == "Meridian House, 4th floor; 1 King St, London"
    assert "URL" not in event
    assert "Where: Meridian House, 4th floor; 1 King St, London" in _text(event, "DESCRIPTION")


def test_an_expert_without_a_meeting_place_gives_neither_location_nor_url() -> None:
    """Nothing is invented: no LOCATION, no URL, no "Join" line."""
    event = _only_event(_request(expert=RAHUL))

    assert "LOCATION" not in event
    assert "URL" not in event
    assert "Join" not in _text(event, "DESCRIPTION")


def test_the_organizer_is_the_expert_at_their_address_or_else_at_the_fallback() -> None:
    """Replies go to the expert when they have an address, else to the consultancy's bookings address."""
    own = _only_event(_request())["ORGANIZER"]
    fallback = _only_event(_request(expert=RAHUL))["ORGANIZER"]

    assert str(own) == "mailto:amelia@meridian.example"
    assert own.params["CN"] == "Amelia Hart"
    assert str(fallback) == "mailto:bookings@meridian.example"
    assert fallback.params["CN"] == "Rahul Mehta"


def test_the_prospect_is_a_required_attendee_asked_to_reply() -> None:
    """ATTENDEE;CN=…;ROLE=REQ-PARTICIPANT;PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:… for a prospect with an address."""
    attendee = _only_event(_request())["ATTENDEE"]

    assert str(attendee) == "mailto:jordan@acme.example"
    assert dict(attendee.params) == {
        "CN": "Jordan Lee",
        "ROLE": "REQ-PARTICIPANT",
        "PARTSTAT": "NEEDS-ACTION",
        "RSVP": "TRUE",
    }


def test_a_prospect_without_an_email_address_is_no_attendee() -> None:
    """An ATTENDEE needs an address; without one the invite has none, in the request and in the cancel."""
    booking = _booking(attendee_email=None)

    request, cancel = _only_event(_request(booking)), _only_event(_cancel(booking))

    assert "ATTENDEE" not in request
    assert "ATTENDEE" not in cancel
    assert "ORGANIZER" in request


def test_a_request_is_confirmed_opaque_and_reminds_fifteen_minutes_before() -> None:
    """STATUS:CONFIRMED, TRANSP:OPAQUE and a display alarm with TRIGGER:-PT15M."""
    ics = _request()

    event = _only_event(ics)
    alarms = event.walk("VALARM")

    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["TRANSP"]) == "OPAQUE"
    assert len(alarms) == 1
    assert str(alarms[0]["ACTION"]) == "DISPLAY"
    assert _text(alarms[0], "DESCRIPTION") == _text(event, "SUMMARY")
    assert "TRIGGER:-PT15M" in _unfolded_lines(ics)


def test_the_reminder_can_come_earlier() -> None:
    """alarm_before sets the trigger."""
    ics = _request(alarm_before=timedelta(hours=1))

    assert "TRIGGER:-PT1H" in _unfolded_lines(ics)


def test_a_cancel_keeps_the_uid_carries_the_raised_sequence_and_has_no_alarm() -> None:
    """RFC 5546 CANCEL: METHOD:CANCEL, the same UID, the SEQUENCE given, STATUS:CANCELLED, nothing to remind of."""
    booking = _booking(sequence=2, status="cancelled")

    ics = _cancel(booking)

    event = _only_event(ics)
    assert str(Calendar.from_ical(ics)["METHOD"]) == "CANCEL"
    assert _text(event, "UID") == _text(_only_event(_request()), "UID")
    assert event["SEQUENCE"] == 2
    assert str(event["STATUS"]) == "CANCELLED"
    assert event.walk("VALARM") == []
    assert _text(event, "DESCRIPTION").startswith("This consultation has been cancelled.\n")
    _assert_valid_calendar(ics)


def test_a_request_and_its_cancel_differ_only_where_rfc_5546_says() -> None:
    """Method, status, alarm and the description's first line; everything else is the same content line."""
    request, cancel = _unfolded_lines(_request()), _unfolded_lines(_cancel(_booking()))

    only_in_request = set(request) - set(cancel)
    only_in_cancel = set(cancel) - set(request)

    assert {line.split(":", 1)[0] for line in only_in_request} == {
        "METHOD",
        "STATUS",
        "DESCRIPTION",
        "BEGIN",
        "END",
        "ACTION",
        "TRIGGER",
    }
    assert {line.split(":", 1)[0] for line in only_in_cancel} == {"METHOD", "STATUS", "DESCRIPTION"}


@pytest.mark.parametrize("kind", ["request", "cancel", "stored", "feed"])
def test_hostile_text_survives_escaping_and_folding_in_every_document(kind: str) -> None:
    """Commas, semicolons, backslashes, line breaks, emoji and a 300-character company come back exactly."""
    company = ("Ünïcode & Söns, Ltd.; " * 14)[:300]
    booking = _booking(attendee_name=f"Jo, {HOSTILE}", company=HOSTILE, topic=HOSTILE)
    expert = AMELIA.model_copy(update={"name": 'Zoë O\'Brien; "Z"', "meeting": f"Room 4; {HOSTILE}"})
    documents = {
        "request": lambda: invite(booking, expert, method="REQUEST", company=company, fallback_email=FALLBACK, now=NOW),
        "cancel": lambda: invite(booking, expert, method="CANCEL", company=company, fallback_email=FALLBACK, now=NOW),
        "stored": lambda: stored_event(booking, expert, company=company, fallback_email=FALLBACK, now=NOW),
        "feed": lambda: expert_feed([booking], expert, company=company, fallback_email=FALLBACK, now=NOW),
    }

    ics = documents[kind]()

    _assert_valid_calendar(ics)
    event = _only_event(ics)
    description = _text(event, "DESCRIPTION")
    assert f"Topic: {HOSTILE}\n" in description
    assert _text(event, "LOCATION") == f"Room 4; {HOSTILE}"
    assert company in description
    one_line = " ".join(HOSTILE.split())
    if kind in ("request", "cancel"):
        assert _text(event, "SUMMARY") == f'Consultation with Zoë O\'Brien; "Z" ({company})'
        assert event["ORGANIZER"].params["CN"] == "Zoë O'Brien; 'Z'"
        assert event["ATTENDEE"].params["CN"] == f"Jo, {one_line}".replace('"', "'")
    else:
        assert _text(event, "SUMMARY") == f"Consultation with Jo, {one_line} ({one_line})"
        assert f"Prospect: Jo, {HOSTILE}\n" in description
        assert f"Company: {HOSTILE}\n" in description


def test_long_lines_are_folded_at_75_octets_and_unfolding_restores_them() -> None:
    """Folding never splits a UTF-8 character, every line ends in CRLF, and removing CRLF-space gives the line back."""
    topic = "é🚀, " * 60
    ics = _request(_booking(topic=topic))

    physical = ics.split(b"\r\n")
    unfolded = _unfolded_lines(ics)

    assert max(len(line) for line in physical) <= 75
    assert any(line.startswith(b" ") for line in physical)
    _assert_well_formed_lines(ics)
    description = next(line for line in unfolded if line.startswith("DESCRIPTION:"))
    assert description.startswith("DESCRIPTION:Topic: " + topic.replace(",", "\\,"))


def test_a_backslash_before_n_stays_a_backslash() -> None:
    """A Windows path in a topic is not mistaken for the escaped line break "\\N" (icalendar 7.3's own escaping is)."""
    event = _only_event(_request(_booking(topic="C:\\Notes\\new")))

    assert "Topic: C:\\Notes\\new\n" in _text(event, "DESCRIPTION")


def test_control_characters_and_stray_surrogates_cannot_break_the_document() -> None:
    """What RFC 5545 forbids in TEXT is dropped, a lone CR is a line break, and unencodable text becomes "?"."""
    booking = _booking(topic="a\x00b\x07c\rd\ud800e\tf", attendee_name="Jo\x1b[31m Lee\r\nJr")

    ics = _request(booking)

    _assert_valid_calendar(ics)
    event = _only_event(ics)
    assert "Topic: abc\nd?e\tf\n" in _text(event, "DESCRIPTION")
    assert event["ATTENDEE"].params["CN"] == "Jo[31m Lee Jr"


@given(
    st.text(
        alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\r") | st.just("\n"),
        min_size=1,
    ).filter(str.strip)
)
def test_any_printable_topic_round_trips_through_the_invite(topic: str) -> None:
    """Whatever a prospect's topic holds, the calendar app reads back exactly that text."""
    ics = _request(_booking(topic=topic))

    _assert_well_formed_lines(ics)
    assert f"Topic: {topic}\n" in _text(_only_event(ics), "DESCRIPTION")


def test_the_stored_event_has_no_method_and_one_event() -> None:
    """RFC 4791 §4.1: a calendar object resource holds one VEVENT and no METHOD."""
    ics = _stored()

    calendar = Calendar.from_ical(ics)

    assert "METHOD" not in calendar
    assert len(_events(ics)) == 1
    assert calendar.walk("VALARM") == []
    _assert_valid_calendar(ics)


def test_the_stored_event_shows_the_expert_whom_they_meet_and_all_the_prospect_said() -> None:
    """The expert's copy names the prospect and their company, and lists their address and topic."""
    event = _only_event(_stored(_booking(updated_at=MOVED_AT, sequence=1)))

    assert _text(event, "SUMMARY") == "Consultation with Jordan Lee (Acme Logistics)"
    assert _text(event, "DESCRIPTION") == (
        "Prospect: Jordan Lee\n"
        "Email: jordan@acme.example\n"
        "Company: Acme Logistics\n"
        "Topic: Accounts payable, payroll\n"
        "Join: https://meet.example.com/amelia-hart\n"
        "Booked through the Meridian Outsourcing Partners assistant."
    )
    assert event["SEQUENCE"] == 1
    assert str(event["STATUS"]) == "CONFIRMED"
    assert str(event["TRANSP"]) == "OPAQUE"


def test_the_stored_event_keeps_the_prospect_as_an_attendee_the_server_must_not_invite() -> None:
    """SCHEDULE-AGENT=CLIENT stops an RFC 6638 server from mailing the prospect a second invitation."""
    event = _only_event(_stored())

    assert str(event["ORGANIZER"]) == "mailto:amelia@meridian.example"
    assert event["ATTENDEE"].params["SCHEDULE-AGENT"] == "CLIENT"
    assert str(event["ATTENDEE"]) == "mailto:jordan@acme.example"


def test_the_stored_events_stamp_is_when_the_booking_last_changed() -> None:
    """Without a METHOD, DTSTAMP is the last revision (RFC 5545 §3.8.7.2); `now` only stands in when none is known."""
    moved = _only_event(_stored(_booking(updated_at=MOVED_AT)))
    booked = _only_event(_stored(_booking()))
    unknown = _only_event(_stored(_booking(created_at=None)))

    assert moved.DTSTAMP == MOVED_AT
    assert booked.DTSTAMP == BOOKED_AT
    assert unknown.DTSTAMP == NOW


def test_an_empty_feed_is_a_named_calendar_that_asks_to_be_refreshed_every_quarter_hour() -> None:
    """No consultations yet: the calendar still has its name, zone and refresh hints, and no events."""
    ics = _feed([])

    calendar = Calendar.from_ical(ics)
    lines = _unfolded_lines(ics)

    assert _events(ics) == []
    assert str(calendar["METHOD"]) == "PUBLISH"
    assert str(calendar["PRODID"]) == PRODID
    assert calendar.calendar_name == "Meridian Outsourcing Partners consultations – Amelia Hart"
    assert "X-WR-CALNAME:Meridian Outsourcing Partners consultations – Amelia Hart" in lines
    assert "X-WR-TIMEZONE:Europe/London" in lines
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT15M" in lines
    assert "X-PUBLISHED-TTL:PT15M" in lines
    _assert_valid_calendar(ics)


def test_a_feed_with_one_consultation_tells_the_expert_everything_about_the_prospect() -> None:
    """Name, address, company and topic are in the description; PUBLISH allows an organizer and no attendee."""
    ics = _feed([_booking()])

    event = _only_event(ics)

    description = _text(event, "DESCRIPTION")
    for shown in ("Jordan Lee", "jordan@acme.example", "Acme Logistics", "Accounts payable, payroll"):
        assert shown in description
    assert str(event["ORGANIZER"]) == "mailto:amelia@meridian.example"
    assert "ATTENDEE" not in event
    assert str(event["TRANSP"]) == "OPAQUE"
    assert event.walk("VALARM") == []
    _assert_valid_calendar(ics)


def test_a_feed_lists_consultations_by_start_and_gives_the_same_bytes_for_the_same_bookings() -> None:
    """Order of the input and the time of the request change nothing, so the bot can serve an ETag of the hash."""
    monday = _booking(uid=booking_uid("mon"), starts_at=START - timedelta(days=3), ends_at=END - timedelta(days=3))
    thursday = _booking(uid=booking_uid("thu"))
    friday = _booking(
        uid=booking_uid("fri"),
        starts_at=START + timedelta(days=1),
        ends_at=END + timedelta(days=1),
        updated_at=MOVED_AT,
    )

    first = _feed([thursday, friday, monday])
    again = _feed([friday, monday, thursday], now=NOW + timedelta(hours=5))

    assert first == again
    assert [_text(event, "UID") for event in _events(first)] == [
        "mon@consultbot",
        "thu@consultbot",
        "fri@consultbot",
    ]
    _assert_valid_calendar(first)


def test_a_feed_changes_when_a_consultation_moves() -> None:
    """A reschedule changes the bytes, so subscribers fetch it again."""
    before = _feed([_booking()])

    after = _feed([_booking(starts_at=START + timedelta(hours=1), ends_at=END + timedelta(hours=1), sequence=1)])

    assert before != after


def test_an_instant_without_a_time_zone_is_refused() -> None:
    """A naive datetime is a bug upstream; guessing its zone would put the consultation at the wrong hour."""
    with pytest.raises(ValueError, match="no time zone"):
        _request(_booking(starts_at=datetime(2026, 11, 26, 14, 0)))  # noqa: DTZ001 - the naive value is the point


def test_a_consultation_that_ends_before_it_starts_is_refused() -> None:
    """DTEND must come after DTSTART (RFC 5545 §3.8.2.2)."""
    with pytest.raises(ValueError, match="not after its start"):
        _request(_booking(ends_at=START))


def test_an_address_that_could_forge_a_content_line_is_refused() -> None:
    """The address after "mailto:" is not escaped, so one with a line break in it is a bug, not an attendee."""
    with pytest.raises(ValueError, match="not an e-mail address"):
        _request(_booking(attendee_email="jo@acme.example\r\nATTENDEE:mailto:x@evil.example"))


def test_the_invites_module_loads_no_http_stack_telegram_or_database() -> None:
    """scheduling.invites is pure core: it imports icalendar and the models and nothing that does I/O."""
    code = "import json, sys, scheduling.invites; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout

    loaded = {name.split(".")[0] for name in json.loads(output)}

    assert loaded.isdisjoint({"telegram", "sqlalchemy", "sqlmodel", "aiohttp", "asyncpg", "aiosqlite", "bot"})
