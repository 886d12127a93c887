"""Where sales stand with a qualified lead, and who may move it on: pure rules, no I/O.

    new ──claim──► claimed ──contacted──► contacted ──won / lost / disqualify──► (closed)
     └──────────── contacted, won, lost, disqualify also straight from new or claimed ───┘

Acting on an unowned lead makes the actor its owner; a lead owned by someone else is theirs to move.
Closed leads (won, lost, disqualified) do not move again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

PipelineStatus = Literal["new", "claimed", "contacted", "won", "lost", "disqualified", "nurture"]
Action = Literal["claim", "contacted", "won", "lost", "disqualify"]

OPEN: tuple[PipelineStatus, ...] = ("new", "claimed", "contacted")
CLOSED: tuple[PipelineStatus, ...] = ("won", "lost", "disqualified")
STATUSES: tuple[PipelineStatus, ...] = (*OPEN, *CLOSED, "nurture")

_RESULT: Mapping[Action, PipelineStatus] = {
    "claim": "claimed",
    "contacted": "contacted",
    "won": "won",
    "lost": "lost",
    "disqualify": "disqualified",
}


@dataclass(frozen=True)
class StaffMember:
    """A salesperson, as the pipeline knows them."""

    user_id: int
    name: str
    services: tuple[str, ...] = ()
    """Service keys or lines they take when leads are routed by service."""


@dataclass(frozen=True)
class Pipeline:
    """A lead's place in the sales pipeline."""

    status: PipelineStatus
    owner_user_id: int | None = None
    owner_name: str | None = None
    lost_reason: str | None = None


@dataclass(frozen=True)
class Consultation:
    """A lead's latest consultation, as the booking events told sales of it (the card, reports, exports)."""

    uid: str
    expert_key: str
    starts_at: datetime
    ends_at: datetime
    status: Literal["confirmed", "cancelled"]


@dataclass(frozen=True)
class Refused:
    """Why an action changed nothing."""

    reason: Literal["already_claimed", "yours_already", "owned_by_other", "closed", "not_in_pipeline", "no_reason"]
    owner_name: str | None = None
    status: PipelineStatus | None = None


def act(pipeline: Pipeline, action: Action, by: StaffMember, *, reason: str | None = None) -> Pipeline | Refused:
    """The pipeline after `by` takes `action`, or why they may not."""
    if pipeline.status == "nurture":
        return Refused("not_in_pipeline", status=pipeline.status)
    if pipeline.status in CLOSED:
        return Refused("closed", pipeline.owner_name, pipeline.status)
    owner = pipeline.owner_user_id
    if action == "claim" and owner is not None:
        return Refused("yours_already" if owner == by.user_id else "already_claimed", pipeline.owner_name)
    if owner is not None and owner != by.user_id:
        return Refused("owned_by_other", pipeline.owner_name)
    if action == "lost" and not reason:
        return Refused("no_reason")
    return replace(
        pipeline,
        status=_RESULT[action],
        owner_user_id=by.user_id,
        owner_name=by.name,
        lost_reason=reason if action == "lost" else None,
    )


RoutingMode = Literal["none", "round_robin", "by_service"]


def route(
    staff: Sequence[StaffMember],
    mode: RoutingMode,
    *,
    services: Sequence[str],
    service_lines: Mapping[str, str],
    last_routed: Mapping[int, datetime],
) -> StaffMember | None:
    """Whom a new qualified lead goes to: in turn (the longest without a routed lead, never-routed first, in
    configuration order), among those whose services match the lead's when routing by service."""
    if mode == "none" or not staff:
        return None
    candidates = list(staff)
    if mode == "by_service":
        wanted = set(services) | {service_lines[key] for key in services if key in service_lines}
        matching = [member for member in staff if wanted & set(member.services)]
        candidates = matching or candidates
    order = {member.user_id: index for index, member in enumerate(staff)}

    def turn(member: StaffMember) -> tuple[float, int]:
        last = last_routed.get(member.user_id)
        return (float("-inf") if last is None else last.timestamp(), order[member.user_id])

    return min(candidates, key=turn)
