"""The questionnaire and its scoring rules: plain values, loaded from configuration, no I/O."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Annotated, Literal, NewType

# Numbers and booleans are strict: TOML has real types, so `minimum = "1"` is a mistake to report.
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

LeadId = NewType("LeadId", int)
ProspectId = NewType("ProspectId", int)
ConversationId = NewType("ConversationId", int)

# Keys travel inside Telegram callback data (64 bytes at most), so they are short and plain.
KEY_PATTERN = r"^[a-z0-9][a-z0-9_]{0,23}$"
Key = Annotated[str, Field(pattern=KEY_PATTERN)]

AnswerValue = str | int | tuple[str, ...]
"""A single choice or free text is a str, an integer answer an int, a multiple choice a tuple of keys."""

Answers = Mapping[str, AnswerValue | None]
"""Question key -> answer; None means the prospect skipped an optional question."""

AnswerFormat = Literal["text", "email", "phone", "integer", "url"]


class Value(BaseModel):
    """An immutable value that refuses unknown fields, so a typo in configuration is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Option(Value):
    """One answer a prospect can pick."""

    key: Key
    label: Annotated[str, Field(min_length=1, max_length=60)]


class Condition(Value):
    """A test on an earlier answer: one of some options, or a number in a range."""

    question: Key
    any_of: tuple[str, ...] | None = None
    at_least: StrictInt | None = None
    at_most: StrictInt | None = None

    @model_validator(mode="after")
    def _has_a_test(self) -> Condition:
        if self.any_of is None and self.at_least is None and self.at_most is None:
            raise ValueError("a condition needs any_of, at_least or at_most")
        return self

    def holds(self, answers: Answers) -> bool:
        """Whether the answers satisfy this condition; an unanswered question satisfies nothing."""
        value = answers.get(self.question)
        if value is None:
            return False
        if self.any_of is not None:
            chosen = value if isinstance(value, tuple) else (str(value),)
            if not set(chosen) & set(self.any_of):
                return False
        if self.at_least is not None or self.at_most is not None:
            if not isinstance(value, int):
                return False
            if self.at_least is not None and value < self.at_least:
                return False
            if self.at_most is not None and value > self.at_most:
                return False
        return True


class Question(Value):
    """One question of the questionnaire."""

    key: Key
    kind: Literal["single", "multi", "text"]
    prompt: Annotated[str, Field(min_length=1, max_length=1000)]
    label: Annotated[str, Field(min_length=1, max_length=40)]
    """Short name of the question in summaries, e.g. "Company size"."""
    options: tuple[Option, ...] = ()
    options_from: Literal["services"] | None = None
    """Take the options from the service catalogue instead of listing them here."""
    format: AnswerFormat = "text"
    minimum: StrictInt | None = None
    maximum: StrictInt | None = None
    max_length: Annotated[StrictInt, Field(ge=1, le=2000)] = 300
    optional: StrictBool = False
    ask_when: Condition | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Question:
        if self.kind == "text":
            if self.options or self.options_from:
                raise ValueError("a text question has no options")
        elif self.format != "text" or self.minimum is not None or self.maximum is not None:
            raise ValueError("format, minimum and maximum apply to text questions only")
        if self.minimum is not None and self.maximum is not None and self.minimum > self.maximum:
            raise ValueError("minimum is greater than maximum")
        if (self.minimum is not None or self.maximum is not None) and self.format != "integer":
            raise ValueError('minimum and maximum need format = "integer"')
        keys = [option.key for option in self.options]
        if len(keys) != len(set(keys)):
            raise ValueError("option keys must be unique")
        return self

    def option(self, key: str) -> Option | None:
        """The option with this key, if the question has it."""
        return next((option for option in self.options if option.key == key), None)

    def applies(self, answers: Answers) -> bool:
        """Whether this question is asked, given the answers so far."""
        return self.ask_when is None or self.ask_when.holds(answers)


class ScoringRule(Value):
    """Points given when an answer matches, with the reason a salesperson reads."""

    when: Condition
    points: StrictInt
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class Disqualifier(Value):
    """Answers that send a prospect to nurture whatever their score."""

    when_all: Annotated[tuple[Condition, ...], Field(min_length=1)]
    reason: Annotated[str, Field(min_length=1, max_length=200)]


class Scoring(Value):
    """How answers become a score and a decision."""

    qualify_at: StrictInt
    rules: tuple[ScoringRule, ...] = ()
    disqualifiers: tuple[Disqualifier, ...] = ()


class Questionnaire(Value):
    """The questions in the order they are asked, and how the answers are scored."""

    questions: Annotated[tuple[Question, ...], Field(min_length=1)]
    scoring: Scoring

    def question(self, key: str) -> Question | None:
        """The question with this key, if there is one."""
        return next((question for question in self.questions if question.key == key), None)

    def reference_problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every condition that names a question or option that does not exist, as (location, problem)."""
        seen: dict[str, Question] = {}
        for index, question in enumerate(self.questions):
            if question.key in seen:
                yield ("questions", index, "key"), f"duplicate question key {question.key!r}"
            if question.kind != "text" and not question.options:
                yield ("questions", index, "options"), "a choice question needs options"
            if question.ask_when is not None:
                yield from _condition_problems(
                    question.ask_when, seen, ("questions", index, "ask_when"), "an earlier question"
                )
            seen[question.key] = question
        for index, rule in enumerate(self.scoring.rules):
            yield from _condition_problems(rule.when, seen, ("scoring", "rules", index, "when"), "a question")
        for index, disqualifier in enumerate(self.scoring.disqualifiers):
            for position, condition in enumerate(disqualifier.when_all):
                location = ("scoring", "disqualifiers", index, "when_all", position)
                yield from _condition_problems(condition, seen, location, "a question")


def _condition_problems(
    condition: Condition, known: Mapping[str, Question], location: tuple[str | int, ...], expected: str
) -> Iterator[tuple[tuple[str | int, ...], str]]:
    question = known.get(condition.question)
    if question is None:
        yield (*location, "question"), f"{condition.question!r} is not {expected}"
        return
    if condition.any_of is not None and question.kind == "text":
        yield (*location, "any_of"), f"question {question.key!r} has no options to match"
    for option in condition.any_of or ():
        if question.kind != "text" and question.option(option) is None:
            yield (*location, "any_of"), f"question {question.key!r} has no option {option!r}"
    numeric = condition.at_least is not None or condition.at_most is not None
    if numeric and question.format != "integer":
        yield (*location, "at_least"), f"question {question.key!r} is not a number question"


class Service(Value):
    """One outsourced process the firm sells."""

    key: Key
    label: Annotated[str, Field(min_length=1, max_length=60)]
    line: Literal["back_office", "front_office", "kpo", "lpo", "rpo"]
    """Service line: back office, front office, or knowledge, legal or research process outsourcing."""
    description: str = ""
