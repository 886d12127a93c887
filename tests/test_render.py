"""Every screen renders to a message Telegram accepts: valid HTML, within the length limit."""

from __future__ import annotations

import pytest

from bot import render
from bot.config import BusinessConfig
from leads import flow
from leads.model import Option, Question, Questionnaire, Scoring
from tests.fake_telegram import parse_telegram_html, utf16_length

LONG_ANSWER = "🚀 <b>bold?</b> & שלום " * 100


def _accepted_by_telegram(message: render.Message) -> str:
    text, _ = parse_telegram_html(message.html)
    assert 0 < utf16_length(text) <= 4096
    for row in message.keyboard.inline_keyboard if message.keyboard else ():
        for button in row:
            assert button.callback_data is not None
            assert len(str(button.callback_data).encode()) <= 64
    return text


def test_a_summary_of_many_long_answers_is_shortened_to_fit_one_message() -> None:
    """Fifteen 2,000-character answers with emoji and markup still make one valid message."""
    questions = tuple(
        Question(key=f"q{n}", kind="text", prompt=f"Question {n}?", label=f"Answer {n}", max_length=2000)
        for n in range(15)
    )
    questionnaire = Questionnaire(questions=questions, scoring=Scoring(qualify_at=0))
    state = flow.FlowState(stage="summary", answers={f"q{n}": LONG_ANSWER[:2000] for n in range(15)})

    text = _accepted_by_telegram(
        render.screen(flow.screen(questionnaire, state), qualified_text="yes", nurture_text="no")
    )

    assert "Answer 14: 🚀 <b>bold?</b>" in text
    assert "…" in text


def test_every_question_of_the_bundled_questionnaire_renders_as_a_valid_message(
    bundled_config: BusinessConfig,
) -> None:
    """Prompts, with and without a refused-answer notice, are valid Telegram HTML with short enough buttons."""
    questionnaire = bundled_config.questionnaire()

    for question in questionnaire.questions:
        shown = flow.Prompt(
            question=question, number=12, total=12, ticked=(), previous_answer=None, can_go_back=True, editing=True
        )
        _accepted_by_telegram(render.prompt(shown))
        _accepted_by_telegram(render.prompt(shown, problem="⚠️ Please type an answer."))
        _accepted_by_telegram(render.Message(render.answered(question, LONG_ANSWER)))
        _accepted_by_telegram(render.prompt(shown, answered=render.answered(question, LONG_ANSWER)))


def test_the_answer_just_given_is_shown_above_the_next_question() -> None:
    """A button press turns its message into the answered question, a blank line, then the next question."""
    answered = Question(
        key="size", kind="single", prompt="How big?", label="Size", options=(Option(key="s", label="Small"),)
    )
    following = Question(key="team", kind="text", prompt="How many <people>?", label="Team", format="integer")
    shown = flow.Prompt(
        question=following, number=2, total=2, ticked=(), previous_answer=None, can_go_back=True, editing=False
    )

    text = _accepted_by_telegram(render.prompt(shown, answered=render.answered(answered, "s")))

    assert text == "How big?\n→ Small\n\nQuestion 2 of 2\nHow many <people>?"


def test_an_answer_that_would_not_fit_beside_the_next_question_is_left_out() -> None:
    """Two 1,000-emoji prompts and a long earlier answer pass 4,096 together: the next question is shown alone."""
    answered = Question(key="before", kind="text", prompt="😀" * 1000, label="Before", max_length=2000)
    following = Question(key="after", kind="text", prompt="🚀" * 1000, label="After", max_length=2000, optional=True)
    shown = flow.Prompt(
        question=following,
        number=12,
        total=12,
        ticked=(),
        previous_answer=LONG_ANSWER[:2000],
        can_go_back=True,
        editing=False,
    )
    alone = _accepted_by_telegram(render.prompt(shown))

    text = _accepted_by_telegram(render.prompt(shown, answered=render.answered(answered, LONG_ANSWER[:2000])))

    assert text == alone
    assert text.startswith("Question 12 of 12\n🚀")


@pytest.mark.parametrize("qualified", [True, False])
def test_the_outcome_message_escapes_the_configured_text(bundled_config: BusinessConfig, qualified: bool) -> None:
    """A firm's message with <, > and & is shown as written, not parsed as markup."""
    questionnaire = bundled_config.questionnaire()
    answers = {"timeline": "asap", "budget": "over_100k", "role": "executive", "company_size": "5000_plus"}
    if not qualified:
        answers.update(timeline="researching", budget="undecided")
    finished = flow.screen(questionnaire, flow.FlowState(stage="finished", answers=answers))

    text = _accepted_by_telegram(render.screen(finished, qualified_text="A <b> & B", nurture_text="C <i> & D"))

    assert ("A <b> & B" if qualified else "C <i> & D") in text
