"""Within the sending limits, through 429 and 5xx storms, in order per chat, quiet to who blocked."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp.client_reqrep import ConnectionKey
from sqlalchemy import select
from telegram.error import BadRequest, Forbidden, NetworkError, TimedOut
from telegram.ext import ExtBot

from bot import cli, update_ledger
from bot.followups import FollowUpSender
from bot.metrics import CountingLimiter, Metrics
from bot.ratelimit import ChatWindows, Limit, SendLimits, SlidingWindow, backoff
from bot.settings import Settings
from bot.telegram_http import POOL_TIMEOUT, AiohttpRequest
from bot.telegram_io import JSONResult, TelegramLimiter, is_sending, surely_not_sent
from bot.workers import ReminderSender
from leads.repository import PROSPECTS
from scheduling.booking_repository import REMINDERS
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram, FakeUser
from tests.harness import RunningBot, running_bot
from tests.test_booking_telegram import _book_first_free_time, _qualify
from tests.test_followups import _rows, _stop_after_first_question


class Ticks:
    """A monotonic clock that only moves when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# The pure windows.


def test_a_private_chat_gets_three_messages_at_once_and_then_one_a_second() -> None:
    """A reply of two or three messages goes at once; a fourth waits until the first is three seconds old."""
    ticks = Ticks()
    window = SlidingWindow(Limit(3, 3.0), ticks)

    waits = [window.reserve() for _ in range(5)]

    assert waits == [0.0, 0.0, 0.0, 3.0, 3.0]


def test_forty_messages_to_a_group_are_spread_so_no_minute_holds_more_than_twenty() -> None:
    """20 a minute: the 21st waits a minute, the 40th is sent a minute after the 20th, never more in 60 s."""
    ticks = Ticks()
    windows = ChatWindows(SendLimits(), ticks)

    moments = [ticks.now + windows.reserve(-1001) for _ in range(40)]

    assert moments[:20] == [1000.0] * 20
    assert moments[20:] == [1060.0] * 20
    assert all(later - earlier >= 60 for earlier, later in zip(moments, moments[20:], strict=False))


def test_a_window_that_waited_lets_the_next_message_go_at_once_after_a_quiet_spell() -> None:
    """After a pause as long as the window, a chat's burst is there again."""
    ticks = Ticks()
    window = SlidingWindow(Limit(3, 3.0), ticks)
    for _ in range(3):
        window.reserve()

    ticks.now += 3.0

    assert [window.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert not window.idle()
    ticks.now += 3.0
    assert window.idle()


def test_groups_and_private_chats_have_their_own_windows() -> None:
    """A full group does not hold up a private chat, nor one private chat another."""
    ticks = Ticks()
    windows = ChatWindows(SendLimits(group=Limit(1, 60.0), private=Limit(1, 1.0)), ticks)

    first = [windows.reserve(chat) for chat in (-1001, 42, 43, "@sales")]
    again = [windows.reserve(chat) for chat in (-1001, 42, 43, "@sales")]

    assert first == [0.0, 0.0, 0.0, 0.0]
    assert again == [60.0, 1.0, 1.0, 60.0]


def test_idle_chats_are_forgotten() -> None:
    """Memory follows the chats that sent lately, not every chat ever written to."""
    ticks = Ticks()
    windows = ChatWindows(SendLimits(), ticks)
    for chat in range(1, 100):
        windows.reserve(chat)
    ticks.now += 10

    for _ in range(ChatWindows.FORGET_EVERY):
        windows.reserve(7)

    assert len(windows) == 1


def test_back_off_doubles_to_its_cap_with_jitter_of_half_either_way() -> None:
    """0.5, 1, 2, 4, 8, 8 s; jitter spreads each between half and one and a half times."""
    delays = [backoff(attempt, first=0.5, longest=8.0, jitter=0.0) for attempt in range(1, 7)]

    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert backoff(3, first=0.5, longest=8.0, jitter=-1.0) == 1.0
    assert backoff(3, first=0.5, longest=8.0, jitter=1.0) == 3.0


def test_only_message_sending_methods_count_against_the_limits() -> None:
    """Sending and editing count; answering a button, polling, typing and start-up calls do not."""
    counted = ["sendMessage", "editMessageText", "copyMessage", "forwardMessage", "sendDocument"]
    free = ["answerCallbackQuery", "getUpdates", "setWebhook", "getMe", "sendChatAction", "deleteMessage"]

    assert [is_sending(m) for m in counted] == [True] * len(counted)
    assert [is_sending(m) for m in free] == [False] * len(free)


def test_settings_default_to_telegram_s_limits() -> None:
    """30 a second overall, 20 a minute to a group, three in three seconds to a private chat."""
    limits = Settings().send_limits

    assert limits == SendLimits(overall=Limit(30, 1.0), group=Limit(20, 60.0), private=Limit(3, 3.0))


def _failure(error: NetworkError, cause: BaseException | None) -> NetworkError:
    error.__cause__ = cause
    return error


_KEY = ConnectionKey("telegram.invalid", 443, True, True, None, None, None)
"""Where aiohttp says it failed to connect to."""


def test_only_failures_before_the_request_reached_telegram_are_surely_not_sent() -> None:
    """5xx and connections never made cannot have delivered; a lost connection or a read timeout may have.

    Both for PTB's default transport (httpx) and for the bot's own (aiohttp, bot/telegram_http.py).
    """
    request = httpx.Request("POST", "http://telegram.invalid/sendMessage")
    surely = [
        _failure(NetworkError("Bad Gateway"), None),
        _failure(NetworkError("httpx.ConnectError: refused"), httpx.ConnectError("refused", request=request)),
        _failure(TimedOut(), httpx.ConnectTimeout("slow", request=request)),
        _failure(TimedOut("Pool timeout: All connections in the connection pool are occupied."), None),
        _failure(TimedOut(POOL_TIMEOUT), TimeoutError()),
        _failure(
            NetworkError("aiohttp.ClientConnectorError"), aiohttp.ClientConnectorError(_KEY, OSError(111, "refused"))
        ),
        _failure(TimedOut(), aiohttp.ConnectionTimeoutError("slow")),
    ]
    maybe = [
        _failure(TimedOut(), httpx.ReadTimeout("slow", request=request)),
        _failure(NetworkError("httpx.RemoteProtocolError: gone"), httpx.RemoteProtocolError("gone")),
        _failure(TimedOut(), None),
        _failure(TimedOut(), aiohttp.SocketTimeoutError("slow")),
        _failure(NetworkError("aiohttp.ServerDisconnectedError"), aiohttp.ServerDisconnectedError()),
        _failure(TimedOut(), TimeoutError()),
    ]

    assert [surely_not_sent(error) for error in surely] == [True] * len(surely)
    assert [surely_not_sent(error) for error in maybe] == [False] * len(maybe)


async def test_a_message_whose_answer_timed_out_is_sent_once_more_only_and_an_edit_until_it_works() -> None:
    """A read timeout may have delivered the message: one more try. An edit, idempotent, is tried up to five times."""
    metrics = Metrics()
    limiter = CountingLimiter(TelegramLimiter(jitter=lambda: -1.0), metrics)
    tries = {"sendMessage": 0, "editMessageText": 0}

    def flaky(endpoint: str, failures: int) -> Callable[[], Coroutine[Any, Any, JSONResult]]:
        async def call() -> JSONResult:
            tries[endpoint] += 1
            if tries[endpoint] <= failures:
                raise _failure(TimedOut(), httpx.ReadTimeout("no answer"))
            return True

        return call

    with pytest.raises(TimedOut):
        await limiter.process_request(flaky("sendMessage", 2), (), {}, "sendMessage", {"chat_id": 42}, None)
    edited = await limiter.process_request(
        flaky("editMessageText", 3), (), {}, "editMessageText", {"chat_id": 42}, None
    )

    assert tries == {"sendMessage": 2, "editMessageText": 4}
    assert edited is True
    assert _errors(metrics) == {("timeout", "sendMessage"): 2, ("timeout", "editMessageText"): 3}


# The limiter on a bot talking to the fake Bot API.


def _errors(metrics: Metrics) -> dict[tuple[str, str], float]:
    """The failed Bot API calls /metrics reports, by (code, method)."""
    return {
        (sample.labels["code"], sample.labels["method"]): sample.value
        for family in metrics.telegram_errors.collect()
        for sample in family.samples
        if sample.name.endswith("_total")
    }


@asynccontextmanager
async def limited_bot(
    fake: FakeTelegram, limiter: TelegramLimiter, metrics: Metrics | None = None
) -> AsyncIterator[ExtBot[None]]:
    """A python-telegram-bot ExtBot with `limiter` (counted, as in production), talking to the fake Bot API over
    the bot's own transport."""
    # As bot/application.py does: RetryAfter in the form PTB's next major version makes the only one.
    os.environ.setdefault("PTB_TIMEDELTA", "true")
    settings = Settings(telegram_bot_token=fake.token, telegram_base_url=fake.url)
    transport = AiohttpRequest(connection_pool_size=16)
    async with ExtBot(
        token=fake.token,
        base_url=settings.bot_api_base_url,
        rate_limiter=CountingLimiter(limiter, metrics or Metrics()),
        request=transport,
    ) as bot:
        yield bot


async def test_forty_cards_to_the_sales_group_stay_within_its_limit_and_in_order(fake: FakeTelegram) -> None:
    """With the group limit lowered to 10 in 0.5 s and the fake enforcing it, 40 messages go without a 429, in order."""
    sales = fake.group(-1001)
    fake.enforce_rate_limits(group=(10, 0.5))
    limiter = TelegramLimiter(limits=SendLimits(group=Limit(10, 0.5)))

    async with limited_bot(fake, limiter) as bot:
        await asyncio.gather(*(bot.send_message(sales.chat_id, f"card {n}") for n in range(40)))

    assert [message.text for message in sales.messages()] == [f"card {n}" for n in range(40)]
    assert fake.rejected() == []
    arrivals = [call.at for call in fake.calls_of("sendMessage")]
    assert all(later - earlier >= 0.45 for earlier, later in zip(arrivals, arrivals[10:], strict=False))


async def test_a_bot_that_sends_too_fast_for_the_fake_waits_out_its_429s_and_loses_nothing(
    fake: FakeTelegram,
) -> None:
    """Unpaced, the fake answers 429 at the 4th message in a chat; each is retried after retry_after, in order."""
    ada = fake.user(4242)
    fake.enforce_rate_limits(private=(3, 1.0))
    limiter = TelegramLimiter(limits=SendLimits(private=Limit(1000, 1.0)))
    metrics = Metrics()

    async with limited_bot(fake, limiter, metrics) as bot:
        await asyncio.gather(*(bot.send_message(ada.chat_id, f"line {n}") for n in range(5)))

    assert [message.text for message in ada.messages()] == [f"line {n}" for n in range(5)]
    assert _errors(metrics)[("429", "sendMessage")] == len(fake.rejected()) >= 1


async def test_502_and_500_answers_are_retried_until_the_message_goes_through(fake: FakeTelegram) -> None:
    """Two Bad Gateways and an Internal Server Error: one message arrives, once; the errors are counted."""
    ada = fake.user(4242)
    fake.fail_next("sendMessage", times=2, status=502)
    limiter = TelegramLimiter(jitter=lambda: -1.0)
    metrics = Metrics()

    async with limited_bot(fake, limiter, metrics) as bot:
        await bot.send_message(ada.chat_id, "hello")
        fake.fail_next("editMessageText", times=1, status=500)
        await bot.edit_message_text("hello again", chat_id=ada.chat_id, message_id=ada.messages()[0].message_id)

    assert [(m.text, m.edits) for m in ada.messages()] == [("hello again", 1)]
    assert [call.status for call in fake.calls_of("sendMessage")] == [502, 502, 200]
    assert _errors(metrics) == {("network", "sendMessage"): 2, ("network", "editMessageText"): 1}


async def test_a_400_is_not_retried(fake: FakeTelegram) -> None:
    """An edit Telegram refuses is refused again: one try, BadRequest to the caller, which has its own fallback."""
    ada = fake.user(4242)
    limiter = TelegramLimiter()
    metrics = Metrics()

    async with limited_bot(fake, limiter, metrics) as bot:
        sent = await bot.send_message(ada.chat_id, "hello")
        fake.refuse_edits(ada.messages()[0])
        with pytest.raises(BadRequest):
            await bot.edit_message_text("hello again", chat_id=ada.chat_id, message_id=sent.message_id)

    assert len(fake.calls_of("editMessageText")) == 1
    assert _errors(metrics) == {("400", "editMessageText"): 1}


async def test_a_403_is_not_retried_and_reports_the_private_chat_as_blocked(fake: FakeTelegram) -> None:
    """The user blocked the bot: one try, Forbidden to the caller, and on_blocked told the chat."""
    ada = fake.user(4242)
    fake.block_bot(ada.chat_id)
    reported: list[int] = []

    async def on_blocked(chat_id: int) -> None:
        reported.append(chat_id)

    async with limited_bot(fake, TelegramLimiter(on_blocked=on_blocked)) as bot:
        with pytest.raises(Forbidden):
            await bot.send_message(ada.chat_id, "hello")

    assert reported == [ada.chat_id]
    assert len(fake.calls_of("sendMessage")) == 1


# The running bot through storms.


async def test_a_429_storm_and_a_5xx_storm_during_questionnaires_lose_and_repeat_nothing(
    fake: FakeTelegram, database_url: str
) -> None:
    """Two prospects answering at once through 429s and 5xx see exactly the messages a calm one saw, in order."""
    calm, bea, cy = fake.user(7001), fake.user(7002), fake.user(7003)
    async with running_bot(fake, database_url):
        await _qualify(calm)
        fake.storm("sendMessage", every=4, retry_after=1)
        fake.storm("editMessageText", every=3, status=502)
        fake.storm("sendMessage", every=5, status=500)

        await asyncio.gather(_qualify(bea), _qualify(cy))

    expected = [(m.text, m.edits) for m in calm.messages()]
    assert [(m.text, m.edits) for m in bea.messages()] == expected
    assert [(m.text, m.edits) for m in cy.messages()] == expected
    statuses = {call.status for call in fake.rejected()}
    assert {429, 502, 500} <= statuses


# Prospects who blocked the bot.


async def _blocked_at(running: RunningBot, telegram_user_id: int) -> object:
    async with running.services.engine.connect() as connection:
        query = select(PROSPECTS.c.blocked_at).where(PROSPECTS.c.telegram_user_id == telegram_user_id)
        return (await connection.execute(query)).scalar_one()


async def _blocks_the_bot(fake: FakeTelegram, running: RunningBot, user: FakeUser) -> None:
    """The user blocks the bot, which learns of it from Telegram's 403 to its next message, then unblocks it unseen."""
    fake.block_bot(user.chat_id)
    with pytest.raises(Forbidden):
        await running.application.bot.send_message(user.chat_id, "Anything new?")
    # Telegram does not tell a bot of an unblock: only the user's next message does.
    fake.unblock_bot(user.chat_id)


async def test_a_prospect_who_blocked_the_bot_gets_no_follow_up_until_they_write_again(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """The 403 marks the prospect; the due nudge is recorded blocked unsent; their next message clears the mark."""
    ada = fake.user(6601, first_name="Ada")
    async with running_bot(fake, database_url, clock=clock) as running:
        await _stop_after_first_question(ada)
        seen = len(ada.messages())
        await _blocks_the_bot(fake, running, ada)
        marked = await _blocked_at(running, ada.chat_id)
        services = running.services
        follow_ups = FollowUpSender(
            store=services.followups,
            bookings=services.booking_store,
            bot=running.application.bot,
            config=services.config,
            clock=clock,
            blocked=services.blocked,
        )

        clock.now += timedelta(hours=25)
        sent = await follow_ups.send_due()
        rows = await _rows(running)
        blocked_before = await services.blocked.is_blocked(ada.chat_id)
        await ada.send_text("/help")
        await ada.next_message()
        blocked_after = await services.blocked.is_blocked(ada.chat_id)
        cleared = await _blocked_at(running, ada.chat_id)

    assert marked == clock.now - timedelta(hours=25)
    assert sent == 0
    assert [(row["kind"], row["status"], row["last_error"]) for row in rows] == [
        ("unfinished", "blocked", "not sent: the prospect blocked the bot")
    ]
    assert len(ada.messages()) == seen + 1
    assert blocked_before
    assert not blocked_after
    assert cleared is None


async def test_writing_again_lifts_a_block_even_once_the_ledger_has_forgotten_the_message(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """The unblocking message is pruned from the update ledger days later; the prospect stays unblocked."""
    ada = fake.user(6603, first_name="Ada")
    async with running_bot(fake, database_url, clock=clock) as running:
        await _stop_after_first_question(ada)
        await _blocks_the_bot(fake, running, ada)
        clock.now += timedelta(minutes=5)
        await ada.send_text("/help")
        await ada.next_message()

        clock.now += update_ledger.KEEP + timedelta(days=1)
        forgotten = await cli.forget_old_updates(running.services)
        blocked = await running.services.blocked.is_blocked(ada.chat_id)
        mark = await _blocked_at(running, ada.chat_id)

    assert forgotten >= 1
    assert not blocked
    assert mark is None


async def test_a_prospect_who_blocked_the_bot_gets_no_reminder_of_their_consultation(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Booked, then blocked: the reminder due an hour before is recorded blocked and nothing is sent."""
    ada = fake.user(6602, first_name="Ada", last_name="Lovelace")
    async with running_bot(fake, database_url, clock=clock) as running:
        outcome = await _qualify(ada)
        await _book_first_free_time(ada, outcome, "Berlin")
        await ada.next_message()
        seen = len(ada.messages())
        await _blocks_the_bot(fake, running, ada)
        services = running.services
        reminders = ReminderSender(
            store=services.booking_store,
            bot=running.application.bot,
            config=services.config,
            experts=services.config.experts,
            clock=clock,
            blocked=services.blocked,
        )
        (booking,) = await services.bookings.upcoming_for(1)

        clock.now = booking.starts_at - timedelta(hours=1)
        sent = await reminders.send_due()
        async with services.engine.connect() as connection:
            rows = (await connection.execute(select(REMINDERS.c.status, REMINDERS.c.last_error))).all()

    assert sent == 0
    assert ("blocked", "not sent: the prospect blocked the bot") in [tuple(row) for row in rows]
    assert len(ada.messages()) == seen
