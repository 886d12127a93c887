"""Booking use cases: which experts to offer, book a slot, move or cancel a consultation, and what that leaves to do."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from scheduling.intervals import Interval
from scheduling.model import Expert, SlotRules
from scheduling.ports import BookingStore, FitCheck, SlotTaken
from scheduling.records import Booking, booking_uid
from scheduling.service import AvailabilityService, Clock
from scheduling.slots import free_slots

__all__ = ["Attendee", "BookingPolicy", "BookingService", "NotBookable", "Offer", "SlotTaken", "TooLate"]

Assignment = Literal["fewest_upcoming", "first_available"]


@dataclass(frozen=True)
class BookingPolicy:
    """How consultations are handed out, reminded of, and how late they may change."""

    reminders: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(hours=1))
    """Reminders go this long before the start; one whose moment has passed at booking is not sent."""
    change_notice: timedelta = timedelta(hours=12)
    """A consultation can be moved or cancelled by the prospect until this long before it starts."""
    assignment: Assignment = "fewest_upcoming"
    """fewest_upcoming: the eligible expert with the fewest consultations ahead; first_available: any of them."""


@dataclass(frozen=True)
class Attendee:
    """Who books, as the booking remembers them."""

    prospect_ref: int
    lead_ref: int
    chat_id: int | None
    name: str
    email: str | None
    zone: str
    company: str | None = None
    topic: str = ""


@dataclass(frozen=True)
class Offer:
    """A free slot and the expert it is with."""

    expert: Expert
    slot: Interval


class NotBookable(Exception):
    """The expert cannot be booked right now (a stale calendar, or not an expert at all)."""


class TooLate(Exception):
    """The consultation starts too soon to be changed by the prospect."""

    def __init__(self, booking: Booking, cutoff: datetime) -> None:
        super().__init__(f"consultation {booking.id} can only be changed until {cutoff.isoformat()}")
        self.booking = booking
        self.cutoff = cutoff


class BookingService:
    """Books consultations with experts, and moves and cancels them, never twice in the same time."""

    def __init__(
        self,
        *,
        store: BookingStore,
        availability: AvailabilityService,
        experts: Sequence[Expert],
        rules: SlotRules,
        policy: BookingPolicy,
        clock: Clock,
        write_back: Collection[str] = (),
        new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self._store = store
        self._availability = availability
        self._experts = {expert.key: expert for expert in experts}
        self._rules = rules
        self._policy = policy
        self._clock = clock
        self._write_back = frozenset(write_back)
        """Experts whose consultations are written to their CalDAV collection."""
        self._new_token = new_token

    @property
    def policy(self) -> BookingPolicy:
        """How consultations are handed out and changed."""
        return self._policy

    def expert(self, key: str) -> Expert | None:
        """A configured expert."""
        return self._experts.get(key)

    def eligible(self, services: Collection[str]) -> list[Expert]:
        """The experts who consult on any of these services, in configuration order."""
        wanted = set(services)
        return [expert for expert in self._experts.values() if wanted & set(expert.specialties)]

    async def assign(self, services: Collection[str]) -> list[Expert]:
        """The experts whose slots a prospect wanting these services is offered, by the assignment policy.

        Fewest upcoming: the one eligible expert with the fewest consultations ahead who has a free slot (ties
        go in configuration order, so the spread stays even). First available: every eligible expert.
        """
        eligible = self.eligible(services)
        if self._policy.assignment == "first_available" or len(eligible) <= 1:
            return eligible
        counts = await self._store.upcoming_counts([e.key for e in eligible], since=self._clock())
        return sorted(eligible, key=lambda expert: counts[expert.key])

    async def offers(self, experts: Sequence[Expert], *, moving: Booking | None = None) -> list[Offer]:
        """Free slots across these experts, soonest first; one expert per start time, the earlier-listed one.

        With fewest-upcoming assignment only the first expert who has any slot is offered.
        """
        offers: dict[datetime, Offer] = {}
        for expert in experts:
            found = await self._availability.availability(expert.key, excluding=None if moving is None else moving.id)
            if not found.bookable:
                continue
            for slot in found.slots:
                offers.setdefault(slot.start, Offer(expert, slot))
            if offers and self._policy.assignment == "fewest_upcoming" and moving is None:
                break
        return [offers[start] for start in sorted(offers)]

    async def book(self, *, expert_key: str, start: datetime, attendee: Attendee) -> Booking:
        """Book the slot starting at `start`, checked again against fresh availability in the same transaction.

        Raises SlotTaken when it is no longer free, NotBookable when the expert cannot be booked now.
        """
        expert = self._bookable(expert_key)
        await self._check_calendars(expert)
        now = self._clock()
        meeting = Interval(start, start + self._rules.meeting)
        blocked = meeting.padded(self._rules.buffer_before, self._rules.buffer_after)
        booking = Booking(
            uid=booking_uid(self._new_token()),
            expert_key=expert.key,
            starts_at=meeting.start,
            ends_at=meeting.end,
            blocked_from=blocked.start,
            blocked_until=blocked.end,
            prospect_ref=attendee.prospect_ref,
            lead_ref=attendee.lead_ref,
            chat_id=attendee.chat_id,
            attendee_name=attendee.name,
            attendee_email=attendee.email,
            attendee_zone=attendee.zone,
            company=attendee.company,
            topic=attendee.topic,
            created_at=now,
            updated_at=now,
        )
        return await self._store.book(
            booking,
            fits=self._fits(expert, meeting, now),
            reminders=self._reminders(meeting, now) if attendee.chat_id is not None else [],
            write_back=expert.key in self._write_back,
        )

    async def clashes_with_booking(self, expert_key: str, start: datetime, *, excluding: int | None = None) -> bool:
        """Whether a meeting starting at `start` would overlap another confirmed consultation, buffers included.

        Tells "someone else just booked that time" apart from "a calendar event or a rule took it".
        """
        meeting = Interval(start, start + self._rules.meeting)
        blocked = meeting.padded(self._rules.buffer_before, self._rules.buffer_after)
        # A day back covers any buffer after an earlier consultation, whatever the buffers were when it was booked.
        upcoming = await self._store.upcoming(since=blocked.start - timedelta(days=1), expert_key=expert_key)
        return any(
            booking.id != excluding and Interval(booking.blocked_from, booking.blocked_until).overlaps(blocked)
            for booking in upcoming
        )

    async def move(self, booking_id: int, *, start: datetime, prospect_ref: int) -> Booking:
        """Move the prospect's consultation to the slot starting at `start` (the same expert, the same UID)."""
        booking = await self._changeable(booking_id, prospect_ref)
        expert = self._bookable(booking.expert_key)
        await self._check_calendars(expert)
        now = self._clock()
        meeting = Interval(start, start + self._rules.meeting)
        return await self._store.move(
            booking_id,
            to=meeting,
            blocked=meeting.padded(self._rules.buffer_before, self._rules.buffer_after),
            fits=self._fits(expert, meeting, now),
            reminders=self._reminders(meeting, now) if booking.chat_id is not None else [],
            write_back=expert.key in self._write_back,
            now=now,
        )

    async def cancel(self, booking_id: int, *, prospect_ref: int) -> Booking:
        """Cancel the prospect's consultation; its time is free again at once."""
        booking = await self._changeable(booking_id, prospect_ref)
        return await self._store.cancel(
            booking_id, write_back=booking.expert_key in self._write_back, now=self._clock()
        )

    async def changeable(self, booking_id: int, prospect_ref: int) -> Booking:
        """The prospect's confirmed consultation, if they may still change it; TooLate or LookupError if not."""
        return await self._changeable(booking_id, prospect_ref)

    async def upcoming_for(self, prospect_ref: int) -> list[Booking]:
        """The prospect's consultations that have not ended, soonest first."""
        return await self._store.upcoming(since=self._clock(), prospect_ref=prospect_ref)

    async def upcoming_with(self, expert_key: str, *, since: datetime) -> list[Booking]:
        """The expert's confirmed consultations that end after `since`."""
        return await self._store.upcoming(since=since, expert_key=expert_key)

    def change_cutoff(self, booking: Booking) -> datetime:
        """The last moment the prospect may move or cancel the consultation."""
        return booking.starts_at - self._policy.change_notice

    async def set_attendee_zone(self, prospect_ref: int, zone: str) -> None:
        """Show the prospect's consultations in their new time zone."""
        await self._store.set_attendee_zone(prospect_ref, zone)

    async def feed_token(self, expert_key: str) -> str:
        """The secret token of the expert's published feed of consultations, made on first use."""
        return await self._store.feed_token(expert_key, new_token=_feed_token, now=self._clock())

    async def rotate_feed_token(self, expert_key: str) -> str:
        """A new token for the expert's feed; the old address stops working at once."""
        token = _feed_token()
        await self._store.rotate_feed_token(expert_key, token=token, now=self._clock())
        return token

    async def expert_for_feed(self, token: str) -> Expert | None:
        """The expert whose feed this token opens."""
        key = await self._store.expert_for_token(token)
        return None if key is None else self._experts.get(key)

    def _bookable(self, expert_key: str) -> Expert:
        expert = self._experts.get(expert_key)
        if expert is None:
            raise NotBookable(f"no expert {expert_key!r}")
        return expert

    async def _check_calendars(self, expert: Expert) -> None:
        problem = await self._availability.calendar_problem(expert)
        if problem is not None:
            raise NotBookable(problem)

    async def _changeable(self, booking_id: int, prospect_ref: int) -> Booking:
        booking = await self._store.booking(booking_id)
        if booking is None or booking.prospect_ref != prospect_ref or booking.status != "confirmed":
            raise LookupError(f"no consultation {booking_id} of this prospect")
        cutoff = self.change_cutoff(booking)
        if self._clock() > cutoff:
            raise TooLate(booking, cutoff)
        return booking

    def _fits(self, expert: Expert, meeting: Interval, now: datetime) -> FitCheck:
        zone = ZoneInfo(expert.timezone)

        def fits(busy: Sequence[Interval], booked: Sequence[Interval]) -> bool:
            # The same rules that offered the slot, on the data read inside the booking's transaction.
            found = free_slots(hours=expert.hours, zone=zone, rules=self._rules, busy=busy, booked=booked, now=now)
            return meeting in found

        return fits

    def _reminders(self, meeting: Interval, now: datetime) -> list[datetime]:
        # Only a chat can be reminded: a booking made in the terminal gets none.
        due = {meeting.start - before for before in self._policy.reminders}
        return sorted(moment for moment in due if moment > now)


def _feed_token() -> str:
    # 32 bytes from the system's CSPRNG: the URL is the only thing that guards the expert's feed.
    return secrets.token_urlsafe(32)
