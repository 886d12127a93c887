"""Staff commands end to end through the fake Bot API on both databases: /leads with paging and a status filter,
/lead with answers and history, /stats on a fixed clock, /export as a CSV document; everyone else still gets the
prospect experience; and the same reports from `consultbot leads`."""

from __future__ import annotations

import argparse
import csv
import io
import json
from datetime import UTC, datetime, timedelta

from bot import staff_view
from bot.relay import BookingRelay
from bot.texts import telegram_length
from leads.model import LeadId, ProspectId, Questionnaire
from leads.pipeline import StaffMember
from leads.records import Lead, LeadEvent, Prospect
from leads.reports import LeadHistory, LeadRecord
from leads.service import Visitor
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage, parse_telegram_html
from tests.harness import RunningBot, running_bot
from tests.test_booking_telegram import _book_first_free_time, _utc_start
from tests.test_telegram_conversation import _answer_up_to_contact_details, _question

SALES_CHAT = -1001000000001
PRIYA, TOM = 700000001, 700000002
"""The bundled example's sales chat and staff."""
EVIL_COMPANY = '=HYPERLINK("http://evil.example"), "Quoted" Ltd\nSecond line'


async def _qualify_as(
    user: FakeUser, *, name: str = "Ada Lovelace", company: str = "Analytical Engines"
) -> SentMessage:
    """Answer the whole questionnaire as a qualified prospect, typing the given name and company; the outcome."""
    await user.send_text("/start")
    await user.next_message()
    await _answer_up_to_contact_details(user)
    for expected, typed in [("full name", name), ("company called", company), ("e-mail", "ada@example.com")]:
        await _question(user, expected)
        await user.send_text(typed)
    await _question(user, "phone number")
    await user.send_text("+44 20 7946 0958")
    summary = await _question(user, "Please check your answers")
    await user.press(summary, summary.button("Confirm"))
    return await user.next_message()


async def _start_leads(bot: RunningBot, count: int) -> None:
    """`count` prospects who began the questionnaire (and went no further), one lead each."""
    for n in range(count):
        await bot.services.qualification.begin(chat_key=f"tg:{9000 + n}", visitor=Visitor(9000 + n, first_name=f"P{n}"))


async def _work(bot: RunningBot, lead_id: int, *actions: str) -> None:
    """Priya moves the lead along the pipeline, as her card buttons would."""
    priya = StaffMember(PRIYA, "Priya Raman")
    for action in actions:
        await bot.services.handoff.move(LeadId(lead_id), action, priya)  # type: ignore[arg-type]


async def test_staff_page_through_leads_newest_first_in_their_private_chat(fake: FakeTelegram, bot: RunningBot) -> None:
    """Twelve leads: the first page shows the newest ten with Older; Older shows the last two with Newest."""
    await _start_leads(bot, 12)
    priya = fake.user(PRIYA, first_name="Priya")

    first = await priya.next_reply("/leads")
    await priya.press(first, first.button("Older"))
    second = await priya.next_edit(first)
    second_text = second.text
    await priya.press(second, second.button("Newest"))
    again = await priya.next_edit(first)

    assert "#12 " in again.text
    assert "#3 " in again.text
    assert "#2 " not in again.text
    assert "#2 " in second_text
    assert "#1 " in second_text
    assert "#3 " not in second_text
    assert [label for label, _ in again.buttons()] == ["Older ▶"]
    assert all(len(data.encode()) <= 64 for _, data in again.buttons())
    assert fake.rejected() == []


async def test_leads_filters_by_status_and_an_unknown_status_lists_the_statuses(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """/leads won shows only the won lead; /leads bogus names every status."""
    await _qualify_as(fake.user(7201, first_name="Ada"))
    await _qualify_as(fake.user(7202, first_name="Bea"), name="Bea Smith")
    await _work(bot, 1, "claim", "won")
    sales = fake.group(SALES_CHAT)
    priya = fake.user(PRIYA, first_name="Priya")

    await sales.send_text_as(priya, "/leads won")
    won = await sales.next_message()
    await sales.send_text_as(priya, "/leads <bogus>")
    unknown = await sales.next_message()

    assert "#1 · won · Ada · Analytical Engines" in won.text
    assert "#2" not in won.text
    assert "There is no status “<bogus>”" in unknown.text
    assert "new, claimed, contacted, won, lost, disqualified, nurture" in unknown.text
    assert fake.rejected() == []


async def test_lead_shows_every_answer_and_the_history_of_the_pipeline(fake: FakeTelegram, bot: RunningBot) -> None:
    """After claim, contacted and won: the answers in full, who moved the lead and from what to what."""
    await _qualify_as(fake.user(7203, first_name="Ada", username="ada_l"), company="Analytical <Engines> & Co")
    await _work(bot, 1, "claim", "contacted", "won")
    priya = fake.user(PRIYA, first_name="Priya")

    record = await priya.next_reply("/lead 1")
    missing = await priya.next_reply("/lead 99")

    assert "Lead #1 · won" in record.text
    assert "Company: Analytical <Engines> & Co" in record.text
    assert "E-mail: ada@example.com" in record.text
    assert "Processes: HR & payroll, IT infrastructure" in record.text
    assert "Owner: Priya Raman" in record.text
    assert "answered Company" in record.text
    assert "Priya Raman · new → claimed" in record.text
    assert "Priya Raman · claimed → contacted" in record.text
    assert "Priya Raman · contacted → won" in record.text
    assert "There is no lead #99" in missing.text
    assert fake.rejected() == []


async def test_stats_count_this_weeks_funnel_beside_last_weeks_and_where_prospects_stopped(
    fake: FakeTelegram, database_url: str
) -> None:
    """Last week one lead qualified; this week one qualified, booked, met the expert and was won, and one stopped at
    the company size question."""
    clock = FixedClock(datetime(2026, 11, 17, 10, 0, tzinfo=UTC))
    async with running_bot(fake, database_url, clock=clock) as bot:
        await _qualify_as(fake.user(7301, first_name="Ada"))
        clock.now += timedelta(days=7)
        bea = fake.user(7302, first_name="Bea")
        slot, _ = await _book_first_free_time(bea, await _qualify_as(bea), "London")
        await bea.next_message()
        relay = BookingRelay(bookings=bot.services.booking_store, handoff=bot.services.handoff, clock=clock)
        await relay.relay_due()
        held_until = _utc_start(slot) + timedelta(hours=2)
        clock.now = held_until
        await _work(bot, 2, "claim", "won")
        quitter = fake.user(7303, first_name="Cy")
        await quitter.send_text("/start")
        await quitter.next_message()
        services = await _question(quitter, "Which processes")
        await quitter.press(services, services.button("HR & payroll"))
        await quitter.next_edit(services)
        await quitter.press(services, services.button("Done"))
        await _question(quitter, "How many employees")
        sales = fake.group(SALES_CHAT)

        await sales.send_text_as(fake.user(TOM, first_name="Tom"), "/stats")
        stats = await sales.next_message()

    lines = stats.text.splitlines()
    assert "Started: 2 · 1" in lines
    assert "Completed: 1 · 1" in lines
    assert "Qualified: 1 · 1" in lines
    assert held_until < datetime(2026, 11, 30, tzinfo=UTC)
    assert "Booked: 1 · 0" in lines
    assert "Consultations held: 1 · 0" in lines
    assert "Won: 1 · 0" in lines
    assert "since Mon 23 Nov" in stats.text
    assert "company_size: 1" in lines
    assert fake.rejected() == []


async def test_export_sends_a_csv_that_reads_back_intact_with_formulas_neutralised(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """A company with a formula, commas, quotes and a newline comes back whole, prefixed with an apostrophe."""
    await _qualify_as(fake.user(7401, first_name="Ada"), name="@ada, the countess", company=EVIL_COMPANY)
    await _qualify_as(fake.user(7402, first_name="Bea"), name="Bea Smith")
    priya = fake.user(PRIYA, first_name="Priya")

    document = await priya.next_reply("/export")

    assert document.document is not None
    assert str(document.document["filename"]).endswith(".csv")
    assert "2 leads" in document.text
    rows = list(csv.DictReader(io.StringIO(document.document["content"].decode("utf-8-sig"), newline="")))
    assert [row["lead_id"] for row in rows] == ["1", "2"]
    assert rows[0]["company"] == "'" + EVIL_COMPANY
    assert rows[0]["name"] == "'@ada, the countess"
    assert rows[0]["phone"] == "'+442079460958"
    assert rows[0]["services"] == "HR & payroll, IT infrastructure"
    assert rows[0]["pipeline"] == "new"
    assert rows[1]["company"] == "Analytical Engines"
    assert fake.rejected() == []


async def test_anyone_else_gets_the_prospect_experience_or_a_polite_no_in_the_sales_chat(
    fake: FakeTelegram, bot: RunningBot
) -> None:
    """A prospect's /leads is an unknown command; a stranger's /stats in the sales chat is politely refused."""
    await _start_leads(bot, 1)
    prospect = fake.user(7501, first_name="Mallory")
    sales = fake.group(SALES_CHAT)

    private = await prospect.next_reply("/leads")
    export = await prospect.next_reply("/export")
    await sales.send_text_as(prospect, "/stats")
    group = await sales.next_message()

    assert "I don't know that command" in private.text
    assert "I don't know that command" in export.text
    assert "for the sales team" in group.text
    assert fake.calls_of("sendDocument") == []
    assert fake.rejected() == []


async def test_a_strangers_press_of_a_paging_button_is_refused(fake: FakeTelegram, bot: RunningBot) -> None:
    """Paging buttons in the sales chat answer only staff."""
    await _start_leads(bot, 11)
    sales = fake.group(SALES_CHAT)
    await sales.send_text_as(fake.user(PRIYA, first_name="Priya"), "/leads")
    page = await sales.next_message()
    stranger = fake.user(4242, first_name="Mallory")

    await sales.press_as(stranger, page, page.button("Older"))
    await stranger.wait_for_callback_answers(1)

    assert "for the sales team" in str(stranger.callback_answers()[0]["text"])
    assert page.edits == 0


async def test_the_cli_lists_shows_and_exports_leads_as_csv_and_json(fake: FakeTelegram, bot: RunningBot) -> None:
    """`consultbot leads list|show|export` read the same leads, in process."""
    from bot import staff_cli

    await _qualify_as(fake.user(7601, first_name="Ada"), company=EVIL_COMPANY)
    await _work(bot, 1, "claim")
    reports = bot.services.reports
    parser = argparse.ArgumentParser()
    staff_cli.add_parser(parser.add_subparsers(dest="command"))

    async def run(*argv: str) -> str:
        out = io.StringIO()
        assert await staff_cli.run(parser.parse_args(["leads", *argv]), reports, out) == 0
        return out.getvalue()

    listing = await run("list", "--status", "claimed")
    empty = await run("list", "--status", "won")
    shown = await run("show", "1")
    as_csv = await run("export", "--format", "csv")
    as_json = json.loads(await run("export", "--format", "json"))

    assert "#1 · claimed · Ada" in listing
    assert "No leads in status won" in empty
    assert "Company: " + EVIL_COMPANY in shown
    assert "Priya Raman · new → claimed" in shown
    [row] = list(csv.DictReader(io.StringIO(as_csv, newline="")))
    assert row["company"] == "'" + EVIL_COMPANY
    assert as_json[0]["company"] == EVIL_COMPANY
    assert as_json[0]["pipeline"] == "claimed"
    assert as_json[0]["lead_id"] == 1


def test_a_long_record_is_split_into_messages_within_telegrams_limit(questionnaire: Questionnaire) -> None:
    """Huge answers are cut, hundreds of events spill into further messages, each valid HTML within 4096."""
    at = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    lead = Lead(
        prospect_id=ProspectId(1),
        created_at=at,
        answers={"name": "<Ada> & " + "x" * 5000, "company": "y" * 3000},
        id=LeadId(5),
    )
    events = tuple(LeadEvent(LeadId(5), at, "answered", "prospect", {"question": "name"}) for _ in range(300))
    history = LeadHistory(LeadRecord(lead, Prospect(telegram_user_id=1, first_name="Ada")), events)

    messages = staff_view.lead_record(history, questionnaire, zone="Europe/London")

    assert len(messages) > 1
    assert all(telegram_length(message) <= 4096 for message in messages)
    texts = [parse_telegram_html(message)[0] for message in messages]
    assert "Name: <Ada> & xxx" in texts[0]
    assert sum(text.count("answered Name") for text in texts) == 300
