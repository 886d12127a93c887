"""Plain-text reports for the terminal: how calendar feeds stand, and free slots by day."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from itertools import groupby
from zoneinfo import ZoneInfo

from scheduling.feeds import redact
from scheduling.records import FeedState
from scheduling.service import ExpertAvailability, FeedReport


def feeds(synced: Sequence[FeedReport], states: Sequence[FeedState]) -> str:
    """One block per feed: what this sync did, what is stored, and the last success and error."""
    if not states:
        return "no calendars configured (experts[].calendars in the configuration)"
    outcomes = {(r.feed.expert_key, r.feed.location): r for r in synced}
    blocks = []
    for state in states:
        report = outcomes.get((state.expert_key, state.location))
        status = "not synced" if report is None else f"{report.outcome}: {report.detail}"
        lines = [
            f"{state.expert_key}  {redact(state.location)}",
            f"  status          {status}",
            f"  events          {state.events}",
            f"  busy intervals  {state.busy_intervals}",
            f"  last success    {_when(state.last_success_at)}",
            f"  last error      {_when(state.last_error_at)}{f': {state.last_error}' if state.last_error else ''}",
        ]
        lines += [f"  skipped         {problem}" for problem in state.problems[:5]]
        if len(state.problems) > 5:
            lines.append(f"  skipped         … and {len(state.problems) - 5} more")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def slots(found: ExpertAvailability, *, zone: ZoneInfo | None = None) -> str:
    """An expert's free slots grouped by day, in `zone` (default: the expert's own)."""
    expert = found.expert
    shown_in = zone or ZoneInfo(expert.timezone)
    lines = [f"{expert.name} ({expert.key}), {expert.role}: times in {shown_in.key}"]
    if found.warning:
        lines.append(f"  ! {found.warning}")
    if not found.bookable:
        lines.append("  not bookable until the calendar is read again")
    elif not found.slots:
        lines.append("  no free slots in this period")
    local = [slot.start.astimezone(shown_in) for slot in found.slots]
    for day, starts in groupby(local, key=datetime.date):
        lines.append(f"  {_day(day)}  {' '.join(start.strftime('%H:%M') for start in starts)}")
    return "\n".join(lines)


def _day(day: date) -> str:
    return day.strftime("%a %d %b %Y")


def _when(instant: datetime | None) -> str:
    return "never" if instant is None else instant.strftime("%Y-%m-%d %H:%M:%S UTC")
