"""The availability store in memory: the fake that ships with the port, for fast service tests."""

from __future__ import annotations

import copy
from collections.abc import Collection, Sequence
from dataclasses import replace
from datetime import datetime

from scheduling.intervals import Interval
from scheduling.records import FeedState


class InMemoryAvailabilityStore:
    """Feeds and busy intervals in dictionaries, copied in and out as a database would."""

    def __init__(self) -> None:
        self._feeds: dict[int, FeedState] = {}
        self._busy: dict[int, list[Interval]] = {}
        self._next_id = 1
        self.booked: dict[str, list[tuple[int, Interval]]] = {}
        """Each expert's consultations as (booking id, meeting), for tests to fill."""

    async def configure_feeds(self, feeds: Collection[tuple[str, str]]) -> list[FeedState]:
        wanted = set(feeds)
        for feed_id, feed in list(self._feeds.items()):
            if (feed.expert_key, feed.location) not in wanted:
                del self._feeds[feed_id]
                self._busy.pop(feed_id, None)
        known = {(feed.expert_key, feed.location) for feed in self._feeds.values()}
        for expert_key, location in sorted(wanted - known):
            self._feeds[self._next_id] = FeedState(expert_key=expert_key, location=location, id=self._next_id)
            self._next_id += 1
        return await self.feeds()

    async def feeds(self, expert_keys: Collection[str] | None = None) -> list[FeedState]:
        chosen = [f for f in self._feeds.values() if expert_keys is None or f.expert_key in expert_keys]
        return [replace(f, busy_intervals=len(self._busy.get(f.id or 0, []))) for f in chosen]

    async def claim_feed(self, feed: FeedState, *, now: datetime) -> bool:
        assert feed.id is not None
        stored = self._feeds[feed.id]
        if stored.last_attempt_at != feed.last_attempt_at:
            return False
        self._feeds[feed.id] = replace(stored, last_attempt_at=now)
        return True

    async def record_attempt(self, feed: FeedState) -> None:
        assert feed.id is not None
        self._feeds[feed.id] = copy.deepcopy(feed)

    async def replace_busy(self, feed: FeedState, busy: Sequence[Interval]) -> None:
        assert feed.id is not None
        self._feeds[feed.id] = copy.deepcopy(feed)
        self._busy[feed.id] = list(busy)

    async def busy_between(self, expert_key: str, window: Interval) -> list[Interval]:
        return sorted(
            interval
            for feed_id, feed in self._feeds.items()
            if feed.expert_key == expert_key
            for interval in self._busy.get(feed_id, [])
            if interval.overlaps(window)
        )

    async def booked_between(
        self, expert_key: str, window: Interval, *, excluding: int | None = None
    ) -> list[Interval]:
        return sorted(
            meeting
            for booking_id, meeting in self.booked.get(expert_key, [])
            if booking_id != excluding and meeting.overlaps(window)
        )
