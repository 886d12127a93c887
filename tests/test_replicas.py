"""Several replicas on one database: each update handled once, one chat at a time, feeds fetched once a round."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.engine import make_url
from telegram import Update

from bot import database
from bot.application import BotApplication, build_application
from bot.config import BUNDLED_EXAMPLE, load_config
from bot.settings import Settings
from bot.update_ledger import UPDATES, UpdateLedger
from bot.wiring import Services, open_services
from leads.repository import LEADS
from scheduling.feeds import DEFAULT_LIMITS, FetchResult, Validators, feed_session, fetch_feed
from scheduling.model import Expert, WorkingHours
from scheduling.repository import SqlAvailabilityStore
from scheduling.service import CalendarSync, SyncPolicy
from tests.calendar_servers import FeedServer, calendar_with_event
from tests.fake_telegram import FakeTelegram, FakeUser, SentMessage
from tests.harness import RunningBot
from tests.test_telegram_conversation import _answer_contact_details_and_confirm, _answer_up_to_contact_details

Route = Callable[[dict[str, Any]], Sequence[int]]
"""Which replicas (by index) an update is delivered to."""


class DispatchingTelegram(FakeTelegram):
    """The fake Bot API, delivering each update straight to the replicas `route` picks, as a load balancer would."""

    def __init__(self) -> None:
        super().__init__()
        self.replicas: list[BotApplication] = []
        self.route: Route = lambda update: [0]

    def enqueue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        update = super().enqueue_update(kind, payload)
        for index in self.route(update):
            application = self.replicas[index]
            application.update_queue.put_nowait(Update.de_json(update, application.bot))
        return update


@pytest.fixture
async def dispatching() -> AsyncIterator[DispatchingTelegram]:
    """A fake Bot API whose updates nobody polls: the test routes them to replicas."""
    server = DispatchingTelegram()
    await server.start()
    yield server
    await server.stop()


@asynccontextmanager
async def replicas(fake: DispatchingTelegram, database_url: str, count: int) -> AsyncIterator[list[RunningBot]]:
    """`count` bots in this process on one database, each handling the updates routed to it (none polls)."""
    settings = Settings(telegram_bot_token=fake.token, telegram_base_url=fake.url, database_url=database_url)
    async with AsyncExitStack() as stack:
        running = []
        # One after another: each brings the schema up to date on start-up.
        for _ in range(count):
            services = await stack.enter_async_context(open_services(settings, load_config(BUNDLED_EXAMPLE)))
            application = build_application(settings, services)
            await stack.enter_async_context(application)
            await application.start()
            stack.push_async_callback(application.stop)
            running.append(RunningBot(application, services))
        fake.replicas = [replica.application for replica in running]
        yield running


POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
"""Several replicas share PostgreSQL; SQLite is the single-process default, so these tests run on PostgreSQL alone
(and, like every PostgreSQL test, fail rather than skip in CI when it is unreachable)."""


async def _question(user: FakeUser, expected: str) -> SentMessage:
    message = await user.next_screen()
    assert expected in message.text, f"expected a message with {expected!r}, got {message.text!r}"
    return message


async def _qualify(user: FakeUser) -> SentMessage:
    await user.send_text("/start")
    await _question(user, "")
    await _answer_up_to_contact_details(user)
    return await _answer_contact_details_and_confirm(user)


async def _nothing_more(user: FakeUser) -> None:
    """The bot sends the user nothing further."""
    with pytest.raises(TimeoutError):
        await user.next_message(timeout=0.5)


async def _completed_leads(services: Services) -> list[tuple[int, datetime | None]]:
    async with services.engine.connect() as connection:
        rows = await connection.execute(select(LEADS.c.prospect_id, LEADS.c.completed_at))
        return [(row.prospect_id, row.completed_at) for row in rows]


@POSTGRESQL_ONLY
async def test_twenty_questionnaires_over_two_replicas_each_complete_once_without_a_duplicate_reply(
    dispatching: DispatchingTelegram, database_url: str
) -> None:
    """Updates go to a random replica, a fifth of them to both: every prospect gets each reply once, one lead each."""
    chance = random.Random(7)
    dispatching.route = lambda update: [0, 1] if chance.random() < 0.2 else [chance.randrange(2)]
    prospects = [dispatching.user(7000 + n, first_name=f"Prospect {n}") for n in range(20)]

    async with replicas(dispatching, database_url, 2) as (first, _):
        outcomes = await asyncio.gather(*(_qualify(prospect) for prospect in prospects))
        for prospect in prospects:
            await _nothing_more(prospect)
        leads = await _completed_leads(first.services)

    assert len(outcomes) == 20
    assert len(leads) == 20
    assert len({prospect for prospect, _ in leads}) == 20
    assert all(completed is not None for _, completed in leads)
    assert dispatching.rejected() == []


@POSTGRESQL_ONLY
async def test_two_quick_presses_of_confirm_on_two_replicas_complete_the_lead_once(
    dispatching: DispatchingTelegram, database_url: str
) -> None:
    """Confirm pressed twice in quick succession, each press on another replica: one outcome, one lead."""
    ada = dispatching.user(7100, first_name="Ada")

    async with replicas(dispatching, database_url, 2) as (first, _):
        await ada.send_text("/start")
        await ada.next_screen()
        await _answer_up_to_contact_details(ada)
        for expected, reply in (
            ("full name", "Ada Lovelace"),
            ("company called", "Analytical Engines Ltd"),
            ("e-mail", "ada@example.com"),
        ):
            await _question(ada, expected)
            await ada.send_text(reply)
        phone = await _question(ada, "phone number")
        await ada.press(phone, phone.button("Skip"))
        summary = await _question(ada, "Please check your answers")
        dispatching.route = lambda update: [0]
        await ada.press(summary, summary.button("Confirm"))
        dispatching.route = lambda update: [1]
        await ada.press(summary, summary.button("Confirm"))
        outcome = await ada.next_message()
        await _nothing_more(ada)
        leads = await _completed_leads(first.services)

    assert "E-mail" not in outcome.text
    assert len(leads) == 1
    assert leads[0][1] is not None


async def test_an_update_delivered_twice_is_answered_once(dispatching: DispatchingTelegram, database_url: str) -> None:
    """The same update (same update_id) redelivered, to the same replica or another: one reply."""
    ada = dispatching.user(7200, first_name="Ada")
    count = 2 if make_url(database_url).get_backend_name() == "postgresql" else 1
    dispatching.route = lambda update: [0, count - 1, 0]

    async with replicas(dispatching, database_url, count):
        await ada.send_text("/start")
        await ada.next_message()
        question = await ada.next_message()
        await _nothing_more(ada)

    assert "Which processes" in question.text


async def test_an_update_whose_handler_died_is_handled_again_once_its_lease_runs_out(
    dispatching: DispatchingTelegram, database_url: str
) -> None:
    """A replica claimed /start and died: while its lease lasts the redelivery waits; after it, it is answered."""
    ada, bob = dispatching.user(7300, first_name="Ada"), dispatching.user(7301, first_name="Bob")
    dispatching.route = lambda update: []

    async with replicas(dispatching, database_url, 1) as (bot,):
        services = bot.services
        crashed = UpdateLedger(services.engine, locks=None, clock=lambda: datetime.now(UTC) - timedelta(minutes=5))
        lasting = UpdateLedger(services.engine, locks=None, clock=lambda: datetime.now(UTC))
        expired = await ada.send_text("/start")
        in_hand = await bob.send_text("/start")
        assert await crashed.claim(expired["update_id"], chat_id=ada.chat_id)
        assert await lasting.claim(in_hand["update_id"], chat_id=bob.chat_id)
        for update in (expired, in_hand):
            bot.application.update_queue.put_nowait(Update.de_json(update, bot.application.bot))

        await ada.next_message()
        question = await ada.next_message()
        await _nothing_more(bob)

    assert "Which processes" in question.text


async def test_an_update_claimed_before_a_restart_is_handled_by_the_restarted_bot_at_once(
    dispatching: DispatchingTelegram, database_url: str
) -> None:
    """Killed mid-update and started again: the redelivered update is handled without waiting for the lease."""
    ada = dispatching.user(7350, first_name="Ada")
    dispatching.route = lambda update: []
    start = await ada.send_text("/start")
    engine = database.create_engine(database_url)
    await database.upgrade(engine)
    assert await UpdateLedger(engine, locks=None, clock=lambda: datetime.now(UTC)).claim(
        start["update_id"], chat_id=ada.chat_id
    )
    await engine.dispose()

    async with replicas(dispatching, database_url, 1) as (bot,):
        bot.application.update_queue.put_nowait(Update.de_json(start, bot.application.bot))
        await ada.next_message()
        question = await ada.next_message()

    assert "Which processes" in question.text


async def test_a_press_shown_before_its_replica_died_is_not_shown_twice_when_redelivered(
    dispatching: DispatchingTelegram, database_url: str
) -> None:
    """Killed after its edit reached Telegram but before recording the press done: the redelivery sends no copy."""
    ada = dispatching.user(7360, first_name="Ada")
    async with replicas(dispatching, database_url, 1) as (bot,):
        await ada.send_text("/start")
        await ada.next_message()
        services = await ada.next_message()
        await ada.press(services, services.button("Data processing"))
        await ada.next_edit(services)
        done = await ada.press(services, services.button("Done"))
        size = await ada.next_screen()
        shown = len(ada.messages())
        edits = len(dispatching.calls_of("editMessageText"))
        await _as_if_its_handler_died(bot.services, done["update_id"])

        bot.application.update_queue.put_nowait(Update.de_json(done, bot.application.bot))
        await _until(lambda: len(dispatching.calls_of("editMessageText")) > edits)
        await _nothing_more(ada)

    assert "How many employees" in size.text
    assert len(ada.messages()) == shown
    assert ada.messages()[-1].text == size.text
    # Handled again, not dropped: it showed the screen again, which Telegram found already there.
    assert "message is not modified" in (dispatching.calls_of("editMessageText")[-1].error or "")


async def _as_if_its_handler_died(services: Services, update_id: int) -> None:
    """The ledger as a replica killed mid-update leaves it: claimed under a lease that has run out, not done."""
    lapsed = datetime.now(UTC) - timedelta(minutes=1)
    async with services.engine.begin() as connection:
        await connection.execute(
            update(UPDATES)
            .where(UPDATES.c.update_id == update_id)
            .values(status="handling", done_at=None, leased_until=lapsed)
        )


async def _until(condition: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    async with asyncio.timeout(timeout):
        while not condition():  # noqa: ASYNC110 - the fake records calls; nothing to wait on
            await asyncio.sleep(0.01)


async def test_old_updates_are_forgotten(dispatching: DispatchingTelegram, database_url: str) -> None:
    """Pruning forgets updates received longer ago than kept, and remembers the recent ones."""
    async with replicas(dispatching, database_url, 1) as (bot,):
        engine = bot.services.engine
        old = UpdateLedger(engine, locks=None, clock=lambda: datetime.now(UTC) - timedelta(days=3))
        await old.claim(1, chat_id=None)
        await bot.services.ledger.claim(2, chat_id=None)

        forgotten = await bot.services.ledger.prune()
        again = await bot.services.ledger.claim(1, chat_id=None)

    assert forgotten == 1
    assert again


async def _terminate_connections(database_url: str) -> int:
    """pg_terminate_backend on every other connection to the database; how many."""
    url = make_url(database_url)
    connection = await asyncpg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        rows = await connection.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await connection.close()
    return len(rows)


@POSTGRESQL_ONLY
async def test_the_bot_carries_on_when_its_database_connections_are_cut_mid_questionnaire(
    fake: FakeTelegram, bot: RunningBot, database_url: str
) -> None:
    """pg_terminate_backend on all the bot's connections, twice: every later answer is taken, none lost."""
    ada = fake.user(7400, first_name="Ada")
    await ada.send_text("/start")
    await ada.next_message()
    services = await _question(ada, "Which processes")
    await ada.press(services, services.button("HR & payroll"))
    await ada.next_edit(services)

    cut = await _terminate_connections(database_url)
    await ada.press(services, services.button("Done"))
    size = await _question(ada, "How many employees")
    await ada.press(size, size.button("250–999"))
    await _question(ada, "how many full-time people")
    await _terminate_connections(database_url)
    await ada.send_text("40")
    timeline = await _question(ada, "When would you like")
    leads = await _completed_leads(bot.services)

    assert cut > 0
    assert "Question 4" in timeline.text
    assert len(leads) == 1


@POSTGRESQL_ONLY
async def test_an_answer_whose_transaction_loses_its_connection_midway_is_taken_on_a_new_one(
    fake: FakeTelegram, bot: RunningBot, database_url: str
) -> None:
    """The bot's transaction is inside the database (waiting on the conversation's row) when its connection is
    terminated: the answer is applied on a fresh connection, once, and the prospect is not asked to try again."""
    ada = fake.user(7450, first_name="Ada")
    await ada.send_text("/start")
    await ada.next_message()
    services = await _question(ada, "Which processes")
    url = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
    holder = await asyncpg.connect(url)
    try:
        holding = holder.transaction()
        await holding.start()
        await holder.execute("SELECT 1 FROM conversations FOR UPDATE")
        await ada.press(services, services.button("HR & payroll"))
        waiting = await _eventually_waiting_on_a_lock(holder)
        await holder.execute("SELECT pg_terminate_backend($1)", waiting)
        await holding.rollback()
    finally:
        await holder.close()
    ticked = [label for label, _ in (await ada.next_edit(services)).buttons()]
    await ada.press(services, services.button("Done"))
    size = await _question(ada, "How many employees")

    assert "✅ HR & payroll" in ticked
    assert "Question 2" in size.text
    assert not [m for m in ada.messages() if "went wrong" in m.text]


async def _eventually_waiting_on_a_lock(watcher: asyncpg.Connection) -> int:
    """The pid of the bot's backend once it waits on a row lock held by `watcher`."""
    for _ in range(100):
        pid = await watcher.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        if pid is not None:
            return int(pid)
        await asyncio.sleep(0.05)
    raise AssertionError("the bot's transaction never waited on the conversation's row")


async def test_two_syncs_on_one_database_fetch_each_feed_once(database_url: str) -> None:
    """Two replicas' calendar syncs in the same round: each feed is fetched by one of them, whichever is first."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    engine = database.create_engine(database_url)
    await database.upgrade(engine)
    transactions = database.store_engine(engine)
    async with FeedServer() as server, feed_session(limits=DEFAULT_LIMITS) as session:
        feeds = [
            server.publish(f"f{n}", calendar_with_event(f"e{n}", "Steering", start, start + timedelta(hours=1)))
            for n in range(5)
        ]

        async def fetch(location: str, validators: Validators) -> FetchResult:
            return await fetch_feed(session, location, validators=validators, limits=DEFAULT_LIMITS)

        expert = Expert(
            key="amelia",
            name="Amelia Hughes",
            role="Principal consultant",
            timezone="Europe/London",
            calendars=tuple(feeds),
            hours=WorkingHours.office_hours(),
        )
        policy = SyncPolicy(horizon=timedelta(days=14), stale_after=timedelta(hours=24))
        syncs = [
            CalendarSync(
                store=SqlAvailabilityStore(transactions),
                fetch=fetch,
                experts=[expert],
                policy=policy,
                clock=lambda: datetime.now(UTC),
            )
            for _ in range(2)
        ]
        await syncs[0].configure()

        reports = await asyncio.gather(*(sync.sync(unless_tried_within=timedelta(minutes=5)) for sync in syncs))
        stored = await syncs[1].feeds()

    await engine.dispose()
    if isinstance(transactions, Engine):
        transactions.dispose()
    assert sorted(len(server.requests_to(f"/feeds/f{n}")) for n in range(5)) == [1] * 5
    assert sum(len(report) for report in reports) == 5
    assert all(feed.last_success_at is not None and feed.busy_intervals == 1 for feed in stored)
