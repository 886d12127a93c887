"""A conversation stored under an earlier version of the questionnaire carries on under the new one."""

from __future__ import annotations

from leads import flow
from leads.model import Condition, Option, Question, Questionnaire, Scoring

SIZE = Question(
    key="size",
    kind="single",
    prompt="How big?",
    label="Size",
    options=(Option(key="small", label="Small"), Option(key="large", label="Large")),
)
EMAIL = Question(key="email", kind="text", format="email", prompt="E-mail?", label="E-mail")
NOW = Questionnaire(questions=(SIZE, EMAIL), scoring=Scoring(qualify_at=0))


def test_a_conversation_at_a_question_since_removed_continues_at_the_first_unanswered_one() -> None:
    """The firm deleted the question the prospect was on; the bot asks the next open one instead of failing."""
    stored = flow.FlowState(current="budget", answers={"size": "large"})

    shown = flow.screen(NOW, stored)
    reply = flow.handle(NOW, stored, flow.Typed("ada@example.com"))

    assert isinstance(shown, flow.Prompt)
    assert shown.question.key == "email"
    assert shown.number == 2
    assert isinstance(reply.screen, flow.Summary)
    assert reply.state.answers == {"size": "large", "email": "ada@example.com"}


def test_a_conversation_at_a_question_whose_condition_no_longer_holds_moves_on() -> None:
    """A question that became conditional on another answer is skipped when that answer does not match."""
    conditional_email = EMAIL.model_copy(update={"ask_when": Condition(question="size", any_of=("large",))})
    changed = Questionnaire(questions=(SIZE, conditional_email), scoring=Scoring(qualify_at=0))
    stored = flow.FlowState(current="email", answers={"size": "small"})

    shown = flow.screen(changed, stored)

    assert isinstance(shown, flow.Summary)
    assert [question.key for question, _ in shown.items] == ["size"]
