"""When a follow-up message is due for a lead: pure rules on plain values, with `now` passed in.

Three kinds, each sent at most once per lead (the followups table's unique key holds that across replicas):
unfinished (stopped mid-questionnaire), unbooked (qualified, no consultation) and nurture (the resources message).
Nothing is ever due for a prospect who sent /stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

FollowUpKind = Literal["unfinished", "unbooked", "nurture"]
KINDS: tuple[FollowUpKind, ...] = ("unfinished", "unbooked", "nurture")

Verdict = Literal["send", "skip", "wait"]
"""send it now; skip it for good (it can never become due for this lead); wait (not due yet)."""


@dataclass(frozen=True)
class Delays:
    """How long after the prospect's last step each kind is due; None turns a kind off."""

    unfinished: timedelta | None
    unbooked: timedelta | None
    nurture: timedelta | None

    @classmethod
    def from_hours(cls, *, unfinished: int, unbooked: int, nurture: int) -> Delays:
        """The configured hours, where 0 turns a kind off."""
        return cls(*(timedelta(hours=hours) if hours > 0 else None for hours in (unfinished, unbooked, nurture)))

    def of(self, kind: FollowUpKind) -> timedelta | None:
        """The delay of one kind."""
        return {"unfinished": self.unfinished, "unbooked": self.unbooked, "nurture": self.nurture}[kind]


@dataclass(frozen=True)
class LeadFacts:
    """What the rules need to know about a lead, read together in one transaction."""

    status: str
    """in_progress, completed, cancelled or restarted."""
    outcome: str | None
    """qualified or nurture once completed."""
    last_activity: datetime
    """When the prospect last changed their conversation."""
    completed_at: datetime | None
    booked: bool
    """A consultation was booked for the lead (even if cancelled later: see `verdict`)."""
    stopped: bool
    """The prospect sent /stop."""


def due_before(kind: FollowUpKind, delays: Delays, *, now: datetime) -> datetime | None:
    """The instant the lead's timestamp must be at or before for `kind` to be due now; None if the kind is off."""
    delay = delays.of(kind)
    return None if delay is None else now - delay


def verdict(kind: FollowUpKind, lead: LeadFacts, delays: Delays, *, now: datetime) -> Verdict:
    """Whether the follow-up of `kind` is due for the lead now, can never be, or may be later."""
    cutoff = due_before(kind, delays, now=now)
    if lead.stopped or cutoff is None:
        return "skip"
    if kind == "unfinished":
        if lead.status != "in_progress":
            return "skip"
        return "send" if lead.last_activity <= cutoff else "wait"
    wanted = "qualified" if kind == "unbooked" else "nurture"
    if lead.status != "completed" or lead.outcome != wanted or lead.completed_at is None:
        return "skip"
    # A consultation booked and then cancelled counts as booked: the prospect chose to cancel, with the booking
    # journey's own Reschedule at hand, so "you have not booked yet" would be both wrong and pushy.
    if kind == "unbooked" and lead.booked:
        return "skip"
    return "send" if lead.completed_at <= cutoff else "wait"
