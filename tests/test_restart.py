"""A `consultbot run` process stopped or killed mid-questionnaire: the prospect carries on where they were."""

from __future__ import annotations

import signal

import pytest
from sqlalchemy import select

from bot import database
from leads.tables import ConversationRow, LeadRow
from tests.fake_telegram import ApiCall, FakeTelegram, FakeUser
from tests.harness import BotProcess

STARTUP = 30.0
"""Seconds a fresh process may take to import, migrate and start polling on a loaded CI machine."""


async def _first_answers(ada: FakeUser) -> None:
    await ada.send_text("/start website")
    await ada.next_message(timeout=STARTUP)
    services = await ada.next_message()
    await ada.press(services, services.button("Data processing"))
    await ada.next_edit(services)
    await ada.press(services, services.button("Done"))
    size = await ada.next_screen()
    await ada.press(size, size.button("1,000–4,999"))
    team = await ada.next_screen()
    assert "how many full-time people" in team.text


def _redone_after_a_kill(call: ApiCall, how: signal.Signals) -> bool:
    """Telegram refusing a no-op of the press a killed bot had in hand, which the new bot handles again.

    Killed between showing the next question and recording the press done, the bot gets the press once more
    from Telegram: its button was answered already ("query is too old") and its screen is shown already ("not
    modified"). A graceful stop finishes the press first, so then nothing at all may be refused.
    """
    redone = ("query is too old", "message is not modified")
    return how == signal.SIGKILL and any(reason in (call.error or "") for reason in redone)


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_a_stopped_bot_continues_the_conversation_at_the_same_question(
    fake: FakeTelegram, database_url: str, how: signal.Signals
) -> None:
    """After a kill or a graceful stop and a new start, the next answer goes to the same question, answers kept."""
    ada = fake.user(4242, first_name="Ada")
    first = BotProcess(fake, database_url)
    await first.start()
    await _first_answers(ada)

    status = await first.stop(how)
    second = BotProcess(fake, database_url)
    await second.start()
    try:
        timeline = await ada.next_reply("250", timeout=STARTUP)
        asked_after_restart = timeline.text
        await ada.press(timeline, timeline.button("Within a month"))
        budget = await ada.next_screen()
        resumed = await ada.next_reply("/start")
        current = await ada.next_message()
    finally:
        await second.stop()

    assert status == (0 if how == signal.SIGTERM else -signal.SIGKILL)
    assert "ERROR" not in first.logged + second.logged
    assert "Traceback" not in first.logged + second.logged
    assert "When would you like" in asked_after_restart
    assert "monthly budget" in budget.text
    assert "Welcome back" in resumed.text
    assert "monthly budget" in current.text
    assert [call for call in fake.rejected() if not _redone_after_a_kill(call, how)] == []
    engine = database.create_engine(database_url)
    async with database.session_factory(engine)() as session:
        leads = list((await session.execute(select(LeadRow))).scalars())
        conversation = (await session.execute(select(ConversationRow))).scalar_one()
    await engine.dispose()
    assert conversation.state["answers"] == {
        "services": ["data_entry"],
        "company_size": "1000_4999",
        "team_size": 250,
        "timeline": "asap",
    }
    assert len(leads) == 1
    assert leads[0].source == "website"
    assert leads[0].status == "in_progress"
