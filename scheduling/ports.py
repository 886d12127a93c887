"""The storage the scheduling use cases need, as small protocols they own."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from scheduling.intervals import Interval
from scheduling.records import Booking, FeedState


class AvailabilityStore(Protocol):
    """Calendar feeds and the busy time read from them."""

    async def configure_feeds(self, feeds: Collection[tuple[str, str]]) -> list[FeedState]:
        """Make the stored feeds exactly these (expert key, location) pairs, keeping what is known of each."""

    async def feeds(self, expert_keys: Collection[str] | None = None) -> list[FeedState]:
        """The stored feeds, of some experts or of all, with their busy interval counts."""

    async def claim_feed(self, feed: FeedState, *, now: datetime) -> bool:
        """Record an attempt at `now` unless another began since `feed` was read; whether this one may fetch.

        The claim that keeps two replicas (or two syncs) from fetching the same feed at once.
        """

    async def record_attempt(self, feed: FeedState) -> None:
        """Save how a sync went without touching the feed's busy intervals."""

    async def replace_busy(self, feed: FeedState, busy: Sequence[Interval]) -> None:
        """Save a successful read: the feed's state and its new busy intervals, atomically."""

    async def busy_between(self, expert_key: str, window: Interval) -> list[Interval]:
        """The expert's stored busy intervals that overlap the window, from all their feeds."""

    async def booked_between(
        self, expert_key: str, window: Interval, *, excluding: int | None = None
    ) -> list[Interval]:
        """When the expert's confirmed consultations overlapping the window take place (without buffers).

        `excluding` leaves out one consultation: the one being moved, whose old time is free for its new one.
        """


FitCheck = Callable[[Sequence[Interval], Sequence[Interval]], bool]
"""Whether a consultation still fits, given the expert's busy time and their other consultations, read in the
booking's own transaction."""


class SlotTaken(Exception):
    """The time is no longer free: another consultation or calendar event got there first."""


@dataclass(frozen=True)
class BookingEvent:
    """A change of a consultation, for sales: created, rescheduled or cancelled, with the consultation after it."""

    event_id: int
    booking_id: int
    lead_ref: int
    kind: Literal["created", "rescheduled", "cancelled"]
    at: datetime
    detail: dict[str, Any]
    """uid, expert_key, starts_at, ends_at (ISO 8601, UTC), status, sequence; previous_starts_at and
    previous_ends_at when rescheduled."""


@dataclass(frozen=True)
class DueReminder:
    """A reminder claimed for sending, with the consultation it is about."""

    reminder_id: int
    before: timedelta
    booking: Booking


@dataclass(frozen=True)
class DueCalendarWrite:
    """A calendar write claimed for doing, with the consultation as it stands now."""

    write_id: int
    action: Literal["create", "update", "delete"]
    attempts: int
    booking: Booking


class BookingStore(Protocol):
    """Consultations and the work they leave for later: reminders, calendar writes; each call is one transaction."""

    async def book(
        self, booking: Booking, *, fits: FitCheck, reminders: Sequence[datetime], write_back: bool
    ) -> Booking:
        """Store a new consultation if it still fits; raise SlotTaken if not, or if another one overlaps it."""

    async def move(
        self,
        booking_id: int,
        *,
        to: Interval,
        blocked: Interval,
        fits: FitCheck,
        reminders: Sequence[datetime],
        write_back: bool,
        now: datetime,
    ) -> Booking:
        """Move a consultation to a new time (SEQUENCE + 1, reminders replaced); SlotTaken if it does not fit."""

    async def cancel(self, booking_id: int, *, write_back: bool, now: datetime) -> Booking:
        """Cancel a consultation (SEQUENCE + 1, reminders dropped)."""

    async def booking(self, booking_id: int) -> Booking | None:
        """One consultation."""

    async def upcoming(
        self, *, since: datetime, prospect_ref: int | None = None, expert_key: str | None = None
    ) -> list[Booking]:
        """Confirmed consultations ending after `since`, of one prospect or expert (or all), soonest first."""

    async def upcoming_counts(self, expert_keys: Collection[str], *, since: datetime) -> dict[str, int]:
        """How many confirmed consultations each expert has from `since` on."""

    async def set_attendee_zone(self, prospect_ref: int, zone: str) -> None:
        """Show the prospect's consultations in a new time zone from now on."""

    async def claim_reminders(self, *, now: datetime, lease: timedelta, limit: int) -> list[DueReminder]:
        """Reminders due by `now` and not claimed by someone else within `lease`, claimed for sending."""

    async def finish_reminder(
        self,
        reminder_id: int,
        *,
        status: Literal["sent", "blocked", "skipped", "failed"],
        error: str | None,
        now: datetime,
    ) -> None:
        """Record what sending a claimed reminder did; "failed" leaves it to be tried again after the lease.

        "blocked": the prospect cannot be reached (never retried); "skipped": no longer worth sending.
        """

    async def claim_calendar_writes(self, *, now: datetime, lease: timedelta, limit: int) -> list[DueCalendarWrite]:
        """Calendar writes due by `now`, oldest first, claimed for doing."""

    async def claim_booking_events(self, *, now: datetime, lease: timedelta, limit: int) -> list[BookingEvent]:
        """Changes of consultations not yet relayed to sales, oldest first, claimed for relaying."""

    async def finish_calendar_write(
        self, write_id: int, *, outcome: Literal["done", "retry", "dead"], error: str | None, at: datetime
    ) -> None:
        """Record what a claimed calendar write did: done or dead at `at`, or to be retried at `at`."""

    async def calendar_writes(self) -> list[dict[str, Any]]:
        """Every calendar write, for operators and tests."""

    async def feed_token(self, expert_key: str, *, new_token: Callable[[], str], now: datetime) -> str:
        """The expert's published-feed token, made on first use."""

    async def rotate_feed_token(self, expert_key: str, *, token: str, now: datetime) -> None:
        """Give the expert's feed a new token; the old URL stops working."""

    async def expert_for_token(self, token: str) -> str | None:
        """Whose feed a token opens, if anyone's."""

    async def chat_state(self, chat_key: str) -> tuple[dict[str, Any] | None, int | None]:
        """A chat's booking state and the newest update applied to it."""

    async def save_chat_state(
        self, chat_key: str, state: dict[str, Any], *, update_id: int | None, now: datetime
    ) -> None:
        """Remember a chat's booking state."""
