"""Availability use cases: keep experts' busy time in step with their calendars, and offer free slots."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from scheduling.feeds import Fetched, FetchFailed, FetchResult, NotModified, Validators, redact
from scheduling.ics import FeedReading, read_busy
from scheduling.intervals import Interval
from scheduling.model import Expert, SlotRules
from scheduling.ports import AvailabilityStore
from scheduling.records import FeedState
from scheduling.slots import free_slots

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
FeedFetcher = Callable[[str, Validators], Awaitable[FetchResult]]
"""Fetch a feed's location, conditionally on what the previous fetch returned."""

LOOK_BACK = timedelta(days=1)
"""Busy time is read from a day before now, so an event under way is known."""
COVER_AHEAD = timedelta(days=7)
"""Busy time is read this far past the horizon, so an unchanged feed need not be read again for days."""
RECOVER_WHEN_LESS_THAN = timedelta(days=1)
"""When the stored window reaches less than this past the horizon, the feed is fetched whole and read again."""


@dataclass(frozen=True)
class SyncPolicy:
    """How often calendars are read, and what happens when one cannot be."""

    horizon: timedelta
    """How far ahead slots are offered: the busy time that must be known."""
    stale_after: timedelta
    """A feed not read successfully for this long is stale."""
    when_stale: Literal["block", "warn"] = "block"
    """Block: an expert with a stale feed is not bookable. Warn: offer slots from the last good data, and log."""
    refresh_after: timedelta = timedelta(minutes=15)
    """Before slots are offered, feeds not tried for this long are fetched again."""
    refresh_wait: float = 5.0
    """Seconds a slot query waits for that refresh before it answers from the stored data."""


@dataclass(frozen=True)
class FeedReport:
    """What one sync of one feed did."""

    feed: FeedState
    outcome: Literal["updated", "unchanged", "failed"]
    detail: str


@dataclass(frozen=True)
class ExpertAvailability:
    """An expert's free slots, or why they cannot be booked."""

    expert: Expert
    slots: tuple[Interval, ...]
    bookable: bool
    warning: str | None = None
    """Set when a calendar is stale: why the expert is not bookable, or why the slots may be out of date."""


class CalendarSync:
    """Reads experts' calendar feeds into stored busy intervals; a failed read keeps the last good ones."""

    def __init__(
        self,
        *,
        store: AvailabilityStore,
        fetch: FeedFetcher,
        experts: Sequence[Expert],
        policy: SyncPolicy,
        clock: Clock,
    ) -> None:
        self._store = store
        self._fetch = fetch
        self._experts = {expert.key: expert for expert in experts}
        self._policy = policy
        self._clock = clock
        self._running: dict[tuple[str, str], asyncio.Task[FeedReport | None]] = {}
        self._claimed: dict[int, datetime] = {}
        """When this instance last claimed each feed (by id): a later attempt was another replica's."""

    async def configure(self) -> list[FeedState]:
        """Store exactly the configured feeds: new ones are added, removed ones forgotten with their busy time."""
        pairs = {(expert.key, location) for expert in self._experts.values() for location in expert.calendars}
        return await self._store.configure_feeds(pairs)

    async def feeds(self) -> list[FeedState]:
        """Every configured feed as it stands."""
        return await self._store.feeds()

    async def sync(
        self, expert_keys: Collection[str] | None = None, *, unless_tried_within: timedelta | None = None
    ) -> list[FeedReport]:
        """Read every feed of these experts (or of all), concurrently; failures are reported, not raised.

        A feed another replica began reading meanwhile is left to it, and not reported; so is one another replica
        tried within `unless_tried_within`, if given (its round came first).
        """
        feeds = await self._store.feeds(expert_keys)
        if unless_tried_within is not None:
            since = self._clock() - unless_tried_within
            feeds = [feed for feed in feeds if not self._tried_elsewhere(feed, since)]
        reports = await asyncio.gather(*(self._sync_once(feed) for feed in feeds))
        return [report for report in reports if report is not None]

    async def keep_in_sync(self, every: timedelta) -> None:
        """Read every feed now and then once per `every`, until cancelled.

        With several replicas, a feed another replica tried within the last half period is left out of this
        round: the replicas' rounds are not in step, and each feed is to be read once per period, not once per
        replica. A replica that died mid-read holds a feed no longer than that half period.
        """
        while True:
            try:
                await self.sync(unless_tried_within=every / 2)
            except Exception:
                # A database hiccup must not end calendar sync for the life of the process.
                log.exception("calendar sync failed; trying again in %s", every)
            await asyncio.sleep(every.total_seconds())

    async def refresh(self, expert_keys: Collection[str]) -> None:
        """Read the experts' feeds that were not tried lately, waiting at most `refresh_wait` seconds."""
        now = self._clock()
        feeds = await self._store.feeds(expert_keys)
        due = [
            feed
            for feed in feeds
            if feed.last_attempt_at is None or now - feed.last_attempt_at >= self._policy.refresh_after
        ]
        if not due:
            return
        # Shielded: a slow feed keeps syncing in the background after the prospect has been answered.
        pending = [asyncio.shield(self._sync_once(feed)) for feed in due]
        done, _ = await asyncio.wait(pending, timeout=self._policy.refresh_wait)
        if len(done) < len(pending):
            log.info("answering from stored busy time: %d calendar(s) still syncing", len(pending) - len(done))

    def _tried_elsewhere(self, feed: FeedState, since: datetime) -> bool:
        last = feed.last_attempt_at
        return last is not None and last > since and (feed.id is None or self._claimed.get(feed.id) != last)

    def _sync_once(self, feed: FeedState) -> asyncio.Task[FeedReport | None]:
        # One sync per feed at a time in this process: a refresh joins the periodic sync under way.
        key = (feed.expert_key, feed.location)
        running = self._running.get(key)
        if running is None or running.done():
            running = asyncio.ensure_future(self._sync_feed(feed))
            self._running[key] = running
        return running

    async def _sync_feed(self, feed: FeedState) -> FeedReport | None:
        expert = self._experts.get(feed.expert_key)
        now = self._clock()
        if not await self._store.claim_feed(feed, now=now):
            log.debug("calendar %s of %s: being read elsewhere", redact(feed.location), feed.expert_key)
            return None
        if feed.id is not None:
            self._claimed[feed.id] = now
        feed = replace(feed, last_attempt_at=now)
        if expert is None:
            return await self._failed(feed, now, f"no expert {feed.expert_key!r} in the configuration")
        horizon_end = now + self._policy.horizon
        # Conditional only while the stored window still covers the horizon: a 304 has no body to read further.
        conditional = feed.covers(horizon_end + RECOVER_WHEN_LESS_THAN)
        validators = Validators(feed.etag, feed.last_modified) if conditional else Validators()
        result = await self._fetch(feed.location, validators)
        match result:
            case FetchFailed(reason=reason):
                return await self._failed(feed, now, reason)
            case NotModified():
                return await self._unchanged(feed, now, "not modified")
            case Fetched(body=body, validators=fresh, content_hash=content_hash):
                feed = replace(feed, etag=fresh.etag, last_modified=fresh.last_modified)
                if conditional and content_hash == feed.content_hash:
                    return await self._unchanged(feed, now, "same content")
                window = Interval(now - LOOK_BACK, horizon_end + COVER_AHEAD)
                reading = await asyncio.to_thread(read_busy, body, window=window, zone=ZoneInfo(expert.timezone))
                return await self._read(replace(feed, content_hash=content_hash), now, window, reading)
        raise AssertionError(f"unexpected fetch result {result!r}")

    async def _read(self, feed: FeedState, now: datetime, window: Interval, reading: FeedReading) -> FeedReport:
        if reading.failure is not None:
            # The content hash is not kept: the same broken body must be read (and reported) again.
            return await self._failed(replace(feed, content_hash=None), now, reading.failure)
        feed = replace(
            feed,
            events=reading.events,
            problems=list(reading.problems),
            covered_from=window.start,
            covered_until=window.end,
            busy_intervals=len(reading.busy),
            last_success_at=now,
            last_changed_at=now,
        )
        await self._store.replace_busy(feed, reading.busy)
        for problem in reading.problems:
            log.warning("calendar %s of %s: skipped %s", redact(feed.location), feed.expert_key, problem)
        detail = f"{reading.events} events, {len(reading.busy)} busy intervals"
        return FeedReport(feed, "updated", detail)

    async def _unchanged(self, feed: FeedState, now: datetime, detail: str) -> FeedReport:
        feed = replace(feed, last_success_at=now)
        await self._store.record_attempt(feed)
        return FeedReport(feed, "unchanged", detail)

    async def _failed(self, feed: FeedState, now: datetime, reason: str) -> FeedReport:
        feed = replace(feed, last_error=reason, last_error_at=now)
        await self._store.record_attempt(feed)
        log.warning("calendar %s of %s not synced: %s", redact(feed.location), feed.expert_key, reason)
        return FeedReport(feed, "failed", reason)


class AvailabilityService:
    """Free consultation slots of each expert, from working hours and stored busy time."""

    def __init__(
        self,
        *,
        store: AvailabilityStore,
        sync: CalendarSync | None,
        experts: Sequence[Expert],
        rules: SlotRules,
        policy: SyncPolicy,
        clock: Clock,
    ) -> None:
        self._store = store
        self._sync = sync
        self._experts = {expert.key: expert for expert in experts}
        self._rules = rules
        self._policy = policy
        self._clock = clock

    @property
    def experts(self) -> list[Expert]:
        """The configured experts, in configuration order."""
        return list(self._experts.values())

    async def availability(
        self, expert_key: str, *, days: int | None = None, refresh: bool = True, excluding: int | None = None
    ) -> ExpertAvailability:
        """The expert's free slots from now over `days` (default: the whole horizon).

        `excluding` is a consultation being moved: its own time counts as free.
        """
        expert = self._experts[expert_key]
        if refresh and self._sync is not None and expert.calendars:
            await self._sync.refresh([expert_key])
        now = self._clock()
        warning = await self._staleness(expert, now)
        if warning is not None and self._policy.when_stale == "block":
            return ExpertAvailability(expert, (), bookable=False, warning=warning)
        until = now + (self._policy.horizon if days is None else min(timedelta(days=days), self._policy.horizon))
        # A day more on each side: the daily cap counts whole local days, and buffers reach across the edges.
        window = Interval(now - LOOK_BACK, until + timedelta(days=1))
        busy = await self._store.busy_between(expert_key, window)
        booked = await self._store.booked_between(expert_key, window, excluding=excluding)
        slots = free_slots(
            hours=expert.hours, zone=ZoneInfo(expert.timezone), rules=self._rules, busy=busy, booked=booked, now=now
        )
        return ExpertAvailability(expert, tuple(s for s in slots if s.start < until), bookable=True, warning=warning)

    async def calendar_problem(self, expert: Expert) -> str | None:
        """Why the expert cannot be booked now because of their calendars, if they cannot."""
        warning = await self._staleness(expert, self._clock())
        return warning if self._policy.when_stale == "block" else None

    async def _staleness(self, expert: Expert, now: datetime) -> str | None:
        if not expert.calendars:
            return None
        stale = [
            feed
            for feed in await self._store.feeds([expert.key])
            if feed.stale(now=now, limit=self._policy.stale_after) or not feed.covers(now + self._policy.horizon)
        ]
        if not stale:
            return None
        names = ", ".join(redact(feed.location) for feed in stale)
        warning = f"{expert.name}'s calendar is out of date ({names}): not read successfully lately"
        log.warning("%s", warning)
        return warning
