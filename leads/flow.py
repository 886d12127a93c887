"""The qualification conversation as a pure state machine: (state, input) -> (new state, screen).

No Telegram, no terminal and no database here: adapters turn what a prospect did into an
input, call `handle`, store the new state and render the screen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict

from leads.answers import Problem, match_options, parse_text_answer
from leads.model import AnswerValue, Question, Questionnaire
from leads.scoring import Assessment, assess

SUMMARY = "@summary"
EDIT_MENU = "@edit"
"""Screen names that are not question keys (keys never contain '@')."""

Stage = Literal["asking", "summary", "edit_menu", "finished"]


class FlowState(BaseModel):
    """Where a prospect is in the questionnaire; stored as JSON between messages."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stage: Stage = "asking"
    current: str | None = None
    """Key of the question on screen while asking."""
    answers: dict[str, AnswerValue | None] = {}
    ticked: tuple[str, ...] = ()
    """Options ticked so far on the multiple-choice question on screen."""
    editing: bool = False
    """The question on screen was opened from the summary: return there after it."""


# Inputs: what a prospect can do. Each input from a button names the screen it was pressed on
# (`at`), so a button left over from an earlier screen can never answer the current one.


@dataclass(frozen=True)
class Choose:
    """Pick one option of a single-choice question."""

    at: str
    option: str


@dataclass(frozen=True)
class Toggle:
    """Tick or untick an option of a multiple-choice question."""

    at: str
    option: str


@dataclass(frozen=True)
class Done:
    """Finish ticking options of a multiple-choice question."""

    at: str


@dataclass(frozen=True)
class Skip:
    """Leave an optional question unanswered."""

    at: str


@dataclass(frozen=True)
class Back:
    """Return to the previous question (or from the summary, to the last one)."""

    at: str


@dataclass(frozen=True)
class Typed:
    """Free text, answering whatever is on screen."""

    text: str


@dataclass(frozen=True)
class Confirm:
    """Accept the summary and get the result."""

    at: str = SUMMARY


@dataclass(frozen=True)
class OpenEditMenu:
    """Choose an answer to change, from the summary."""

    at: str = SUMMARY


@dataclass(frozen=True)
class Edit:
    """Change the answer to one question, from the edit menu."""

    question: str
    at: str = EDIT_MENU


Input = Choose | Toggle | Done | Skip | Back | Typed | Confirm | OpenEditMenu | Edit


# Screens: what to show.


@dataclass(frozen=True)
class Prompt:
    """Ask a question."""

    question: Question
    number: int
    total: int
    ticked: tuple[str, ...]
    previous_answer: AnswerValue | None
    can_go_back: bool
    editing: bool
    """Opened from the summary: Back returns there."""

    @property
    def name(self) -> str:
        """The screen name buttons carry."""
        return self.question.key


@dataclass(frozen=True)
class Summary:
    """All answers, to confirm or edit."""

    items: tuple[tuple[Question, AnswerValue | None], ...]
    name: str = SUMMARY


@dataclass(frozen=True)
class EditMenu:
    """The questions whose answers can be changed."""

    questions: tuple[Question, ...]
    name: str = EDIT_MENU


@dataclass(frozen=True)
class Finished:
    """The questionnaire is done and scored."""

    assessment: Assessment
    items: tuple[tuple[Question, AnswerValue | None], ...]
    name: str = "@finished"


Screen = Prompt | Summary | EditMenu | Finished


@dataclass(frozen=True)
class Reply:
    """The result of one input: the new state, what to show, and whether the input was refused."""

    state: FlowState
    screen: Screen
    problem: Problem | None = None
    """The answer was refused; show why with the expected form, and ask again."""
    stale: bool = False
    """The input belonged to another screen (an old or forged button): nothing changed."""


def start(questionnaire: Questionnaire) -> FlowState:
    """A fresh conversation at the first question."""
    first = _next_question(questionnaire, {}, after=None)
    assert first is not None, "a questionnaire's first question has no condition to fail"
    return FlowState(current=first.key)


def screen(questionnaire: Questionnaire, state: FlowState) -> Screen:
    """What to show for a state."""
    state = settle(questionnaire, state)
    match state.stage:
        case "summary":
            return Summary(_answered_items(questionnaire, state.answers))
        case "edit_menu":
            return EditMenu(tuple(question for question, _ in _answered_items(questionnaire, state.answers)))
        case "finished":
            items = _answered_items(questionnaire, state.answers)
            return Finished(assess(questionnaire.scoring, {q.key: value for q, value in items}), items)
        case "asking":
            return _prompt(questionnaire, state)


def settle(questionnaire: Questionnaire, state: FlowState) -> FlowState:
    """A stored state fitted to the questionnaire as configured now, which may have changed since.

    A conversation saved at a question that was since removed, or whose condition no longer
    holds, continues at the first question still unanswered (or the summary).
    """
    if state.stage != "asking":
        return state
    question = questionnaire.question(state.current or "")
    if question is not None and question.applies(state.answers):
        return state
    upcoming = _first_unanswered(questionnaire, state.answers)
    if upcoming is None:
        return FlowState(stage="summary", answers=state.answers)
    return _open(FlowState(answers=state.answers), upcoming.key)


def handle(questionnaire: Questionnaire, state: FlowState, given: Input) -> Reply:
    """Apply one input to a state."""
    state = settle(questionnaire, state)
    outcome = _apply(questionnaire, state, given)
    if isinstance(outcome, FlowState):
        return Reply(outcome, screen(questionnaire, outcome))
    if outcome is None:
        return Reply(state, screen(questionnaire, state), stale=True)
    return Reply(state, screen(questionnaire, state), problem=outcome)


def _apply(questionnaire: Questionnaire, state: FlowState, given: Input) -> FlowState | Problem | None:
    """The new state, a refused answer's problem, or None for an input that does not fit the screen."""
    if isinstance(given, Typed):
        return _typed(questionnaire, state, given.text)
    if given.at != _screen_name(state):
        return None
    question = questionnaire.question(state.current or "") if state.stage == "asking" else None
    match given:
        case Choose(option=option) if question and question.kind == "single" and question.option(option):
            return _record(questionnaire, state, question.key, option)
        case Toggle(option=option) if question and question.kind == "multi" and question.option(option):
            return state.model_copy(update={"ticked": _toggled(question, state.ticked, option)})
        case Done() if question and question.kind == "multi":
            return _finish_ticking(questionnaire, state, question)
        case Skip() if question and question.optional:
            return _record(questionnaire, state, question.key, None)
        case Back() if state.stage != "finished":
            return _back(questionnaire, state)
        case Confirm() if state.stage == "summary":
            return _confirm(questionnaire, state)
        case OpenEditMenu() if state.stage == "summary":
            return state.model_copy(update={"stage": "edit_menu"})
        case Edit(question=key) if state.stage == "edit_menu" and key in _editable(questionnaire, state):
            return _open(state.model_copy(update={"editing": True}), key)
    return None


def _confirm(questionnaire: Questionnaire, state: FlowState) -> FlowState:
    # Going Back out of a question an edit made relevant leaves it unanswered: ask it now.
    missing = _first_unanswered(questionnaire, state.answers)
    if missing is not None:
        return _open(state.model_copy(update={"editing": True}), missing.key)
    return state.model_copy(update={"stage": "finished", "answers": _live_answers(questionnaire, state)})


def _editable(questionnaire: Questionnaire, state: FlowState) -> set[str]:
    """The questions the edit menu lists: asked, and still relevant."""
    return {question.key for question, _ in _answered_items(questionnaire, state.answers)}


def _screen_name(state: FlowState) -> str:
    match state.stage:
        case "asking":
            return state.current or ""
        case "summary":
            return SUMMARY
        case "edit_menu":
            return EDIT_MENU
        case "finished":
            return "@finished"


def _typed(questionnaire: Questionnaire, state: FlowState, text: str) -> FlowState | Problem | None:
    if state.stage == "finished":
        return None
    if state.stage != "asking":
        return Problem("use_buttons")
    question = questionnaire.question(state.current or "")
    if question is None:
        return None
    if question.kind == "text":
        parsed = parse_text_answer(question, text)
    else:
        keys = match_options(question, text)
        parsed = keys if isinstance(keys, Problem) or question.kind == "multi" else keys[0]
    if isinstance(parsed, Problem):
        return parsed
    return _record(questionnaire, state, question.key, parsed)


def _toggled(question: Question, ticked: tuple[str, ...], option: str) -> tuple[str, ...]:
    chosen = set(ticked) ^ {option}
    return tuple(o.key for o in question.options if o.key in chosen)


def _finish_ticking(questionnaire: Questionnaire, state: FlowState, question: Question) -> FlowState | Problem:
    if state.ticked:
        return _record(questionnaire, state, question.key, state.ticked)
    if question.optional:
        return _record(questionnaire, state, question.key, None)
    return Problem("choose_at_least_one")


def _record(questionnaire: Questionnaire, state: FlowState, key: str, value: AnswerValue | None) -> FlowState:
    answers = {**state.answers, key: value}
    if state.editing:
        # An edit can make a conditional question newly relevant: ask it before returning.
        upcoming = _first_unanswered(questionnaire, answers)
    else:
        upcoming = _next_question(questionnaire, answers, after=key)
    if upcoming is None:
        return FlowState(stage="summary", answers=answers)
    return _open(FlowState(answers=answers, editing=state.editing), upcoming.key)


def _open(state: FlowState, key: str) -> FlowState:
    """Put a question on screen, with its earlier answer ticked again if it had one."""
    earlier = state.answers.get(key)
    ticked = earlier if isinstance(earlier, tuple) else ()
    return state.model_copy(update={"stage": "asking", "current": key, "ticked": ticked})


def _back(questionnaire: Questionnaire, state: FlowState) -> FlowState | None:
    if state.stage == "edit_menu" or (state.stage == "asking" and state.editing):
        return FlowState(stage="summary", answers=state.answers)
    if state.stage == "summary":
        asked = _asked(questionnaire, state.answers)
        return _open(state, asked[-1].key)
    previous = _previous_question(questionnaire, state)
    return None if previous is None else _open(state, previous.key)


def _asked(questionnaire: Questionnaire, answers: dict[str, AnswerValue | None]) -> list[Question]:
    return [question for question in questionnaire.questions if question.applies(answers)]


def _next_question(
    questionnaire: Questionnaire, answers: dict[str, AnswerValue | None], *, after: str | None
) -> Question | None:
    keys = [question.key for question in questionnaire.questions]
    start_index = 0 if after is None else keys.index(after) + 1
    return next((q for q in questionnaire.questions[start_index:] if q.applies(answers)), None)


def _previous_question(questionnaire: Questionnaire, state: FlowState) -> Question | None:
    keys = [question.key for question in questionnaire.questions]
    earlier = questionnaire.questions[: keys.index(state.current or "")]
    return next((q for q in reversed(earlier) if q.applies(state.answers)), None)


def _first_unanswered(questionnaire: Questionnaire, answers: dict[str, AnswerValue | None]) -> Question | None:
    return next((q for q in _asked(questionnaire, answers) if q.key not in answers), None)


def _live_answers(questionnaire: Questionnaire, state: FlowState) -> dict[str, AnswerValue | None]:
    """Answers to questions that still apply; an edit can make earlier conditional answers moot."""
    return {q.key: state.answers.get(q.key) for q in _asked(questionnaire, state.answers)}


def _answered_items(
    questionnaire: Questionnaire, answers: dict[str, AnswerValue | None]
) -> tuple[tuple[Question, AnswerValue | None], ...]:
    return tuple((q, answers.get(q.key)) for q in _asked(questionnaire, answers) if q.key in answers)


def _prompt(questionnaire: Questionnaire, state: FlowState) -> Prompt:
    question = questionnaire.question(state.current or "")
    if question is None:
        raise ValueError(f"the conversation is at {state.current!r}, which is not a question")
    keys = [q.key for q in questionnaire.questions]
    position = keys.index(question.key)
    # Later conditional questions that hang on answers not given yet still count towards the
    # total, so the count can only shrink as the prospect goes on, never jump up.
    shown = [
        q
        for index, q in enumerate(questionnaire.questions)
        if q.applies(state.answers)
        or (index > position and q.ask_when is not None and keys.index(q.ask_when.question) >= position)
    ]
    return Prompt(
        question=question,
        number=shown.index(question) + 1,
        total=len(shown),
        ticked=state.ticked,
        previous_answer=state.answers.get(question.key),
        can_go_back=state.editing or _previous_question(questionnaire, state) is not None,
        editing=state.editing,
    )
