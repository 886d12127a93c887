"""The business configuration and the callback data of its buttons: the bundled example, and every mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot import callbacks
from bot.config import BUNDLED_EXAMPLE, ConfigError, load_config
from leads import flow
from leads.flow import EDIT_MENU, SUMMARY, Back
from leads.model import KEY_PATTERN, Questionnaire


def bundled_with(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the bundled example with one thing changed, as an operator editing it might."""
    # The copy lives elsewhere, so the demo calendars it names relative to the original are made absolute.
    calendars = BUNDLED_EXAMPLE.parent / "calendars"
    text = BUNDLED_EXAMPLE.read_text(encoding="utf-8").replace('"calendars/', f'"{calendars}/')
    assert text.count(old) == 1, f"{old!r} should occur once in the bundled example"
    path = tmp_path / "consultbot.toml"
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def load_error(path: Path) -> ConfigError:
    """The ConfigError loading this file raises."""
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    return raised.value


def reads_without_a_traceback(error: ConfigError) -> bool:
    """Whether the message is plain sentences, and printing the error shows no chained exception."""
    message = str(error)
    chained = error.__cause__ is not None or (error.__context__ is not None and not error.__suppress_context__)
    return not chained and "Traceback" not in message and "pydantic" not in message


# The bundled example


def test_the_bundled_example_loads() -> None:
    """The example configuration shipped with the bot is valid as it stands."""
    config = load_config(BUNDLED_EXAMPLE)

    assert config.company.name == "Meridian Outsourcing Partners"
    assert config.company.timezone == "Europe/London"
    assert [question.key for question in config.questionnaire().questions][:3] == [
        "services",
        "support_channels",
        "company_size",
    ]
    assert config.scoring.qualify_at == 60


def test_the_bundled_example_sells_the_bpo_service_catalogue() -> None:
    """Back office, front office, and knowledge, legal and research process outsourcing are all on offer."""
    config = load_config(BUNDLED_EXAMPLE)

    lines: dict[str, set[str]] = {}
    for service in config.services:
        lines.setdefault(service.line, set()).add(service.key)

    assert lines == {
        "back_office": {"hr", "finance", "it_infra", "data_entry", "qa_compliance"},
        "front_office": {"customer_service", "sales_marketing", "payments", "market_research"},
        "kpo": {"kpo"},
        "lpo": {"lpo"},
        "rpo": {"rpo"},
    }


def test_the_bundled_services_question_offers_the_whole_catalogue() -> None:
    """The first question lists every service, by its catalogue label, in catalogue order."""
    config = load_config(BUNDLED_EXAMPLE)

    services = config.questionnaire().question("services")

    assert services is not None
    assert [(option.key, option.label) for option in services.options] == [
        (service.key, service.label) for service in config.services
    ]


def test_the_bundled_example_offers_the_four_delivery_models() -> None:
    """Onshore, nearshore, offshore and hybrid delivery can be chosen."""
    questionnaire = load_config(BUNDLED_EXAMPLE).questionnaire()

    delivery = questionnaire.question("delivery")

    assert delivery is not None
    assert {"onshore", "nearshore", "offshore", "hybrid"} <= {option.key for option in delivery.options}


def test_every_bundled_service_has_an_expert_who_consults_on_it() -> None:
    """No prospect of the example firm is left without an expert to book."""
    config = load_config(BUNDLED_EXAMPLE)

    covered = {specialty for expert in config.experts for specialty in expert.specialties}

    assert covered == {service.key for service in config.services}


# Mistakes


@pytest.mark.parametrize(
    ("old", "new", "key", "problem"),
    [
        pytest.param(
            'format = "phone"\n',
            'format = "phone"\noptinal = true\n',
            'questions[11] ("phone").optinal',
            "unknown key",
            id="typo_in_a_question_key",
        ),
        pytest.param(
            "minimum = 1\n",
            'minimum = "one"\n',
            'questions[3] ("team_size").minimum',
            "Input should be a valid integer",
            id="text_where_a_number_is_expected",
        ),
        pytest.param(
            "maximum = 100000\n",
            'maximum = "100000"\n',
            'questions[3] ("team_size").maximum',
            "Input should be a valid integer",
            id="a_quoted_number",
        ),
        pytest.param(
            "optional = true\n",
            'optional = "yes"\n',
            'questions[11] ("phone").optional',
            "Input should be a valid boolean",
            id="a_quoted_boolean",
        ),
        pytest.param(
            "qualify_at = 60",
            'qualify_at = "sixty"',
            "scoring.qualify_at",
            "Input should be a valid integer",
            id="text_where_the_threshold_is_expected",
        ),
        pytest.param(
            'ask_when = { question = "services"',
            'ask_when = { question = "servces"',
            'questions[1] ("support_channels").ask_when.question',
            "'servces' is not an earlier question",
            id="condition_on_an_unknown_question",
        ),
        pytest.param(
            'any_of = ["customer_service"] }',
            'any_of = ["customer_care"] }',
            'questions[1] ("support_channels").ask_when.any_of',
            "question 'services' has no option 'customer_care'",
            id="condition_on_an_unknown_option",
        ),
        pytest.param(
            'timezone = "Asia/Kolkata"',
            'timezone = "Asia/Mumbai"',
            'experts[1] ("rahul").timezone',
            "unknown time zone 'Asia/Mumbai'",
            id="unknown_time_zone_of_an_expert",
        ),
        pytest.param(
            'name = "Meridian Outsourcing Partners"\ntimezone = "Europe/London"',
            'name = "Meridian Outsourcing Partners"\ntimezone = "Europe/Londn"',
            "company.timezone",
            "unknown time zone 'Europe/Londn'",
            id="unknown_time_zone_of_the_company",
        ),
        pytest.param(
            '"data_entry", "qa_compliance"]',
            '"data_entry", "quality"]',
            'experts[0] ("amelia").specialties',
            "'quality' is not a service key",
            id="expert_specialty_that_is_not_a_service",
        ),
        pytest.param(
            "calendars/rahul.ics",
            "calendars/rahul-work.ics",
            'experts[1] ("rahul").calendars[0]',
            "no such file: ",
            id="calendar_file_that_does_not_exist",
        ),
        pytest.param(
            '/calendars/sofia.ics"]',
            '/calendars/sofia.ics", "ftp://files.example.com/sofia.ics"]',
            'experts[2] ("sofia").calendars[1]',
            "a calendar is an https:// or webcal:// URL or a file path, not a ftp:// address",
            id="calendar_address_of_another_kind",
        ),
        pytest.param(
            'tuesday = ["09:00-12:30", "13:30-17:30"]',
            'tuesday = ["09:00-12:30", "12:00-17:30"]',
            'experts[0] ("amelia").hours.tuesday',
            "overlap",
            id="working_hours_that_overlap",
        ),
        pytest.param(
            'when_stale = "block"',
            'when_stale = "ignore"',
            "calendars.when_stale",
            "Input should be 'block' or 'warn'",
            id="unknown_staleness_policy",
        ),
        pytest.param(
            "meeting_minutes = 45",
            'meeting_minutes = "45"',
            "slots.meeting_minutes",
            "Input should be a valid integer",
            id="meeting_length_as_text",
        ),
    ],
)
def test_a_configuration_mistake_is_reported_with_the_file_the_key_and_the_problem(
    tmp_path: Path, old: str, new: str, key: str, problem: str
) -> None:
    """One mistake gives one line naming the file, where in it, and what is wrong, and nothing else."""
    path = bundled_with(tmp_path, old, new)

    error = load_error(path)

    message = str(error)
    assert message.startswith(f"configuration error in {path}: {key}: ")
    assert problem in message
    assert len(error.problems) == 1
    assert "\n" not in message
    assert reads_without_a_traceback(error)


def test_several_mistakes_are_reported_together(tmp_path: Path) -> None:
    """Every mistake gets its own line under the file name, so an operator can fix them all in one go."""
    text = BUNDLED_EXAMPLE.read_text(encoding="utf-8")
    path = tmp_path / "consultbot.toml"
    broken = text.replace('timezone = "Asia/Kolkata"', 'timezone = "Asia/Mumbai"')
    path.write_text(broken.replace('timezone = "America/New_York"', 'timezone = "America/Gotham"'), encoding="utf-8")

    error = load_error(path)

    lines = str(error).splitlines()
    assert lines[0] == f"configuration errors in {path}:"
    assert [line.split(": ")[0].strip() for line in lines[1:]] == [
        'experts[1] ("rahul").timezone',
        'experts[2] ("sofia").timezone',
    ]
    assert reads_without_a_traceback(error)


def test_invalid_toml_is_reported_with_the_file_and_the_line(tmp_path: Path) -> None:
    """A missing bracket names the file, says the TOML is invalid, and points at the line."""
    path = bundled_with(tmp_path, "[company]", "[company")

    error = load_error(path)

    message = str(error)
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 5" in message
    assert reads_without_a_traceback(error)


def test_a_missing_file_is_reported_with_its_path(tmp_path: Path) -> None:
    """Pointing the bot at a file that is not there names the path and says so."""
    path = tmp_path / "does-not-exist.toml"

    error = load_error(path)

    assert str(error) == f"configuration error in {path}: (file): no such file"
    assert reads_without_a_traceback(error)


# Callback data


def every_button(questionnaire: Questionnaire) -> list[flow.Input]:
    """Every input a button of this questionnaire can send."""
    buttons: list[flow.Input] = [Back(at=SUMMARY), Back(at=EDIT_MENU), flow.Confirm(), flow.OpenEditMenu()]
    for question in questionnaire.questions:
        key = question.key
        buttons += [Back(at=key), flow.Edit(question=key)]
        if question.kind == "single":
            buttons += [flow.Choose(at=key, option=option.key) for option in question.options]
        if question.kind == "multi":
            buttons += [flow.Toggle(at=key, option=option.key) for option in question.options]
            buttons.append(flow.Done(at=key))
        if question.optional:
            buttons.append(flow.Skip(at=key))
    return buttons


def test_every_button_of_the_bundled_questionnaire_fits_telegram_and_reads_back() -> None:
    """Each callback data is at most 64 bytes and decodes to the very input it encodes."""
    buttons = every_button(load_config(BUNDLED_EXAMPLE).questionnaire())

    encoded = {button: callbacks.encode(button) for button in buttons}

    assert len(buttons) > 50
    assert all(len(data.encode()) <= 64 for data in encoded.values())
    assert {button: callbacks.decode(data) for button, data in encoded.items()} == {
        button: button for button in buttons
    }
    assert len(set(encoded.values())) == len(buttons)


keys = st.from_regex(KEY_PATTERN, fullmatch=True)
buttons_with_any_keys: st.SearchStrategy[flow.Input] = st.one_of(
    st.builds(flow.Choose, at=keys, option=keys),
    st.builds(flow.Toggle, at=keys, option=keys),
    st.builds(flow.Done, at=keys),
    st.builds(flow.Skip, at=keys),
    st.builds(flow.Back, at=st.one_of(keys, st.sampled_from([SUMMARY, EDIT_MENU]))),
    st.just(flow.Confirm()),
    st.just(flow.OpenEditMenu()),
    st.builds(flow.Edit, question=keys),
)


@settings(max_examples=200, deadline=None)
@given(button=buttons_with_any_keys)
def test_a_button_for_any_valid_question_and_option_keys_fits_and_reads_back(button: flow.Input) -> None:
    """Keys are short enough that even the longest allowed ones fit in Telegram's 64 bytes."""
    data = callbacks.encode(button)

    decoded = callbacks.decode(data)

    assert len(data.encode()) <= 64
    assert decoded == button


@pytest.mark.parametrize(
    "data",
    [
        None,
        "",
        "x",
        "hello world",
        "c",
        "c:",
        "c:timeline",
        "c:timeline:",
        "c::asap",
        "t:services",
        "d:",
        "d:services:hr",
        "s:phone:now",
        "b:",
        "ok:",
        "d:services:",
        "ok:@summary",
        "em:1",
        "e:",
        "e:timeline:asap",
        "z:timeline:asap",
        "c:timeline:" + "a" * 54,
        "c:timeline:" + "\u00e9" * 27,
    ],
    ids=repr,
)
def test_callback_data_the_bot_never_wrote_is_refused(data: str | None) -> None:
    """Garbage, half-formed or over-long data decodes to nothing rather than to a guess."""
    decoded = callbacks.decode(data)

    assert decoded is None


kinds = st.sampled_from(["c", "t", "d", "s", "b", "ok", "em", "e", "x"])
separators = st.sampled_from(["", ":"])
names = st.sampled_from(["", "timeline", "asap", "@summary"])


@settings(max_examples=200, deadline=None)
@given(data=st.tuples(kinds, separators, names, separators, names).map("".join))
def test_only_callback_data_the_bot_writes_is_read(data: str) -> None:
    """Whatever decodes is exactly what encoding that input writes: no second spelling of a button exists."""
    decoded = callbacks.decode(data)

    assert decoded is None or callbacks.encode(decoded) == data


def test_callback_data_at_the_limit_is_still_read() -> None:
    """Exactly 64 bytes is allowed; the refusal above is about length, not content."""
    data = "c:timeline:" + "a" * 53

    decoded = callbacks.decode(data)

    assert len(data.encode()) == 64
    assert decoded == flow.Choose(at="timeline", option="a" * 53)


def test_a_button_that_would_not_fit_telegram_cannot_be_encoded() -> None:
    """Encoding refuses data longer than 64 bytes instead of sending a button Telegram would reject."""
    button = flow.Choose(at="timeline", option="a" * 60)

    with pytest.raises(ValueError, match="longer than Telegram allows"):
        callbacks.encode(button)
