"""Typed answers: what is accepted and how it is stored, and the problem code a refused one gets."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from leads.answers import Problem, clean_text, match_options, parse_text_answer
from leads.model import Option, Question

EMAIL = Question(key="email", kind="text", format="email", label="E-mail", prompt="Your e-mail address?")
PHONE = Question(key="phone", kind="text", format="phone", optional=True, label="Phone", prompt="Your phone number?")
TEAM_SIZE = Question(
    key="team_size",
    kind="text",
    format="integer",
    minimum=1,
    maximum=100000,
    label="Team size",
    prompt="Roughly how many full-time people would the outsourced team need?",
)
WEBSITE = Question(key="website", kind="text", format="url", label="Website", prompt="Your company website?")
COMPANY = Question(key="company", kind="text", label="Company", prompt="What is your company called?", max_length=150)
TEXT_QUESTIONS = [EMAIL, PHONE, TEAM_SIZE, WEBSITE, COMPANY]
BUDGET = Question(
    key="budget",
    kind="single",
    label="Monthly budget",
    prompt="What monthly budget do you have in mind?",
    options=(
        Option(key="under_5k", label="Under $5,000"),
        Option(key="5k_20k", label="$5,000 to $20,000"),
        Option(key="over_20k", label="Over $20,000"),
        Option(key="undecided", label="Not decided yet"),
    ),
)
SERVICES = Question(
    key="services",
    kind="multi",
    label="Processes",
    prompt="Which processes are you looking to outsource?",
    options=(
        Option(key="hr", label="HR & payroll"),
        Option(key="finance", label="Accounting & finance"),
        Option(key="customer_service", label="Customer service"),
        Option(key="it_infra", label="IT infrastructure"),
    ),
)
ASCII_E164 = re.compile(r"\A\+[1-9][0-9]{6,14}\Z")


# E-mail


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("jane.doe@acme.example", "jane.doe@acme.example"),
        ("Jane.Doe@Meridian-Outsourcing.EXAMPLE", "Jane.Doe@meridian-outsourcing.example"),
        ("  priya+bpo@northwind.co.uk \n", "priya+bpo@northwind.co.uk"),
        ("ops@mail.acme.example\x00", "ops@mail.acme.example"),
    ],
)
def test_an_email_address_is_accepted_with_its_domain_lower_cased(typed: str, stored: str) -> None:
    """The domain is lower-cased; the mailbox name keeps its case, which some servers honour."""
    answer = parse_text_answer(EMAIL, typed)

    assert answer == stored


@pytest.mark.parametrize(
    "typed",
    [
        "jane.doe",
        "jane.doe@acme",
        "jane@@acme.example",
        "jane doe@acme.example",
        "@acme.example",
        "jane@.example",
        "jane@acme..example",
        "jane@acme.example.",
        "j" * 250 + "@acme.example",
    ],
)
def test_something_that_is_not_an_email_address_is_refused(typed: str) -> None:
    """A missing @, a domain without a dot, a space or an over-long address gets "email"."""
    answer = parse_text_answer(EMAIL, typed)

    assert answer == Problem("email")


# Phone


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+1 (415) 555-0132", "+14155550132"),
        ("+91 98765.43210", "+919876543210"),
        ("+49-30-901820", "+4930901820"),
        ("+971501234567", "+971501234567"),
    ],
)
def test_a_phone_number_in_international_form_is_stored_as_e164(typed: str, stored: str) -> None:
    """Spaces, dashes, dots and brackets go; a leading 00 becomes +."""
    answer = parse_text_answer(PHONE, typed)

    assert answer == stored


@pytest.mark.parametrize(
    "typed",
    [
        "020 7946 0958",
        "+0 20 7946 0958",
        "+44 20 7946 0958 ext. 12",
        "+1234",
        "+1234567890123456",
        "call me",
        "+44 20 7946 0958 / +44 20 7946 0959",
    ],
)
def test_a_phone_number_not_in_international_form_is_refused(typed: str) -> None:
    """A national number, a country code of 0, an extension, too few or too many digits get "phone"."""
    answer = parse_text_answer(PHONE, typed)

    assert answer == Problem("phone")


@settings(max_examples=200, deadline=None)
@given(typed=st.text(alphabet="+0123456789 -().\u0664\u0662\uff14\uff12\u0967", max_size=24))
@example(typed="+44 \u0662\u0660 \u0667\u0669\u0664\u0666 \u0660\u0669\u0665\u0668")
@example(typed="+44 \uff12\uff10 7946 0958")
def test_an_accepted_phone_number_is_always_e164_in_ascii_digits(typed: str) -> None:
    """Digits from other scripts are never stored as they were typed: dialers and CRMs read ASCII only."""
    answer = parse_text_answer(PHONE, typed)

    # Blank input is "empty"; anything else is refused as "phone" or stored in ASCII E.164.
    assert answer in (Problem("phone"), Problem("empty")) or (isinstance(answer, str) and ASCII_E164.match(answer))


# Integer


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("25", 25),
        ("1", 1),
        ("100000", 100000),
        ("1,200", 1200),
        ("1 200", 1200),
        ("12_000", 12000),
        ("12,500", 12500),
        ("  40 ", 40),
        ("+7", 7),
    ],
)
def test_a_whole_number_within_the_bounds_is_accepted_with_thousands_separators(typed: str, stored: int) -> None:
    """People write "1,200" or "1 200"; both mean 1200."""
    answer = parse_text_answer(TEAM_SIZE, typed)

    assert answer == stored


@pytest.mark.parametrize("typed", ["twenty", "25 people", "2.5", "1e3", "1,20", "~30", "10-20"])
def test_something_that_is_not_a_whole_number_is_refused_with_the_bounds(typed: str) -> None:
    """The problem "integer" carries the bounds so the adapters can say which numbers are welcome."""
    answer = parse_text_answer(TEAM_SIZE, typed)

    assert answer == Problem("integer", minimum=1, maximum=100000)


@pytest.mark.parametrize("typed", ["0", "-3", "100001", "250,000"])
def test_a_number_outside_the_bounds_is_refused_with_the_bounds(typed: str) -> None:
    """A team of 0 or of 250,000 gets "integer_range" with the minimum and the maximum."""
    answer = parse_text_answer(TEAM_SIZE, typed)

    assert answer == Problem("integer_range", minimum=1, maximum=100000)


# URL


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("meridian-outsourcing.example", "https://meridian-outsourcing.example"),
        ("www.acme.co.uk/about", "https://www.acme.co.uk/about"),
        ("https://www.acme.co.uk/about?lang=en", "https://www.acme.co.uk/about?lang=en"),
        ("http://northwind.example", "http://northwind.example"),
    ],
)
def test_a_website_is_accepted_and_a_bare_domain_gets_https(typed: str, stored: str) -> None:
    """A prospect who types only the domain gets https:// in front of it."""
    answer = parse_text_answer(WEBSITE, typed)

    assert answer == stored


@pytest.mark.parametrize(
    "typed",
    [
        "ftp://acme.example",
        "acme",
        "http://localhost",
        "https://acme .example",
        "javascript:alert(1)",
        "https://",
        "our website",
        "https://acme.example/" + "a" * 500,
    ],
)
def test_something_that_is_not_a_website_is_refused(typed: str) -> None:
    """Another scheme, a host without a dot, a space or an over-long address gets "url"."""
    answer = parse_text_answer(WEBSITE, typed)

    assert answer == Problem("url")


# Free text


@pytest.mark.parametrize(
    "typed",
    [
        "Meridian Outsourcing Partners",
        "Northwind Traders & Co.",
        "\u0634\u0631\u0643\u0629 \u0627\u0644\u0623\u0641\u0642",
        "Acme \U0001f680",
        "<b>Acme</b>",
        "Line one\nLine two",
    ],
)
def test_free_text_is_kept_as_typed(typed: str) -> None:
    """Right-to-left script, emoji, markup and line breaks are stored unchanged; escaping is the adapters' job."""
    answer = parse_text_answer(COMPANY, typed)

    assert answer == typed


def test_free_text_loses_surrounding_space() -> None:
    """Spaces and line breaks around an answer are not part of it."""
    answer = parse_text_answer(COMPANY, "\n  Meridian Outsourcing Partners \t ")

    assert answer == "Meridian Outsourcing Partners"


def test_free_text_up_to_the_limit_is_accepted() -> None:
    """A company name of exactly 150 characters fits."""
    answer = parse_text_answer(COMPANY, "A" * 150)

    assert answer == "A" * 150


@pytest.mark.parametrize("length", [151, 5000])
def test_free_text_over_the_limit_is_refused_with_the_limit(length: int) -> None:
    """A 5,000-character answer gets "too_long" with the maximum the question allows."""
    answer = parse_text_answer(COMPANY, "A" * length)

    assert answer == Problem("too_long", maximum=150)


@pytest.mark.parametrize("question", TEXT_QUESTIONS, ids=lambda question: question.key)
@pytest.mark.parametrize("typed", ["", "   ", "\n\t \n", "\x00\x00", " \x07\x1b "], ids=repr)
def test_an_answer_that_is_only_whitespace_or_control_characters_is_refused_as_empty(
    question: Question, typed: str
) -> None:
    """Whatever the expected form, nothing typed gets "empty"."""
    answer = parse_text_answer(question, typed)

    assert answer == Problem("empty")


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Acme\x00 Ltd", "Acme Ltd"),
        ("Acme\x07 Ltd\x1b", "Acme Ltd"),
        ("Acme\r\nLtd", "Acme\nLtd"),
        ("\x00Acme Ltd", "Acme Ltd"),
    ],
)
def test_control_characters_are_stripped_from_free_text(typed: str, stored: str) -> None:
    """NUL and other control characters, which the database refuses, are removed; line breaks and tabs stay."""
    answer = parse_text_answer(COMPANY, typed)

    assert answer == stored


@settings(max_examples=200, deadline=None)
@given(typed=st.text(max_size=200))
def test_cleaned_text_never_holds_control_characters_and_has_no_surrounding_space(typed: str) -> None:
    """Whatever a prospect sends, what is stored has no NUL, no other control character and no outer space."""
    cleaned = clean_text(typed)

    assert not any(character < " " and character not in "\n\t" for character in cleaned)
    assert "\x7f" not in cleaned
    assert cleaned == cleaned.strip()


# Choosing options by typing


@pytest.mark.parametrize(
    ("typed", "keys"),
    [
        ("2", ("5k_20k",)),
        (" 4 ", ("undecided",)),
        ("Not decided yet", ("undecided",)),
        ("NOT DECIDED YET", ("undecided",)),
        ("over $20,000", ("over_20k",)),
        ("undecided", ("undecided",)),
    ],
)
def test_a_single_choice_is_matched_by_number_label_or_key_in_any_case(typed: str, keys: tuple[str, ...]) -> None:
    """Terminals and phone keyboards send the number or the words of an option; both work."""
    matched = match_options(BUDGET, typed)

    assert matched == keys


@pytest.mark.parametrize(
    ("typed", "keys"),
    [
        ("1, 3", ("hr", "customer_service")),
        ("1,3", ("hr", "customer_service")),
        ("1 3", ("hr", "customer_service")),
        ("4; 1", ("it_infra", "hr")),
        ("1, 1", ("hr",)),
        ("hr & payroll, IT infrastructure", ("hr", "it_infra")),
    ],
)
def test_several_choices_are_matched_from_a_list_of_numbers_or_labels(typed: str, keys: tuple[str, ...]) -> None:
    """A multiple-choice answer accepts "1, 3", "1 3" or labels separated by commas, each option once."""
    matched = match_options(SERVICES, typed)

    assert matched == keys


@pytest.mark.parametrize(
    ("question", "typed"),
    [
        (BUDGET, "5"),
        (BUDGET, "0"),
        (BUDGET, "-1"),
        (BUDGET, "1, 2"),
        (BUDGET, "about ten thousand"),
        (SERVICES, "1, 9"),
        (SERVICES, "HR, legal"),
        (BUDGET, "\u00b2"),
        (SERVICES, "1, \u00b3"),
    ],
    ids=[
        "out_of_range",
        "zero",
        "negative",
        "two_on_single_choice",
        "unknown_words",
        "one_out_of_range",
        "one_unknown_label",
        "superscript_2",
        "superscript_3_in_a_list",
    ],
)
def test_typed_text_that_names_no_option_is_refused(question: Question, typed: str) -> None:
    """Anything that is not an option's number, label or key gets "not_an_option"."""
    matched = match_options(question, typed)

    assert matched == Problem("not_an_option")


@pytest.mark.parametrize("question", [BUDGET, SERVICES], ids=lambda question: question.key)
def test_nothing_typed_on_a_choice_question_is_refused_as_empty(question: Question) -> None:
    """A blank message on a choice question gets "empty"."""
    matched = match_options(question, " \x00 ")

    assert matched == Problem("empty")
