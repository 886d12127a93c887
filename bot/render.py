"""Screens of the questionnaire as Telegram messages: HTML text and inline keyboards."""

from __future__ import annotations

from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from bot import booking_view, callbacks, texts
from bot.texts import escape
from leads import flow
from leads.model import AnswerValue, Question
from leads.records import describe_answer


@dataclass(frozen=True)
class Message:
    """A message to send: Telegram HTML and an optional keyboard."""

    html: str
    keyboard: InlineKeyboardMarkup | None = None


def screen(shown: flow.Screen, *, qualified_text: str, nurture_text: str) -> Message:
    """The message for a screen."""
    match shown:
        case flow.Prompt():
            return prompt(shown)
        case flow.Summary(items=items):
            return _summary(items)
        case flow.EditMenu(questions=questions):
            return _edit_menu(questions)
        case flow.Finished(assessment=assessment):
            if assessment.qualified:
                return Message(escape(qualified_text))
            return Message(escape(nurture_text))


def prompt(shown: flow.Prompt, *, problem: str | None = None, answered: str | None = None) -> Message:
    """A question, with its options as buttons; the answer just given, or a refused answer's problem, comes first."""
    question = shown.question
    lines = [f"<i>{texts.QUESTION_PROGRESS.format(number=shown.number, total=shown.total)}</i>"]
    lines.append(f"<b>{escape(question.prompt)}</b>")
    if question.optional:
        lines.append(f"<i>{texts.OPTIONAL}</i>")
    if question.kind == "text" and shown.previous_answer is not None:
        earlier = texts.shorten(describe_answer(question, shown.previous_answer))
        lines.append(texts.EARLIER_ANSWER.format(answer=escape(earlier)))
    if problem:
        lines.insert(0, problem + "\n")
    html = "\n".join(lines)
    # The question matters more than the record of the last answer: two 1,000-character prompts
    # can pass the limit together, and then only the question is shown.
    if answered:
        with_answer = f"{answered}\n\n{html}"
        if texts.telegram_length(with_answer) <= MESSAGE_LIMIT:
            html = with_answer
    return Message(html, InlineKeyboardMarkup(_prompt_buttons(shown)))


def _prompt_buttons(shown: flow.Prompt) -> list[list[InlineKeyboardButton]]:
    question = shown.question
    at = question.key
    rows: list[list[InlineKeyboardButton]] = []
    for option in question.options:
        if question.kind == "multi":
            mark = texts.TICKED if option.key in shown.ticked else texts.UNTICKED
            rows.append([_button(mark + option.label, flow.Toggle(at=at, option=option.key))])
        else:
            mark = texts.CHOSEN_EARLIER if option.key == shown.previous_answer else ""
            rows.append([_button(mark + option.label, flow.Choose(at=at, option=option.key))])
    if question.kind == "multi":
        rows.append([_button(texts.BUTTON_DONE, flow.Done(at=at))])
    navigation = []
    if shown.can_go_back:
        label = texts.BUTTON_BACK_TO_SUMMARY if shown.editing else texts.BUTTON_BACK
        navigation.append(_button(label, flow.Back(at=at)))
    if question.optional:
        navigation.append(_button(texts.BUTTON_SKIP, flow.Skip(at=at)))
    if navigation:
        rows.append(navigation)
    return rows


def answered(question: Question, value: AnswerValue | None) -> str:
    """A question as it reads once answered: in place of its buttons, or above the next question."""
    shown_value = texts.SKIPPED if value is None else texts.shorten(describe_answer(question, value))
    return texts.ANSWER_RECORDED.format(prompt=escape(question.prompt), answer=escape(shown_value))


def keyboard(shown: flow.Screen) -> InlineKeyboardMarkup | None:
    """Only the buttons of a screen, for updating ticks in place."""
    if isinstance(shown, flow.Prompt):
        return InlineKeyboardMarkup(_prompt_buttons(shown))
    return None


MESSAGE_LIMIT = 4096
"""Characters Telegram accepts in one message, after entity parsing."""


def _summary(items: tuple[tuple[Question, AnswerValue | None], ...]) -> Message:
    # Long free-text answers are cut ever shorter until the whole summary fits one message.
    for limit in (texts.MAX_ANSWER_IN_SUMMARY, 150, 80, 40, 20):
        html = _summary_text(items, limit)
        if texts.telegram_length(html) <= MESSAGE_LIMIT:
            break
    buttons = [
        [_button(texts.BUTTON_CONFIRM, flow.Confirm())],
        [_button(texts.BUTTON_EDIT, flow.OpenEditMenu())],
        [_button(texts.BUTTON_BACK, flow.Back(at=flow.SUMMARY))],
    ]
    return Message(html, InlineKeyboardMarkup(buttons))


def _summary_text(items: tuple[tuple[Question, AnswerValue | None], ...], limit: int) -> str:
    lines = [texts.SUMMARY_TITLE, ""]
    for question, value in items:
        answer = texts.SKIPPED if value is None else texts.shorten(describe_answer(question, value), limit)
        lines.append(f"<b>{escape(question.label)}:</b> {escape(answer)}")
    lines += ["", texts.SUMMARY_HINT]
    return "\n".join(lines)


def _edit_menu(questions: tuple[Question, ...]) -> Message:
    rows = [[_button(question.label, flow.Edit(question=question.key))] for question in questions]
    rows.append([_button(texts.BUTTON_BACK_TO_SUMMARY, flow.Back(at=flow.EDIT_MENU))])
    return Message(texts.EDIT_MENU, InlineKeyboardMarkup(rows))


def _button(label: str, given: flow.Input) -> InlineKeyboardButton:
    return InlineKeyboardButton(label, callback_data=callbacks.encode(given))


def booking_keyboard(shown: booking_view.View) -> InlineKeyboardMarkup | None:
    """A booking view's buttons as an inline keyboard."""
    if not shown.rows:
        return None
    return InlineKeyboardMarkup(
        [
            [InlineKeyboardButton(label, callback_data=booking_view.encode(given)) for label, given in row]
            for row in shown.rows
        ]
    )
