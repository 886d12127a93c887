"""Scoring: how answers become a score, a decision and the reasons a salesperson reads."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import BUNDLED_EXAMPLE, load_config
from leads.model import Answers, Condition, Disqualifier, Scoring, ScoringRule
from leads.scoring import Reason, assess

SCORING = Scoring(
    qualify_at=50,
    rules=(
        ScoringRule(
            when=Condition(question="company_size", any_of=("250_999", "1000_plus")),
            points=20,
            reason="Enterprise company (250+ employees)",
        ),
        ScoringRule(when=Condition(question="team_size", at_least=10), points=15, reason="Team of 10 or more FTEs"),
        ScoringRule(when=Condition(question="team_size", at_least=50), points=10, reason="Large programme (50+ FTEs)"),
        ScoringRule(when=Condition(question="team_size", at_most=2), points=-10, reason="Fewer than three FTEs"),
        ScoringRule(
            when=Condition(question="services", any_of=("customer_service", "payments")),
            points=10,
            reason="Front-office work, our largest practice",
        ),
        ScoringRule(
            when=Condition(question="timeline", any_of=("asap", "quarter")),
            points=20,
            reason="Wants to start within 3 months",
        ),
    ),
    disqualifiers=(
        Disqualifier(
            when_all=(
                Condition(question="timeline", any_of=("researching",)),
                Condition(question="budget", any_of=("undecided",)),
            ),
            reason="Just researching, with no budget decided",
        ),
    ),
)
BUNDLED_QUESTIONNAIRE = load_config(BUNDLED_EXAMPLE).questionnaire()


def test_the_score_adds_up_the_points_of_every_matching_rule() -> None:
    """An enterprise starting this quarter with a team of 25 scores 20 + 15 + 20 and gets each reason."""
    answers: Answers = {"company_size": "250_999", "team_size": 25, "timeline": "quarter", "services": ("hr",)}

    assessment = assess(SCORING, answers)

    assert assessment.score == 55
    assert assessment.reasons == (
        Reason("Enterprise company (250+ employees)", 20),
        Reason("Team of 10 or more FTEs", 15),
        Reason("Wants to start within 3 months", 20),
    )


def test_a_lead_is_qualified_at_the_threshold_and_not_below() -> None:
    """Reaching qualify_at exactly qualifies; one rule fewer does not."""
    at_threshold: Answers = {"company_size": "1000_plus", "team_size": 10, "timeline": "asap"}
    below: Answers = {"company_size": "1000_plus", "team_size": 9, "timeline": "asap"}

    qualified = assess(SCORING, at_threshold)
    not_qualified = assess(SCORING, below)

    assert (qualified.score, qualified.qualified, qualified.outcome) == (55, True, "qualified")
    assert (not_qualified.score, not_qualified.qualified, not_qualified.outcome) == (40, False, "nurture")


@pytest.mark.parametrize(
    ("team_size", "score"),
    [(1, -10), (2, -10), (3, 0), (9, 0), (10, 15), (49, 15), (50, 25), (100000, 25)],
)
def test_number_rules_include_their_bounds(team_size: int, score: int) -> None:
    """at_least 10 counts a team of exactly 10, at_most 2 a team of exactly 2, and rules add up."""
    answers: Answers = {"team_size": team_size}

    assessment = assess(SCORING, answers)

    assert assessment.score == score


def test_a_number_rule_does_not_match_a_text_answer() -> None:
    """A team size stored as text, as an old configuration might have, gives no points."""
    answers: Answers = {"team_size": "25"}

    assessment = assess(SCORING, answers)

    assert assessment.score == 0


@pytest.mark.parametrize(
    ("services", "score"),
    [
        (("customer_service",), 10),
        (("hr", "payments"), 10),
        (("customer_service", "payments"), 10),
        (("hr", "finance"), 0),
        ((), 0),
    ],
)
def test_a_multiple_choice_rule_matches_when_any_ticked_option_is_named(services: tuple[str, ...], score: int) -> None:
    """Ticking any of the named services scores the rule once; ticking none of them scores nothing."""
    answers: Answers = {"services": services}

    assessment = assess(SCORING, answers)

    assert assessment.score == score


def test_a_disqualifier_overrides_a_high_score_and_is_listed_among_the_reasons() -> None:
    """An enterprise with a large team that is just researching with no budget is nurtured, and told why."""
    answers: Answers = {
        "company_size": "1000_plus",
        "team_size": 200,
        "services": ("customer_service",),
        "timeline": "researching",
        "budget": "undecided",
    }

    assessment = assess(SCORING, answers)

    assert assessment.score == 55
    assert not assessment.qualified
    assert assessment.outcome == "nurture"
    assert Reason("Just researching, with no budget decided") in assessment.reasons
    assert assessment.reasons[-1].points is None


def test_a_disqualifier_needs_all_of_its_conditions() -> None:
    """Just researching with a budget decided is not disqualified."""
    answers: Answers = {
        "company_size": "1000_plus",
        "team_size": 200,
        "services": ("customer_service",),
        "timeline": "researching",
        "budget": "over_20k",
    }

    assessment = assess(SCORING, answers)

    assert assessment.qualified
    assert all(reason.points is not None for reason in assessment.reasons)


def test_a_skipped_answer_matches_no_rule() -> None:
    """Skipped questions score nothing, not even a rule with an upper bound, and disqualify nothing."""
    answers: Answers = {
        "company_size": None,
        "team_size": None,
        "services": None,
        "timeline": None,
        "budget": None,
    }

    assessment = assess(SCORING, answers)

    assert (assessment.score, assessment.reasons) == (0, ())


def test_an_unanswered_question_matches_no_rule() -> None:
    """A question that was never asked scores nothing."""
    assessment = assess(SCORING, {})

    assert (assessment.score, assessment.qualified, assessment.reasons) == (0, False, ())


# The bundled example


def test_a_committed_director_of_a_large_company_with_a_big_budget_starting_soon_is_qualified() -> None:
    """A director at a 250-999 company with $20k+ a month, starting within 3 months, is qualified."""
    answers: Answers = {
        "services": ("finance", "customer_service"),
        "support_channels": ("phone", "email"),
        "company_size": "250_999",
        "team_size": 8,
        "timeline": "quarter",
        "budget": "20k_100k",
        "role": "director",
        "delivery": "nearshore",
        "name": "Priya Raman",
        "company": "Northwind Traders",
        "email": "priya@northwind.example",
        "phone": None,
    }

    assessment = assess(BUNDLED_QUESTIONNAIRE.scoring, answers)

    assert assessment.qualified
    assert assessment.score == 80
    assert [reason.text for reason in assessment.reasons] == [
        "Enterprise company (250+ employees)",
        "Wants to start within 3 months",
        "Budget of $20,000 a month or more",
        "Decision maker",
    ]


def options_of(key: str) -> list[str]:
    """The option keys of a question of the bundled questionnaire."""
    question = BUNDLED_QUESTIONNAIRE.question(key)
    assert question is not None
    return [option.key for option in question.options]


@settings(max_examples=200, deadline=None)
@given(
    services=st.lists(st.sampled_from(options_of("services")), min_size=1, unique=True),
    company_size=st.sampled_from(options_of("company_size")),
    team_size=st.integers(min_value=1, max_value=100000),
    role=st.sampled_from(options_of("role")),
    delivery=st.sampled_from(options_of("delivery")),
)
def test_a_prospect_just_researching_with_no_budget_decided_is_nurtured_whatever_else(
    services: list[str], company_size: str, team_size: int, role: str, delivery: str
) -> None:
    """However large the company and team and however senior the role, the bundled disqualifier wins."""
    answers: Answers = {
        "services": tuple(services),
        "company_size": company_size,
        "team_size": team_size,
        "timeline": "researching",
        "budget": "undecided",
        "role": role,
        "delivery": delivery,
    }

    assessment = assess(BUNDLED_QUESTIONNAIRE.scoring, answers)

    assert not assessment.qualified
    assert Reason("Just researching, with no budget decided") in assessment.reasons


def test_the_best_answers_besides_research_and_budget_would_otherwise_qualify() -> None:
    """Without the disqualifier the same prospect would qualify, so it is the disqualifier that decides."""
    answers: Answers = {"company_size": "5000_plus", "team_size": 500, "timeline": "researching", "role": "executive"}

    with_budget = assess(BUNDLED_QUESTIONNAIRE.scoring, {**answers, "budget": "over_100k"})
    undecided = assess(BUNDLED_QUESTIONNAIRE.scoring, {**answers, "budget": "undecided"})

    assert with_budget.qualified
    assert not undecided.qualified
    assert undecided.score >= BUNDLED_QUESTIONNAIRE.scoring.qualify_at
