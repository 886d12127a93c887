"""Two `consultbot run` replicas in webhook mode on one PostgreSQL, fed as Telegram feeds them: prospects answer the
questionnaire and book, each update to a random replica and some to both; one replica killed mid-way; storms of 429
and 5xx. Every reply, booking, reminder and CRM event exactly once.

MULTI_REPLICA_PROSPECTS sets how many prospects each test runs (default 100, as the issue's acceptance asks: about
a minute and a half for both tests on two cores; fewer for a quick local run). To see what the replicas logged, set
MULTI_REPLICA_LOGS to a directory (and MULTI_REPLICA_LOG_LEVEL=INFO for every update).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import socket
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from bot import texts
from tests.fake_telegram import ApiCall, FakeTelegram, FakeUser, SentMessage
from tests.harness import BotProcess
from tests.test_crm_webhooks import SECRET as CRM_SECRET
from tests.test_crm_webhooks import Receiver, SkewedClock, _config
from tests.test_lead_cards import SALES_CHAT

PROSPECTS = int(os.environ.get("MULTI_REPLICA_PROSPECTS", "100"))
WEBHOOK_URL = "https://bot.example.com/telegram/webhook"
WEBHOOK_SECRET = "multi-replica_secret-token"
STARTUP = 60.0
"""Seconds a replica may take to start (import, migrate, register its webhook) on a busy machine."""
REPLY = 60.0
"""Seconds a prospect waits for a reply: generous, as two bots and the test share a machine with other runs."""
SAME_SCREEN = 10.0
"""Seconds a prospect waits before taking a booking screen that did not change as the answer to their press."""
NEAREST_REMINDER = 60
"""Minutes before a consultation of the bundled configuration's last reminder."""
WORKERS = 90.0
"""Seconds to wait for the workers (reminders every 30 s, relay, CRM and lead cards every 5 s) to finish."""


@dataclass
class Replica:
    """One `consultbot run` process and its webhook's local address."""

    process: BotProcess
    port: int

    @property
    def webhook(self) -> str:
        return f"http://127.0.0.1:{self.port}/telegram/webhook"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


POSTGRESQL_ONLY = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
"""Several replicas share PostgreSQL; SQLite is the single-process default."""


async def _the_nearest_reminders_fall_due(database_url: str) -> int:
    """Time passes for the reminders: each consultation's nearest one is due now (the others stay ahead); how many."""
    engine = create_async_engine(database_url)
    try:
        async with engine.begin() as connection:
            moved = await connection.execute(
                text("UPDATE reminders SET due_at = now() - interval '1 second' WHERE before_minutes = :nearest"),
                {"nearest": NEAREST_REMINDER},
            )
    finally:
        await engine.dispose()
    return int(moved.rowcount)


async def _healthy(port: int) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(STARTUP * 10)):
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"no replica answered on port {port} within {STARTUP}s")


@asynccontextmanager
async def _replicas(fake: FakeTelegram, database_url: str, config: Path, count: int) -> AsyncIterator[list[Replica]]:
    """`count` replicas of `consultbot run` in webhook mode, started one after another (each migrates first)."""
    async with AsyncExitStack() as stack:
        replicas = []
        for _ in range(count):
            port = _free_port()
            process = BotProcess(
                fake,
                database_url,
                WEBHOOK_URL=WEBHOOK_URL,
                WEBHOOK_SECRET=WEBHOOK_SECRET,
                HTTP_PORT=str(port),
                CONSULTBOT_CONFIG=str(config),
                CRM_WEBHOOK_SECRET=CRM_SECRET,
                LOG_LEVEL=os.environ.get("MULTI_REPLICA_LOG_LEVEL", "WARNING"),
                LOG_FORMAT="json",
                # A replica killed mid-update holds its updates this long: short, so the test need not wait a minute.
                UPDATE_LEASE_SECONDS="5",
            )
            await process.start()
            stack.push_async_callback(_stop, process)
            await _healthy(port)
            replicas.append(Replica(process, port))
        for _ in range(int(STARTUP * 10)):
            if fake.webhook_url:
                break
            await asyncio.sleep(0.1)
        yield replicas


async def _stop(process: BotProcess) -> None:
    await process.stop(signal.SIGTERM, grace=30)
    if os.environ.get("MULTI_REPLICA_LOGS"):
        Path(os.environ["MULTI_REPLICA_LOGS"], f"replica-{process.pid}.log").write_text(process.logged)  # noqa: ASYNC240
    assert "Traceback" not in process.logged, process.logged[-3000:]


@asynccontextmanager
async def _dispatching(fake: FakeTelegram, replicas: Sequence[Replica], *, seed: int) -> AsyncIterator[None]:
    """Telegram delivering updates to the replicas: each to a random one, a fifth of them to two at once."""
    dispatcher = asyncio.create_task(
        fake.dispatch_webhooks([replica.webhook for replica in replicas], duplicate_ratio=0.2, rng=random.Random(seed))
    )
    try:
        yield
    finally:
        dispatcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dispatcher


# --- A prospect's side ------------------------------------------------------------------------------------------


_LAST_SCREEN: dict[int, str] = {}
"""Each prospect's last screen read: a replica killed after replying but before recording the update may have the
survivor show it again, right after itself (at least once); a person reads past it, and so does the script. The
run without a crash still compares every chat call for call with the reference, so no repeat passes there."""


async def _screen(user: FakeUser, expected: str) -> SentMessage:
    message = await user.next_screen(timeout=REPLY)
    if message.text == _LAST_SCREEN.get(user.id) and expected not in message.text:
        message = await user.next_screen(timeout=REPLY)
    _LAST_SCREEN[user.id] = message.text
    assert expected in message.text, f"expected {expected!r}, got {message.text!r}"
    return message


async def _qualify(user: FakeUser, number: int) -> SentMessage:
    """The whole questionnaire, qualified, with this prospect's own contact details; the outcome message."""
    await user.send_text("/start website")
    await _screen(user, "Meridian Outsourcing")
    services = await _screen(user, "Which processes")
    await user.press(services, services.button("HR & payroll"))
    await user.next_edit(services, timeout=REPLY)
    await user.press(services, services.button("IT infrastructure"))
    await user.next_edit(services, timeout=REPLY)
    await user.press(services, services.button("Done"))
    for expected, button in (("How many employees", "250–999"),):
        question = await _screen(user, expected)
        await user.press(question, question.button(button))
    await _screen(user, "how many full-time people")
    await user.send_text(str(10 + number % 90))
    for expected, button in (
        ("When would you like", "In 1–3 months"),
        ("monthly budget", "$20,000–100,000"),
        ("your role", "VP / Director"),
        ("delivery model", "Hybrid"),
    ):
        question = await _screen(user, expected)
        await user.press(question, question.button(button))
    for expected, typed in (
        ("full name", f"Prospect {number}"),
        ("company called", f"Company {number}"),
        ("e-mail", f"prospect{number}@example.com"),
    ):
        await _screen(user, expected)
        await user.send_text(typed)
    phone = await _screen(user, "phone number")
    await user.press(phone, phone.button("Skip"))
    summary = await _screen(user, "Please check your answers")
    await user.press(summary, summary.button("Confirm"))
    return await _screen(user, "great fit")


async def _book(user: FakeUser, outcome: SentMessage, number: int) -> SentMessage:
    """Pick London, a day and a time that depend on the prospect's number, and book; again if someone was first."""
    await user.press(outcome, outcome.button("London"))
    screen = await user.next_screen(timeout=REPLY)
    later = number % 3
    for attempt in range(30):
        buttons = screen.buttons()
        if texts.plain(texts.BOOKED) in screen.text:
            return screen
        if "Please confirm your consultation" in screen.text:
            data = screen.button("Book it")
        elif any(value.startswith("tm:") for _, value in buttons):
            times = [value for _, value in buttons if value.startswith("tm:")]
            data = times[(number // 3 + attempt) % len(times)]
        elif any(value.startswith("dy:") for _, value in buttons):
            pages = [value for _, value in buttons if value.startswith("pg:")]
            days = [value for _, value in buttons if value.startswith("dy:")]
            if later and pages:
                # Another page of days: the same text with other buttons, an edit rather than a new screen.
                later -= 1
                await user.press(screen, pages[-1])
                await user.next_edit(screen, timeout=REPLY)
                continue
            data = days[(number + attempt) % len(days)]
        else:
            raise AssertionError(f"prospect {number}: unexpected screen {screen.describe()}")
        await user.press(screen, data)
        try:
            screen = await user.next_screen(timeout=SAME_SCREEN)
        except TimeoutError:
            # A day whose last times went meanwhile shows the same "no longer free" screen again, which Telegram
            # refuses as not modified: nothing changes on screen, so the prospect picks again from it.
            continue
    raise AssertionError(f"prospect {number} did not get a booking in 30 presses")


async def _qualify_and_book(user: FakeUser, number: int) -> None:
    booked = await _book(user, await _qualify(user, number), number)
    invite = await user.next_message(timeout=REPLY)
    assert "Your consultation is booked" in booked.text
    assert invite.document is not None


# --- What the bots did ------------------------------------------------------------------------------------------


@dataclass
class Stored:
    """What the database holds after the run."""

    leads: list[tuple[int, dict[str, Any], datetime | None]]
    """(Telegram user id, answers, completed at) of each lead."""
    bookings: list[tuple[int, str, datetime, datetime, datetime, datetime, int | None]]
    """(id, expert, starts, ends, blocked from, blocked until, chat) of each confirmed consultation."""
    reminders: Counter[tuple[int, str]]
    """How many reminders of each (booking, status)."""
    crm_events: list[str]
    """Idempotency keys of the CRM outbox entries."""


async def _stored(database_url: str) -> Stored:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as connection:
            leads = (
                await connection.execute(
                    text(
                        "SELECT p.telegram_user_id, l.answers, l.completed_at FROM leads l"
                        " JOIN prospects p ON p.id = l.prospect_id"
                    )
                )
            ).all()
            bookings = (
                await connection.execute(
                    text(
                        "SELECT id, expert_key, starts_at, ends_at, blocked_from, blocked_until, chat_id FROM bookings"
                        " WHERE status = 'confirmed'"
                    )
                )
            ).all()
            reminders = (await connection.execute(text("SELECT booking_id, status FROM reminders"))).all()
            crm = (await connection.execute(text("SELECT idempotency_key FROM outbox WHERE destination = 'crm'"))).all()
    finally:
        await engine.dispose()
    return Stored(
        leads=[(row[0], row[1], row[2]) for row in leads],
        bookings=[tuple(row) for row in bookings],
        reminders=Counter((row[0], row[1]) for row in reminders),
        crm_events=[row[0] for row in crm],
    )


def _reminders_sent(user: FakeUser) -> int:
    return sum(message.text.startswith("⏰ Reminder") for message in user.messages())


async def _eventually(condition: Any, timeout: float, what: Callable[[], str] | str) -> None:  # noqa: ASYNC109
    for _ in range(int(timeout * 4)):
        if await condition():
            return
        await asyncio.sleep(0.25)
    raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")


def _chat_log(fake: FakeTelegram, chat_id: int) -> list[str]:
    """What the bot did in a chat, in order: each message sent or edited (its first line) and each buttons edit."""
    log = []
    for call in fake.calls:
        if call.ok and call.method in CHAT_METHODS and call.params.get("chat_id") == chat_id:
            first_line = str(call.params.get("text", "")).splitlines()[0] if call.params.get("text") else ""
            log.append(f"{call.method}: {first_line}")
    return log


CHAT_METHODS = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendDocument"})


def _reference_chat(fake: FakeTelegram, users: Sequence[FakeUser]) -> list[str]:
    """The first prospect's chat up to the questionnaire's outcome: every other prospect's must read the same."""
    log = _chat_log(fake, users[0].id)
    outcome = next(number for number, line in enumerate(log) if "great fit" in line)
    return log[: outcome + 1]


def _assert_conversations(fake: FakeTelegram, users: Sequence[FakeUser], *, crashed: bool = False) -> None:
    """Each prospect got the questionnaire's replies once each and in order, then one confirmation and one invite.

    After a crash (`crashed`), an update the dead replica had replied to but not yet recorded as done is handled
    again, and its reply shown again: a screen may come twice in a row, and the confirmation twice; never one out
    of order, never one missing.
    """
    reference = _shown(_reference_chat(fake, users), crashed=crashed)
    most = 2 if crashed else 1
    for user in users:
        log = _shown(_chat_log(fake, user.id), crashed=crashed)
        assert log[: len(reference)] == reference, f"chat {user.id}: {log}"
        assert 1 <= sum("Your consultation is booked" in line for line in log) <= most, f"chat {user.id}: {log}"
        assert 1 <= sum(line.startswith("sendDocument") for line in log) <= most, f"chat {user.id}: {log}"


def _shown(log: list[str], *, crashed: bool) -> list[str]:
    """The chat's log, with a screen shown again right after itself taken once when a crash may have caused it."""
    return [line for number, line in enumerate(log) if not (crashed and number and log[number - 1] == line)]


def _assert_bookings(stored: Stored, users: Sequence[FakeUser]) -> None:
    """One confirmed consultation per prospect, and no expert in two at once (buffers included)."""
    chats = Counter(chat for *_, chat in stored.bookings)
    assert sorted(chat or 0 for chat in chats) == sorted(user.id for user in users)
    assert set(chats.values()) == {1}
    by_expert: dict[str, list[tuple[datetime, datetime]]] = {}
    for _, expert, _, _, blocked_from, blocked_until, _ in stored.bookings:
        by_expert.setdefault(expert, []).append((blocked_from, blocked_until))
    for expert, spans in by_expert.items():
        spans.sort()
        for (_, first_end), (second_start, _) in itertools.pairwise(spans):
            assert first_end <= second_start, f"{expert} has overlapping consultations"


def _assert_leads(stored: Stored, users: Sequence[FakeUser]) -> None:
    """A completed lead per prospect with every answer that prospect gave."""
    assert sorted(user for user, _, _ in stored.leads) == sorted(user.id for user in users)
    for user_id, answers, completed_at in stored.leads:
        number = user_id - FIRST_USER
        assert completed_at is not None
        values = {
            key: value.get("value", value) if isinstance(value, dict) else value for key, value in answers.items()
        }
        assert str(values["email"]).endswith(f"prospect{number}@example.com"), values
        assert str(values["name"]) == f"Prospect {number}", values
        assert str(values["team_size"]) == str(10 + number % 90), values
        assert {"services", "company_size", "timeline", "budget", "role", "delivery", "company"} <= values.keys()


FIRST_USER = 810_000
STORMS = {429, 500, 502}
"""What the storms answer."""


async def _run_prospects(fake: FakeTelegram, count: int) -> list[FakeUser]:
    users = [fake.user(FIRST_USER + number, first_name=f"Prospect {number}") for number in range(count)]
    _LAST_SCREEN.clear()
    await asyncio.gather(*(_qualify_and_book(user, number) for number, user in enumerate(users)))
    return users


def _rejected(fake: FakeTelegram) -> list[ApiCall]:
    """Calls Telegram refused, but for a lead card edited to what it already shows.

    A lead's card shows the lead as it is now: two replicas that each claimed one of a lead's card jobs in the
    same moment both show that, and the second edit is "not modified" (which the card poster takes as done).
    """
    return [
        call
        for call in fake.rejected()
        if not (call.params.get("chat_id") == SALES_CHAT and "not modified" in (call.error or ""))
    ]


def _storm_or_redone(call: ApiCall) -> bool:
    """A storm's answer, or Telegram's refusal of a call made again by an update handled again after the crash.

    An update the killed replica had in hand is handled again by the other: its button may have been answered
    already ("query is too old") and its screen shown already ("not modified"); the bot takes both quietly.
    """
    redone = ("query is too old", "message is not modified")
    return call.status in STORMS or (call.status == 400 and any(reason in (call.error or "") for reason in redone))


# --- The tests ----------------------------------------------------------------------------------------------------


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A CRM that verifies signatures and counts every delivery of each event."""
    crm = Receiver(SkewedClock())
    await crm.up()
    yield crm
    await crm.down()


@pytest.mark.slow
@POSTGRESQL_ONLY
async def test_prospects_over_two_replicas_with_duplicate_deliveries_get_everything_exactly_once(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """Questionnaire and booking through two replicas, a fifth of the updates delivered to both: every reply,
    booking, lead card, reminder and CRM event exactly once, and no expert booked twice at a time."""
    sales = fake.group(SALES_CHAT)
    config = _config(tmp_path, receiver.url)

    async with _replicas(fake, database_url, config, 2) as replicas, _dispatching(fake, replicas, seed=7):
        users = await _run_prospects(fake, PROSPECTS)
        due = await _the_nearest_reminders_fall_due(database_url)

        async def workers_done() -> bool:
            reminded = sum(_reminders_sent(user) for user in users)
            return reminded >= due and len(receiver.events) >= 2 * PROSPECTS and len(sales.messages()) >= PROSPECTS

        await _eventually(
            workers_done,
            WORKERS,
            lambda: (
                f"every reminder ({sum(_reminders_sent(user) for user in users)} of {due}), "
                f"CRM event ({len(receiver.events)} of {2 * PROSPECTS}), lead card ({len(sales.messages())})"
            ),
        )
        await asyncio.sleep(6)  # a round more of the relay, CRM and card workers: anything twice would show now
        stored = await _stored(database_url)

    duplicated = [post for post in fake.webhook_posts if post[2] == 200]
    _assert_conversations(fake, users)
    _assert_leads(stored, users)
    _assert_bookings(stored, users)
    assert due == PROSPECTS
    assert [_reminders_sent(user) for user in users] == [1] * PROSPECTS
    assert sum(count for (_, status), count in stored.reminders.items() if status == "sent") == PROSPECTS
    assert Counter(receiver.types()) == {"lead.qualified": PROSPECTS, "booking.created": PROSPECTS}
    assert sorted(receiver.arrivals) == sorted(receiver.events) == sorted(stored.crm_events)
    assert len(sales.messages()) == PROSPECTS
    assert len(duplicated) > len({update_id for update_id, _, _ in duplicated}), "some updates went to both"
    assert _rejected(fake) == []


@pytest.mark.slow
@POSTGRESQL_ONLY
async def test_a_replica_killed_mid_way_leaves_the_other_to_finish_every_conversation_through_storms(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """SIGKILL to one replica while prospects answer, 429 and 5xx storms from Telegram: every prospect still gets
    every reply once and in order, and a consultation; what the dead replica had in hand is redelivered."""
    fake.group(SALES_CHAT)
    config = _config(tmp_path, receiver.url)

    async with _replicas(fake, database_url, config, 2) as replicas, _dispatching(fake, replicas, seed=11):
        fake.storm("sendMessage", every=9, retry_after=1)
        fake.storm("editMessageText", every=7, status=502)
        fake.storm("answerCallbackQuery", every=11, status=500)
        prospects = asyncio.create_task(_run_prospects(fake, PROSPECTS))
        # Mid-way: once a third of the prospects' questionnaires are through.
        await _eventually(
            lambda: _true(sum(call.ok for call in fake.calls_of("sendMessage")) >= 5 * PROSPECTS),
            REPLY,
            "a third of the questionnaires answered",
        )
        killed = replicas[0].process
        os.kill(killed.pid, signal.SIGKILL)
        users = await prospects
        fake.calm()
        stored = await _stored(database_url)

    refused_by_the_dead = [post for post in fake.webhook_posts if post[1] == 0 and post[2] != 200]
    _assert_conversations(fake, users, crashed=True)
    _assert_leads(stored, users)
    _assert_bookings(stored, users)
    assert refused_by_the_dead, "updates were posted to the killed replica after it died and went to the other"
    assert len(receiver.arrivals) == len(set(receiver.arrivals)), "no CRM event twice"
    assert all(_reminders_sent(user) <= 1 for user in users)
    assert [(call.method, call.error) for call in _rejected(fake) if not _storm_or_redone(call)] == []


async def _true(value: bool) -> bool:
    return value
