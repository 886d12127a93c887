"""The storage the availability use cases need, as a small protocol they own."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from scheduling.intervals import Interval
from scheduling.records import FeedState


class AvailabilityStore(Protocol):
    """Calendar feeds and the busy time read from them."""

    async def configure_feeds(self, feeds: Collection[tuple[str, str]]) -> list[FeedState]:
        """Make the stored feeds exactly these (expert key, location) pairs, keeping what is known of each."""

    async def feeds(self, expert_keys: Collection[str] | None = None) -> list[FeedState]:
        """The stored feeds, of some experts or of all, with their busy interval counts."""

    async def record_attempt(self, feed: FeedState) -> None:
        """Save how a sync went without touching the feed's busy intervals."""

    async def replace_busy(self, feed: FeedState, busy: Sequence[Interval]) -> None:
        """Save a successful read: the feed's state and its new busy intervals, atomically."""

    async def busy_between(self, expert_key: str, window: Interval) -> list[Interval]:
        """The expert's stored busy intervals that overlap the window, from all their feeds."""
