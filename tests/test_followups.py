"""Follow-ups: one nudge of each kind at the configured moment, on an injected clock, never after /stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from bot import texts
from bot.config import BUNDLED_EXAMPLE, load_config
from bot.followups import FollowUpSender, callback_data, parse_callback
from bot.settings import Settings
from bot.wiring import Services, open_services
from leads.followup_store import FOLLOWUPS
from leads.followups import Delays, LeadFacts, verdict
from leads.model import LeadId
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.harness import RunningBot, running_bot
from tests.test_booking_telegram import _book_first_free_time, _qualify
from tests.test_telegram_conversation import _answer_contact_details_and_confirm

START = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)
DELAYS = Delays.from_hours(unfinished=24, unbooked=2, nurture=24)
STOP_LINE = "Send /stop to stop these messages"


def facts(**changes: Any) -> LeadFacts:
    """A lead stopped at a question at START, unless told otherwise."""
    values: dict[str, Any] = {
        "status": "in_progress",
        "outcome": None,
        "last_activity": START,
        "completed_at": None,
        "booked": False,
        "stopped": False,
    }
    return LeadFacts(**{**values, **changes})


def completed(outcome: str, **changes: Any) -> LeadFacts:
    """A lead completed with `outcome` at START."""
    return facts(status="completed", outcome=outcome, completed_at=START, **changes)


# The pure rules.


def test_an_unfinished_questionnaire_is_due_once_its_last_step_is_older_than_the_delay() -> None:
    """23 h 59 after the last answer: wait; 24 h after: send."""
    lead = facts()

    early = verdict("unfinished", lead, DELAYS, now=START + timedelta(hours=23, minutes=59))
    due = verdict("unfinished", lead, DELAYS, now=START + timedelta(hours=24))

    assert (early, due) == ("wait", "send")


def test_nothing_is_ever_due_for_a_prospect_who_stopped_follow_ups() -> None:
    """/stop turns every kind off for good."""
    later = START + timedelta(days=30)

    verdicts = {
        verdict("unfinished", facts(stopped=True), DELAYS, now=later),
        verdict("unbooked", completed("qualified", stopped=True), DELAYS, now=later),
        verdict("nurture", completed("nurture", stopped=True), DELAYS, now=later),
    }

    assert verdicts == {"skip"}


def test_a_finished_or_cancelled_questionnaire_is_never_nudged_as_unfinished() -> None:
    """Completing or cancelling the questionnaire ends the unfinished kind."""
    later = START + timedelta(days=2)

    assert verdict("unfinished", completed("qualified"), DELAYS, now=later) == "skip"
    assert verdict("unfinished", facts(status="cancelled"), DELAYS, now=later) == "skip"


def test_a_qualified_prospect_who_booked_even_if_they_cancelled_later_is_not_reminded() -> None:
    """Booked means booked: a consultation recorded on the lead ends the unbooked kind."""
    later = START + timedelta(hours=3)

    assert verdict("unbooked", completed("qualified"), DELAYS, now=later) == "send"
    assert verdict("unbooked", completed("qualified", booked=True), DELAYS, now=later) == "skip"
    assert verdict("unbooked", completed("qualified"), DELAYS, now=START + timedelta(hours=1)) == "wait"


def test_each_outcome_gets_only_its_own_kind() -> None:
    """A nurtured lead gets no unbooked reminder, a qualified one no resources."""
    later = START + timedelta(days=2)

    assert verdict("unbooked", completed("nurture"), DELAYS, now=later) == "skip"
    assert verdict("nurture", completed("qualified"), DELAYS, now=later) == "skip"
    assert verdict("nurture", completed("nurture"), DELAYS, now=later) == "send"


def test_zero_hours_turns_a_kind_off() -> None:
    """A kind configured with 0 hours is never due."""
    delays = Delays.from_hours(unfinished=0, unbooked=2, nurture=24)

    assert verdict("unfinished", facts(), delays, now=START + timedelta(days=30)) == "skip"


def test_follow_up_buttons_carry_their_lead_and_refuse_anything_else() -> None:
    """The data is short, read back exactly, and forged variants are refused."""
    data = callback_data("c", LeadId(123456789))

    assert len(data.encode()) <= 64
    assert parse_callback(data) == ("c", 123456789)
    assert [parse_callback(bad) for bad in ("fu:x:1", "fu:c:", "fu:c:01", "fu:c:1:2", "fu:b:-1", None)] == [None] * 6


# Through the fake Bot API.


def sender(running: RunningBot, clock: FixedClock, services: Services | None = None) -> FollowUpSender:
    """A follow-up sender on the bot's (or other) services and the test's clock, as `consultbot run` builds one."""
    services = services or running.services
    return FollowUpSender(
        store=services.followups,
        bookings=services.booking_store,
        bot=running.application.bot,
        config=services.config,
        clock=clock,
    )


@asynccontextmanager
async def bot_on(fake: FakeTelegram, database_url: str, clock: FixedClock) -> AsyncIterator[RunningBot]:
    """The bot on the test's clock."""
    async with running_bot(fake, database_url, clock=clock) as running:
        yield running


async def _stop_after_first_question(user: FakeUser) -> None:
    """Start, answer the first question, and leave the second on screen."""
    await user.send_text("/start")
    await user.next_message()
    services = await user.next_screen()
    await user.press(services, services.button("HR & payroll"))
    await user.next_edit(services)
    await user.press(services, services.button("Done"))
    size = await user.next_screen()
    assert "How many employees" in size.text


async def _answer_from_size_on(user: FakeUser, size: SentMessage) -> SentMessage:
    """Answer from the company-size question to the end as a qualified prospect; the outcome message."""
    await user.press(size, size.button("250–999"))
    await user.next_screen()
    await user.send_text("40")
    for expected, choice in [
        ("When would you like", "In 1–3 months"),
        ("monthly budget", "$20,000–100,000"),
        ("your role", "VP / Director"),
        ("delivery model", "Hybrid"),
    ]:
        question = await user.next_screen()
        assert expected in question.text
        await user.press(question, question.button(choice))
    return await _answer_contact_details_and_confirm(user)


async def _rows(running: RunningBot) -> list[dict[str, Any]]:
    async with running.services.engine.connect() as connection:
        rows = await connection.execute(select(FOLLOWUPS).order_by(FOLLOWUPS.c.id))
        return [dict(row) for row in rows.mappings()]


async def test_a_prospect_who_stopped_mid_questionnaire_is_nudged_once_after_24_hours_and_can_continue(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """No nudge at 23 h 59, one at 24 h 01, none later; Continue resumes at the open question and the lead completes."""
    ada = fake.user(6101, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _stop_after_first_question(ada)
        seen = len(ada.messages())
        follow_ups = sender(running, clock)

        clock.now += timedelta(hours=23, minutes=59)
        early = await follow_ups.send_due()
        quiet = len(ada.messages())
        clock.now += timedelta(minutes=2)
        due = await follow_ups.send_due()
        nudge = await ada.next_message()
        clock.now += timedelta(days=3)
        later = await follow_ups.send_due()

        await ada.press(nudge, nudge.button("Continue"))
        welcome_back = await ada.next_message()
        size = await ada.next_screen()
        outcome = await _answer_from_size_on(ada, size)

    assert (early, quiet, due, later) == (0, seen, 1, 0)
    assert "part-way through" in nudge.text
    assert STOP_LINE in nudge.text
    assert "Welcome back" in welcome_back.text
    assert "How many employees" in size.text
    assert "great fit" in outcome.text
    assert fake.rejected() == []


async def test_a_resumed_and_abandoned_questionnaire_is_not_nudged_twice(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """After the nudge the prospect answers one more question and stops again: no second nudge for that lead."""
    ada = fake.user(6102, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _stop_after_first_question(ada)
        follow_ups = sender(running, clock)
        clock.now += timedelta(hours=25)
        await follow_ups.send_due()
        nudge = await ada.next_message()
        await ada.press(nudge, nudge.button("Continue"))
        await ada.next_message()
        size = await ada.next_screen()
        await ada.press(size, size.button("250–999"))
        await ada.next_screen()
        seen = len(ada.messages())

        clock.now += timedelta(days=2)
        again = await follow_ups.send_due()

    assert again == 0
    assert len(ada.messages()) == seen


async def test_a_qualified_prospect_who_did_not_book_is_reminded_once_after_2_hours_with_free_times(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Nothing at 1 h 59; at 2 h 01 one reminder whose button opens the booking journey's first question."""
    ada = fake.user(6201, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _qualify(ada)
        follow_ups = sender(running, clock)

        clock.now += timedelta(hours=1, minutes=59)
        early = await follow_ups.send_due()
        clock.now += timedelta(minutes=2)
        due = await follow_ups.send_due()
        reminder = await ada.next_message()
        clock.now += timedelta(days=1)
        later = await follow_ups.send_due()
        await ada.press(reminder, reminder.button("See free times"))
        zones = await ada.next_message()

    assert (early, due, later) == (0, 1, 0)
    assert "not picked a time" in reminder.text
    assert STOP_LINE in reminder.text
    assert "Which time zone are you in?" in zones.text
    assert fake.rejected() == []


async def test_a_qualified_prospect_who_booked_gets_no_reminder(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Booking within the two hours means no "you have not booked" message, ever."""
    ada = fake.user(6202, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _book_first_free_time(ada, await _qualify(ada), "Berlin")
        await ada.next_message()
        seen = len(ada.messages())

        clock.now += timedelta(hours=3)
        sent = await sender(running, clock).send_due()
        rows = await _rows(running)

    assert sent == 0
    assert len(ada.messages()) == seen
    assert [row["status"] for row in rows] == ["skipped"]


async def test_a_nurtured_prospect_gets_the_resources_message_after_24_hours(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """The configured resources, once, at the nurture delay."""
    bob = fake.user(6301, first_name="Bob")
    async with bot_on(fake, database_url, clock) as running:
        await _nurture(bob)
        follow_ups = sender(running, clock)

        clock.now += timedelta(hours=23, minutes=59)
        early = await follow_ups.send_due()
        clock.now += timedelta(minutes=2)
        due = await follow_ups.send_due()
        resources = await bob.next_message()
        clock.now += timedelta(days=5)
        later = await follow_ups.send_due()

    assert (early, due, later) == (0, 1, 0)
    assert "https://meridian-outsourcing.example/resources" in resources.text
    assert STOP_LINE in resources.text
    assert resources.buttons() == []


async def _nurture(user: FakeUser) -> None:
    """Answer the questionnaire as someone just researching without a budget."""
    await user.send_text("/start")
    await user.next_message()
    services = await user.next_screen()
    await user.press(services, services.button("Contract review"))
    await user.next_edit(services)
    await user.press(services, services.button("Done"))
    size = await user.next_screen()
    await user.press(size, size.button("1–49"))
    await user.next_screen()
    await user.send_text("2")
    for choice in ("Just researching", "Not decided yet", "Team member", "Not sure yet"):
        question = await user.next_screen()
        await user.press(question, question.button(choice))
    for typed in ("Bob", "Bob's Shop", "bob@example.org", "+1 415 555 0100"):
        await user.next_screen()
        await user.send_text(typed)
    summary = await user.next_screen()
    await user.press(summary, summary.button("Confirm"))
    outcome = await user.next_message()
    assert "outsourcing playbook" in outcome.text


async def test_stop_before_a_follow_up_is_due_means_none_is_ever_sent(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """/stop confirms (twice, the same), and neither the unfinished nudge nor anything later goes out."""
    ada = fake.user(6401, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _stop_after_first_question(ada)
        first = await ada.next_reply("/stop")
        second = await ada.next_reply("/stop")
        seen = len(ada.messages())

        clock.now += timedelta(days=3)
        sent = await sender(running, clock).send_due()

    assert "not send you any more follow-up messages" in first.text
    assert second.text == first.text
    assert sent == 0
    assert len(ada.messages()) == seen


async def test_after_stop_a_qualified_prospect_gets_no_reminder_and_a_nurtured_one_no_resources(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """/stop after finishing the questionnaire turns off what would follow it."""
    ada, bob = fake.user(6402, first_name="Ada"), fake.user(6403, first_name="Bob")
    async with bot_on(fake, database_url, clock) as running:
        await _qualify(ada)
        await _nurture(bob)
        await ada.next_reply("/stop")
        await bob.next_reply("/stop")
        seen = (len(ada.messages()), len(bob.messages()))

        clock.now += timedelta(days=2)
        sent = await sender(running, clock).send_due()

    assert sent == 0
    assert (len(ada.messages()), len(bob.messages())) == seen


async def test_stop_before_ever_starting_is_remembered(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Someone who sends /stop first and abandons the questionnaire later is not nudged."""
    ada = fake.user(6404, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await ada.next_reply("/stop")
        await _stop_after_first_question(ada)

        clock.now += timedelta(days=2)
        sent = await sender(running, clock).send_due()

    assert sent == 0


async def test_a_restarted_bot_does_not_send_a_follow_up_again(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """New services on the same database find the nudge sent already."""
    ada = fake.user(6501, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _stop_after_first_question(ada)
        clock.now += timedelta(hours=25)
        first = await sender(running, clock).send_due()
        await ada.next_message()
    seen = len(ada.messages())

    async with bot_on(fake, database_url, clock) as restarted:
        clock.now += timedelta(hours=1)
        again = await sender(restarted, clock).send_due()

    assert (first, again) == (1, 0)
    assert len(ada.messages()) == seen


async def test_a_prospect_who_blocked_the_bot_is_recorded_and_not_tried_again(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """A 403 from the Bot API marks the follow-up blocked; later rounds, unblocked even, send nothing."""
    ada = fake.user(6601, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _stop_after_first_question(ada)
        seen = len(ada.messages())
        fake.block_bot(ada.chat_id)
        follow_ups = sender(running, clock)

        clock.now += timedelta(hours=25)
        blocked = await follow_ups.send_due()
        fake.unblock_bot(ada.chat_id)
        clock.now += timedelta(days=1)
        later = await follow_ups.send_due()
        rows = await _rows(running)

    assert (blocked, later) == (0, 0)
    assert [(row["kind"], row["status"]) for row in rows] == [("unfinished", "blocked")]
    assert len(ada.messages()) == seen


async def test_two_senders_at_once_send_a_follow_up_once(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Two replicas, each with its own services on the same database, send each nudge once between them."""
    users = [fake.user(6700 + n, first_name=f"Prospect {n}") for n in range(4)]
    async with bot_on(fake, database_url, clock) as running:
        for user in users:
            await _stop_after_first_question(user)
        seen = sum(len(user.messages()) for user in users)
        settings = Settings(telegram_bot_token=fake.token, telegram_base_url=fake.url, database_url=database_url)
        async with open_services(settings, load_config(BUNDLED_EXAMPLE), clock=clock) as replica:
            other = sender(running, clock, replica)
            clock.now += timedelta(hours=25)

            counts = await asyncio.gather(sender(running, clock).send_due(), other.send_due())

    assert sum(counts) == len(users)
    assert sum(len(user.messages()) for user in users) == seen + len(users)


async def test_a_forged_or_stale_follow_up_button_is_refused_and_changes_nothing(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Forged data is "not valid"; Continue for another lead or a finished questionnaire no longer applies."""
    ada = fake.user(6801, first_name="Ada")
    async with bot_on(fake, database_url, clock) as running:
        await _stop_after_first_question(ada)
        clock.now += timedelta(hours=25)
        await sender(running, clock).send_due()
        nudge = await ada.next_message()
        continue_data = nudge.button("Continue")
        await ada.press(nudge, "fu:c:999999", forge=True)
        await ada.press(nudge, "fu:zz", forge=True)
        await fake.wait_until_idle()
        await ada.press(nudge, nudge.button("Continue"))
        await ada.next_message()
        outcome = await _answer_from_size_on(ada, await ada.next_screen())
        await ada.press(nudge, continue_data, forge=True)
        await fake.wait_until_idle()

    answers = [answer.get("text") for answer in ada.callback_answers()]
    assert "great fit" in outcome.text
    assert "That button is not valid." in answers
    assert answers.count(texts.FOLLOWUP_STALE) == 2
