"""What of a prospect is personal data, and what of it may stay behind as anonymous counts. No I/O.

Erasing keeps a lead's row, status, outcome, score and timestamps, so the funnel still counts it, and keeps the
answers picked from the configured options (a company-size bracket, a service line): they are the questionnaire's
words, not the prospect's. Everything the prospect typed, and everything that names or reaches them, goes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from leads.model import Questionnaire

ERASED_PROSPECT_FIELDS: tuple[str, ...] = (
    "telegram_user_id",
    "first_name",
    "last_name",
    "username",
    "language_code",
    "timezone",
)
"""The prospects columns that identify or describe the person; erasing sets them to NULL."""


def anonymous_answers(answers: Mapping[str, Any], questionnaire: Questionnaire) -> dict[str, Any]:
    """The answers that say nothing about who the prospect is: the options they picked, never what they typed.

    An answer to a question the configuration no longer has is dropped too: nothing says it was not free text.
    """
    kinds = {question.key: question.kind for question in questionnaire.questions}
    return {key: value for key, value in answers.items() if kinds.get(key) in {"single", "multi"}}
