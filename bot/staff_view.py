"""What staff commands show: lead pages with paging buttons, one lead's full record and history, the stats.

Staff texts live here rather than in bot/texts.py: they are read by the firm's own sales team, not translated for
prospects. Every piece of prospect or staff text is escaped; every message fits Telegram's 4096 characters.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.constants import MessageLimit

from bot.texts import escape, shorten, telegram_length
from leads.model import LeadId, Questionnaire
from leads.pipeline import STATUSES, PipelineStatus
from leads.records import LeadEvent, describe_answer
from leads.reports import LeadHistory, LeadRecord, Stats

CALLBACK_PATTERN = re.compile(r"^sl:")
_PAGE = re.compile(r"^sl:([a-z]{1,16}|\*):(\d{1,12})$")
"""sl:<status or *>:<the oldest lead id shown so far, 0 for the first page>."""

MAX_LINE = 1000
"""Characters of one line of a lead's record; a longer answer is cut (the export has it whole)."""

NOT_STAFF = "These commands are for the sales team."
UNKNOWN_STATUS = "There is no status “{status}”. Use one of: {statuses}."
NO_LEADS = "No leads{status} yet."
LEAD_USAGE = "Send /lead followed by a lead number, e.g. <code>/lead 12</code>."
NO_SUCH_LEAD = "There is no lead #{lead_id}."
INVALID_PAGE = "That button is not valid."
OLDER = "Older ▶"
NEWEST = "◀ Newest"
EXPORT_CAPTION = "{count} leads, exported {when}."

_STEP_LABELS = {
    "started": "Started",
    "completed": "Completed",
    "qualified": "Qualified",
    "booked": "Booked",
    "held": "Consultations held",
    "won": "Won",
}


@dataclass(frozen=True)
class StaffView:
    """A message's HTML and buttons."""

    html: str
    keyboard: InlineKeyboardMarkup | None = None


@dataclass(frozen=True)
class PageRequest:
    """Which page a paging button asks for."""

    status: PipelineStatus | None
    before: LeadId | None


def status_named(word: str) -> PipelineStatus | None:
    """The pipeline status `word` names (any case), or None if it names none."""
    return next((status for status in STATUSES if status == word.strip().lower()), None)


def unknown_status(word: str) -> str:
    """The reply to /leads with a status that does not exist."""
    return UNKNOWN_STATUS.format(status=escape(shorten(word, 30)), statuses=", ".join(STATUSES))


def parse_page(data: str) -> PageRequest | None:
    """The page a paging button's callback data asks for; None if the data is not a valid paging button."""
    found = _PAGE.match(data)
    if found is None:
        return None
    word, before = found.group(1), int(found.group(2))
    status = status_named(word)
    if word != "*" and status is None:
        return None
    return PageRequest(status, LeadId(before) if before else None)


def leads_page(
    records: Sequence[LeadRecord], *, status: PipelineStatus | None, before: LeadId | None, more: bool, zone: str
) -> StaffView:
    """A page of leads, one line each with /lead to open it; Older and Newest buttons as the page allows."""
    named = f" {status}" if status else ""
    if not records:
        return StaffView(NO_LEADS.format(status=f" in status {status}" if status else ""))
    lines = [f"<b>Leads{named}</b>, newest first:"]
    lines += [_lead_line(record, zone) for record in records]
    word = status or "*"
    buttons = []
    if before is not None:
        buttons.append(InlineKeyboardButton(NEWEST, callback_data=f"sl:{word}:0"))
    if more:
        oldest = records[-1].lead.id
        buttons.append(InlineKeyboardButton(OLDER, callback_data=f"sl:{word}:{oldest}"))
    return StaffView("\n".join(lines), InlineKeyboardMarkup([buttons]) if buttons else None)


def lead_record(history: LeadHistory, questionnaire: Questionnaire, *, zone: str) -> list[str]:
    """A lead's full record and history as messages, each within Telegram's limit."""
    record = history.record
    lead, prospect, pipeline = record.lead, record.prospect, record.pipeline
    labels = {question.key: question.label for question in questionnaire.questions}
    lines = [f"<b>Lead #{lead.id}</b> · {escape(_status(record))} · score {_or_dash(lead.score)}"]
    who = escape(prospect.display_name)
    if prospect.telegram_user_id is not None:
        who += f' · <a href="tg://user?id={prospect.telegram_user_id}">Telegram</a>'
    if prospect.username:
        who += f" @{escape(prospect.username)}"
    lines.append(f"<b>Prospect:</b> {who}")
    lines.append(f"<b>Started:</b> {_when(lead.created_at, zone)}")
    if lead.completed_at is not None:
        lines.append(f"<b>Completed:</b> {_when(lead.completed_at, zone)}")
    lines.append(f"<b>Source:</b> {escape(lead.source or 'direct')}")
    if pipeline is not None and pipeline.owner_name:
        lines.append(f"<b>Owner:</b> {escape(pipeline.owner_name)}")
    if pipeline is not None and pipeline.lost_reason:
        lines.append(f"<b>Lost because:</b> {escape(pipeline.lost_reason)}")
    if record.consultation is not None:
        consultation = record.consultation
        when = f"{_when(consultation.starts_at, zone)} to {consultation.ends_at.astimezone(ZoneInfo(zone)):%H:%M}"
        lines.append(f"<b>Consultation:</b> {when} with {escape(consultation.expert_key)} ({consultation.status})")
    lines.append("")
    lines.append("<b>Answers</b>")
    for question in questionnaire.questions:
        if question.key in lead.answers:
            answer = describe_answer(question, lead.answers[question.key])
            lines.append(f"<b>{escape(question.label)}:</b> {escape(shorten(answer, MAX_LINE))}")
    for reason in lead.reasons:
        points = reason.get("points")
        mark = "✖" if points is None else f"{points:+d}"
        lines.append(f"{mark} {escape(shorten(str(reason.get('text')), MAX_LINE))}")
    lines.append("")
    lines.append("<b>History</b>")
    lines += [_event_line(event, labels, zone) for event in history.events]
    return _messages(lines)


def stats(found: Stats, *, zone: str) -> str:
    """The funnel this week beside last week's, and where this week's unfinished questionnaires stopped."""
    start = found.this_week.start.astimezone(ZoneInfo(zone))
    lines = [f"<b>Funnel</b> (weeks from Monday, {escape(zone)}): this week since {start:%a %d %b} · last week"]
    for (step, this), (_, last) in zip(found.this.steps(), found.last.steps(), strict=True):
        lines.append(f"{_STEP_LABELS[step]}: <b>{this}</b> · {last}")
    lines.append("")
    lines.append("<b>Drop-off this week</b> (unfinished, by the question last asked):")
    if not found.drop_off:
        lines.append("none")
    lines += [f"{escape(key)}: {count}" for key, count in found.drop_off]
    return "\n".join(lines)


def export_caption(count: int, now: datetime, zone: str) -> str:
    """The caption of the export document."""
    return EXPORT_CAPTION.format(count=count, when=_when(now, zone))


def _lead_line(record: LeadRecord, zone: str) -> str:
    lead = record.lead
    company = lead.answers.get("company")
    parts = [f"#{lead.id}", escape(_status(record)), escape(shorten(record.prospect.display_name, 40))]
    if isinstance(company, str):
        parts.append(escape(shorten(company, 40)))
    parts.append(f"score {_or_dash(lead.score)}")
    parts.append(f"{lead.created_at.astimezone(ZoneInfo(zone)):%d %b}")
    return f"{' · '.join(parts)} /lead {lead.id}"


def _status(record: LeadRecord) -> str:
    if record.pipeline is not None:
        return record.pipeline.status
    return record.lead.status.replace("_", " ")


def _event_line(event: LeadEvent, labels: dict[str, str], zone: str) -> str:
    detail = event.detail
    what = event.kind.replace("_", " ")
    if event.kind == "status_changed":
        what = f"{detail.get('from')} → {detail.get('to')}"
        if detail.get("reason"):
            what += f" ({detail.get('reason')})"
    elif event.kind == "answered":
        question = str(detail.get("question"))
        what = f"answered {labels.get(question, question)}"
    elif event.kind == "routed":
        what = f"routed to {detail.get('to')}"
    elif event.kind in ("booked", "rescheduled") and "starts_at" in detail:
        what = f"{what} for {_when(datetime.fromisoformat(str(detail['starts_at'])), zone)}"
    who = str(detail.get("by")) if event.kind == "status_changed" and detail.get("by") else event.actor
    return f"{_when(event.at, zone)} · {escape(shorten(who, 100))} · {escape(shorten(what, MAX_LINE))}"


def _messages(lines: Sequence[str]) -> list[str]:
    """Lines packed into as few messages as fit Telegram's limit; a line is never split (each is short)."""
    messages: list[str] = []
    current: list[str] = []
    for line in lines:
        candidate = "\n".join([*current, line])
        if current and telegram_length(candidate) > MessageLimit.MAX_TEXT_LENGTH:
            messages.append("\n".join(current))
            current = [line]
        else:
            current.append(line)
    if current:
        messages.append("\n".join(current))
    return messages


def _when(at: datetime, zone: str) -> str:
    return f"{at.astimezone(ZoneInfo(zone)):%d %b %Y %H:%M}"


def _or_dash(value: int | None) -> str:
    return "none" if value is None else str(value)
