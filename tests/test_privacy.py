"""A prospect's rights over their data, through the fake Bot API on both databases: /mydata sends everything
stored about them, /forget erases it after asking, cancels their coming consultation, and leaves no trace of them
in any table while the funnel still counts their lead."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import MetaData, select

from bot.relay import BookingRelay
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.harness import RunningBot, running_bot
from tests.test_booking_telegram import _book_on_the_last_day_shown
from tests.test_lead_cards import SALES_CHAT, _poster
from tests.test_telegram_conversation import _answer_up_to_contact_details, _question

PERSONAL = ("Lovelace", "Analytical Engines", "ada@example.com", "7946 0958", "ada_l", "Countess")
"""What identifies the prospect of these tests: surname, company, e-mail, phone, username, and a typed remark."""


async def _qualify_with_every_detail(user: FakeUser) -> SentMessage:
    """The questionnaire with a name, company, e-mail and phone typed in; the outcome message."""
    await user.send_text("/start")
    await user.next_message()
    await _answer_up_to_contact_details(user)
    for expected, typed in [
        ("full name", "Ada Lovelace, Countess"),
        ("company called", "Analytical Engines Ltd"),
        ("e-mail address", "ada@example.com"),
        ("phone number", "+44 20 7946 0958"),
    ]:
        await _question(user, expected)
        await user.send_text(typed)
    summary = await _question(user, "Please check your answers")
    await user.press(summary, summary.button("Confirm"))
    return await user.next_message()


async def _every_stored_value(bot: RunningBot) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every non-empty value of every column of every table."""
    found: list[tuple[str, str, str]] = []
    async with bot.services.engine.connect() as connection:
        schema = MetaData()
        await connection.run_sync(schema.reflect)
        for table in schema.sorted_tables:
            for row in (await connection.execute(select(table))).mappings():
                for column, value in row.items():
                    if value is not None:
                        text = value if isinstance(value, str) else json.dumps(value, default=str)
                        found.append((table.name, str(column), text))
    return found


async def test_mydata_sends_everything_stored_as_json_and_says_so_when_nothing_is(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Before the questionnaire: nothing held. After booking: the answers, the lead and the consultation."""
    ada = fake.user(8101, first_name="Ada", last_name="Lovelace", username="ada_l")
    nothing = await ada.next_reply("/mydata")
    await _book_on_the_last_day_shown(ada, await _qualify_with_every_detail(ada))

    await ada.send_text("/mydata")
    sent = await ada.next_message()

    assert "no personal data" in nothing.text
    assert sent.document is not None
    assert sent.document["filename"] == "my-data.json"
    data = json.loads(sent.document["content"])
    assert data["prospect"]["last_name"] == "Lovelace"
    assert data["prospect"]["username"] == "ada_l"
    [lead] = data["leads"]
    assert lead["answers"]["email"] == "ada@example.com"
    assert lead["outcome"] == "qualified"
    assert "completed" in [event["kind"] for event in lead["events"]]
    [consultation] = data["consultations"]
    assert consultation["attendee_email"] == "ada@example.com"
    assert consultation["status"] == "confirmed"
    assert len(consultation["reminders"]) >= 1
    assert fake.rejected() == []


async def test_forget_asks_first_and_keeping_erases_nothing(fake: FakeTelegram, bot: RunningBot) -> None:
    """The question names what will happen; "No, keep it" leaves every answer in place."""
    ada = fake.user(8102, first_name="Ada", last_name="Lovelace", username="ada_l")
    await _qualify_with_every_detail(ada)

    question = await ada.next_reply("/forget")
    asked = question.text
    await ada.press(question, question.button("No, keep it"))
    kept = await ada.next_edit(question)

    assert "Erase your personal data?" in asked
    assert "no consultations coming up" in asked
    assert kept.text == "Nothing was erased."
    data = await bot.services.privacy.personal_data(8102)
    assert data is not None
    assert data["leads"][0]["answers"]["email"] == "ada@example.com"


async def test_forget_erases_every_trace_cancels_the_consultation_and_keeps_the_lead_counted(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """After /forget no table holds the name, company, e-mail, phone, username or typed text; the consultation is
    cancelled for the expert and the sales card; the lead still counts as a qualified lead."""
    sales = fake.group(SALES_CHAT)
    ada = fake.user(8103, first_name="Ada", last_name="Lovelace", username="ada_l")
    await _book_on_the_last_day_shown(ada, await _qualify_with_every_detail(ada))
    poster = _poster(bot)
    await poster.post_due()
    card = await sales.next_message()
    assert "Lovelace" in card.text
    assert "ada@example.com" in card.text
    before = await _every_stored_value(bot)
    assert {table for table, _, text in before if "ada@example.com" in text} >= {"leads", "bookings", "conversations"}

    question = await ada.next_reply("/forget")
    assert "your coming consultation" in question.text
    await ada.press(question, question.button("Yes, erase my data"))
    done = await ada.next_edit(question)
    await BookingRelay(
        bookings=bot.services.booking_store, handoff=bot.services.handoff, clock=bot.services.clock
    ).relay_due()
    await poster.post_due()
    redrawn = await sales.next_edit(card)
    after = await _every_stored_value(bot)
    again = await ada.next_reply("/mydata")

    assert "Your personal data is erased and your coming consultation cancelled" in done.text
    leftovers = [(table, column) for table, column, text in after for personal in PERSONAL if personal in text]
    assert leftovers == []
    assert not any("8103" in text for table, column, text in after if column in {"telegram_user_id", "chat_key"})
    assert "Lovelace" not in redrawn.text
    assert "personal data erased" in redrawn.text
    assert "(cancelled)" in redrawn.text
    [booking] = await _rows(bot, "bookings")
    assert booking["status"] == "cancelled"
    assert "no personal data" in again.text
    leads = await _rows(bot, "leads")
    assert [(lead["outcome"], lead["status"]) for lead in leads] == [("qualified", "completed")]
    assert set(leads[0]["answers"]) == {"services", "company_size", "timeline", "budget", "role", "delivery"}
    assert fake.rejected() == []


async def test_forgetting_twice_or_a_forged_button_changes_nothing(fake: FakeTelegram, bot: RunningBot) -> None:
    """A second "Yes" finds nothing to erase; made-up callback data is refused."""
    ada = fake.user(8104, first_name="Ada", last_name="Lovelace", username="ada_l")
    await _qualify_with_every_detail(ada)
    question = await ada.next_reply("/forget")
    erase = question.button("Yes, erase my data")

    await ada.press(question, "pv:everything", forge=True)
    await fake.wait_until_idle()
    await ada.press(question, erase)
    await ada.next_edit(question)
    # A double tap: the second press was on its way before the first one's edit removed the buttons.
    await ada.press(question, erase, forge=True)
    second = await ada.next_edit(question)

    assert ada.callback_answers()[-3].get("text") == "That button is not valid."
    assert "no personal data" in second.text


async def _rows(bot: RunningBot, table: str) -> list[dict[str, Any]]:
    schema = MetaData()
    async with bot.services.engine.connect() as connection:
        await connection.run_sync(lambda sync: schema.reflect(sync, only=[table]))
        return [dict(row) for row in (await connection.execute(select(schema.tables[table]))).mappings()]


async def test_retention_anonymises_prospects_inactive_for_the_configured_days_once(
    fake: FakeTelegram, database_url: str
) -> None:
    """With the default 365 days: nothing at day 364; at day 366 Ada (silent since) is erased and Bob (who wrote
    on day 200) is not; a second round finds nothing more."""
    clock = FixedClock(datetime.now(UTC))
    async with running_bot(fake, database_url, clock=clock) as bot:
        ada = fake.user(8105, first_name="Ada", last_name="Lovelace", username="ada_l")
        await _qualify_with_every_detail(ada)
        retention = timedelta(days=bot.services.config.privacy.retention_days)
        clock.now += timedelta(days=200)
        bob = fake.user(8106, first_name="Bob")
        await bob.next_reply("/start")
        clock.now += timedelta(days=164)
        at_day_364 = await bot.services.privacy.anonymise_inactive(retention=retention)
        clock.now += timedelta(days=2)
        at_day_366 = await bot.services.privacy.anonymise_inactive(retention=retention)
        again = await bot.services.privacy.anonymise_inactive(retention=retention)
        stored = await _every_stored_value(bot)

        assert (at_day_364, at_day_366, again) == (0, 1, 0)
        assert [text for _, _, text in stored for personal in PERSONAL if personal in text] == []
        assert await bot.services.privacy.personal_data(8105) is None
        assert await bot.services.privacy.personal_data(8106) is not None
        leads = sorted(await _rows(bot, "leads"), key=lambda lead: lead["id"])
        assert [lead["outcome"] for lead in leads] == ["qualified", None]
