"""Every sentence the bot says on its own behalf, in one place so it can be translated.

Texts are Telegram HTML; the terminal front end strips the tags with `plain`. Anything that comes
from a prospect or from configuration passes through `escape` before it is put into a text.
"""

from __future__ import annotations

import html
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from leads.answers import Problem
from leads.service import LeadSummary

escape = html.escape

MAX_ANSWER_IN_SUMMARY = 300
"""Characters of one answer shown in a summary, so twelve long answers still fit one message."""

QUESTION_PROGRESS = "Question {number} of {total}"
OPTIONAL = "(optional)"
EARLIER_ANSWER = "Your earlier answer: {answer}"
TICK_HINT = "Tick all that apply, then press <b>Done</b>."
TYPE_HINT = "Type your answer."

BUTTON_DONE = "Done ✔"
BUTTON_SKIP = "Skip »"
BUTTON_BACK = "« Back"
BUTTON_BACK_TO_SUMMARY = "« Back to summary"
BUTTON_CONFIRM = "✅ Confirm"
BUTTON_EDIT = "✏️ Edit an answer"
TICKED = "✅ "
UNTICKED = "▫️ "
CHOSEN_EARLIER = "• "

SUMMARY_TITLE = "<b>Please check your answers</b>"
SUMMARY_HINT = "Is everything right? Press <b>Confirm</b>, or change an answer first."
SKIPPED = "—"
EDIT_MENU = "Which answer would you like to change?"

WELCOME_BACK = "Welcome back! Let's continue where you left off."
STARTING_OVER = "Starting over: your earlier answers are set aside."
ALREADY_FINISHED = "You have already completed the questionnaire. To answer it again, send /restart."
CANCELLED = "Cancelled. Send /start whenever you would like to begin again."
NOTHING_TO_CANCEL = "There is no questionnaire under way. Send /start to begin."
NOT_STARTED = "Hello! Send /start to tell us about your outsourcing needs."
STALE_BUTTON = "That button belongs to an earlier message; please use the latest one."
INVALID_BUTTON = "That button is not valid."
TEXT_ONLY = "I can only read typed answers and button presses. Please type your answer or use the buttons."
SOMETHING_WENT_WRONG = "Sorry, something went wrong on our side. Please try again in a moment."
UNKNOWN_COMMAND = "I don't know that command. Send /help to see what I can do."
NEXT_STEPS_QUALIFIED = "<b>What happens next:</b> an expert will contact you to arrange your consultation."
ANSWER_RECORDED = "{prompt}\n→ <b>{answer}</b>"

HELP = """<b>{company}</b> assistant: tell us about the processes you want to outsource and we'll match you with the right expert.

/start: begin, or continue where you left off
/restart: start the questionnaire over
/cancel: stop the questionnaire
/privacy: what we store about you and why
/help: this message"""

PRIVACY = """<b>Your data at {company}</b>

<b>What we store:</b> your Telegram id, name, username and language; your answers to this questionnaire (including the contact details you give); the score and outcome; and a log of when each step happened.

<b>Why:</b> to match you with the right outsourcing expert and to let our sales team contact you about your enquiry. We do not sell your data or use it for anything else.

<b>How long:</b> as long as your enquiry is active, and at most one year after your last contact, after which it is anonymised.

<b>Your rights:</b> to see, correct or erase your data, write to {contact}."""

COMMANDS = {
    "start": "Begin, or continue where you left off",
    "restart": "Start the questionnaire over",
    "cancel": "Stop the questionnaire",
    "privacy": "What we store about you and why",
    "help": "What this bot can do",
}

_PROBLEMS = {
    "empty": "Please type an answer.",
    "too_long": "That is a bit long: please keep it under {maximum} characters.",
    "email": "That doesn't look like an e-mail address. Please type it like <code>name@company.com</code>.",
    "phone": (
        "Please type the number in international form: a + and the country code, like <code>+44 20 7946 0958</code>."
    ),
    "integer": "Please type a whole number, like <code>25</code>.",
    "url": "Please type a web address, like <code>https://www.example.com</code>.",
    "not_an_option": "Please choose one of the options: press a button, or type its number.",
    "choose_at_least_one": "Tick at least one option, then press Done.",
    "not_optional": "This question needs an answer.",
    "use_buttons": "Please use the buttons below.",
}


TERMINAL_NOT_AN_OPTION = "⚠️ Please type the number of one of the options (several separated by commas where allowed)."


def problem(found: Problem, *, terminal: bool = False) -> str:
    """Why an answer was refused, with the form that was expected."""
    if terminal and found.code == "not_an_option":
        return TERMINAL_NOT_AN_OPTION
    if found.code == "integer_range":
        return "⚠️ " + _range(found.minimum, found.maximum)
    if found.code == "integer" and (found.minimum is not None or found.maximum is not None):
        return f"⚠️ {_PROBLEMS['integer']} {_range(found.minimum, found.maximum)}"
    return "⚠️ " + _PROBLEMS[found.code].format(maximum=found.maximum)


def _range(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f"Please type a number from {minimum:,} to {maximum:,}."
    if minimum is not None:
        return f"Please type a number of at least {minimum:,}."
    return f"Please type a number of at most {maximum:,}."


def shorten(text: str, limit: int = MAX_ANSWER_IN_SUMMARY) -> str:
    """Text cut to a length, with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def lead_summary(summary: LeadSummary) -> str:
    """The lead as sales receive it."""
    prospect = summary.prospect
    who = escape(prospect.display_name)
    if prospect.username:
        who += f" (@{escape(prospect.username)})"
    verdict = {"qualified": "✅ Qualified", "nurture": "🌱 Nurture"}.get(summary.outcome or "", "⏳ In progress")
    lines = [
        f"<b>Lead #{summary.lead_id}</b>: {verdict}, score {summary.score if summary.score is not None else '–'}",
        f"<b>Prospect:</b> {who}",
        f"<b>Source:</b> {escape(summary.source or 'direct')}",
        "",
    ]
    lines += [f"<b>{escape(label)}:</b> {escape(shorten(answer))}" for label, answer in summary.answers]
    if summary.reasons:
        lines += ["", "<b>Why:</b>"]
        for reason in summary.reasons:
            points = "✖" if reason.points is None else f"{reason.points:+d}"
            lines.append(f"  {points} {escape(reason.text)}")
    return "\n".join(lines)


def telegram_length(html_text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units of the text without its markup."""
    return len(plain(html_text).encode("utf-16-le")) // 2


def plain(text: str) -> str:
    """Telegram HTML as terminal text: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"</?[a-z][^>]*>", "", text))


def zone_name(zone: str, *, at: datetime) -> str:
    """A time zone as people read it: its city and its offset at that moment, e.g. "Berlin (UTC+01:00)"."""
    if zone in {"UTC", "Etc/UTC", "Etc/GMT"}:
        return "UTC"
    offset = at.astimezone(ZoneInfo(zone)).utcoffset()
    assert offset is not None
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    written = f"UTC{sign}{hours:02d}:{rest:02d}"
    if zone.startswith("Etc/"):
        return written
    return f"{zone.rsplit('/', 1)[-1].replace('_', ' ')} ({written})"


def consultation_time(start: datetime, end: datetime, zone: str) -> str:
    """When a consultation is, on a zone's clock: "Tue 1 Dec 2026, 14:00–14:45, Berlin (UTC+01:00)"."""
    local_start, local_end = start.astimezone(ZoneInfo(zone)), end.astimezone(ZoneInfo(zone))
    day = f"{local_start:%a} {local_start.day} {local_start:%b %Y}"
    return f"{day}, {local_start:%H:%M}–{local_end:%H:%M}, {zone_name(zone, at=start)}"
