"""What the bot remembers about calendar feeds and consultations: plain records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from scheduling.intervals import Interval


@dataclass
class FeedState:
    """One configured calendar of an expert, and how its syncs have gone."""

    expert_key: str
    location: str
    id: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    content_hash: str | None = None
    events: int = 0
    problems: list[str] = field(default_factory=list)
    covered_from: datetime | None = None
    covered_until: datetime | None = None
    """The window the stored busy intervals were read for: nothing is known about time outside it."""
    busy_intervals: int = 0
    last_attempt_at: datetime | None = None
    last_success_at: datetime | None = None
    """The last time the feed was fetched (or found unchanged) and read without failing."""
    last_changed_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None

    @property
    def failing(self) -> bool:
        """Whether the most recent attempt failed."""
        return self.last_error_at is not None and (
            # One attempt records either a success or an error, so at the same instant the error came later.
            self.last_success_at is None or self.last_error_at >= self.last_success_at
        )

    def stale(self, *, now: datetime, limit: timedelta) -> bool:
        """Whether the stored busy time is too old to trust: never read, or not read for longer than `limit`."""
        return self.last_success_at is None or now - self.last_success_at > limit

    def covers(self, until: datetime) -> bool:
        """Whether the stored busy time reaches `until`."""
        return self.covered_until is not None and self.covered_until >= until


BookingStatus = Literal["confirmed", "cancelled"]

UID_DOMAIN = "consultbot"
"""The right-hand side of every consultation's UID: how the bot recognises its own events in an expert's feed."""


@dataclass
class Booking:
    """A consultation booked with an expert: what the invite, the reminders and the expert's calendar show.

    The prospect and lead are the leads package's ids, kept as plain references: the two packages share a
    database, not code.
    """

    uid: str
    """Stable for the consultation's whole life, so calendar apps update the same event on every change."""
    expert_key: str
    starts_at: datetime
    ends_at: datetime
    blocked_from: datetime
    """The start less the buffer before it: the expert's time this consultation keeps to itself starts here."""
    blocked_until: datetime
    """The end plus the buffer after it."""
    prospect_ref: int
    lead_ref: int
    chat_id: int | None
    """The Telegram chat told about the consultation and reminded of it (None for the terminal)."""
    attendee_name: str
    attendee_email: str | None
    attendee_zone: str
    """The prospect's IANA time zone when they booked: their times are shown in it."""
    company: str | None = None
    topic: str = ""
    """What the prospect wants to talk about: the services they chose, as they read them."""
    status: BookingStatus = "confirmed"
    sequence: int = 0
    """RFC 5545 SEQUENCE: raised on every change the attendee should see (a move, a cancellation)."""
    created_at: datetime | None = None
    updated_at: datetime | None = None
    cancelled_at: datetime | None = None
    id: int | None = None

    @property
    def meeting(self) -> Interval:
        """When the consultation itself takes place."""
        return Interval(self.starts_at, self.ends_at)

    @property
    def blocked(self) -> Interval:
        """The consultation with its buffers: no other consultation of the expert may overlap this."""
        return Interval(self.blocked_from, self.blocked_until)


def booking_uid(token: str) -> str:
    """A consultation UID that the bot recognises as its own: `<token>@consultbot`."""
    return f"{token}@{UID_DOMAIN}"


def is_own_uid(uid: str) -> bool:
    """Whether an event UID is one of the bot's consultations (which a feed echoes back once published)."""
    return uid.endswith("@" + UID_DOMAIN)
