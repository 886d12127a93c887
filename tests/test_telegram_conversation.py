"""The qualification conversation end to end: real python-telegram-bot, over HTTP, against the fake Bot API."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from bot import database
from leads.tables import ConversationRow, LeadEventRow, LeadRow, ProspectRow
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.harness import RunningBot


async def _question(user: FakeUser, expected: str) -> SentMessage:
    """The next screen, new message or question in place of the one answered, which must contain `expected`."""
    message = await user.next_screen()
    assert expected in message.text, f"expected a message with {expected!r}, got {message.text!r}"
    return message


async def _answer_up_to_contact_details(user: FakeUser) -> None:
    """Processes, size, team, timeline, budget, role and delivery model, by buttons and one typed number."""
    services = await _question(user, "Which processes")
    await user.press(services, services.button("HR & payroll"))
    ticked = await user.next_edit(services)
    assert "✅ HR & payroll" in [label for label, _ in ticked.buttons()]
    await user.press(services, services.button("IT infrastructure"))
    await user.next_edit(services)
    await user.press(services, services.button("Done"))
    size = await _question(user, "How many employees")
    assert "Question 2 of 11" in size.text
    await user.press(size, size.button("250–999"))
    await _question(user, "how many full-time people")
    await user.send_text("40")
    timeline = await _question(user, "When would you like")
    await user.press(timeline, timeline.button("In 1–3 months"))
    budget = await _question(user, "monthly budget")
    await user.press(budget, budget.button("$20,000–100,000"))
    role = await _question(user, "your role")
    await user.press(role, role.button("VP / Director"))
    delivery = await _question(user, "delivery model")
    await user.press(delivery, delivery.button("Hybrid"))


async def _answer_contact_details_and_confirm(user: FakeUser) -> SentMessage:
    await _question(user, "full name")
    await user.send_text("Ada Lovelace")
    await _question(user, "company called")
    await user.send_text("Analytical Engines Ltd")
    await _question(user, "e-mail address")
    await user.send_text("ada@example.com")
    phone = await _question(user, "phone number")
    await user.press(phone, phone.button("Skip"))
    summary = await _question(user, "Please check your answers")
    assert "E-mail: ada@example.com" in summary.text
    await user.press(summary, summary.button("Confirm"))
    return await user.next_message()


async def test_a_prospect_answering_with_buttons_and_text_is_qualified_and_stored(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """The whole questionnaire by buttons and typing ends qualified; the lead, score, reasons and events are stored."""
    ada = fake.user(4242, first_name="Ada", last_name="Lovelace", username="ada")

    await ada.send_text("/start website")
    welcome = await ada.next_message()
    await _answer_up_to_contact_details(ada)
    result = await _answer_contact_details_and_confirm(ada)

    assert "Meridian Outsourcing" in welcome.text
    assert "great fit" in result.text
    assert "Which time zone are you in?" in result.text
    assert fake.rejected() == []
    lead, prospect, events = await _stored(bot.services.engine)
    assert lead.outcome == "qualified"
    assert lead.score == 95
    assert lead.source == "website"
    assert lead.answers["services"] == ["hr", "it_infra"]
    assert lead.answers["team_size"] == 40
    assert lead.answers["phone"] is None
    assert {"text": "Decision maker", "points": 15} in lead.reasons
    assert prospect.telegram_user_id == 4242
    assert prospect.username == "ada"
    # The bundled example routes qualified leads by service line, which is recorded after the outcome.
    assert [e.kind for e in events][:1] + [e.kind for e in events][-3:] == [
        "started",
        "completed",
        "qualified",
        "routed",
    ]


async def test_a_prospect_just_researching_without_a_budget_is_nurtured(fake: FakeTelegram, bot: RunningBot) -> None:
    """The disqualifying combination sends the lead to nurture with the configured resources message."""
    bob = fake.user(5151, first_name="Bob")
    await bob.send_text("/start")
    await bob.next_message()

    services = await _question(bob, "Which processes")
    await bob.press(services, services.button("Contract review"))
    await bob.next_edit(services)
    await bob.press(services, services.button("Done"))
    for expected, choice in [("How many employees", "1–49")]:
        message = await _question(bob, expected)
        await bob.press(message, message.button(choice))
    await _question(bob, "how many full-time people")
    await bob.send_text("2")
    for expected, choice in [
        ("When would you like", "Just researching"),
        ("monthly budget", "Not decided yet"),
        ("your role", "Team member"),
        ("delivery model", "Not sure yet"),
    ]:
        message = await _question(bob, expected)
        await bob.press(message, message.button(choice))
    for expected, typed in [("full name", "Bob"), ("company called", "Bob's Shop"), ("e-mail", "bob@example.org")]:
        await _question(bob, expected)
        await bob.send_text(typed)
    await _question(bob, "phone number")
    await bob.send_text("+1 415 555 0100")
    summary = await _question(bob, "Please check your answers")
    await bob.press(summary, summary.button("Confirm"))
    result = await bob.next_message()

    assert "outsourcing playbook" in result.text
    assert fake.rejected() == []
    lead, _, events = await _stored(bot.services.engine)
    assert lead.outcome == "nurture"
    assert {"text": "Just researching, with no budget decided", "points": None} in lead.reasons
    assert events[-1].kind == "nurture"


async def test_an_answered_question_loses_its_buttons_and_shows_the_answer_above_the_next_question(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """After a press the message reads as answered and asks the next question, so no old button is pressed again."""
    ada = fake.user(4242)
    await ada.send_text("/start")
    await ada.next_message()
    services = await _question(ada, "Which processes")
    await ada.press(services, services.button("Payments"))
    await ada.next_edit(services)
    old_buttons = [data for _, data in services.buttons()]

    await ada.press(services, services.button("Done"))
    size = await _question(ada, "How many employees")

    assert size is services
    answered, _, asked = size.text.partition("\n\n")
    assert answered.splitlines() == [
        "Which processes are you looking to outsource? Tick all that apply, then press Done.",
        "→ Payments & billing",
    ]
    assert asked.startswith("Question 2 of 11\nHow many employees")
    assert not set(old_buttons) & {data for _, data in size.buttons()}
    assert "250–999" in [label for label, _ in size.buttons()]
    assert len(ada.messages()) == 2
    assert fake.rejected() == []


async def test_the_last_answer_stays_on_its_question_and_the_summary_comes_as_a_message_of_its_own(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """The summary is kept in the transcript as a new message; the pressed question keeps only its answer."""
    ada = fake.user(4242)
    await ada.send_text("/start")
    await ada.next_message()
    await _answer_up_to_contact_details(ada)
    for expected, typed in [("full name", "Ada"), ("company called", "AE"), ("e-mail", "ada@example.com")]:
        await _question(ada, expected)
        await ada.send_text(typed)
    phone = await _question(ada, "phone number")

    await ada.press(phone, phone.button("Skip"))
    summary = await _question(ada, "Please check your answers")
    await ada.next_edit(phone)

    assert summary is not phone
    assert phone.text.endswith("→ —")
    assert phone.buttons() == []
    assert fake.rejected() == []


async def test_a_question_telegram_will_not_let_the_bot_edit_is_followed_by_a_new_message(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """When the edit is refused the prospect still gets the next question, with the answer, and carries on."""
    ada = fake.user(4242)
    await ada.send_text("/start")
    await ada.next_message()
    services = await _question(ada, "Which processes")
    await ada.press(services, services.button("Payments"))
    await ada.next_edit(services)
    fake.refuse_edits(services)

    await ada.press(services, services.button("Done"))
    size = await _question(ada, "How many employees")
    size_text = size.text
    await ada.press(size, size.button("250–999"))
    team = await _question(ada, "how many full-time people")

    assert size is not services
    assert "→ Payments & billing\n\nQuestion 2 of 11" in size_text
    assert "Done ✔" in [label for label, _ in services.buttons()]
    assert team is size
    assert "→ 250–999" in team.text
    assert [(call.method, call.error) for call in fake.rejected()] == [
        ("editMessageText", "Bad Request: message can't be edited")
    ]


async def test_back_returns_to_the_previous_question_and_edit_changes_one_answer(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Back re-asks the previous question; Edit from the summary changes one answer and returns to it."""
    ada = fake.user(4242)
    await ada.send_text("/start")
    await ada.next_message()
    await _answer_up_to_contact_details(ada)
    name = await _question(ada, "full name")

    await ada.press(name, name.button("Back"))
    delivery = await _question(ada, "delivery model")
    back_text = delivery.text
    await ada.press(delivery, delivery.button("Offshore"))
    summary = await _answer_contact_details_and_confirm_later(ada)
    await ada.press(summary, summary.button("Edit"))
    menu = await _question(ada, "Which answer would you like to change?")
    await ada.press(menu, menu.button("Team size"))
    team = await _question(ada, "how many full-time people")
    await ada.send_text("120")
    summary_again = await _question(ada, "Please check your answers")

    assert back_text.startswith("Question 7 of 11\nWhich delivery model")
    assert team is menu
    assert team.text.startswith("Question 3 of 11\nRoughly how many")
    assert "Delivery model: Offshore" in summary_again.text
    assert "Team size: 120" in summary_again.text
    assert fake.rejected() == []


async def _answer_contact_details_and_confirm_later(user: FakeUser) -> SentMessage:
    for expected, typed in [("full name", "Ada"), ("company called", "AE"), ("e-mail", "ada@example.com")]:
        await _question(user, expected)
        await user.send_text(typed)
    phone = await _question(user, "phone number")
    await user.press(phone, phone.button("Skip"))
    return await _question(user, "Please check your answers")


async def _stored(engine: AsyncEngine) -> tuple[LeadRow, ProspectRow, list[LeadEventRow]]:
    async with database.session_factory(engine)() as session:
        lead = (await session.execute(select(LeadRow))).scalar_one()
        prospect = (await session.execute(select(ProspectRow))).scalar_one()
        query = select(LeadEventRow).where(col(LeadEventRow.lead_id) == lead.id).order_by(col(LeadEventRow.id))
        events = list((await session.execute(query)).scalars())
    return lead, prospect, events


async def test_answers_sent_in_quick_succession_are_applied_in_order(fake: FakeTelegram, bot: RunningBot) -> None:
    """A prospect typing ahead without waiting gets each question answered in turn, none lost or swapped."""
    ada = fake.user(4242)
    await ada.send_text("/start")
    await ada.next_message()
    await ada.next_message()

    for typed in ["2, 4", "5", "300", "1", "4"]:
        await ada.send_text(typed)
    replies = [await ada.next_message() for _ in range(5)]

    assert "How many employees" in replies[0].text
    assert "When would you like" in replies[2].text
    assert "your role" in replies[4].text
    resumed = await ada.next_reply("/start")
    assert "Welcome back" in resumed.text
    async with database.session_factory(bot.services.engine)() as session:
        answers = (await session.execute(select(ConversationRow))).scalar_one().state["answers"]
    assert answers == {
        "services": ["finance", "data_entry"],
        "company_size": "5000_plus",
        "team_size": 300,
        "timeline": "asap",
        "budget": "over_100k",
    }


async def test_restart_sets_the_answers_aside_and_starts_a_new_lead(fake: FakeTelegram, bot: RunningBot) -> None:
    """/restart begins again at question 1; the abandoned lead is kept, marked restarted."""
    ada = fake.user(4242)
    await ada.send_text("/start")
    await ada.next_message()
    await ada.next_message()
    await ada.next_reply("1")

    starting_over = await ada.next_reply("/restart")
    first_question = await ada.next_message()

    assert "Starting over" in starting_over.text
    assert "Question 1 of 12" in first_question.text
    async with database.session_factory(bot.services.engine)() as session:
        leads = (await session.execute(select(LeadRow).order_by(col(LeadRow.id)))).scalars()
        statuses = [lead.status for lead in leads]
    assert statuses == ["restarted", "in_progress"]
