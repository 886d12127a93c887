"""Bad input of every kind gets a clear answer and never corrupts the conversation."""

from __future__ import annotations

import time

from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.harness import RunningBot


def _exact(message: SentMessage, label: str) -> str:
    """The callback data of the button labelled exactly so."""
    return next(data for text, data in message.buttons() if text == label)


async def _started(fake: FakeTelegram) -> tuple[FakeUser, SentMessage]:
    """A prospect who pressed Start, and the first question."""
    ada = fake.user(4242, first_name="Ada")
    await ada.send_text("/start")
    await ada.next_message()
    return ada, await ada.next_message()


async def _at_team_size(fake: FakeTelegram) -> FakeUser:
    ada, services = await _started(fake)
    await ada.press(services, services.button("Payments"))
    await ada.next_edit(services)
    await ada.press(services, services.button("Done"))
    size = await ada.next_screen()
    await ada.press(size, size.button("50–249"))
    team = await ada.next_screen()
    assert "how many full-time people" in team.text
    return ada


async def _at_email(fake: FakeTelegram) -> FakeUser:
    ada = await _at_team_size(fake)
    await ada.send_text("12")
    for choice in ["Within a month", "$5,000–20,000", "Manager", "Nearshore"]:
        message = await ada.next_screen()
        await ada.press(message, message.button(choice))
    name = await ada.next_screen()
    assert "full name" in name.text
    await ada.send_text("Ada")
    await ada.next_message()
    await ada.send_text("AE")
    await ada.next_message()
    return ada


async def _editing(fake: FakeTelegram, label: str) -> FakeUser:
    """A prospect at the summary who chose to change the answer labelled so."""
    ada = await _at_email(fake)
    await ada.next_reply("ada@example.com")
    await ada.next_reply("+44 20 7946 0958")
    summary = ada.messages()[-1]
    await ada.press(summary, summary.button("Edit"))
    menu = await ada.next_message()
    await ada.press(menu, _exact(menu, label))
    await ada.next_screen()
    return ada


async def test_a_wrong_email_is_asked_again_with_the_expected_form(fake: FakeTelegram, bot: RunningBot) -> None:
    """A mistyped address is refused with an example, and the same question follows in the same message."""
    ada = await _at_email(fake)

    again = await ada.next_reply("ada at example dot com")
    accepted = await ada.next_reply("ada@example.com")

    assert "That doesn't look like an e-mail address. Please type it like name@company.com." in again.text
    assert "Which e-mail address should our expert use?" in again.text
    assert "phone number" in accepted.text
    assert fake.rejected() == []


async def test_a_phone_number_without_country_code_is_asked_again_in_international_form(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """A local number cannot be dialled from abroad; the bot asks for +country code and shows one."""
    ada = await _at_email(fake)
    await ada.next_reply("ada@example.com")

    again = await ada.next_reply("020 7946 0958")
    summary = await ada.next_reply("+44 20 7946 0958")

    assert "international form" in again.text
    assert "+44 20 7946 0958" in again.text
    assert "Phone: +442079460958" in summary.text
    assert fake.rejected() == []


async def test_a_number_that_is_not_a_number_or_out_of_range_is_asked_again(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Words and out-of-range numbers are refused with the accepted range; a good number moves on."""
    ada = await _at_team_size(fake)

    words = await ada.next_reply("about twenty")
    too_many = await ada.next_reply("1000000")
    accepted = await ada.next_reply("1,200")

    assert "Please type a whole number" in words.text
    assert "from 1 to 100,000" in words.text
    assert "Please type a number from 1 to 100,000." in too_many.text
    assert "When would you like" in accepted.text
    assert fake.rejected() == []


async def test_a_5000_character_message_is_refused_politely_and_the_question_stays(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """An essay where a name belongs is refused without echoing it back, within Telegram's limits."""
    ada = await _editing(fake, "Name")

    refused = await ada.next_reply("x" * 5000)

    assert "please keep it under 100 characters" in refused.text
    assert len(refused.text) < 1000
    assert fake.rejected() == []


async def test_emoji_right_to_left_text_and_markup_are_kept_and_shown_escaped(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Whatever a prospect types is shown back literally: no markup injected, no parse error."""
    ada = await _editing(fake, "Company")

    updated = await ada.next_reply("<b>x</b> & شركة 🚀")

    assert "Company: <b>x</b> & شركة 🚀" in updated.text
    assert fake.rejected() == []


async def test_a_forged_button_is_refused_and_changes_nothing(fake: FakeTelegram, bot: RunningBot) -> None:
    """Callback data the bot never sent gets a short notice; the question on screen still takes its answer."""
    ada, services = await _started(fake)

    await ada.press(services, "c:company_size:5000_plus", forge=True)
    await ada.press(services, "t:services:not_a_service", forge=True)
    await ada.press(services, "\u202e<script>", forge=True)
    await ada.press(services, services.button("HR"))
    ticked = await ada.next_edit(services)

    notices = [answer.get("text") for answer in ada.callback_answers()]
    assert notices[:3] == [
        "That button belongs to an earlier message; please use the latest one.",
        "That button belongs to an earlier message; please use the latest one.",
        "That button is not valid.",
    ]
    assert "✅ HR & payroll" in [label for label, _ in ticked.buttons()]
    assert len(ada.messages()) == 2
    assert fake.rejected() == []


async def test_a_stale_button_from_an_earlier_question_does_not_answer_the_current_one(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Pressing an old question's button after typing the answer is ignored with a notice."""
    ada, services = await _started(fake)
    await ada.press(services, services.button("HR"))
    await ada.next_edit(services)
    size = await ada.next_reply("1")
    await ada.next_reply("3")

    await ada.press(size, size.button("5,000 or more"))
    budget_question_still = await ada.next_reply("25")

    assert ada.callback_answers()[-1]["text"].startswith("That button belongs to an earlier message")
    assert "When would you like" in budget_question_still.text
    assert fake.rejected() == []


async def test_a_photo_or_location_is_answered_with_how_to_reply(fake: FakeTelegram, bot: RunningBot) -> None:
    """Messages without text get an explanation instead of silence."""
    ada, _ = await _started(fake)
    location = {
        "message_id": 900,
        "from": {"id": 4242, "is_bot": False, "first_name": "Ada"},
        "chat": {"id": 4242, "type": "private", "first_name": "Ada"},
        "date": int(time.time()),
        "location": {"latitude": 51.5, "longitude": -0.12},
    }

    fake.enqueue_update("message", location)
    explanation = await ada.next_message()

    assert "I can only read typed answers and button presses" in explanation.text


async def test_flood_control_is_waited_out_and_the_reply_still_arrives(fake: FakeTelegram, bot: RunningBot) -> None:
    """A 429 from Telegram delays the reply by retry_after instead of losing it."""
    ada, _ = await _started(fake)
    fake.fail_next("sendMessage", times=1, retry_after=1)

    started = time.monotonic()
    await ada.send_text("/help")
    help_message = await ada.next_message(timeout=10)

    assert "/restart" in help_message.text
    assert time.monotonic() - started >= 1
    assert [call.error for call in fake.rejected()] == ["Too Many Requests: retry after 1"]


async def test_commands_answer_even_without_a_questionnaire_and_unknown_ones_point_to_help(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """/privacy, /cancel and a made-up command each get a sensible reply."""
    ada = fake.user(4242)

    privacy = await ada.next_reply("/privacy")
    cancel = await ada.next_reply("/cancel")
    unknown = await ada.next_reply("/bookings")

    assert "What we store" in privacy.text
    assert "privacy@meridian-outsourcing.example" in privacy.text
    assert "at most 365 days after your last contact" in privacy.text
    assert "/forget" in privacy.text
    assert "no questionnaire under way" in cancel.text
    assert "/help" in unknown.text
    assert fake.rejected() == []
