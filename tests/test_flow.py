"""The questionnaire engine: what a prospect is shown, and what is recorded, for every button and message."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import BUNDLED_EXAMPLE, load_config
from leads import flow
from leads.answers import Problem
from leads.flow import (
    EDIT_MENU,
    SUMMARY,
    Back,
    Choose,
    Confirm,
    Done,
    Edit,
    FlowState,
    OpenEditMenu,
    Skip,
    Toggle,
    Typed,
)
from leads.model import (
    AnswerValue,
    Condition,
    Disqualifier,
    Option,
    Question,
    Questionnaire,
    Scoring,
    ScoringRule,
)

SERVICES = Question(
    key="services",
    kind="multi",
    label="Processes",
    prompt="Which processes are you looking to outsource? Tick all that apply, then press Done.",
    options=(
        Option(key="hr", label="HR & payroll"),
        Option(key="finance", label="Accounting & finance"),
        Option(key="customer_service", label="Customer service"),
        Option(key="it_infra", label="IT infrastructure"),
    ),
)
SUPPORT_HOURS = Question(
    key="support_hours",
    kind="single",
    label="Support hours",
    prompt="Which hours should the customer service team cover?",
    options=(
        Option(key="business", label="Business hours"),
        Option(key="extended", label="Extended hours"),
        Option(key="always", label="Around the clock"),
    ),
    ask_when=Condition(question="services", any_of=("customer_service",)),
)
TIMELINE = Question(
    key="timeline",
    kind="single",
    label="Timeline",
    prompt="When would you like the outsourced team to start?",
    options=(
        Option(key="asap", label="Within a month"),
        Option(key="quarter", label="In one to three months"),
        Option(key="later", label="Later this year"),
        Option(key="researching", label="Just researching"),
    ),
)
TEAM_SIZE = Question(
    key="team_size",
    kind="text",
    format="integer",
    minimum=1,
    maximum=5000,
    label="Team size",
    prompt="Roughly how many full-time people would the outsourced team need?",
)
PHONE = Question(
    key="phone",
    kind="text",
    format="phone",
    optional=True,
    label="Phone",
    prompt="A phone number in international form, e.g. +44 20 7946 0958 (optional).",
)
EMAIL = Question(
    key="email",
    kind="text",
    format="email",
    label="E-mail",
    prompt="Which e-mail address should our expert use?",
)
QUESTIONNAIRE = Questionnaire(
    questions=(SERVICES, SUPPORT_HOURS, TIMELINE, TEAM_SIZE, PHONE, EMAIL),
    scoring=Scoring(
        qualify_at=50,
        rules=(
            ScoringRule(
                when=Condition(question="timeline", any_of=("asap", "quarter")),
                points=30,
                reason="Wants to start within 3 months",
            ),
            ScoringRule(when=Condition(question="team_size", at_least=10), points=20, reason="Team of 10 or more FTEs"),
            ScoringRule(
                when=Condition(question="services", any_of=("customer_service",)),
                points=10,
                reason="Customer service, our largest practice",
            ),
        ),
        disqualifiers=(
            Disqualifier(
                when_all=(Condition(question="timeline", any_of=("researching",)),),
                reason="Just researching",
            ),
        ),
    ),
)

QUESTION_KEYS = [question.key for question in QUESTIONNAIRE.questions]
OPTION_KEYS = sorted({option.key for question in QUESTIONNAIRE.questions for option in question.options})
FINISHED = "@finished"
SCREEN_NAMES = [*QUESTION_KEYS, SUMMARY, EDIT_MENU, FINISHED]
GOOD_TYPED_ANSWERS = {"team_size": "25", "phone": "+44 20 7946 0958", "email": "jane.doe@acme.example"}
AFTER_SERVICES_AND_HOURS: tuple[flow.Input, ...] = (
    Choose(at="timeline", option="quarter"),
    Typed("25"),
    Typed("+44 20 7946 0958"),
    Typed("Jane.Doe@Acme.example"),
)


def walk(state: FlowState, *inputs: flow.Input, questionnaire: Questionnaire = QUESTIONNAIRE) -> flow.Reply:
    """The reply to the last input after applying each in turn; every one of them must be accepted."""
    reply = flow.Reply(state, flow.screen(questionnaire, state))
    for given_input in inputs:
        reply = flow.handle(questionnaire, reply.state, given_input)
        assert not reply.stale, f"{given_input} was refused as stale"
        assert reply.problem is None, f"{given_input} was refused: {reply.problem}"
    return reply


def ticking(*options: str) -> tuple[flow.Input, ...]:
    """Tick these services, then press Done."""
    return (*(Toggle(at="services", option=option) for option in options), Done(at="services"))


def at_summary(*services: str) -> FlowState:
    """A conversation that has answered everything and shows the summary."""
    hours: tuple[flow.Input, ...] = (
        (Choose(at="support_hours", option="always"),) if "customer_service" in services else ()
    )
    state = walk(flow.start(QUESTIONNAIRE), *ticking(*services), *hours, *AFTER_SERVICES_AND_HOURS).state
    assert state.stage == "summary"
    return state


def finished() -> FlowState:
    """A conversation that has been confirmed."""
    return walk(at_summary("hr", "finance"), Confirm()).state


def refused_as_stale(state: FlowState, given_input: flow.Input) -> bool:
    """Whether the input is flagged stale and leaves both the state and the screen as they were."""
    reply = flow.handle(QUESTIONNAIRE, state, given_input)
    return reply.stale and reply.state == state and reply.screen == flow.screen(QUESTIONNAIRE, state)


# Progress


def test_the_first_question_counts_every_question_that_could_still_be_asked() -> None:
    """The first question is "1 of 6" while the conditional question may still be asked."""
    state = flow.start(QUESTIONNAIRE)

    shown = flow.screen(QUESTIONNAIRE, state)

    assert isinstance(shown, flow.Prompt)
    assert (shown.question.key, shown.number, shown.total) == ("services", 1, 6)
    assert not shown.can_go_back


def test_the_total_drops_once_the_conditional_question_cannot_apply() -> None:
    """Without customer service ticked, the next question is "2 of 5"."""
    state = flow.start(QUESTIONNAIRE)

    reply = walk(state, *ticking("hr", "finance"))

    assert isinstance(reply.screen, flow.Prompt)
    assert (reply.screen.question.key, reply.screen.number, reply.screen.total) == ("timeline", 2, 5)


def test_the_total_keeps_the_conditional_question_when_it_applies() -> None:
    """With customer service ticked, the support hours question is "2 of 6" and the timeline "3 of 6"."""
    state = flow.start(QUESTIONNAIRE)

    hours = walk(state, *ticking("customer_service"))
    timeline = walk(hours.state, Choose(at="support_hours", option="extended"))

    assert isinstance(hours.screen, flow.Prompt)
    assert isinstance(timeline.screen, flow.Prompt)
    assert (hours.screen.question.key, hours.screen.number, hours.screen.total) == ("support_hours", 2, 6)
    assert (timeline.screen.question.key, timeline.screen.number, timeline.screen.total) == ("timeline", 3, 6)


@settings(max_examples=200, deadline=None)
@given(
    services=st.lists(st.sampled_from([option.key for option in SERVICES.options]), min_size=1, unique=True),
    hours=st.sampled_from([option.key for option in SUPPORT_HOURS.options]),
    timeline=st.sampled_from([option.key for option in TIMELINE.options]),
    team_size=st.integers(min_value=1, max_value=5000),
    phone=st.sampled_from([None, "+44 20 7946 0958", "0049 30 901820"]),
)
def test_the_question_total_never_grows_while_the_prospect_answers(
    services: list[str], hours: str, timeline: str, team_size: int, phone: str | None
) -> None:
    """Going forward, questions are numbered 1, 2, 3... the total only shrinks, and the last is "n of n"."""
    answers: list[tuple[flow.Input, ...]] = [ticking(*services)]
    if "customer_service" in services:
        answers.append((Choose(at="support_hours", option=hours),))
    answers += [(Choose(at="timeline", option=timeline),), (Typed(str(team_size)),)]
    answers += [(Skip(at="phone") if phone is None else Typed(phone),), (Typed("jane.doe@acme.example"),)]
    state = flow.start(QUESTIONNAIRE)
    prompts = [flow.screen(QUESTIONNAIRE, state)]

    for inputs in answers:
        reply = walk(state, *inputs)
        state = reply.state
        prompts.append(reply.screen)

    assert isinstance(prompts.pop(), flow.Summary)
    numbers = [prompt.number for prompt in prompts if isinstance(prompt, flow.Prompt)]
    totals = [prompt.total for prompt in prompts if isinstance(prompt, flow.Prompt)]
    assert len(numbers) == len(prompts)
    assert numbers == list(range(1, len(numbers) + 1))
    assert totals == sorted(totals, reverse=True)
    assert numbers[-1] == totals[-1]


# Conditional questions


@pytest.mark.parametrize(
    ("services", "next_question"),
    [
        (("hr",), "timeline"),
        (("hr", "finance", "it_infra"), "timeline"),
        (("customer_service",), "support_hours"),
        (("finance", "customer_service"), "support_hours"),
    ],
)
def test_the_support_hours_question_is_asked_only_when_customer_service_is_ticked(
    services: tuple[str, ...], next_question: str
) -> None:
    """The conditional question follows the services question only when its condition holds."""
    state = flow.start(QUESTIONNAIRE)

    reply = walk(state, *ticking(*services))

    assert reply.state.current == next_question


def test_an_answer_made_moot_by_an_edit_is_dropped_from_the_final_answers() -> None:
    """Unticking customer service drops the support hours answer from the summary and the result."""
    state = at_summary("hr", "customer_service")

    summary = walk(
        state,
        OpenEditMenu(),
        Edit(question="services"),
        Toggle(at="services", option="customer_service"),
        Done(at="services"),
    )
    result = walk(summary.state, Confirm())

    assert isinstance(summary.screen, flow.Summary)
    assert "support_hours" not in [question.key for question, _ in summary.screen.items]
    assert result.state.answers == {
        "services": ("hr",),
        "timeline": "quarter",
        "team_size": 25,
        "phone": "+442079460958",
        "email": "Jane.Doe@acme.example",
    }
    assert isinstance(result.screen, flow.Finished)
    assert "support_hours" not in [question.key for question, _ in result.screen.items]


def test_an_edit_that_makes_a_conditional_question_relevant_asks_it_before_the_summary() -> None:
    """Ticking customer service in an edit asks for support hours, then returns to the summary."""
    state = at_summary("hr")

    hours = walk(
        state,
        OpenEditMenu(),
        Edit(question="services"),
        Toggle(at="services", option="customer_service"),
        Done(at="services"),
    )
    summary = walk(hours.state, Choose(at="support_hours", option="business"))

    assert isinstance(hours.screen, flow.Prompt)
    assert hours.screen.question.key == "support_hours"
    assert isinstance(summary.screen, flow.Summary)
    assert summary.state.answers["support_hours"] == "business"
    assert summary.state.answers["services"] == ("hr", "customer_service")


def test_a_required_question_made_relevant_by_an_edit_cannot_be_left_unanswered_by_going_back() -> None:
    """Going back from a newly relevant question never lets the prospect confirm without answering it."""
    state = at_summary("hr")
    hours = walk(
        state,
        OpenEditMenu(),
        Edit(question="services"),
        Toggle(at="services", option="customer_service"),
        Done(at="services"),
    ).state

    back = flow.handle(QUESTIONNAIRE, hours, Back(at="support_hours"))
    confirmed = flow.handle(QUESTIONNAIRE, back.state, Confirm())

    answers = confirmed.state.answers
    unanswered = confirmed.state.stage == "finished" and answers.get("support_hours") is None
    assert not unanswered, f"finished with services {answers['services']} and no support hours"


# Multiple choice


def test_ticking_and_unticking_options_shows_the_ticks_and_done_records_them() -> None:
    """Ticks appear on the question as they are pressed; Done records the ticked options in list order."""
    state = flow.start(QUESTIONNAIRE)

    ticked = walk(
        state,
        Toggle(at="services", option="it_infra"),
        Toggle(at="services", option="hr"),
        Toggle(at="services", option="finance"),
        Toggle(at="services", option="finance"),
    )
    done = walk(ticked.state, Done(at="services"))

    assert isinstance(ticked.screen, flow.Prompt)
    assert ticked.screen.ticked == ("hr", "it_infra")
    assert ticked.state.answers == {}
    assert done.state.answers == {"services": ("hr", "it_infra")}
    assert done.state.current == "timeline"


def test_done_with_nothing_ticked_on_a_required_question_is_refused() -> None:
    """Done without a tick asks again with the problem "choose_at_least_one"."""
    state = walk(
        flow.start(QUESTIONNAIRE), Toggle(at="services", option="hr"), Toggle(at="services", option="hr")
    ).state

    reply = flow.handle(QUESTIONNAIRE, state, Done(at="services"))

    assert reply.problem == Problem("choose_at_least_one")
    assert not reply.stale
    assert reply.state == state
    assert isinstance(reply.screen, flow.Prompt)
    assert reply.screen.question.key == "services"


# Skip


def test_skip_leaves_an_optional_question_unanswered_and_moves_on() -> None:
    """Skipping the phone number records no answer for it and asks for the e-mail address."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr"), Choose(at="timeline", option="asap"), Typed("8")).state

    reply = flow.handle(QUESTIONNAIRE, state, Skip(at="phone"))

    assert not reply.stale
    assert reply.state.answers["phone"] is None
    assert reply.state.current == "email"


@pytest.mark.parametrize("question", ["services", "timeline", "team_size", "email"])
def test_a_forged_skip_on_a_required_question_is_stale_and_changes_nothing(question: str) -> None:
    """A Skip button the bot never showed cannot leave a required question unanswered."""
    inputs: dict[str, tuple[flow.Input, ...]] = {
        "services": (),
        "timeline": ticking("hr"),
        "team_size": (*ticking("hr"), Choose(at="timeline", option="asap")),
        "email": (*ticking("hr"), Choose(at="timeline", option="asap"), Typed("8"), Skip(at="phone")),
    }
    state = walk(flow.start(QUESTIONNAIRE), *inputs[question]).state
    assert state.current == question

    stale = refused_as_stale(state, Skip(at=question))

    assert stale


# Back


def test_back_returns_to_the_previous_question_with_its_options_still_ticked() -> None:
    """Back from the timeline shows the services question again with the earlier ticks."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr", "it_infra")).state

    reply = flow.handle(QUESTIONNAIRE, state, Back(at="timeline"))

    assert isinstance(reply.screen, flow.Prompt)
    assert reply.screen.question.key == "services"
    assert reply.screen.ticked == ("hr", "it_infra")
    assert reply.screen.previous_answer == ("hr", "it_infra")


def test_back_keeps_the_earlier_answer_of_a_single_choice_question() -> None:
    """Back from the team size shows the timeline with the earlier choice, which still counts."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr"), Choose(at="timeline", option="later")).state

    reply = flow.handle(QUESTIONNAIRE, state, Back(at="team_size"))

    assert isinstance(reply.screen, flow.Prompt)
    assert reply.screen.question.key == "timeline"
    assert reply.screen.previous_answer == "later"
    assert reply.state.answers["timeline"] == "later"


def test_back_passes_over_a_conditional_question_that_was_not_asked() -> None:
    """Without customer service ticked, Back from the timeline returns to the services question."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("finance")).state

    reply = flow.handle(QUESTIONNAIRE, state, Back(at="timeline"))

    assert reply.state.current == "services"


def test_back_returns_to_a_conditional_question_that_was_asked() -> None:
    """With customer service ticked, Back from the timeline returns to the support hours question."""
    state = walk(
        flow.start(QUESTIONNAIRE), *ticking("customer_service"), Choose(at="support_hours", option="always")
    ).state

    reply = flow.handle(QUESTIONNAIRE, state, Back(at="timeline"))

    assert isinstance(reply.screen, flow.Prompt)
    assert reply.screen.question.key == "support_hours"
    assert reply.screen.previous_answer == "always"


def test_back_from_the_summary_returns_to_the_last_question() -> None:
    """Back on the summary shows the e-mail question with the address given earlier."""
    state = at_summary("hr")

    reply = flow.handle(QUESTIONNAIRE, state, Back(at=SUMMARY))

    assert isinstance(reply.screen, flow.Prompt)
    assert reply.screen.question.key == "email"
    assert reply.screen.previous_answer == "Jane.Doe@acme.example"
    assert reply.screen.can_go_back


def test_back_on_the_first_question_is_stale() -> None:
    """There is nothing before the first question, so its Back is refused and nothing changes."""
    state = walk(flow.start(QUESTIONNAIRE), Toggle(at="services", option="hr")).state

    stale = refused_as_stale(state, Back(at="services"))

    assert stale


# Summary and edits


def test_the_summary_lists_every_answer_in_question_order() -> None:
    """The summary shows each asked question with its normalised answer, a skipped one as None."""
    state = walk(
        flow.start(QUESTIONNAIRE),
        *ticking("customer_service", "hr"),
        Choose(at="support_hours", option="extended"),
        Choose(at="timeline", option="asap"),
        Typed("1,200"),
        Skip(at="phone"),
        Typed("ops@northwind.example"),
    ).state

    shown = flow.screen(QUESTIONNAIRE, state)

    assert isinstance(shown, flow.Summary)
    assert [(question.key, answer) for question, answer in shown.items] == [
        ("services", ("hr", "customer_service")),
        ("support_hours", "extended"),
        ("timeline", "asap"),
        ("team_size", 1200),
        ("phone", None),
        ("email", "ops@northwind.example"),
    ]


def test_the_edit_menu_offers_only_the_questions_that_were_asked() -> None:
    """The conditional question that was not asked cannot be edited."""
    state = at_summary("hr")

    reply = walk(state, OpenEditMenu())

    assert isinstance(reply.screen, flow.EditMenu)
    assert [question.key for question in reply.screen.questions] == [
        "services",
        "timeline",
        "team_size",
        "phone",
        "email",
    ]


def test_editing_one_answer_returns_to_the_summary_with_the_new_answer() -> None:
    """Summary, Edit, the timeline question with its earlier answer, a new choice, and the summary again."""
    state = at_summary("hr")

    question = walk(state, OpenEditMenu(), Edit(question="timeline"))
    summary = walk(question.state, Choose(at="timeline", option="later"))

    assert isinstance(question.screen, flow.Prompt)
    assert question.screen.editing
    assert question.screen.previous_answer == "quarter"
    assert isinstance(summary.screen, flow.Summary)
    assert summary.state.answers == {**state.answers, "timeline": "later"}


def test_back_from_an_edited_question_returns_to_the_summary_unchanged() -> None:
    """Opening a question to edit and going back keeps the earlier answer."""
    state = at_summary("hr")
    editing = walk(state, OpenEditMenu(), Edit(question="team_size")).state

    reply = flow.handle(QUESTIONNAIRE, editing, Back(at="team_size"))

    assert isinstance(reply.screen, flow.Summary)
    assert reply.state.answers == state.answers


def test_an_edit_button_for_a_question_an_edit_made_moot_is_stale() -> None:
    """A button left on an older edit menu for a question that no longer applies changes nothing."""
    state = at_summary("customer_service")
    menu = walk(
        state,
        OpenEditMenu(),
        Edit(question="services"),
        Toggle(at="services", option="hr"),
        Toggle(at="services", option="customer_service"),
        Done(at="services"),
        OpenEditMenu(),
    ).state

    stale = refused_as_stale(menu, Edit(question="support_hours"))

    assert stale


# Confirming


def test_confirming_the_summary_finishes_with_an_assessment() -> None:
    """Confirm scores the answers: starting this quarter with a team of 25 qualifies."""
    state = at_summary("hr", "finance")

    reply = flow.handle(QUESTIONNAIRE, state, Confirm())

    assert reply.state.stage == "finished"
    assert isinstance(reply.screen, flow.Finished)
    assert reply.screen.assessment.qualified
    assert reply.screen.assessment.score == 50
    assert [reason.text for reason in reply.screen.assessment.reasons] == [
        "Wants to start within 3 months",
        "Team of 10 or more FTEs",
    ]


def test_a_prospect_who_is_just_researching_finishes_in_nurture() -> None:
    """The disqualifier applies to answers given through the conversation."""
    state = at_summary("customer_service")
    edited = walk(state, OpenEditMenu(), Edit(question="timeline"), Choose(at="timeline", option="researching"))

    reply = walk(edited.state, Confirm())

    assert isinstance(reply.screen, flow.Finished)
    assert not reply.screen.assessment.qualified
    assert "Just researching" in [reason.text for reason in reply.screen.assessment.reasons]


# Stale and forged buttons


@pytest.mark.parametrize(
    "given_input",
    [
        Toggle(at="services", option="finance"),
        Done(at="services"),
        Choose(at="timeline", option="asap"),
        Back(at="timeline"),
        Confirm(),
        OpenEditMenu(),
        Edit(question="services"),
        Skip(at="phone"),
    ],
    ids=repr,
)
def test_a_button_from_another_screen_is_stale_and_changes_nothing(given_input: flow.Input) -> None:
    """On the team size question, buttons of earlier questions, later questions and the summary do nothing."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr"), Choose(at="timeline", option="quarter")).state
    assert state.current == "team_size"

    stale = refused_as_stale(state, given_input)

    assert stale


@pytest.mark.parametrize(
    "given_input",
    [
        Choose(at="timeline", option="tomorrow"),
        Choose(at="timeline", option="hr"),
        Choose(at="timeline", option=""),
        Toggle(at="timeline", option="asap"),
        Done(at="timeline"),
        Edit(question="timeline", at="timeline"),
    ],
    ids=repr,
)
def test_a_forged_button_on_the_current_question_is_stale_and_changes_nothing(given_input: flow.Input) -> None:
    """An option the question does not have, or a button of another kind of question, does nothing."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr")).state
    assert state.current == "timeline"

    stale = refused_as_stale(state, given_input)

    assert stale


def test_a_forged_option_on_a_multiple_choice_question_is_not_ticked() -> None:
    """Toggling an option the services question does not have is stale and ticks nothing."""
    state = flow.start(QUESTIONNAIRE)

    stale = refused_as_stale(state, Toggle(at="services", option="legal"))

    assert stale


# Typed answers


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("2", "quarter"),
        (" 4 ", "researching"),
        ("Within a month", "asap"),
        ("JUST RESEARCHING", "researching"),
        ("later this year", "later"),
    ],
)
def test_typed_text_answers_a_single_choice_question_by_number_or_label(text: str, option: str) -> None:
    """A prospect can type an option's number or its label in any case instead of pressing a button."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr")).state

    reply = flow.handle(QUESTIONNAIRE, state, Typed(text))

    assert reply.problem is None
    assert reply.state.answers["timeline"] == option
    assert reply.state.current == "team_size"


@pytest.mark.parametrize(
    ("text", "options"),
    [
        ("1, 3", ("hr", "customer_service")),
        ("1,3", ("hr", "customer_service")),
        ("2", ("finance",)),
        ("hr & payroll; IT Infrastructure", ("hr", "it_infra")),
    ],
)
def test_typed_text_answers_a_multiple_choice_question_by_numbers_or_labels(
    text: str, options: tuple[str, ...]
) -> None:
    """Typing "1, 3" on the services question ticks the first and third options and moves on."""
    state = flow.start(QUESTIONNAIRE)

    reply = flow.handle(QUESTIONNAIRE, state, Typed(text))

    assert reply.problem is None
    assert reply.state.answers["services"] == options


@pytest.mark.parametrize("text", ["5", "0", "soon", "1, 2", "\u00b2"], ids=["5", "0", "soon", "1_2", "superscript_2"])
def test_typed_text_that_names_no_option_is_refused_and_changes_nothing(text: str) -> None:
    """A number out of range, an unknown label, two choices or a superscript digit get "not_an_option"."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr")).state

    reply = flow.handle(QUESTIONNAIRE, state, Typed(text))

    assert reply.problem == Problem("not_an_option")
    assert reply.state == state


def test_a_refused_typed_answer_keeps_the_question_on_screen_with_the_expected_range() -> None:
    """A team size of "about twenty" is refused with the bounds the adapters show."""
    state = walk(flow.start(QUESTIONNAIRE), *ticking("hr"), Choose(at="timeline", option="asap")).state

    reply = flow.handle(QUESTIONNAIRE, state, Typed("about twenty"))

    assert reply.problem == Problem("integer", minimum=1, maximum=5000)
    assert not reply.stale
    assert reply.state == state
    assert isinstance(reply.screen, flow.Prompt)
    assert reply.screen.question.key == "team_size"


@pytest.mark.parametrize("stage", ["summary", "edit menu"])
def test_typed_text_on_the_summary_or_edit_menu_is_refused_with_use_buttons(stage: str) -> None:
    """The summary and the edit menu answer only to their buttons."""
    state = at_summary("hr")
    if stage == "edit menu":
        state = walk(state, OpenEditMenu()).state

    reply = flow.handle(QUESTIONNAIRE, state, Typed("yes, that is right"))

    assert reply.problem == Problem("use_buttons")
    assert reply.state == state


# After finishing


@pytest.mark.parametrize(
    "given_input",
    [
        Confirm(),
        Confirm(at=FINISHED),
        OpenEditMenu(),
        Edit(question="timeline"),
        Back(at=SUMMARY),
        Back(at=FINISHED),
        Choose(at="timeline", option="asap"),
        Typed("hello again"),
    ],
    ids=repr,
)
def test_anything_after_finishing_is_stale(given_input: flow.Input) -> None:
    """Once confirmed, no button or message changes the answers or the result."""
    state = finished()

    stale = refused_as_stale(state, given_input)

    assert stale


# The bundled example


def test_the_bundled_questionnaire_starts_with_the_service_catalogue() -> None:
    """The first question offers the twelve catalogue services as options, "1 of 12"."""
    questionnaire = load_config(BUNDLED_EXAMPLE).questionnaire()

    shown = flow.screen(questionnaire, flow.start(questionnaire))

    assert isinstance(shown, flow.Prompt)
    assert shown.question.key == "services"
    assert len(shown.question.options) == 12
    assert (shown.number, shown.total) == (1, 12)


def test_ticking_customer_service_in_the_bundled_questionnaire_asks_for_support_channels() -> None:
    """Customer service brings in the support channels question; other services skip it."""
    questionnaire = load_config(BUNDLED_EXAMPLE).questionnaire()
    state = flow.start(questionnaire)

    with_support = walk(
        state, Typed("Customer service & tech support, payments & billing"), questionnaire=questionnaire
    )
    without_support = walk(state, Typed("1, 2"), questionnaire=questionnaire)

    assert with_support.state.answers["services"] == ("customer_service", "payments")
    assert with_support.state.current == "support_channels"
    assert without_support.state.current == "company_size"


def test_a_prospect_can_complete_the_bundled_questionnaire_by_typing() -> None:
    """Typed answers alone, with the optional phone skipped, reach a qualified result."""
    questionnaire = load_config(BUNDLED_EXAMPLE).questionnaire()
    typed = [
        "1, 6",
        "1, 3",
        "3",
        "40",
        "2",
        "3",
        "2",
        "3",
        "Priya Raman",
        "Northwind Traders",
        "priya@Northwind.example",
    ]

    reply = walk(
        flow.start(questionnaire),
        *(Typed(text) for text in typed),
        Skip(at="phone"),
        Confirm(),
        questionnaire=questionnaire,
    )

    assert isinstance(reply.screen, flow.Finished)
    assert reply.screen.assessment.qualified
    assert reply.state.answers["support_channels"] == ("phone", "chat")
    assert reply.state.answers["email"] == "priya@northwind.example"
    assert reply.state.answers["phone"] is None


# Properties


AWKWARD_TEXTS = [
    "\U0001f44b\U0001f3fd \U0001f680",
    "\u0646\u0631\u064a\u062f \u0645\u0631\u0643\u0632 \u0627\u062a\u0635\u0627\u0644",
    "<b>x</b>",
    "x" * 5000,
    "1, " * 1666,
    "\x00",
    "jane\x00.doe@acme.example",
    "   ",
    "",
]
TYPED_TEXTS = [*AWKWARD_TEXTS, "1", "2, 3", "Just researching", "25", "0", *GOOD_TYPED_ANSWERS.values()]

screen_names = st.one_of(st.sampled_from(SCREEN_NAMES), st.text(max_size=30))
option_names = st.one_of(st.sampled_from(OPTION_KEYS), st.text(max_size=30))
any_input: st.SearchStrategy[flow.Input] = st.one_of(
    st.builds(Choose, at=screen_names, option=option_names),
    st.builds(Toggle, at=screen_names, option=option_names),
    st.builds(Done, at=screen_names),
    st.builds(Skip, at=screen_names),
    st.builds(Back, at=screen_names),
    st.builds(Typed, text=st.one_of(st.sampled_from(TYPED_TEXTS), st.text(max_size=60))),
    st.builds(Confirm, at=screen_names),
    st.builds(OpenEditMenu, at=screen_names),
    st.builds(Edit, question=st.one_of(st.sampled_from(QUESTION_KEYS), st.text(max_size=30)), at=screen_names),
)


def inputs_for(shown: flow.Screen) -> list[flow.Input]:
    """Buttons and messages that belong on this screen, so random conversations get somewhere."""
    match shown:
        case flow.Prompt(question=question):
            key = question.key
            options = [option.key for option in question.options]
            typed = GOOD_TYPED_ANSWERS.get(key, "1")
            return [
                *(Choose(at=key, option=option) for option in options),
                *(Toggle(at=key, option=option) for option in options),
                Done(at=key),
                Skip(at=key),
                Back(at=key),
                Typed(typed),
            ]
        case flow.Summary():
            return [Confirm(), OpenEditMenu(), Back(at=SUMMARY)]
        case flow.EditMenu():
            # Every question: buttons of an older edit menu may name questions this one does not list.
            return [*(Edit(question=key) for key in QUESTION_KEYS), Back(at=EDIT_MENU)]
        case flow.Finished():
            return [Confirm(at=FINISHED), Back(at=FINISHED), Typed("thanks")]


STARTING_POINTS = [
    flow.start(QUESTIONNAIRE),
    at_summary("hr", "it_infra"),
    at_summary("customer_service"),
    walk(at_summary("finance", "customer_service"), OpenEditMenu()).state,
    finished(),
]


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_no_sequence_of_inputs_breaks_the_conversation(data: st.DataObject) -> None:
    """Any buttons and messages, forged or stale, leave a state that can be shown and holds only answers."""
    state = data.draw(st.sampled_from(STARTING_POINTS), label="starting point")
    steps = data.draw(st.integers(min_value=1, max_value=60), label="steps")

    for _ in range(steps):
        shown = flow.screen(QUESTIONNAIRE, state)
        # Mostly inputs that fit the screen, so that conversations reach the summary and beyond.
        fitting = data.draw(st.integers(min_value=0, max_value=3), label="fitting") > 0
        given_input = data.draw(st.sampled_from(inputs_for(shown)) if fitting else any_input, label="input")
        reply = flow.handle(QUESTIONNAIRE, state, given_input)

        assert flow.screen(QUESTIONNAIRE, reply.state) == reply.screen
        if reply.stale or reply.problem is not None:
            assert reply.state == state
        if reply.state.stage == "asking":
            assert reply.state.current in QUESTION_KEYS
        assert set(reply.state.answers) <= set(QUESTION_KEYS)
        if reply.state.stage == "finished":
            required = [q.key for q in QUESTIONNAIRE.questions if not q.optional and q.applies(reply.state.answers)]
            assert all(reply.state.answers.get(key) is not None for key in required)
        state = reply.state


answer_values: st.SearchStrategy[AnswerValue | None] = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.from_regex(r"\A[0-9]{1,6}\Z"),
    st.sampled_from(AWKWARD_TEXTS),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.lists(st.sampled_from(OPTION_KEYS), max_size=4, unique=True).map(tuple),
)
states: st.SearchStrategy[FlowState] = st.builds(
    FlowState,
    stage=st.sampled_from(["asking", "summary", "edit_menu", "finished"]),
    current=st.one_of(st.none(), st.sampled_from(QUESTION_KEYS)),
    answers=st.dictionaries(st.sampled_from(QUESTION_KEYS), answer_values),
    ticked=st.lists(st.sampled_from(OPTION_KEYS), max_size=4, unique=True).map(tuple),
    editing=st.booleans(),
)


@settings(max_examples=200, deadline=None)
@given(state=states)
def test_a_conversation_state_survives_being_stored_as_json(state: FlowState) -> None:
    """A stored state reads back equal: text that looks like a number stays text, ticks stay a tuple."""
    stored = state.model_dump_json()

    restored = FlowState.model_validate_json(stored)

    assert restored == state


def test_a_state_in_the_middle_of_an_edit_survives_being_stored_as_json() -> None:
    """A real conversation state, editing a multiple-choice answer, reads back equal."""
    state = walk(at_summary("hr", "customer_service"), OpenEditMenu(), Edit(question="services")).state

    restored = FlowState.model_validate_json(state.model_dump_json())

    assert restored == state
    assert restored.ticked == ("hr", "customer_service")
