"""The pure reports core: weeks in the sales team's zone, drop-off order, and export cells safe for spreadsheets."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest

from leads.model import LeadId, ProspectId, Questionnaire
from leads.pipeline import Consultation, Pipeline
from leads.records import Lead, Prospect
from leads.reports import (
    LeadRecord,
    csv_rows,
    csv_text,
    drop_off_order,
    export_document,
    neutralise,
    week_before,
    week_of,
)


def test_a_week_starts_on_monday_midnight_in_the_sales_zone_not_in_utc() -> None:
    """Sunday 23:30 UTC is already Monday in Berlin: that instant opens Berlin's new week."""
    week = week_of(datetime(2026, 11, 22, 23, 30, tzinfo=UTC), "Europe/Berlin")

    assert week.start == datetime(2026, 11, 22, 23, 0, tzinfo=UTC)
    assert week.end == datetime(2026, 11, 29, 23, 0, tzinfo=UTC)


def test_the_week_before_a_clock_change_is_a_week_of_wall_clock_days() -> None:
    """London's clocks go back on 25 October 2026: that week runs from 23:00 UTC Sunday to 00:00 UTC Monday."""
    this = week_of(datetime(2026, 10, 28, 12, 0, tzinfo=UTC), "Europe/London")

    last = week_before(this, "Europe/London")

    assert this.start == datetime(2026, 10, 26, 0, 0, tzinfo=UTC)
    assert last.start == datetime(2026, 10, 18, 23, 0, tzinfo=UTC)
    assert last.end == this.start


def test_drop_off_follows_the_questionnaire_with_the_summary_last(questionnaire: Questionnaire) -> None:
    """Counts come back in the order the questions are asked; zero counts are left out."""
    counts: dict[str | None, int] = {None: 2, "budget": 1, "services": 4, "timeline": 0}

    ordered = drop_off_order(counts, questionnaire)

    assert ordered == (("services", 4), ("budget", 1), ("summary", 2))


@pytest.mark.parametrize("cell", ["=1+2", "+44 20", "-3", "@SUM(A1)", "\tcmd", "\rcmd"])
def test_cells_a_spreadsheet_would_run_as_formulas_are_prefixed_with_an_apostrophe(cell: str) -> None:
    """OWASP's list: = + - @ tab and carriage return."""
    assert neutralise(cell) == "'" + cell


def test_ordinary_cells_are_left_alone() -> None:
    """Text, numbers and an inner equals sign need no escaping."""
    assert [neutralise(cell) for cell in ["Ada", "42", "a=b", ""]] == ["Ada", "42", "a=b", ""]


def _record(company: str) -> LeadRecord:
    lead = Lead(
        prospect_id=ProspectId(1),
        created_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC),
        status="completed",
        outcome="qualified",
        answers={"services": ("hr", "finance"), "company": company, "budget": "over_100k"},
        score=80,
        reasons=[{"text": "Enterprise", "points": 20}, {"text": "Just researching", "points": None}],
        id=LeadId(7),
    )
    prospect = Prospect(telegram_user_id=42, first_name="Ada", username="ada")
    consultation = Consultation(
        "c-1@consultbot",
        "amelia",
        datetime(2026, 11, 26, 10, 0, tzinfo=UTC),
        datetime(2026, 11, 26, 10, 45, tzinfo=UTC),
        "confirmed",
    )
    return LeadRecord(lead, prospect, Pipeline("claimed", 5, "Priya Raman"), consultation)


def test_an_export_row_reads_answers_as_people_do(questionnaire: Questionnaire) -> None:
    """Option labels rather than keys; reasons with their points; the consultation and the owner."""
    document = export_document(_record("Analytical Engines"), questionnaire)

    assert document["services"] == "HR & payroll, Accounting & finance"
    assert document["budget"] == "Over $100,000"
    assert document["reasons"] == "Enterprise (+20); Just researching (disqualifier)"
    assert document["owner"] == "Priya Raman"
    assert document["consultation_starts_at"] == "2026-11-26T10:00:00+00:00"
    assert document["phone"] is None


def test_a_csv_export_reads_back_with_commas_quotes_and_newlines_intact(questionnaire: Questionnaire) -> None:
    """The csv module quotes what needs quoting; a formula-like cell comes back with its apostrophe."""
    company = '=cmd|" /C calc"!A0, "Evil"\nInc.'

    text = csv_text(csv_rows([_record(company), _record("Plain")], questionnaire))
    rows = list(csv.reader(io.StringIO(text, newline="")))

    assert rows[0][:3] == ["lead_id", "created_at", "completed_at"]
    header = rows[0]
    assert rows[1][header.index("company")] == "'" + company
    assert rows[2][header.index("company")] == "Plain"
    assert len(rows) == 3
