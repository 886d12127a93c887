"""Conversations and leads kept in the database, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from leads import flow
from leads.handoff import HandoffRules, QualifiedHandoff
from leads.model import LeadId, Questionnaire
from leads.pipeline import StaffMember, route
from leads.records import LeadEvent
from leads.repository import LEADS, SqlLeadStore
from leads.service import Ignored, QualificationService, Turn, Visitor
from leads.tables import LeadEventRow
from tests.conftest import FixedClock

ADA = Visitor(telegram_user_id=4242, first_name="Ada", last_name="Lovelace", username="ada", language_code="en")
QUALIFYING_ANSWERS = [
    "1, 3",  # services: HR & payroll, IT infrastructure
    "3",  # company size: 250–999
    "40",  # team size
    "2",  # timeline: 1–3 months
    "3",  # budget: $20,000–100,000
    "2",  # role: VP / Director
    "4",  # delivery: hybrid
    "Ada Lovelace",
    "Analytical Engines Ltd",
    "ada@example.com",
    "+44 20 7946 0958",
]


def _service(engine: AsyncEngine | Engine, questionnaire: Questionnaire, clock: FixedClock) -> QualificationService:
    store = SqlLeadStore(engine)
    return QualificationService(store=store, questionnaire=questionnaire, clock=clock)


async def _answer_all(service: QualificationService, chat_key: str, answers: list[str], first_update: int) -> Turn:
    turn: Turn | Ignored | None = None
    for offset, text in enumerate(answers):
        turn = await service.respond(chat_key=chat_key, given=flow.Typed(text), update_id=first_update + offset)
        assert isinstance(turn, Turn)
        assert turn.reply.problem is None, f"{text!r} was refused: {turn.reply.problem}"
    assert isinstance(turn, Turn)
    return turn


async def test_a_completed_questionnaire_is_stored_as_a_qualified_lead_with_reasons_and_audit_trail(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """Sales find the lead with its answers, score, reasons, source and the events that led there."""
    service = _service(store_engine, questionnaire, clock)
    started = await service.begin(chat_key="tg:4242", visitor=ADA, source="website", update_id=1)
    assert isinstance(started, Turn)

    await _answer_all(service, "tg:4242", QUALIFYING_ANSWERS, first_update=2)
    finished = await service.respond(chat_key="tg:4242", given=flow.Confirm(), update_id=100)

    assert isinstance(finished, Turn)
    assert finished.finished
    summary = await service.lead_summary(started.lead_id)
    assert summary is not None
    assert summary.outcome == "qualified"
    assert summary.score == 95
    assert summary.source == "website"
    assert summary.prospect.username == "ada"
    assert ("E-mail", "ada@example.com") in summary.answers
    assert ("Phone", "+442079460958") in summary.answers
    assert ("Processes", "HR & payroll, IT infrastructure") in summary.answers
    assert "Decision maker" in [reason.text for reason in summary.reasons]
    async with SqlLeadStore(store_engine).transaction() as tx:
        events = await tx.events(started.lead_id)
    kinds = [event.kind for event in events]
    assert kinds[0] == "started"
    assert kinds.count("answered") == len(QUALIFYING_ANSWERS)
    assert kinds[-2:] == ["completed", "qualified"]
    assert events[-1].detail["score"] == 95


async def test_a_new_process_continues_the_conversation_at_the_same_question(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """Conversation state lives in the database, so a restarted bot asks the next question, answers kept."""
    first_process = _service(store_engine, questionnaire, clock)
    await first_process.begin(chat_key="tg:4242", visitor=ADA, update_id=1)
    await _answer_all(first_process, "tg:4242", QUALIFYING_ANSWERS[:4], first_update=2)

    second_process = _service(store_engine, questionnaire, clock)
    resumed = await second_process.begin(chat_key="tg:4242", visitor=ADA, update_id=10)

    assert isinstance(resumed, Turn)
    assert resumed.resumed
    assert isinstance(resumed.reply.screen, flow.Prompt)
    assert resumed.reply.screen.question.key == "budget"
    assert resumed.reply.state.answers["team_size"] == 40
    assert resumed.reply.state.answers["services"] == ("hr", "it_infra")


async def test_a_redelivered_update_is_applied_only_once(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """Telegram may deliver an update twice; the second copy must not answer the next question too, and shows the
    question now due again (its replica may have died before replying)."""
    service = _service(store_engine, questionnaire, clock)
    await service.begin(chat_key="tg:4242", visitor=ADA, update_id=1)
    await service.respond(chat_key="tg:4242", given=flow.Typed("1"), update_id=2)
    await service.respond(chat_key="tg:4242", given=flow.Typed("3"), update_id=3)

    again = await service.respond(chat_key="tg:4242", given=flow.Typed("3"), update_id=3)

    assert isinstance(again, Turn)
    assert isinstance(again.reply.screen, flow.Prompt)
    assert again.reply.screen.question.key == "team_size"
    assert await service.respond(chat_key="tg:4242", given=flow.Typed("3"), update_id=2) is Ignored.DUPLICATE
    resumed = await service.begin(chat_key="tg:4242", visitor=ADA, update_id=4)
    assert isinstance(resumed, Turn)
    assert isinstance(resumed.reply.screen, flow.Prompt)
    assert resumed.reply.screen.question.key == "team_size"


async def test_answers_arriving_together_for_one_chat_are_both_kept(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """Two updates of one chat handled at once queue on the conversation row instead of losing one."""
    service = _service(store_engine, questionnaire, clock)
    await service.begin(chat_key="tg:4242", visitor=ADA, update_id=1)
    await service.respond(chat_key="tg:4242", given=flow.Typed("1"), update_id=2)

    await asyncio.gather(
        service.respond(chat_key="tg:4242", given=flow.Typed("3"), update_id=3),
        service.respond(chat_key="tg:4242", given=flow.Typed("3"), update_id=4),
    )

    resumed = await service.begin(chat_key="tg:4242", visitor=ADA, update_id=5)
    assert isinstance(resumed, Turn)
    # Whichever came first answered the company size, the other the team size: nothing was lost.
    assert resumed.reply.state.answers["company_size"] == "250_999"
    assert resumed.reply.state.answers["team_size"] == 3
    async with engine.connect() as connection:
        answered = await connection.scalar(
            select(func.count()).select_from(LeadEventRow).where(col(LeadEventRow.kind) == "answered")
        )
    assert answered == 3


async def test_free_text_with_emoji_right_to_left_script_markup_and_nul_is_stored_intact(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """Whatever a prospect types comes back exactly (less control characters PostgreSQL refuses)."""
    service = _service(store_engine, questionnaire, clock)
    started = await service.begin(chat_key="tg:4242", visitor=ADA, update_id=1)
    assert isinstance(started, Turn)
    await _answer_all(service, "tg:4242", QUALIFYING_ANSWERS[:7], first_update=2)
    name = "شركة 🚀 <b>x</b> & Co\x00"

    await _answer_all(service, "tg:4242", [name, "Tiny & <i>Co</i>"], first_update=20)
    resumed = await _service(store_engine, questionnaire, clock).begin(chat_key="tg:4242", visitor=ADA, update_id=30)

    assert isinstance(resumed, Turn)
    assert resumed.reply.state.answers["name"] == "شركة 🚀 <b>x</b> & Co"
    assert resumed.reply.state.answers["company"] == "Tiny & <i>Co</i>"


async def test_cancelling_closes_the_lead_and_start_afterwards_opens_a_new_one(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """/cancel ends the lead as cancelled; coming back later is a new lead, not the old answers."""
    service = _service(store_engine, questionnaire, clock)
    first = await service.begin(chat_key="tg:4242", visitor=ADA, update_id=1)
    assert isinstance(first, Turn)
    await service.respond(chat_key="tg:4242", given=flow.Typed("1"), update_id=2)

    cancelled = await service.cancel(chat_key="tg:4242", update_id=3)
    after_cancel = await service.respond(chat_key="tg:4242", given=flow.Typed("3"), update_id=4)
    second = await service.begin(chat_key="tg:4242", visitor=ADA, update_id=5)

    assert cancelled
    assert after_cancel is Ignored.NO_CONVERSATION
    assert isinstance(second, Turn)
    assert second.lead_id != first.lead_id
    assert second.reply.state.answers == {}
    old = await service.lead_summary(LeadId(first.lead_id))
    assert old is not None
    assert old.status == "cancelled"


async def test_a_transaction_left_without_commit_keeps_nothing_and_holds_no_lock(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """An update that stores nothing (a duplicate, a refused answer) leaves the conversation as it was, unlocked."""
    service = _service(store_engine, questionnaire, clock)
    started = await service.begin(chat_key="tg:4242", visitor=ADA, update_id=1)
    assert isinstance(started, Turn)

    async with SqlLeadStore(store_engine).transaction() as tx:
        conversation = await tx.conversation_for_chat("tg:4242")
        assert conversation is not None
        conversation.last_update_id = 99
        await tx.save_conversation(conversation)
        await tx.add_event(LeadEvent(started.lead_id, clock(), "answered", "prospect", {"question": "services"}))

    async with asyncio.timeout(10):  # a lock left behind would make this wait
        answered = await service.respond(chat_key="tg:4242", given=flow.Typed("1"), update_id=2)
    assert isinstance(answered, Turn)  # not a duplicate of update 99
    async with SqlLeadStore(store_engine).transaction() as tx:
        assert [event.kind for event in await tx.events(started.lead_id)] == ["started", "answered"]


async def test_an_update_cancelled_while_it_waits_for_the_chat_leaves_no_lock_behind(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """Cancelling an update queued behind another of the same chat (at shutdown, say) ends its transaction."""
    store = SqlLeadStore(store_engine)  # one store, so that on SQLite both queue on its lock
    service = QualificationService(store=store, questionnaire=questionnaire, clock=clock)
    await service.begin(chat_key="tg:4242", visitor=ADA, update_id=1)

    async with store.transaction() as tx:
        await tx.conversation_for_chat("tg:4242")
        waiting = asyncio.create_task(service.respond(chat_key="tg:4242", given=flow.Typed("1"), update_id=2))
        await asyncio.sleep(0.2)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await tx.commit()

    async with asyncio.timeout(10):
        answered = await service.respond(chat_key="tg:4242", given=flow.Typed("1"), update_id=3)
    assert isinstance(answered, Turn)
    assert answered.reply.state.answers["services"] == ("hr",)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # a server connection to lose
async def test_a_connection_lost_mid_update_is_not_handed_out_again(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """A PostgreSQL connection that dies in a transaction fails that update only, not later ones too."""
    store = SqlLeadStore(store_engine)
    service = QualificationService(store=store, questionnaire=questionnaire, clock=clock)
    await service.begin(chat_key="tg:4242", visitor=ADA, update_id=1)

    async with store.transaction() as tx:
        await tx.conversation_for_chat("tg:4242")
        async with engine.connect() as other:
            await other.execute(
                sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND state = 'idle in transaction'"
                )
            )
        await asyncio.sleep(0.2)  # for the closed socket to reach the driver

    # The pool hands out its connections in turn: the dead one would come up within these answers.
    await _answer_all(service, "tg:4242", QUALIFYING_ANSWERS[:4], first_update=2)


async def test_qualified_leads_are_routed_to_sales_reps_in_turn(
    store_engine: AsyncEngine | Engine, engine: AsyncEngine, questionnaire: Questionnaire, clock: FixedClock
) -> None:
    """Round robin: each new qualified lead goes to the rep who has gone longest without one, never-routed first."""
    reps = (StaffMember(1, "Priya Raman"), StaffMember(2, "Tom Becker"))
    rules = HandoffRules(staff=reps, routing="round_robin")
    service = QualificationService(
        store=SqlLeadStore(store_engine, one_writer=None),
        questionnaire=questionnaire,
        clock=clock,
        on_completed=QualifiedHandoff(rules=rules, questionnaire=questionnaire, clock=clock),
    )
    for number in range(3):
        chat_key = f"tg:{5000 + number}"
        visitor = Visitor(telegram_user_id=5000 + number, first_name=f"Prospect {number}")
        await service.begin(chat_key=chat_key, visitor=visitor, update_id=1)
        await _answer_all(service, chat_key, QUALIFYING_ANSWERS, first_update=2)
        await service.respond(chat_key=chat_key, given=flow.Confirm(), update_id=100)
        clock.now += timedelta(minutes=1)

    query = select(LEADS.c.routed_user_id).order_by(LEADS.c.id)
    async with engine.connect() as connection:
        routed = [row.routed_user_id for row in await connection.execute(query)]

    assert routed == [1, 2, 1]


def test_routing_by_service_prefers_the_reps_whose_lines_match_and_takes_them_in_turn() -> None:
    """By service: a back-office lead goes to the back-office reps in turn; a lead nobody covers goes to anyone."""
    priya = StaffMember(1, "Priya", ("back_office",))
    tom = StaffMember(2, "Tom", ("front_office",))
    ana = StaffMember(3, "Ana", ("hr",))
    lines = {"hr": "back_office", "payments": "front_office", "lpo": "lpo"}
    earlier = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)

    def routed(services: tuple[str, ...], last: dict[int, datetime]) -> str | None:
        found = route((priya, tom, ana), "by_service", services=services, service_lines=lines, last_routed=last)
        return None if found is None else found.name

    assert routed(("hr",), {}) == "Priya"
    assert routed(("hr",), {1: earlier}) == "Ana"
    assert routed(("hr",), {1: earlier, 3: earlier + timedelta(minutes=1)}) == "Priya"
    assert routed(("payments",), {2: earlier}) == "Tom"
    assert routed(("lpo",), {1: earlier, 2: earlier}) == "Ana"
    assert route((priya, tom), "none", services=("hr",), service_lines=lines, last_routed={}) is None
