"""Turning what a prospect typed into a clean answer, or saying what form was expected."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from leads.model import AnswerValue, Question

ProblemCode = Literal[
    "empty",
    "too_long",
    "email",
    "phone",
    "integer",
    "integer_range",
    "url",
    "not_an_option",
    "choose_at_least_one",
    "not_optional",
    "use_buttons",
]


@dataclass(frozen=True)
class Problem:
    """Why an answer was refused; adapters turn the code into words, with the expected form."""

    code: ProblemCode
    minimum: int | None = None
    maximum: int | None = None


# A practical e-mail check: one @, a dot in the domain, no spaces. RFC 5322 allows more, but a
# prospect who types something stranger has almost certainly made a typo.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s.]+(\.[^@\s.]+)+$")
_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$", re.IGNORECASE)
_INTEGER = re.compile(r"^[+-]?[0-9]{1,15}$")


def clean_text(raw: str) -> str:
    """Strip surrounding space and control characters (PostgreSQL refuses NUL in text)."""
    kept = (
        character for character in raw if character in "\n\t" or unicodedata.category(character) not in {"Cc", "Cs"}
    )
    return "".join(kept).strip()


def parse_text_answer(question: Question, raw: str) -> AnswerValue | Problem:
    """The answer to a text question, normalised, or the problem with it."""
    text = clean_text(raw)
    if not text:
        return Problem("empty")
    match question.format:
        case "email":
            return _parse_email(text)
        case "phone":
            return _parse_phone(text)
        case "integer":
            return _parse_integer(text, question.minimum, question.maximum)
        case "url":
            return _parse_url(text)
        case "text":
            if len(text) > question.max_length:
                return Problem("too_long", maximum=question.max_length)
            return text


def _parse_email(text: str) -> str | Problem:
    if len(text) > 254 or not _EMAIL.match(text):
        return Problem("email")
    local, domain = text.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


def _ascii_digits(text: str) -> str:
    """Digits of any script (Arabic-Indic, full-width ...) as 0-9, so stored numbers are uniform."""
    return "".join(str(unicodedata.decimal(c)) if c.isdecimal() else c for c in text)


def _parse_phone(text: str) -> str | Problem:
    digits = _PHONE_PUNCTUATION.sub("", _ascii_digits(text))
    if digits.startswith("00"):
        digits = "+" + digits[2:]
    if not _E164.match(digits):
        return Problem("phone")
    return digits


def _parse_integer(text: str, minimum: int | None, maximum: int | None) -> int | Problem:
    # People write thousands with separators ("1,200", "1 200", "1_200"); accept them.
    compact = re.sub(r"(?<=\d)[,\s_'](?=\d{3})", "", _ascii_digits(text))
    if not _INTEGER.match(compact):
        return Problem("integer", minimum=minimum, maximum=maximum)
    number = int(compact)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        return Problem("integer_range", minimum=minimum, maximum=maximum)
    return number


def _parse_url(text: str) -> str | Problem:
    candidate = text if "://" in text else f"https://{text}"
    try:
        parts = urlsplit(candidate)
    except ValueError:
        return Problem("url")
    if parts.scheme not in {"http", "https"} or not parts.hostname or len(candidate) > 500:
        return Problem("url")
    if not _HOST.match(parts.hostname) or " " in candidate:
        return Problem("url")
    return candidate


def match_options(question: Question, raw: str) -> tuple[str, ...] | Problem:
    """Option keys named in typed text: numbers ("2", "1, 3") or labels, as terminals and keyboards send."""
    text = clean_text(raw)
    if not text:
        return Problem("empty")
    pieces = [text] if question.kind == "single" else [p for p in re.split(r"[,;]\s*|\s+(?=\d)", text) if p]
    keys: list[str] = []
    for piece in pieces:
        key = _option_for(question, piece.strip())
        if key is None:
            return Problem("not_an_option")
        if key not in keys:
            keys.append(key)
    if question.kind == "single" and len(keys) != 1:
        return Problem("not_an_option")
    return tuple(keys)


def _option_for(question: Question, piece: str) -> str | None:
    if piece.isascii() and piece.isdigit():
        index = int(piece) - 1
        return question.options[index].key if 0 <= index < len(question.options) else None
    folded = piece.casefold()
    for option in question.options:
        if folded in {option.label.casefold(), option.key.casefold()}:
            return option.key
    return None
