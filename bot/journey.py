"""From qualified to booked: the booking conversation, for any channel, across the leads and scheduling packages.

The leads package knows the prospect and their answers; the scheduling package knows experts, slots and
consultations; neither knows the other. This module walks a chat through time zone, day, time and
confirmation, and through moving and cancelling, keeping the chat's place in the database. Every input is
checked against that place: a button from an older screen, a day or time that was never offered to this chat,
or one that is no longer free is refused, whatever the callback data says.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.config import BusinessConfig
from leads.records import describe_answer
from leads.service import ChatLead, QualificationService
from scheduling.bookings import Attendee, BookingService, NotBookable, Offer, SlotTaken, TooLate
from scheduling.invites import invite
from scheduling.model import Expert
from scheduling.ports import BookingStore
from scheduling.records import Booking
from scheduling.zones import likely_zones, resolve_zone

log = logging.getLogger(__name__)

Stage = Literal["zone", "zone_typed", "zone_confirm", "days", "times", "confirm", "booked", "callback"]


class JourneyState(BaseModel):
    """Where a chat stands in booking, as stored between messages."""

    model_config = ConfigDict(extra="ignore")

    stage: Stage = "zone"
    zone: str | None = None
    pending_zone: str | None = None
    """A zone read from typed text that waits for the prospect's yes."""
    suggested: list[str] = []
    """The zones on the buttons shown."""
    experts: list[str] = []
    page: date | None = None
    days: list[date] = []
    """The days on screen, which alone can be picked."""
    day: date | None = None
    times: list[str] = []
    """The slot ids on screen, which alone can be picked."""
    picked: str | None = None
    moving: int | None = None
    """The consultation being moved, when rescheduling."""


# Inputs: what a button press or typed line means.
@dataclass(frozen=True)
class PickZone:
    zone: str


@dataclass(frozen=True)
class OtherZone:
    pass


@dataclass(frozen=True)
class ConfirmZone:
    yes: bool


@dataclass(frozen=True)
class PickDay:
    day: date


@dataclass(frozen=True)
class Page:
    first: date


@dataclass(frozen=True)
class PickTime:
    slot: str


@dataclass(frozen=True)
class ConfirmSlot:
    pass


@dataclass(frozen=True)
class BackToDays:
    pass


@dataclass(frozen=True)
class NoneFit:
    pass


@dataclass(frozen=True)
class Reschedule:
    booking_id: int


@dataclass(frozen=True)
class AskCancel:
    booking_id: int


@dataclass(frozen=True)
class ConfirmCancel:
    booking_id: int


@dataclass(frozen=True)
class KeepBooking:
    booking_id: int


Input = (
    PickZone
    | OtherZone
    | ConfirmZone
    | PickDay
    | Page
    | PickTime
    | ConfirmSlot
    | BackToDays
    | NoneFit
    | Reschedule
    | AskCancel
    | ConfirmCancel
    | KeepBooking
)


# Screens: what the prospect is shown next.
@dataclass(frozen=True)
class ZoneQuestion:
    suggested: tuple[str, ...]
    typing: bool = False
    """The prospect chose "Other": ask for typed text."""
    problem: str | None = None
    """Typed text that was not understood."""


@dataclass(frozen=True)
class ZoneCheck:
    zone: str
    matched: str


@dataclass(frozen=True)
class DayChoice:
    zone: str
    experts: tuple[Expert, ...]
    days: tuple[tuple[date, int], ...]
    """Each day on this page and how many times are free on it."""
    earlier: date | None
    later: date | None
    moving: Booking | None = None
    notice: Literal["taken", "gone"] | None = None
    """Why the prospect is back here: the time they chose was just taken, or is no longer offered."""


@dataclass(frozen=True)
class TimeChoice:
    zone: str
    day: date
    offers: tuple[tuple[str, Offer], ...]


@dataclass(frozen=True)
class SlotCheck:
    zone: str
    offer: Offer
    moving: Booking | None


@dataclass(frozen=True)
class Confirmed:
    booking: Booking
    expert: Expert
    invite: bytes
    moved: bool


@dataclass(frozen=True)
class CancelCheck:
    booking: Booking
    expert: Expert


@dataclass(frozen=True)
class Cancelled:
    booking: Booking
    expert: Expert
    invite: bytes


@dataclass(frozen=True)
class Kept:
    booking: Booking


@dataclass(frozen=True)
class CallbackRequested:
    lead_id: int
    prospect_name: str
    reason: Literal["none_fit", "no_slots", "no_experts"]


@dataclass(frozen=True)
class NotQualified:
    pass


@dataclass(frozen=True)
class TooLateToChange:
    booking: Booking
    cutoff: datetime
    contact: str | None


@dataclass(frozen=True)
class Refused:
    reason: Literal["stale", "not_offered", "unknown_booking", "unavailable"]


@dataclass(frozen=True)
class MyBookings:
    zone: str | None
    bookings: tuple[tuple[Booking, Expert, bool], ...]
    """Each upcoming consultation, its expert, and whether the prospect may still change it."""


Screen = (
    ZoneQuestion
    | ZoneCheck
    | DayChoice
    | TimeChoice
    | SlotCheck
    | Confirmed
    | CancelCheck
    | Cancelled
    | Kept
    | CallbackRequested
    | NotQualified
    | TooLateToChange
    | Refused
    | MyBookings
)


def slot_id(offer: Offer) -> str:
    """A short, readable id of an offered slot: the expert and the start in UTC, e.g. "amelia:202612011300"."""
    return f"{offer.expert.key}:{offer.slot.start:%Y%m%d%H%M}"


def _parse_slot_id(slot: str) -> tuple[str, datetime] | None:
    """The expert key and UTC start a slot id stands for, or None if it is not one."""
    key, _, stamp = slot.rpartition(":")
    try:
        return key, datetime.strptime(stamp, "%Y%m%d%H%M").replace(tzinfo=UTC)
    except ValueError:
        return None


class BookingJourney:
    """Runs the booking conversation of each chat, keeping its place in the database."""

    def __init__(
        self,
        *,
        qualification: QualificationService,
        bookings: BookingService,
        store: BookingStore,
        config: BusinessConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self._qualification = qualification
        self._bookings = bookings
        self._store = store
        self._config = config
        self._clock = clock

    async def begin(self, chat_key: str, *, language_code: str | None = None) -> Screen:
        """Start booking for a chat whose prospect just qualified: ask their time zone."""
        lead = await self._qualification.chat_lead(chat_key)
        if lead is None or lead.outcome != "qualified":
            return NotQualified()
        if not self._bookings.eligible(self._services(lead)):
            return self._callback(lead, "no_experts")
        suggested = self._suggested_zones(lead, language_code)
        await self._save(chat_key, JourneyState(suggested=suggested), None)
        return ZoneQuestion(tuple(suggested))

    async def press(self, chat_key: str, given: Input, *, update_id: int | None = None) -> Screen | None:
        """Apply a button press; None when Telegram redelivered an update already applied (but for the last one)."""
        state, last = await self._load(chat_key)
        if update_id is not None and last is not None and update_id <= last:
            if update_id < last or state is None:
                return None
            # The last press applied, delivered again: the ledger lets one through only when the replica that
            # handled it died, perhaps before replying. It is not applied twice; the screen it led to is shown.
            return await self._again(chat_key, state, update_id)
        lead = await self._qualification.chat_lead(chat_key)
        if lead is None or lead.outcome != "qualified":
            return NotQualified()
        screen, state = await self._apply(lead, state, given)
        if state is not None:
            await self._save(chat_key, state, update_id)
        return screen

    async def _again(self, chat_key: str, state: JourneyState, update_id: int) -> Screen | None:
        """The screen the chat's booking stands at, shown afresh; None where there is none to show again."""
        lead = await self._qualification.chat_lead(chat_key)
        if lead is None or lead.outcome != "qualified" or lead.prospect.id is None:
            return None
        match state.stage:
            case "days":
                screen, state = await self._days(lead, state, first=state.page)
            case "times" if state.day is not None:
                screen, state = await self._times(lead, state, state.day)
            case "confirm" if state.picked:
                screen, state = await self._check_slot(lead, state, state.picked)
            case "booked":
                booked = await self._bookings.upcoming_for(lead.prospect.id)
                latest = max(booked, key=lambda booking: booking.id or 0, default=None)
                expert = None if latest is None else self._bookings.expert(latest.expert_key)
                if latest is None or expert is None:
                    return None
                return Confirmed(latest, expert, self._invite(latest, expert, "REQUEST"), False)
            case _:
                return None
        await self._save(chat_key, state, update_id)
        return screen

    async def typed(self, chat_key: str, text: str, *, update_id: int | None = None) -> Screen | None:
        """Read typed text as a time zone, if the chat is being asked for one; None if it is not."""
        state, last = await self._load(chat_key)
        if state is None or state.stage not in {"zone", "zone_typed", "zone_confirm"}:
            return None
        if update_id is not None and last is not None and update_id <= last:
            return Refused("stale")
        guess = resolve_zone(text, now=self._clock())
        if guess is None:
            state.stage = "zone_typed"
            await self._save(chat_key, state, update_id)
            return ZoneQuestion(tuple(state.suggested), typing=True, problem=text)
        if not guess.certain:
            state.stage, state.pending_zone = "zone_confirm", guess.zone
            await self._save(chat_key, state, update_id)
            return ZoneCheck(guess.zone, guess.matched)
        lead = await self._qualification.chat_lead(chat_key)
        if lead is None:
            return NotQualified()
        screen, changed = await self._zone_chosen(lead, state, guess.zone)
        await self._save(chat_key, changed, update_id)
        return screen

    async def my_bookings(self, chat_key: str) -> MyBookings | None:
        """The chat's prospect's upcoming consultations; None if the chat has no prospect."""
        lead = await self._qualification.chat_lead(chat_key)
        if lead is None or lead.prospect.id is None:
            return None
        found = await self._bookings.upcoming_for(lead.prospect.id)
        now = self._clock()
        listed = tuple(
            (booking, expert, now <= self._bookings.change_cutoff(booking))
            for booking in found
            if (expert := self._bookings.expert(booking.expert_key)) is not None
        )
        return MyBookings(lead.prospect.timezone, listed)

    async def change_zone(self, chat_key: str) -> Screen:
        """Ask the prospect's time zone again (the /timezone command)."""
        lead = await self._qualification.chat_lead(chat_key)
        if lead is None:
            return NotQualified()
        state, _ = await self._load(chat_key)
        state = state or JourneyState()
        state.suggested = self._suggested_zones(lead, lead.prospect.language_code)
        state.stage = "zone"
        await self._save(chat_key, state, None)
        return ZoneQuestion(tuple(state.suggested))

    def _suggested_zones(self, lead: ChatLead, language_code: str | None) -> list[str]:
        """The zones offered as buttons: the prospect's own if known, then their language's and the markets'."""
        known = [lead.prospect.timezone] if lead.prospect.timezone else []
        return list(dict.fromkeys([*known, *likely_zones(language_code, self._config.company.markets)]))[:4]

    async def _apply(
        self, lead: ChatLead, state: JourneyState | None, given: Input
    ) -> tuple[Screen, JourneyState | None]:
        match given:
            case Reschedule(booking_id=booking_id):
                return await self._start_move(lead, state or JourneyState(), booking_id)
            case (
                AskCancel(booking_id=booking_id)
                | ConfirmCancel(booking_id=booking_id)
                | KeepBooking(booking_id=booking_id)
            ):
                return await self._cancelling(lead, given, booking_id), state
        if state is None:
            return Refused("stale"), None
        match given:
            case PickZone(zone=zone) if state.stage in {"zone", "zone_typed"} and zone in state.suggested:
                return await self._zone_chosen(lead, state, zone)
            case OtherZone() if state.stage in {"zone", "zone_typed", "zone_confirm"}:
                state.stage = "zone_typed"
                return ZoneQuestion(tuple(state.suggested), typing=True), state
            case ConfirmZone(yes=True) if state.stage == "zone_confirm" and state.pending_zone:
                return await self._zone_chosen(lead, state, state.pending_zone)
            case ConfirmZone(yes=False) if state.stage == "zone_confirm":
                state.stage, state.pending_zone = "zone_typed", None
                return ZoneQuestion(tuple(state.suggested), typing=True), state
            case Page(first=first) if state.stage in {"days", "times", "confirm"}:
                return await self._days(lead, state, first=first)
            case PickDay(day=day) if state.stage == "days" and day in state.days:
                return await self._times(lead, state, day)
            case PickTime(slot=slot) if state.stage == "times" and slot in state.times:
                return await self._check_slot(lead, state, slot)
            case BackToDays() if state.stage in {"times", "confirm"}:
                return await self._days(lead, state, first=state.page)
            case ConfirmSlot() if state.stage == "confirm" and state.picked:
                return await self._book(lead, state, state.picked)
            case NoneFit() if state.stage in {"days", "times"} and state.moving is None:
                state.stage = "callback"
                return self._callback(lead, "none_fit"), state
        if isinstance(given, PickZone | PickDay | PickTime) and _stage_accepts(state.stage, given):
            # The right kind of button for this screen, with a value this chat was never shown: forged or mangled.
            return Refused("not_offered"), None
        return Refused("stale"), None

    async def _zone_chosen(self, lead: ChatLead, state: JourneyState, zone: str) -> tuple[Screen, JourneyState]:
        assert lead.prospect.id is not None
        await self._qualification.set_timezone(lead.prospect.id, zone)
        await self._bookings.set_attendee_zone(lead.prospect.id, zone)
        state.zone, state.pending_zone = zone, None
        if not state.experts:
            state.experts = [expert.key for expert in await self._bookings.assign(self._services(lead))]
        return await self._days(lead, state, first=None)

    async def _days(
        self,
        lead: ChatLead,
        state: JourneyState,
        *,
        first: date | None,
        notice: Literal["taken", "gone"] | None = None,
    ) -> tuple[Screen, JourneyState]:
        zone = state.zone or self._config.company.timezone
        moving = await self._moving(state)
        offers = await self._offers(state, moving)
        by_day = _by_day(offers, ZoneInfo(zone))
        all_days = sorted(by_day)
        if not all_days:
            state.stage = "callback"
            if moving is not None:
                return Refused("unavailable"), state
            return self._callback(lead, "no_slots"), state
        per_page = self._config.booking.days_per_page
        # A page starts at the first free day on or after `first`; past the last one, the last page is shown.
        last_page = max(len(all_days) - per_page, 0)
        start = 0 if first is None else next((i for i, day in enumerate(all_days) if day >= first), last_page)
        shown = all_days[start : start + per_page]
        earlier = all_days[max(start - per_page, 0)] if start > 0 else None
        later = all_days[start + per_page] if start + per_page < len(all_days) else None
        experts = tuple(dict.fromkeys(offer.expert for offer in offers))
        if self._bookings.policy.assignment == "fewest_upcoming" or moving is not None:
            experts = experts[:1]
        state.stage, state.page, state.days, state.times, state.picked = "days", shown[0], shown, [], None
        days = tuple((day, len(by_day[day])) for day in shown)
        return DayChoice(zone, experts, days, earlier, later, moving, notice), state

    async def _times(self, lead: ChatLead, state: JourneyState, day: date) -> tuple[Screen, JourneyState]:
        zone = state.zone or self._config.company.timezone
        offers = _by_day(await self._offers(state, await self._moving(state)), ZoneInfo(zone)).get(day, [])
        if not offers:
            return await self._days(lead, state, first=state.page, notice="gone")
        listed = tuple((slot_id(offer), offer) for offer in offers)
        state.stage, state.day, state.times, state.picked = "times", day, [key for key, _ in listed], None
        return TimeChoice(zone, day, listed), state

    async def _check_slot(self, lead: ChatLead, state: JourneyState, slot: str) -> tuple[Screen, JourneyState]:
        moving = await self._moving(state)
        offer = await self._fresh_offer(state, moving, slot)
        if offer is None:
            return await self._days(lead, state, first=state.page, notice="gone")
        state.stage, state.picked = "confirm", slot
        return SlotCheck(state.zone or self._config.company.timezone, offer, moving), state

    async def _book(self, lead: ChatLead, state: JourneyState, slot: str) -> tuple[Screen, JourneyState]:
        # The slot was on this chat's confirm screen; the booking transaction checks it against fresh data,
        # so it is not computed again here.
        moving = await self._moving(state)
        picked = _parse_slot_id(slot)
        expert = None if picked is None or picked[0] not in state.experts else self._bookings.expert(picked[0])
        if picked is None or expert is None:
            return await self._days(lead, state, first=state.page, notice="gone")
        start = picked[1]
        assert lead.prospect.id is not None
        try:
            if moving is not None and moving.id is not None:
                booking = await self._bookings.move(moving.id, start=start, prospect_ref=lead.prospect.id)
            else:
                booking = await self._bookings.book(
                    expert_key=expert.key, start=start, attendee=self._attendee(lead, state)
                )
        except SlotTaken:
            clash = await self._bookings.clashes_with_booking(expert.key, start, excluding=state.moving)
            return await self._days(lead, state, first=state.page, notice="taken" if clash else "gone")
        except NotBookable as error:
            log.warning("booking refused: %s", error)
            return Refused("unavailable"), state
        except (TooLate, LookupError):
            state.moving = None
            return Refused("unknown_booking"), state
        state.stage, state.moving, state.picked = "booked", None, None
        return Confirmed(booking, expert, self._invite(booking, expert, "REQUEST"), moving is not None), state

    async def _start_move(
        self, lead: ChatLead, state: JourneyState, booking_id: int
    ) -> tuple[Screen, JourneyState | None]:
        assert lead.prospect.id is not None
        try:
            booking = await self._bookings.changeable(booking_id, lead.prospect.id)
        except TooLate as late:
            return TooLateToChange(late.booking, late.cutoff, self._config.booking.contact), None
        except LookupError:
            return Refused("unknown_booking"), None
        state.moving, state.experts = booking_id, [booking.expert_key]
        state.zone = state.zone or lead.prospect.timezone or booking.attendee_zone
        return await self._days(lead, state, first=None)

    async def _cancelling(self, lead: ChatLead, given: Input, booking_id: int) -> Screen:
        assert lead.prospect.id is not None
        try:
            booking = await self._bookings.changeable(booking_id, lead.prospect.id)
        except TooLate as late:
            return TooLateToChange(late.booking, late.cutoff, self._config.booking.contact)
        except LookupError:
            return Refused("unknown_booking")
        expert = self._bookings.expert(booking.expert_key)
        if expert is None:
            return Refused("unknown_booking")
        if isinstance(given, AskCancel):
            return CancelCheck(booking, expert)
        if isinstance(given, KeepBooking):
            return Kept(booking)
        cancelled = await self._bookings.cancel(booking_id, prospect_ref=lead.prospect.id)
        return Cancelled(cancelled, expert, self._invite(cancelled, expert, "CANCEL"))

    def _callback(self, lead: ChatLead, reason: Literal["none_fit", "no_slots", "no_experts"]) -> CallbackRequested:
        log.info("lead %s asks for a callback (%s)", lead.lead_id, reason)
        name = self._answer(lead, self._config.booking.name_question) or lead.prospect.display_name
        return CallbackRequested(int(lead.lead_id), name, reason)

    async def _offers(self, state: JourneyState, moving: Booking | None) -> list[Offer]:
        experts = [expert for key in state.experts if (expert := self._bookings.expert(key)) is not None]
        return await self._bookings.offers(experts, moving=moving)

    async def _fresh_offer(self, state: JourneyState, moving: Booking | None, slot: str) -> Offer | None:
        """The offer behind a slot id, if it is still free right now."""
        return next((offer for offer in await self._offers(state, moving) if slot_id(offer) == slot), None)

    async def _moving(self, state: JourneyState) -> Booking | None:
        """The consultation being moved, while it is still confirmed."""
        if state.moving is None:
            return None
        booking = await self._store.booking(state.moving)
        return booking if booking is not None and booking.status == "confirmed" else None

    def _attendee(self, lead: ChatLead, state: JourneyState) -> Attendee:
        assert lead.prospect.id is not None
        booking = self._config.booking
        chat = lead.prospect.telegram_user_id if lead.prospect.channel == "telegram" else None
        return Attendee(
            prospect_ref=int(lead.prospect.id),
            lead_ref=int(lead.lead_id),
            chat_id=chat,
            name=self._answer(lead, booking.name_question) or lead.prospect.display_name,
            email=self._answer(lead, booking.email_question),
            zone=state.zone or self._config.company.timezone,
            company=self._answer(lead, booking.company_question),
            topic=self._topic(lead),
        )

    def _answer(self, lead: ChatLead, key: str) -> str | None:
        value = lead.answers.get(key)
        return None if value is None or isinstance(value, tuple) else str(value)

    def _topic(self, lead: ChatLead) -> str:
        question = self._qualification.questionnaire.question(self._config.booking.services_question)
        value = lead.answers.get(self._config.booking.services_question)
        return "" if question is None or value is None else describe_answer(question, value)

    def _services(self, lead: ChatLead) -> tuple[str, ...]:
        value = lead.answers.get(self._config.booking.services_question)
        if isinstance(value, tuple):
            return value
        return () if value is None else (str(value),)

    def _invite(self, booking: Booking, expert: Expert, method: Literal["REQUEST", "CANCEL"]) -> bytes:
        company = self._config.company
        return invite(
            booking,
            expert,
            method=method,
            company=company.name,
            fallback_email=company.email or company.privacy_contact,
            now=self._clock(),
        )

    async def _load(self, chat_key: str) -> tuple[JourneyState | None, int | None]:
        raw, last = await self._store.chat_state(chat_key)
        if raw is None:
            return None, last
        try:
            return JourneyState.model_validate(raw), last
        except ValidationError:
            # A state written by an older version that no longer reads: start the chat's booking afresh.
            log.warning("unreadable booking state of %s; starting over", chat_key)
            return None, last

    async def _save(self, chat_key: str, state: JourneyState, update_id: int | None) -> None:
        await self._store.save_chat_state(
            chat_key, state.model_dump(mode="json"), update_id=update_id, now=self._clock()
        )


def _stage_accepts(stage: Stage, given: Input) -> bool:
    return (
        (isinstance(given, PickZone) and stage in {"zone", "zone_typed"})
        or (isinstance(given, PickDay) and stage == "days")
        or (isinstance(given, PickTime) and stage == "times")
    )


def _by_day(offers: list[Offer], zone: ZoneInfo) -> dict[date, list[Offer]]:
    grouped: dict[date, list[Offer]] = {}
    for offer in offers:
        grouped.setdefault(offer.slot.start.astimezone(zone).date(), []).append(offer)
    return grouped
