"""What the bot remembers about each calendar feed: plain records, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta


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
