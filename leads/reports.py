"""What staff read about leads: the weekly funnel, drop-off per question, and the export rows: pure, no I/O.

Weeks start on Monday at midnight in the sales team's time zone, so "this week" means the same to everyone who
reads a report. Every cell of an export that a spreadsheet could take for a formula is neutralised.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from leads.model import Questionnaire
from leads.pipeline import Consultation, Pipeline
from leads.records import Lead, LeadEvent, Prospect, describe_answer

FUNNEL_STEPS = ("started", "completed", "qualified", "booked", "held", "won")
"""The funnel's steps, in order: held is consultations that took place (ended, not cancelled)."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
"""Characters a spreadsheet may read a cell as a formula after (OWASP's CSV injection list)."""


@dataclass(frozen=True)
class Week:
    """A Monday-to-Monday week in the sales team's zone, as UTC-comparable instants [start, end)."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Funnel:
    """How many leads reached each step within one week."""

    started: int = 0
    completed: int = 0
    qualified: int = 0
    booked: int = 0
    held: int = 0
    won: int = 0

    def steps(self) -> tuple[tuple[str, int], ...]:
        """(step, count) in funnel order."""
        return tuple((step, getattr(self, step)) for step in FUNNEL_STEPS)


@dataclass(frozen=True)
class LeadRecord:
    """A lead with its prospect and sales' side of it, as staff commands and exports read it."""

    lead: Lead
    prospect: Prospect
    pipeline: Pipeline | None = None
    consultation: Consultation | None = None


@dataclass(frozen=True)
class LeadHistory:
    """A lead and everything that happened to it, oldest first."""

    record: LeadRecord
    events: tuple[LeadEvent, ...]


@dataclass(frozen=True)
class Stats:
    """The funnel this week and last, and where unfinished questionnaires stopped."""

    this_week: Week
    this: Funnel
    last: Funnel
    drop_off: tuple[tuple[str, int], ...]
    """(question key, or "summary" for the confirmation step; leads stopped there), in questionnaire order."""


def week_of(now: datetime, zone: str) -> Week:
    """The week (Monday 00:00 to the next Monday 00:00, in `zone`) that contains `now`."""
    local = now.astimezone(ZoneInfo(zone))
    monday = local.date() - timedelta(days=local.weekday())
    start = datetime.combine(monday, time(), tzinfo=ZoneInfo(zone))
    # The following Monday's midnight is built from its date, not start + 7 days: a DST change shifts the offset.
    end = datetime.combine(monday + timedelta(days=7), time(), tzinfo=ZoneInfo(zone))
    return Week(start, end)


def week_before(week: Week, zone: str) -> Week:
    """The week before `week`."""
    return week_of(week.start - timedelta(seconds=1), zone)


def drop_off_order(counts: Mapping[str | None, int], questionnaire: Questionnaire) -> tuple[tuple[str, int], ...]:
    """Leads stopped per question in questionnaire order; stopped at the summary (no question) last."""
    keys = [question.key for question in questionnaire.questions]
    ordered = [(key, counts[key]) for key in keys if counts.get(key)]
    unknown = sorted((key, n) for key, n in counts.items() if key is not None and key not in keys and n)
    summary = [("summary", counts[None])] if counts.get(None) else []
    return tuple(ordered + unknown + summary)


def neutralise(cell: str) -> str:
    """A cell a spreadsheet shows as text: a leading formula character is escaped with an apostrophe."""
    return f"'{cell}" if cell.startswith(FORMULA_STARTS) else cell


def export_header(questionnaire: Questionnaire) -> list[str]:
    """The export's column names: the lead, the prospect, one column per question, then the outcome and sales."""
    return [
        "lead_id",
        "created_at",
        "completed_at",
        "status",
        "outcome",
        "pipeline",
        "owner",
        "lost_reason",
        "telegram_user_id",
        "telegram_username",
        "telegram_name",
        *(question.key for question in questionnaire.questions),
        "score",
        "reasons",
        "source",
        "consultation_expert",
        "consultation_starts_at",
        "consultation_ends_at",
        "consultation_status",
    ]


def export_document(record: LeadRecord, questionnaire: Questionnaire) -> dict[str, Any]:
    """One lead as an export row: plain JSON values keyed by the export header (answers as people read them)."""
    lead, prospect, pipeline, consultation = record.lead, record.prospect, record.pipeline, record.consultation
    answers = {
        question.key: describe_answer(question, lead.answers[question.key]) if question.key in lead.answers else None
        for question in questionnaire.questions
    }
    reasons = "; ".join(_reason(reason) for reason in lead.reasons)
    return {
        "lead_id": lead.id,
        "created_at": _instant(lead.created_at),
        "completed_at": _instant(lead.completed_at),
        "status": lead.status,
        "outcome": lead.outcome,
        "pipeline": pipeline.status if pipeline else None,
        "owner": pipeline.owner_name if pipeline else None,
        "lost_reason": pipeline.lost_reason if pipeline else None,
        "telegram_user_id": prospect.telegram_user_id,
        "telegram_username": prospect.username,
        "telegram_name": " ".join(part for part in (prospect.first_name, prospect.last_name) if part) or None,
        **answers,
        "score": lead.score,
        "reasons": reasons or None,
        "source": lead.source,
        "consultation_expert": consultation.expert_key if consultation else None,
        "consultation_starts_at": _instant(consultation.starts_at) if consultation else None,
        "consultation_ends_at": _instant(consultation.ends_at) if consultation else None,
        "consultation_status": consultation.status if consultation else None,
    }


def csv_rows(records: Iterable[LeadRecord], questionnaire: Questionnaire) -> Iterable[list[str]]:
    """The export as CSV rows, header first, every cell text with formulas neutralised."""
    yield export_header(questionnaire)
    for record in records:
        yield csv_row(record, questionnaire)


def csv_row(record: LeadRecord, questionnaire: Questionnaire) -> list[str]:
    """One lead as CSV cells in the header's order, formulas neutralised."""
    document = export_document(record, questionnaire)
    cells = (document[column] for column in export_header(questionnaire))
    return [neutralise("" if cell is None else str(cell)) for cell in cells]


def csv_text(rows: Iterable[Sequence[str]]) -> str:
    """Rows written by the csv module: quotes, commas and newlines inside cells survive a read back."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(rows)
    return buffer.getvalue()


def json_line(record: LeadRecord, questionnaire: Questionnaire) -> str:
    """One lead as a JSON object on one line."""
    return json.dumps(export_document(record, questionnaire), ensure_ascii=False)


def _reason(reason: Mapping[str, Any]) -> str:
    points = reason.get("points")
    return f"{reason.get('text')} ({'disqualifier' if points is None else f'{points:+d}'})"


def _instant(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
