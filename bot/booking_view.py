"""Booking screens as messages with buttons, for Telegram and the terminal alike, and their callback data."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from bot import journey, texts
from bot.config import BusinessConfig
from bot.journey import Input, Screen
from bot.texts import escape
from scheduling.zones import zone_label

MAX_CALLBACK_BYTES = 64
TIMES_PER_ROW = 4

Button = tuple[str, Input]


@dataclass(frozen=True)
class View:
    """What a booking screen shows: Telegram HTML, rows of buttons, and a calendar file to attach."""

    html: str
    rows: list[list[Button]] = field(default_factory=list)
    document: tuple[str, bytes, str] | None = None
    """(file name, content, caption) of an .ics file to send."""
    for_sales: str | None = None
    """A message for the sales chat."""


def encode(given: Input) -> str:
    """The callback data of a booking button."""
    match given:
        case journey.PickZone(zone=zone):
            data = f"z:{zone}"
        case journey.OtherZone():
            data = "zo"
        case journey.ConfirmZone(yes=yes):
            data = "zy" if yes else "zn"
        case journey.PickDay(day=day):
            data = f"dy:{day:%Y%m%d}"
        case journey.Page(first=first):
            data = f"pg:{first:%Y%m%d}"
        case journey.PickTime(slot=slot):
            data = f"tm:{slot}"
        case journey.ConfirmSlot():
            data = "bk"
        case journey.BackToDays():
            data = "bd"
        case journey.NoneFit():
            data = "nf"
        case journey.Reschedule(booking_id=booking_id):
            data = f"mr:{booking_id}"
        case journey.AskCancel(booking_id=booking_id):
            data = f"mc:{booking_id}"
        case journey.ConfirmCancel(booking_id=booking_id):
            data = f"my:{booking_id}"
        case journey.KeepBooking(booking_id=booking_id):
            data = f"mk:{booking_id}"
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data {data!r} is longer than Telegram allows")
    return data


CALLBACK_PATTERN = re.compile(r"^(z:|zo$|zy$|zn$|dy:|pg:|tm:|bk$|bd$|nf$|mr:|mc:|my:|mk:)")
"""The callback data of booking buttons, told apart from the questionnaire's."""

_DAY = re.compile(r"^\d{8}$")
_BOOKING_ID = re.compile(r"^[1-9]\d{0,17}$")
_SLOT = re.compile(r"^[a-z0-9][a-z0-9_]{0,23}:\d{12}$")
_ZONE = re.compile(r"^[A-Za-z0-9_+\-/]{1,60}$")


def decode(data: str | None) -> Input | None:
    """The input a booking button sends, or None for data this bot never wrote."""
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    decoded = _read(data)
    return decoded if decoded is not None and encode(decoded) == data else None


def _read(data: str) -> Input | None:
    kind, _, value = data.partition(":")
    simple: dict[str, Input] = {
        "zo": journey.OtherZone(),
        "zy": journey.ConfirmZone(yes=True),
        "zn": journey.ConfirmZone(yes=False),
        "bk": journey.ConfirmSlot(),
        "bd": journey.BackToDays(),
        "nf": journey.NoneFit(),
    }
    if data in simple:
        return simple[data]
    if kind == "z" and _ZONE.match(value):
        return journey.PickZone(value)
    if kind in {"dy", "pg"} and _DAY.match(value):
        day = _day(value)
        if day is None:
            return None
        return journey.PickDay(day) if kind == "dy" else journey.Page(day)
    if kind == "tm" and _SLOT.match(value):
        return journey.PickTime(value)
    if kind in {"mr", "mc", "my", "mk"} and _BOOKING_ID.match(value):
        number = int(value)
        constructors: dict[str, Callable[[int], Input]] = {
            "mr": journey.Reschedule,
            "mc": journey.AskCancel,
            "my": journey.ConfirmCancel,
            "mk": journey.KeepBooking,
        }
        return constructors[kind](number)
    return None


def _day(text: str) -> date | None:
    try:
        return datetime.strptime(text, "%Y%m%d").date()  # noqa: DTZ007  (a calendar date, no time of day)
    except ValueError:
        return None


def view(screen: Screen, *, config: BusinessConfig, now: datetime) -> View:
    """The message for a booking screen."""
    rows: list[list[Button]]
    match screen:
        case journey.ZoneQuestion():
            return _zone_question(screen, now)
        case journey.ZoneCheck(zone=zone, matched=matched):
            html = texts.ZONE_CHECK.format(zone=escape(zone_label(zone, now=now)), matched=escape(matched))
            rows = [
                [(texts.BUTTON_YES, journey.ConfirmZone(yes=True)), (texts.BUTTON_NO, journey.ConfirmZone(yes=False))]
            ]
            return View(html, rows)
        case journey.DayChoice():
            return _day_choice(screen, now)
        case journey.TimeChoice(zone=zone, day=day, offers=offers):
            html = texts.TIMES_TITLE.format(day=_day_name(day), zone=escape(zone_label(zone, now=now)))
            buttons: list[Button] = [(_clock(offer.slot.start, zone), journey.PickTime(key)) for key, offer in offers]
            rows = [buttons[i : i + TIMES_PER_ROW] for i in range(0, len(buttons), TIMES_PER_ROW)]
            rows.append([(texts.BUTTON_OTHER_DAYS, journey.BackToDays()), (texts.BUTTON_NONE_FIT, journey.NoneFit())])
            return View(html, rows)
        case journey.SlotCheck():
            return _slot_check(screen)
        case journey.Confirmed():
            return _confirmed(screen)
        case journey.CancelCheck(booking=booking, expert=expert):
            when = texts.consultation_time(booking.starts_at, booking.ends_at, booking.attendee_zone)
            assert booking.id is not None
            rows = [
                [(texts.BUTTON_CANCEL_YES, journey.ConfirmCancel(booking.id))],
                [(texts.BUTTON_KEEP, journey.KeepBooking(booking.id))],
            ]
            return View(texts.CANCEL_CHECK.format(expert=escape(expert.name), when=escape(when)), rows)
        case journey.Cancelled(booking=booking, expert=expert, invite=invite):
            when = texts.consultation_time(booking.starts_at, booking.ends_at, booking.attendee_zone)
            caption = texts.plain(texts.INVITE_CAPTION.format(expert=escape(expert.name), when=escape(when)))
            html = texts.CANCELLED_BOOKING.format(expert=escape(expert.name), when=escape(when))
            return View(html, document=("consultation-cancelled.ics", invite, caption))
        case journey.Kept():
            return View(texts.KEPT)
        case journey.CallbackRequested(lead_id=lead_id, prospect_name=name, reason=reason):
            shown = {"none_fit": texts.CALLBACK_REQUESTED, "no_slots": texts.NO_SLOTS, "no_experts": texts.NO_EXPERTS}
            sales = texts.SALES_CALLBACK.format(
                lead=lead_id, name=escape(name), reason=texts.SALES_CALLBACK_REASONS[reason]
            )
            return View(shown[reason], for_sales=sales)
        case journey.NotQualified():
            return View(texts.NOT_QUALIFIED_TO_BOOK)
        case journey.TooLateToChange(booking=booking, contact=contact):
            when = texts.consultation_time(booking.starts_at, booking.ends_at, booking.attendee_zone)
            return View(texts.TOO_LATE.format(when=escape(when), contact=escape(contact or texts.TOO_LATE_CONTACT)))
        case journey.Refused(reason=reason):
            return View(_REFUSALS[reason])
        case journey.MyBookings():
            return _my_bookings(screen, config)
    raise AssertionError(f"unhandled screen {screen!r}")


_REFUSALS = {
    "stale": texts.BOOKING_STALE,
    "not_offered": texts.BOOKING_NOT_OFFERED,
    "unknown_booking": texts.BOOKING_UNKNOWN,
    "unavailable": texts.BOOKING_UNAVAILABLE,
}


def _zone_question(screen: journey.ZoneQuestion, now: datetime) -> View:
    lines = []
    if screen.problem is not None:
        lines.append(texts.ZONE_NOT_UNDERSTOOD.format(text=escape(texts.shorten(screen.problem, 60))))
    lines.append(texts.ZONE_QUESTION)
    if screen.typing or screen.problem is not None:
        lines.append(texts.ZONE_TYPE)
    rows: list[list[Button]] = [[(zone_label(zone, now=now), journey.PickZone(zone))] for zone in screen.suggested]
    rows.append([(texts.BUTTON_OTHER_ZONE, journey.OtherZone())])
    return View("\n".join(lines), rows)


def notice_text(notice: Literal["taken", "gone"]) -> str:
    """Why the prospect is shown the free days again: their time was just booked by someone else, or is gone."""
    return texts.DAYS_TAKEN if notice == "taken" else texts.DAYS_GONE


def button_answer(screen: Screen) -> str | None:
    """What the pressed button's answer says (Telegram shows it at once, over the chat); None: nothing.

    A time lost meanwhile is said there too: the screen shown in place may be the one already on the phone (the
    same free days, which Telegram does not redraw), and the prospect must still learn why nothing was booked.
    """
    if isinstance(screen, journey.DayChoice) and screen.notice is not None:
        return texts.plain(notice_text(screen.notice))
    return None


def _day_choice(screen: journey.DayChoice, now: datetime) -> View:
    experts = ", ".join(f"{escape(e.name)} ({escape(e.role)})" for e in screen.experts) or "our experts"
    lines = []
    if screen.notice is not None:
        lines.append(notice_text(screen.notice))
    if screen.moving is not None:
        booking = screen.moving
        when = texts.consultation_time(booking.starts_at, booking.ends_at, screen.zone)
        lines.append(texts.DAYS_TITLE_MOVING.format(experts=experts, when=escape(when)))
    else:
        lines.append(texts.DAYS_TITLE.format(experts=experts))
    lines.append(texts.DAYS_ZONE.format(zone=escape(zone_label(screen.zone, now=now))))
    rows: list[list[Button]] = [
        [
            (
                texts.DAY_BUTTON.format(day=_day_name(day), count=count, times="time" if count == 1 else "times"),
                journey.PickDay(day),
            )
        ]
        for day, count in screen.days
    ]
    paging: list[Button] = []
    if screen.earlier is not None:
        paging.append((texts.BUTTON_EARLIER, journey.Page(screen.earlier)))
    if screen.later is not None:
        paging.append((texts.BUTTON_LATER, journey.Page(screen.later)))
    if paging:
        rows.append(paging)
    if screen.moving is None:
        rows.append([(texts.BUTTON_NONE_FIT, journey.NoneFit())])
    return View("\n".join(lines), rows)


def _slot_check(screen: journey.SlotCheck) -> View:
    offer = screen.offer
    when = texts.consultation_time(offer.slot.start, offer.slot.end, screen.zone)
    if screen.moving is not None:
        old = texts.consultation_time(screen.moving.starts_at, screen.moving.ends_at, screen.zone)
        html = texts.SLOT_CHECK_MOVING.format(old=escape(old), when=escape(when), expert=escape(offer.expert.name))
        confirm = texts.BUTTON_MOVE
    else:
        html = texts.SLOT_CHECK.format(
            when=escape(when), expert=escape(offer.expert.name), role=escape(offer.expert.role)
        )
        confirm = texts.BUTTON_BOOK
    rows: list[list[Button]] = [[(confirm, journey.ConfirmSlot())], [(texts.BUTTON_OTHER_DAYS, journey.BackToDays())]]
    return View(html, rows)


def _confirmed(screen: journey.Confirmed) -> View:
    booking, expert = screen.booking, screen.expert
    when = texts.consultation_time(booking.starts_at, booking.ends_at, booking.attendee_zone)
    expert_when = texts.consultation_time(booking.starts_at, booking.ends_at, expert.timezone)
    details = texts.BOOKED_DETAILS.format(
        when=escape(when),
        expert_when=escape(expert_when),
        expert=escape(expert.name),
        role=escape(expert.role),
        where=escape(expert.meeting or texts.WHERE_UNKNOWN),
    )
    title = texts.MOVED if screen.moved else texts.BOOKED
    html = f"{title}\n\n{details}\n\n{texts.BOOKED_FOOTER}"
    caption = texts.plain(texts.INVITE_CAPTION.format(expert=escape(expert.name), when=escape(when)))
    return View(html, document=("consultation.ics", screen.invite, caption))


def _my_bookings(screen: journey.MyBookings, config: BusinessConfig) -> View:
    if not screen.bookings:
        return View(texts.MY_BOOKINGS_NONE)
    lines = [texts.MY_BOOKINGS_TITLE, ""]
    rows: list[list[Button]] = []
    contact = config.booking.contact or texts.TOO_LATE_CONTACT
    for number, (booking, expert, changeable) in enumerate(screen.bookings, start=1):
        zone = screen.zone or booking.attendee_zone
        when = texts.consultation_time(booking.starts_at, booking.ends_at, zone)
        lines.append(texts.MY_BOOKING_LINE.format(number=number, when=escape(when), expert=escape(expert.name)))
        assert booking.id is not None
        if changeable:
            rows.append(
                [
                    (texts.BUTTON_RESCHEDULE.format(number=number), journey.Reschedule(booking.id)),
                    (texts.BUTTON_CANCEL_BOOKING.format(number=number), journey.AskCancel(booking.id)),
                ]
            )
        else:
            lines.append(texts.MY_BOOKING_LOCKED.format(contact=escape(contact)))
    return View("\n".join(lines), rows)


def _day_name(day: date) -> str:
    return f"{day:%a} {day.day} {day:%b}"


def _clock(instant: datetime, zone: str) -> str:
    return f"{instant.astimezone(ZoneInfo(zone)):%H:%M}"
