"""Scoring answers against the configured rules: qualified, or nurture, with the reasons."""

from __future__ import annotations

from dataclasses import dataclass

from leads.model import Answers, Scoring


@dataclass(frozen=True)
class Reason:
    """One line of the explanation a salesperson reads next to the score."""

    text: str
    points: int | None = None
    """Points this reason added; None for a disqualifying reason."""


@dataclass(frozen=True)
class Assessment:
    """The decision on a finished questionnaire."""

    qualified: bool
    score: int
    reasons: tuple[Reason, ...]

    @property
    def outcome(self) -> str:
        """The outcome word stored with the lead."""
        return "qualified" if self.qualified else "nurture"


def assess(scoring: Scoring, answers: Answers) -> Assessment:
    """Add the points of every matching rule; any matching disqualifier sends the lead to nurture."""
    matched = [rule for rule in scoring.rules if rule.when.holds(answers)]
    score = sum(rule.points for rule in matched)
    reasons = [Reason(rule.reason, rule.points) for rule in matched]
    disqualified = [d for d in scoring.disqualifiers if all(c.holds(answers) for c in d.when_all)]
    reasons.extend(Reason(d.reason) for d in disqualified)
    return Assessment(
        qualified=not disqualified and score >= scoring.qualify_at,
        score=score,
        reasons=tuple(reasons),
    )
