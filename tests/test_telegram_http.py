"""The bot's transport to the Bot API (bot/telegram_http.py) when the network fails: PTB's errors, and whether the
request can have reached Telegram (which decides whether the limiter may send a message again).

What it shares with PTB's own transport, statuses, uploads, long polls, runs in tests/test_fake_telegram.py on
both; these are the failures that only real sockets produce.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from telegram import Bot
from telegram.error import NetworkError, TimedOut

from bot.telegram_http import AiohttpRequest
from bot.telegram_io import surely_not_sent
from tests.fake_telegram import FakeTelegram


@asynccontextmanager
async def bot_on(base_url: str, request: AiohttpRequest) -> AsyncIterator[Bot]:
    """A PTB Bot carried by `request`, without the getMe of Bot.initialize (the server may be unreachable)."""
    await request.initialize()
    try:
        yield Bot("123456:TEST-TOKEN", base_url=f"{base_url}/bot", request=request)
    finally:
        await request.shutdown()


def _closed_port() -> int:
    """A local port nobody listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_a_refused_connection_is_a_network_error_that_never_reached_telegram() -> None:
    """Nothing listens: PTB's NetworkError, and the message may safely be sent again."""
    async with bot_on(f"http://127.0.0.1:{_closed_port()}", AiohttpRequest(connection_pool_size=1)) as bot:
        with pytest.raises(NetworkError) as raised:
            await bot.send_message(1001, "hello")

    assert not isinstance(raised.value, TimedOut)
    assert surely_not_sent(raised.value)


async def test_a_connection_dropped_after_the_request_was_written_may_have_delivered_it() -> None:
    """The server reads the request and hangs up: a NetworkError, and the message may have gone out."""
    received = asyncio.Event()

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        received.set()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, bot_on(f"http://127.0.0.1:{port}", AiohttpRequest(connection_pool_size=1)) as bot:
        with pytest.raises(NetworkError) as raised:
            await bot.send_message(1001, "hello")

    assert received.is_set()
    assert not surely_not_sent(raised.value)


async def test_an_answer_slower_than_the_read_timeout_is_timed_out_and_may_have_been_delivered(
    fake: FakeTelegram,
) -> None:
    """Telegram has the message but answers late: TimedOut, not known to be unsent."""
    ada = fake.user(1001, first_name="Ada")
    fake.delay("sendMessage", 2.0)
    async with bot_on(fake.url, AiohttpRequest(connection_pool_size=1, read_timeout=0.3)) as bot:
        with pytest.raises(TimedOut) as raised:
            await bot.send_message(ada.chat_id, "hello")

    assert not surely_not_sent(raised.value)


async def test_a_request_that_finds_no_free_connection_in_time_is_timed_out_and_never_sent(
    fake: FakeTelegram,
) -> None:
    """One pooled connection, held by a slow call: the next call gives up waiting for it and never leaves."""
    ada = fake.user(1001, first_name="Ada")
    fake.delay("sendMessage", 1.0)
    async with bot_on(fake.url, AiohttpRequest(connection_pool_size=1, pool_timeout=0.2)) as bot:
        slow = asyncio.create_task(bot.send_message(ada.chat_id, "first"))
        await fake.wait_for_call_in_flight("sendMessage")
        with pytest.raises(TimedOut) as raised:
            await bot.send_message(ada.chat_id, "second")
        await slow

    assert surely_not_sent(raised.value)
    assert [message.text for message in ada.messages()] == ["first"]


async def test_a_shut_down_transport_refuses_calls_until_initialised_again(fake: FakeTelegram) -> None:
    """After shutdown (the Application stopping) no call goes out; initialise again and calls work."""
    ada = fake.user(1001, first_name="Ada")
    request = AiohttpRequest(connection_pool_size=1)
    async with bot_on(fake.url, request) as bot:
        await request.shutdown()
        # PTB wraps the transport's refusal as it would any failure of the HTTP library.
        with pytest.raises(NetworkError, match="not initialized"):
            await bot.send_message(ada.chat_id, "while shut down")
        await request.initialize()
        await bot.send_message(ada.chat_id, "after")

    assert [message.text for message in ada.messages()] == ["after"]
