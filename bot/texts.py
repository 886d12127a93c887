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
from scheduling.zones import zone_label

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

# Booking a consultation.
ZONE_QUESTION = "<b>Which time zone are you in?</b> I'll show the consultation times on your clock."
ZONE_TYPE = "Type your city, time zone or UTC offset, e.g. <code>Berlin</code>, <code>Asia/Kolkata</code>, <code>UTC+5:30</code> or <code>PST</code>."
ZONE_NOT_UNDERSTOOD = "⚠️ I couldn't find a time zone for “{text}”."
ZONE_CHECK = "Did you mean <b>{zone}</b> (from “{matched}”)?"
BUTTON_OTHER_ZONE = "Other…"
BUTTON_YES = "Yes"
BUTTON_NO = "No, type again"
DAYS_TITLE = "<b>Pick a day</b> for your consultation with {experts}."
DAYS_TITLE_MOVING = "<b>Pick a new day</b> for your consultation with {experts} (now {when})."
DAYS_ZONE = "Times are shown in <b>{zone}</b>. /timezone changes it."
DAYS_TAKEN = "⚠️ Sorry, that time was just booked by someone else. Here are the times still free."
DAYS_GONE = "⚠️ That time is no longer free. Here are the times still free."
DAY_BUTTON = "{day} · {count} {times}"
BUTTON_EARLIER = "« Earlier"
BUTTON_LATER = "Later »"
BUTTON_NONE_FIT = "None of these fit"
BUTTON_OTHER_DAYS = "« Other days"
TIMES_TITLE = "<b>{day}</b>: pick a time ({zone})."
SLOT_CHECK = "<b>Please confirm your consultation</b>\n\n{when}\nwith <b>{expert}</b>, {role}"
SLOT_CHECK_MOVING = "<b>Move your consultation?</b>\n\nfrom {old}\nto <b>{when}</b>\nwith <b>{expert}</b>"
BUTTON_BOOK = "✅ Book it"
BUTTON_MOVE = "✅ Move it"
BOOKED = "✅ <b>Your consultation is booked.</b>"
MOVED = "✅ <b>Your consultation has been moved.</b>"
BOOKED_DETAILS = (
    "<b>When:</b> {when}\n<b>Expert's time:</b> {expert_when}\n<b>With:</b> {expert}, {role}\n<b>Where:</b> {where}"
)
BOOKED_FOOTER = "The invite is attached: open it to add the consultation to your calendar. /mybookings lets you reschedule or cancel."
WHERE_UNKNOWN = "the expert will send you the link"
INVITE_CAPTION = "Calendar invite: {expert}, {when}"
CANCEL_CHECK = "Cancel your consultation with <b>{expert}</b> on {when}?"
BUTTON_CANCEL_YES = "Yes, cancel it"
BUTTON_KEEP = "No, keep it"
CANCELLED_BOOKING = "Your consultation with <b>{expert}</b> on {when} is cancelled. The cancellation is attached for your calendar. Send /start if you would like to book again."
KEPT = "Good: your consultation stays as it is."
CALLBACK_REQUESTED = "No problem: our team will contact you to find a time that works. Thank you!"
NO_SLOTS = "Our experts have no free times in the coming weeks right now, so our team will contact you to arrange a consultation."
NO_EXPERTS = "Our team will contact you to arrange a consultation with the right expert."
NOT_QUALIFIED_TO_BOOK = "Consultations are booked at the end of the questionnaire. Send /start to begin."
TOO_LATE = "Your consultation on {when} starts soon, so it can no longer be changed here. Please contact {contact}."
TOO_LATE_CONTACT = "your expert directly"
BOOKING_STALE = "That button belongs to an earlier message; please use the latest one."
BOOKING_NOT_OFFERED = "That choice was not offered to you."
BOOKING_UNKNOWN = "That consultation cannot be changed: it may have been cancelled already."
BOOKING_UNAVAILABLE = "Booking is not possible right now; please try again in a little while."
MY_BOOKINGS_NONE = "You have no upcoming consultations. Send /start to book one."
MY_BOOKINGS_TITLE = "<b>Your upcoming consultations</b>"
MY_BOOKING_LINE = "{number}. {when}\n    with {expert}"
MY_BOOKING_LOCKED = "    (starts soon: contact {contact} to change it)"
BUTTON_RESCHEDULE = "Reschedule {number}"
BUTTON_CANCEL_BOOKING = "Cancel {number}"
SALES_CALLBACK = "📞 <b>Callback requested</b>: lead #{lead} ({name}) {reason}."
SALES_CALLBACK_REASONS = {
    "none_fit": "found no convenient consultation time",
    "no_slots": "was offered no free consultation times",
    "no_experts": "needs an expert for services no configured expert covers",
}

HELP = """<b>{company}</b> assistant: tell us about the processes you want to outsource and we'll match you with the right expert.

/start: begin, or continue where you left off
/restart: start the questionnaire over
/cancel: stop the questionnaire
/mybookings: your consultations, to reschedule or cancel
/timezone: change your time zone
/privacy: what we store about you and why
/mydata: a copy of everything we store about you
/forget: erase your personal data
/stop: no more follow-up messages from us
/help: this message"""

PRIVACY = """<b>Your data at {company}</b>

<b>What we store:</b> your Telegram id, name, username and language; your answers to this questionnaire (including the contact details you give); the score and outcome; and a log of when each step happened.

<b>Why:</b> to match you with the right outsourcing expert and to let our sales team contact you about your enquiry. We do not sell your data or use it for anything else.

<b>How long:</b> {retention}

<b>Your rights:</b> /mydata sends you a copy of everything we store about you; /forget erases your personal data and cancels your coming consultations. For anything else, such as a correction, write to {contact}."""

COMMANDS = {
    "start": "Begin, or continue where you left off",
    "restart": "Start the questionnaire over",
    "cancel": "Stop the questionnaire",
    "mybookings": "Your consultations: reschedule or cancel",
    "timezone": "Change your time zone",
    "privacy": "What we store about you and why",
    "mydata": "A copy of everything we store about you",
    "forget": "Erase your personal data",
    "stop": "No more follow-up messages",
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


def consultation_time(start: datetime, end: datetime, zone: str) -> str:
    """When a consultation is, on a zone's clock: "Tue 1 Dec 2026, 14:00 to 14:45" (with an en dash), and the zone."""
    local_start, local_end = start.astimezone(ZoneInfo(zone)), end.astimezone(ZoneInfo(zone))
    day = f"{local_start:%a} {local_start.day} {local_start:%b %Y}"
    return f"{day}, {local_start:%H:%M}–{local_end:%H:%M}, {zone_label(zone, now=start)}"


# Reminders of booked consultations (bot/workers.py).

REMINDER_TITLE = "⏰ <b>Reminder: your consultation {starts_in}</b>"
REMINDER_WHEN = "<b>When:</b> {when}"
REMINDER_WITH = "<b>With:</b> {expert}, {role} ({company})"
REMINDER_WITH_UNKNOWN = "<b>With:</b> an expert of {company}"
REMINDER_TOPIC = "<b>Topic:</b> {topic}"
REMINDER_JOIN = "<b>Join:</b> {link}"
REMINDER_WHERE = "<b>Where:</b> {place}"
REMINDER_CHANGE = "Can't make it? Reschedule or cancel below."
REMINDER_CHANGE_CONTACT = "Can't make it? Please write to {contact}."
REMINDER_BUTTON_RESCHEDULE = "🗓 Reschedule"
REMINDER_BUTTON_CANCEL = "✖️ Cancel"


def starts_in(start: datetime, *, now: datetime) -> str:
    """How soon a consultation starts, as a reminder says it: "starts in 24 hours", "starts in 45 minutes"."""
    minutes = max(0, round((start - now).total_seconds() / 60))
    if minutes < 1:
        return "starts now"
    if minutes < 60:
        return f"starts in {_units(minutes, 'minute')}"
    if minutes < 3 * 60:
        hours, rest = divmod(minutes, 60)
        return f"starts in {_units(hours, 'hour')}" + (f" {_units(rest, 'minute')}" if rest else "")
    hours = round(minutes / 60)
    if hours < 48:
        return f"starts in {_units(hours, 'hour')}"
    return f"starts in {_units(round(hours / 24), 'day')}"


def _units(number: int, unit: str) -> str:
    return f"{number} {unit}" if number == 1 else f"{number} {unit}s"


def reminder(
    *,
    start: datetime,
    end: datetime,
    zone: str,
    now: datetime,
    expert: str | None,
    role: str | None,
    company: str,
    topic: str,
    meeting: str | None,
    changeable: bool,
    contact: str | None,
) -> str:
    """A reminder of a consultation: when, with whom, about what, where, and how to change it."""
    lines = [
        REMINDER_TITLE.format(starts_in=starts_in(start, now=now)),
        "",
        REMINDER_WHEN.format(when=escape(consultation_time(start, end, zone))),
    ]
    if expert is None:
        lines.append(REMINDER_WITH_UNKNOWN.format(company=escape(company)))
    else:
        lines.append(REMINDER_WITH.format(expert=escape(expert), role=escape(role or ""), company=escape(company)))
    if topic.strip():
        lines.append(REMINDER_TOPIC.format(topic=escape(shorten(topic))))
    if meeting is not None:
        place = meeting.strip()
        if re.fullmatch(r"https?://\S+", place, re.IGNORECASE):
            lines.append(REMINDER_JOIN.format(link=escape(place)))
        else:
            lines.append(REMINDER_WHERE.format(place=escape(place)))
    if changeable:
        lines += ["", REMINDER_CHANGE]
    elif contact:
        lines += ["", REMINDER_CHANGE_CONTACT.format(contact=escape(contact))]
    return "\n".join(lines)


# Lead cards in the sales chat (bot/cards.py, bot/handlers/sales.py).
CARD_CLAIM = "🙋 Claim"
CARD_CONTACTED = "📞 Contacted"
CARD_WON = "🏆 Won"
CARD_LOST = "❌ Lost"
CARD_DISQUALIFY = "🚫 Disqualify"
CARD_BACK = "◀ Back"
CARD_NOT_STAFF = "Only the sales team can work leads. Nothing was changed."
CARD_UNKNOWN = "This lead is not in the pipeline."
CARD_PICK_REASON = "Why was it lost?"
CARD_REFUSED = {
    "already_claimed": "Already claimed by {owner}.",
    "yours_already": "You have already claimed this lead.",
    "owned_by_other": "This lead is {owner}'s. Nothing was changed.",
    "closed": "This lead is closed ({status}). Nothing was changed.",
    "not_in_pipeline": "This lead is not in the sales pipeline.",
    "no_reason": "Pick a reason first.",
}
CARD_DONE = {
    "claim": "Claimed: the lead is yours.",
    "contacted": "Marked as contacted.",
    "won": "Marked as won. 🎉",
    "lost": "Marked as lost.",
    "disqualify": "Disqualified.",
}


NO_DATA = "We hold no personal data about you."


def retention(days: int) -> str:
    """The privacy notice's answer to "how long", from the configured retention."""
    if days == 0:
        return "as long as your enquiry is active, and until you ask us to erase it (/forget)."
    return (
        f"as long as your enquiry is active, and at most {days} days after your last contact, after which it is "
        "anonymised."
    )


MY_DATA_CAPTION = "Everything {company} stores about you, as JSON."
FORGET_ASK = """<b>Erase your personal data?</b>

We will erase your name, username, contact details and everything you typed, and cancel {consultations}. Only anonymous counts stay behind. This cannot be undone."""
FORGET_NO_CONSULTATIONS = "nothing else: you have no consultations coming up"
FORGET_YES = "Yes, erase my data"
FORGET_NO = "No, keep it"
FORGET_KEPT = "Nothing was erased."
FORGET_DONE = "Your personal data is erased{cancelled}. If you write to us again, we start afresh."
# Follow-ups: one message of each kind at most, each ending with how to stop them.
FOLLOWUP_STOP_LINE = "<i>Send /stop to stop these messages.</i>"
FOLLOWUP_UNFINISHED = (
    "You were part-way through telling us about the processes you want to outsource. A few more questions and "
    "we can match you with the right expert: carry on where you left off."
)
FOLLOWUP_CONTINUE_BUTTON = "Continue"
FOLLOWUP_UNBOOKED = (
    "You are a good fit for a free consultation with one of our experts, and you have not picked a time yet. "
    "Have a look at the free times:"
)
FOLLOWUP_SEE_TIMES_BUTTON = "See free times"
FOLLOWUPS_STOPPED = (
    "Done: we will not send you any more follow-up messages. Reminders of a consultation you book still come."
)
FOLLOWUP_STALE = "That questionnaire is over, so the button no longer applies. Send /start to see where you are."
FOLLOWUP_ALREADY_BOOKED = "You have booked a consultation already: /mybookings shows it."


def followup(html: str) -> str:
    """A follow-up message: its text, then the line saying how to stop such messages."""
    return f"{html}\n\n{FOLLOWUP_STOP_LINE}"
