"""`consultbot chat`: the same questionnaire in a terminal, scriptable through standard input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from icalendar import Calendar

from bot.config import BUNDLED_EXAMPLE

CONSULTBOT = str(Path(sys.executable).parent / "consultbot")
QUESTIONNAIRE_SCRIPT = "1, 3\n3\n40\n2\n3\n2\n4\nAda Lovelace\nAnalytical Engines Ltd\nada@example.com\nskip\n1\n"
BOOKING_SCRIPT = "Berlin\n1\n1\n1\n"
"""Time zone typed as a city, then the first day, its first time, and Book it."""
QUALIFYING_SCRIPT = QUESTIONNAIRE_SCRIPT + BOOKING_SCRIPT
RESEARCHING_SCRIPT = "6\n1,2\n2\n5\n5\n5\n3\n5\nBob\nBob's Shop\nbob@example.org\n+1 415 555 0100\n1\n"


def _consultbot(*arguments: str, script: str = "", **environment: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "CONSULTBOT_CONFIG"}}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    env.update(environment)
    return subprocess.run(
        [CONSULTBOT, *arguments], input=script, capture_output=True, text=True, env=env, timeout=60, check=False
    )


def test_a_piped_script_of_answers_reaches_qualified_and_prints_the_sales_summary(database_url: str) -> None:
    """A scripted conversation ends qualified, with the summary sales would receive."""
    result = _consultbot("chat", script=QUALIFYING_SCRIPT, DATABASE_URL=database_url)

    assert result.returncode == 0, result.stderr
    assert "Question 1 of 12" in result.stdout
    assert "✅ Qualified (score 95)" in result.stdout
    summary = result.stdout.split("Lead summary for sales")[1]
    assert "E-mail: ada@example.com" in summary
    assert "Processes: HR & payroll, IT infrastructure" in summary
    assert "+15 Decision maker" in summary
    assert result.stderr == ""


def test_a_prospect_just_researching_without_budget_is_nurtured(database_url: str) -> None:
    """The disqualifier wins over points: the summary says nurture and why."""
    result = _consultbot("chat", script=RESEARCHING_SCRIPT, DATABASE_URL=database_url)

    assert result.returncode == 0, result.stderr
    assert "🌱 Nurture" in result.stdout
    assert "✖ Just researching, with no budget decided" in result.stdout
    # Choosing customer service asked the conditional question about channels.
    assert "Which channels should the support team cover?" in result.stdout


def test_a_wrong_email_is_asked_again_with_the_expected_form(tmp_path: Path) -> None:
    """A typo in the e-mail address is refused with an example, and the same question comes back."""
    script = QUALIFYING_SCRIPT.replace("ada@example.com\n", "ada(at)example\nada@example.com\n")

    result = _consultbot("chat", script=script, DATABASE_URL=f"sqlite:///{tmp_path}/chat.db")

    assert result.returncode == 0, result.stderr
    assert "That doesn't look like an e-mail address. Please type it like name@company.com." in result.stdout
    assert result.stdout.count("Which e-mail address should our expert use?") == 2
    assert "Qualified" in result.stdout


def test_a_configuration_typo_stops_start_up_with_one_clear_line(tmp_path: Path) -> None:
    """A misspelt key names the file and the key, exits non-zero, and shows no traceback."""
    broken = tmp_path / "consultbot.toml"
    broken.write_text(BUNDLED_EXAMPLE.read_text().replace("qualify_at = 60", "qualify_at = 60\nqualfy_at = 70"))

    result = _consultbot("chat", CONSULTBOT_CONFIG=str(broken), DATABASE_URL=f"sqlite:///{tmp_path}/x.db")

    assert result.returncode == 2
    assert result.stderr.strip() == f"consultbot: configuration error in {broken}: scoring.qualfy_at: unknown key"
    assert "Traceback" not in result.stdout + result.stderr


def test_run_without_a_bot_token_says_which_variable_is_missing(tmp_path: Path) -> None:
    """`consultbot run` needs TELEGRAM_BOT_TOKEN and says so in one line instead of failing later."""
    result = _consultbot("run", DATABASE_URL=f"sqlite:///{tmp_path}/x.db")

    assert result.returncode == 2
    assert "TELEGRAM_BOT_TOKEN: is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unusable_database_url_is_reported_by_variable_name(tmp_path: Path) -> None:
    """A DATABASE_URL for an unsupported database is a configuration error, not a stack trace."""
    result = _consultbot("chat", DATABASE_URL="mysql://root@localhost/consultbot")

    assert result.returncode == 2
    assert "DATABASE_URL: must be a sqlite:// or postgresql:// URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_answer_that_is_not_an_option_is_asked_again_in_terminal_words(tmp_path: Path) -> None:
    """In a terminal there are no buttons: the hint says to type an option's number."""
    script = QUALIFYING_SCRIPT.replace("1, 3\n3\n", "1, 3\nabout 300 people\n3\n", 1)

    result = _consultbot("chat", script=script, DATABASE_URL=f"sqlite:///{tmp_path}/chat.db")

    assert "Please type the number of one of the options" in result.stdout
    assert "press a button" not in result.stdout
    assert "✅ Qualified" in result.stdout


def test_a_qualified_prospect_books_a_consultation_in_the_terminal_and_gets_the_invite_file(database_url: str) -> None:
    """After the summary: a typed city, a day, a time, Book it; the invite is saved as a calendar file."""
    result = _consultbot("chat", script=QUALIFYING_SCRIPT, DATABASE_URL=database_url)

    assert result.returncode == 0, result.stderr
    booking = result.stdout.split("Booking your consultation")[1]
    assert "Which time zone are you in?" in booking
    assert "Times are shown in Berlin (UTC+01:00)" in booking
    assert "Your consultation is booked." in booking
    saved = Path(booking.split("Invite saved to ")[1].split(" (open it")[0])
    assert Calendar.from_ical(saved.read_bytes()).events[0]["ATTENDEE"] == "mailto:ada@example.com"
    saved.unlink()


def test_input_that_ends_before_a_time_is_chosen_says_nothing_was_booked(database_url: str) -> None:
    """A script that stops at the time-zone question exits 1 and says the consultation was not booked."""
    result = _consultbot("chat", script=QUESTIONNAIRE_SCRIPT, DATABASE_URL=database_url)

    assert result.returncode == 1
    assert "before a consultation was booked" in result.stdout
