"""Relays consultation changes from the booking side to sales: the lead's card and the CRM hear of each once.

The booking transaction writes a booking_events row; this worker claims rows with a lease, and hands each to
the hand-off service in one transaction that also marks the row relayed. A relayer that dies mid-way leaves the
row to the next claim after the lease; two relayers of one row cannot both commit (see mark_event_relayed).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection

from bot.workers import keep_doing
from leads.handoff import BookingNews, HandoffService
from leads.model import LeadId
from leads.pipeline import Consultation
from scheduling.booking_repository import AlreadyRelayed, mark_event_relayed
from scheduling.ports import BookingEvent, BookingStore

log = logging.getLogger(__name__)

RELAY_EVERY = timedelta(seconds=5)
RELAY_LEASE = timedelta(minutes=1)
BATCH = 50


class BookingRelay:
    """Hands each consultation change to sales, once."""

    def __init__(
        self,
        *,
        bookings: BookingStore,
        handoff: HandoffService,
        clock: Callable[[], datetime],
        relayed: Callable[[], None] = lambda: None,
    ) -> None:
        self._bookings = bookings
        self._handoff = handoff
        self._clock = clock
        self._relayed = relayed
        """Called after changes were handed over, to wake the card and CRM workers."""
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Relay now (a booking was just committed in this process)."""
        self._wake.set()

    async def relay_due(self) -> int:
        """Relay every change not yet relayed; how many."""
        relayed = 0
        while True:
            claimed = await self._bookings.claim_booking_events(now=self._clock(), lease=RELAY_LEASE, limit=BATCH)
            for event in claimed:
                relayed += await self._relay(event)
            if len(claimed) < BATCH:
                break
        if relayed:
            self._relayed()
        return relayed

    async def keep_relaying(self, every: timedelta = RELAY_EVERY) -> None:
        """Relay now, then whenever woken or once per `every`, until cancelled."""
        await keep_doing(self.relay_due, every=every, what="relaying booking changes", wake=self._wake)

    async def _relay(self, event: BookingEvent) -> int:
        now = self._clock()

        def mark(connection: Any) -> None:
            assert isinstance(connection, Connection)
            mark_event_relayed(connection, event.event_id, now)

        try:
            await self._handoff.booking_changed(news(event), also=mark)
        except AlreadyRelayed:
            return 0
        return 1


def news(event: BookingEvent) -> BookingNews:
    """A booking event as the hand-off service takes it."""
    detail = event.detail
    previous = detail.get("previous_starts_at")
    return BookingNews(
        event_id=event.event_id,
        lead_id=LeadId(event.lead_ref),
        kind=event.kind,
        at=event.at,
        consultation=Consultation(
            uid=detail["uid"],
            expert_key=detail["expert_key"],
            starts_at=datetime.fromisoformat(detail["starts_at"]),
            ends_at=datetime.fromisoformat(detail["ends_at"]),
            status="cancelled" if event.kind == "cancelled" else "confirmed",
        ),
        previous_starts_at=None if previous is None else datetime.fromisoformat(previous),
    )
