"""Lead cards in the sales chat, end to end through the fake Bot API on both databases: the card of a qualified
lead, the pipeline buttons (staff only), and the card following the lead's consultation."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from bot.cards import CardPoster, render_card
from bot.relay import BookingRelay
from bot.texts import telegram_length
from leads.handoff import Handoff, LeadCard
from leads.model import LeadId
from leads.pipeline import Pipeline
from leads.records import Prospect
from leads.repository import LEAD_EVENTS
from leads.service import LeadSummary
from tests.fake_telegram import FakeGroup, FakeTelegram, FakeUser, SentMessage
from tests.harness import RunningBot
from tests.test_booking_telegram import _book_on_the_last_day_shown, _qualify

SALES_CHAT = -1001000000001
PRIYA, TOM = 700000001, 700000002
"""The bundled example's sales chat and staff: Priya takes back-office leads, Tom front-office ones."""


def _poster(bot: RunningBot) -> CardPoster:
    config = bot.services.config
    return CardPoster(
        outbox=bot.services.outbox,
        handoff=bot.services.handoff,
        bot=bot.application.bot,
        chat_id=SALES_CHAT,
        sales_zone=config.sales.timezone,
        experts=config.experts,
        clock=bot.services.clock,
    )


async def _card_of_a_qualified_lead(
    fake: FakeTelegram, bot: RunningBot, user_id: int
) -> tuple[FakeGroup, SentMessage, FakeUser, SentMessage]:
    """The sales chat and the card posted there, the prospect, and the outcome message they were shown."""
    sales = fake.group(SALES_CHAT)
    prospect = fake.user(user_id, first_name="Ada", last_name="Lovelace", username="ada_l")
    outcome = await _qualify(prospect)
    assert await _poster(bot).post_due() == 1
    return sales, await sales.next_message(), prospect, outcome


async def _events(bot: RunningBot, kind: str) -> list[dict[str, object]]:
    query = select(LEAD_EVENTS.c.detail, LEAD_EVENTS.c.actor).where(LEAD_EVENTS.c.kind == kind)
    async with bot.services.engine.connect() as connection:
        return [{**row.detail, "actor": row.actor} for row in await connection.execute(query)]


async def test_a_qualified_leads_card_arrives_in_the_sales_chat_with_everything_the_prospect_said(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Company, contact, services, score and reasons, source, the rep it was routed to, and the pipeline buttons."""
    _, card, _, _ = await _card_of_a_qualified_lead(fake, bot, 7101)

    assert "Lead #1" in card.text
    assert "New" in card.text
    assert "Ada Lovelace" in card.text
    assert "@ada_l" in card.text
    assert "Analytical Engines" in card.text
    assert "ada@example.com" in card.text
    assert "HR & payroll" in card.text
    assert "Routed to: Priya Raman" in card.text
    assert "Consultation: not booked yet" in card.text
    mentions = [entity for entity in card.entities if entity["type"] == "text_mention"]
    assert [mention["user"]["id"] for mention in mentions] == [7101]
    assert [label for label, _ in card.buttons()] == ["🙋 Claim", "📞 Contacted", "🏆 Won", "❌ Lost", "🚫 Disqualify"]
    assert await _poster(bot).post_due() == 0
    assert fake.rejected() == []


async def test_the_card_is_posted_as_the_prospect_confirms_not_at_the_posters_next_poll(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """The running poster looks for cards only hourly here: the confirmation itself wakes it, as in consultbot run."""
    sales = fake.group(SALES_CHAT)
    poster = _poster(bot)
    bot.services.queued.add(poster.wake)
    posting = asyncio.create_task(poster.keep_posting(every=timedelta(hours=1)))
    await asyncio.sleep(0.5)  # its first round, at once: nothing due yet, so it posts nothing and sleeps
    try:
        await _qualify(fake.user(7151, first_name="Ada", last_name="Lovelace"))
        card = await sales.next_message(timeout=5)
    finally:
        posting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await posting

    assert "Lead #1" in card.text
    assert "Ada Lovelace" in card.text


async def test_staff_claim_and_work_a_lead_while_others_are_refused_and_every_change_is_recorded(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """Priya claims; a stranger's press and Tom's claim are refused with alerts; Contacted and Won edit the card."""
    sales, card, _, _ = await _card_of_a_qualified_lead(fake, bot, 7102)
    priya, tom = fake.user(PRIYA, first_name="Priya"), fake.user(TOM, first_name="Tom")
    stranger = fake.user(4242, first_name="Mallory")

    await sales.press_as(priya, card, "p:c:1")
    claimed = (await sales.next_edit(card)).text
    await sales.press_as(stranger, card, "p:w:1")
    await sales.press_as(tom, card, "p:c:1", forge=True)
    await fake.wait_until_idle()
    await sales.press_as(priya, card, "p:t:1")
    contacted = (await sales.next_edit(card)).text
    await sales.press_as(priya, card, "p:w:1")
    won = (await sales.next_edit(card)).text

    assert "Claimed" in claimed
    assert "Owner: Priya Raman" in claimed
    assert [a.get("show_alert") for a in stranger.callback_answers()] == [True]
    assert "Only the sales team" in str(stranger.callback_answers()[0]["text"])
    assert "Already claimed by Priya Raman" in str(tom.callback_answers()[0]["text"])
    assert "Contacted" in contacted
    assert "Won" in won
    assert card.buttons() == []
    changes = await _events(bot, "status_changed")
    assert [(c["from"], c["to"], c["actor"]) for c in changes] == [
        ("new", "claimed", f"staff:{PRIYA}"),
        ("claimed", "contacted", f"staff:{PRIYA}"),
        ("contacted", "won", f"staff:{PRIYA}"),
    ]
    assert fake.rejected() == []


async def test_lost_asks_for_a_reason_on_the_card_and_records_it(fake: FakeTelegram, bot: RunningBot) -> None:
    """Lost shows the configured reasons (and Back); picking one closes the lead with that reason."""
    sales, card, _, _ = await _card_of_a_qualified_lead(fake, bot, 7103)
    tom = fake.user(TOM, first_name="Tom")

    await sales.press_as(tom, card, "p:l:1")
    asking = [label for label, _ in (await sales.next_edit(card)).buttons()]
    await sales.press_as(tom, card, "p:b:1")
    back = [label for label, _ in (await sales.next_edit(card)).buttons()]
    await sales.press_as(tom, card, "p:l:1")
    await sales.next_edit(card)
    await sales.press_as(tom, card, card.button("Price"))
    lost = await sales.next_edit(card)

    assert asking == ["Price", "Chose another provider", "No budget", "No response", "Not a fit", "◀ Back"]
    assert back[0] == "🙋 Claim"
    assert "Lost because: Price" in lost.text
    assert "Owner: Tom Becker" in lost.text
    assert lost.buttons() == []
    [change] = await _events(bot, "status_changed")
    assert (change["to"], change["reason"]) == ("lost", "Price")
    assert fake.rejected() == []


async def test_booking_rescheduling_and_cancelling_update_the_card_once_each(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """The card shows the consultation in the sales team's zone with the expert, then the new time, then cancelled."""
    sales, card, prospect, outcome = await _card_of_a_qualified_lead(fake, bot, 7104)
    relay = BookingRelay(bookings=bot.services.booking_store, handoff=bot.services.handoff, clock=bot.services.clock)
    poster = _poster(bot)
    bookings = bot.services.bookings

    await _book_on_the_last_day_shown(prospect, outcome)
    assert (await relay.relay_due(), await relay.relay_due()) == (1, 0)
    await poster.post_due()
    booked = (await sales.next_edit(card)).text
    [booking] = await bookings.upcoming_for(1)
    assert booking.id is not None
    expert = bookings.expert(booking.expert_key)
    assert expert is not None
    later = (await bookings.offers([expert]))[-1].slot.start
    await bookings.move(booking.id, start=later, prospect_ref=booking.prospect_ref)
    await relay.relay_due()
    await poster.post_due()
    moved = (await sales.next_edit(card)).text
    await bookings.cancel(booking.id, prospect_ref=booking.prospect_ref)
    await relay.relay_due()
    await poster.post_due()
    cancelled = (await sales.next_edit(card)).text

    assert "with Amelia Hughes" in booked
    assert "London" in booked
    assert moved != booked
    assert "with Amelia Hughes" in moved
    assert "(cancelled)" in cancelled
    assert [e["uid"] for e in await _events(bot, "booked")] == [booking.uid]
    assert len(await _events(bot, "rescheduled")) == 1
    assert len(await _events(bot, "booking_cancelled")) == 1
    assert fake.rejected() == []


def test_a_card_with_very_long_answers_stays_within_telegrams_limit_and_points_to_the_full_record() -> None:
    """Forty 900-character answers: each is shortened, the card fits 4096 characters and names /lead."""
    answers = tuple((f"Question {n}", "<&> " + "x" * 900) for n in range(40))
    summary = LeadSummary(
        lead_id=LeadId(9),
        prospect=Prospect(telegram_user_id=1, first_name="Ada <b>"),
        source=None,
        status="completed",
        outcome="qualified",
        score=80,
        reasons=(),
        answers=answers,
        completed_at=datetime.now(UTC) - timedelta(minutes=1),
    )
    card = LeadCard(summary, Handoff(pipeline=Pipeline("new")), None)

    view = render_card(card, sales_zone="Europe/London", experts={})

    assert telegram_length(view.html) <= 4096
    assert "/lead 9" in view.html
    assert "Ada &lt;b&gt;" in view.html
    assert "&lt;&amp;&gt;" in view.html
