"""Production serving: Telegram's webhook, /healthz, /readyz and /metrics on the bot's HTTP server, over real HTTP."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot import serving, web
from bot.application import BotApplication, build_application
from bot.config import BUNDLED_EXAMPLE, ConfigError, load_config
from bot.metrics import Metrics
from bot.settings import Settings, load_settings
from bot.wiring import Services, open_services, sync_policy
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram
from tests.harness import BotProcess
from tests.test_privacy import PERSONAL, _qualify_with_every_detail

WEBHOOK_URL = "https://bot.example.com/telegram/webhook"
SECRET = "s3cret-Token_for-tests"
STARTUP = 30.0
"""Seconds a fresh `consultbot run` process may take to import, migrate and start."""


@dataclass
class ServingBot:
    """The bot in webhook mode in this process, and where its HTTP server listens."""

    application: BotApplication
    services: Services
    url: str

    @property
    def webhook(self) -> str:
        """The webhook's local address (Telegram knows it as WEBHOOK_URL)."""
        return f"{self.url}/telegram/webhook"


@asynccontextmanager
async def serving_bot(
    fake: FakeTelegram, database_url: str, clock: Callable[[], datetime]
) -> AsyncIterator[ServingBot]:
    """The bot as `consultbot run` serves it with WEBHOOK_URL set, on a free port and a clock tests may set."""
    settings = Settings(
        telegram_bot_token=fake.token,
        telegram_base_url=fake.url,
        database_url=database_url,
        http_port=0,
        webhook_url=WEBHOOK_URL,
        webhook_secret=SECRET,
    )
    async with open_services(settings, load_config(BUNDLED_EXAMPLE), clock=clock) as services:
        metrics = Metrics()
        application = build_application(settings, services, metrics=metrics)
        intake = serving.Intake(application, SECRET)
        server = await web.start_feed_server(
            settings, services, extend=serving.routes(settings, services, metrics, intake)
        )
        try:
            async with application:
                await application.start()
                await serving.register_webhook(application.bot, settings)
                try:
                    yield ServingBot(application, services, server.url)
                finally:
                    await application.stop()
        finally:
            await server.stop()


async def _post(url: str, body: Any, headers: dict[str, str] | None = None) -> int:
    async with aiohttp.ClientSession() as session, session.post(url, json=body, headers=headers) as response:
        return response.status


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def _count(services: Services, table: str) -> int:
    async with services.engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM {table}"))).scalar_one())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_updates_posted_with_the_secret_are_answered(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """The bot registers its webhook with the secret token, and an update posted with it gets its reply."""
    ada = fake.user(4242, first_name="Ada")
    async with serving_bot(fake, database_url, clock) as bot:
        await ada.send_text("/start website")
        statuses = await fake.deliver_webhook(bot.webhook)
        await ada.next_message()
        question = await ada.next_message()

    assert fake.webhook_url == WEBHOOK_URL
    assert fake.webhook_secret_token == SECRET
    assert statuses == [200]
    assert "Which processes" in question.text


async def test_webhook_requests_without_or_with_a_wrong_secret_are_refused_and_change_nothing(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """No secret, a wrong one, or one differing in a character: 403, nothing stored and nothing sent."""
    ada = fake.user(4242, first_name="Ada")
    async with serving_bot(fake, database_url, clock) as bot:
        update = await ada.send_text("/start")
        refused = [
            await _post(bot.webhook, update),
            await _post(bot.webhook, update, {serving.SECRET_HEADER: "wrong"}),
            await _post(bot.webhook, update, {serving.SECRET_HEADER: SECRET[:-1] + "X"}),
            await _post(bot.webhook, update, {serving.SECRET_HEADER: ""}),
        ]
        await bot.application.update_queue.join()
        stored = [await _count(bot.services, table) for table in ("prospects", "leads", "conversations")]

    assert refused == [403, 403, 403, 403]
    assert stored == [0, 0, 0]
    assert fake.calls_of("sendMessage") == []


async def test_a_webhook_body_that_is_not_an_update_is_a_bad_request(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Garbage, a JSON array, no update_id or a malformed message: 400, with the right secret too."""
    headers = {serving.SECRET_HEADER: SECRET, "Content-Type": "application/json"}
    async with serving_bot(fake, database_url, clock) as bot, aiohttp.ClientSession() as session:
        statuses = []
        for body in (b"{not json", b"[1, 2]", b'{"message": {}}', b'{"update_id": 1, "message": "hello"}'):
            async with session.post(bot.webhook, data=body, headers=headers) as response:
                statuses.append(response.status)

    assert statuses == [400, 400, 400, 400]
    assert fake.calls_of("sendMessage") == []


async def test_healthz_says_ok_and_readyz_reports_each_check(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """Alive at once; ready once the feeds are read; not ready, naming why, when a feed is stale or a migration due."""
    async with serving_bot(fake, database_url, clock) as bot:
        alive = await _get(f"{bot.url}/healthz")
        before_sync = await _get(f"{bot.url}/readyz")
        await bot.services.calendar_sync.sync()
        ready = await _get(f"{bot.url}/readyz")
        clock.now += sync_policy(bot.services.config).stale_after + timedelta(minutes=1)
        stale = await _get(f"{bot.url}/readyz")
        clock.now -= sync_policy(bot.services.config).stale_after + timedelta(minutes=1)
        async with bot.services.engine.begin() as connection:
            await connection.execute(text("UPDATE alembic_version SET version_num = '0005'"))
        behind = await _get(f"{bot.url}/readyz")

    assert alive == (200, "ok")
    assert before_sync[0] == 503
    assert '"feeds": "stale: ' in before_sync[1]
    assert ready[0] == 200
    assert '"ready": true' in ready[1]
    assert stale[0] == 503
    assert '"database": "ok"' in stale[1]
    assert '"feeds": "stale: amelia#' in stale[1]
    assert behind[0] == 503
    assert '"migrations": "pending: ' in behind[1]


async def test_metrics_count_updates_by_kind_and_show_leads_and_feeds(
    fake: FakeTelegram, database_url: str, clock: FixedClock
) -> None:
    """/metrics is Prometheus text: a message counted and timed, the lead by status, each feed's age, the outbox."""
    ada = fake.user(4242, first_name="Ada")
    async with serving_bot(fake, database_url, clock) as bot:
        await bot.services.calendar_sync.sync()
        await ada.send_text("/start website")
        await fake.deliver_webhook(bot.webhook)
        await ada.next_message()
        await bot.application.update_queue.join()
        status, body = await _get(f"{bot.url}/metrics")

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }
    assert status == 200
    assert samples[("consultbot_updates_total", (("kind", "message"),))] == 1
    assert samples[("consultbot_update_handling_seconds_count", (("kind", "message"),))] == 1
    assert samples[("consultbot_leads", (("status", "in_progress"),))] == 1
    ages = [value for (name, _), value in samples.items() if name == "consultbot_feed_sync_age_seconds"]
    assert len(ages) == 3
    assert all(age == 0 for age in ages)
    assert "consultbot_outbox_messages" in body
    assert "consultbot_telegram_api_errors" in body


def test_a_webhook_url_without_a_secret_or_with_an_unusable_one_stops_start_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WEBHOOK_URL needs WEBHOOK_SECRET in Telegram's alphabet; the error names the variable, never the value."""
    monkeypatch.setenv("WEBHOOK_URL", WEBHOOK_URL)
    with pytest.raises(ConfigError) as missing:
        load_settings()
    monkeypatch.setenv("WEBHOOK_SECRET", "has spaces and a $ign")
    with pytest.raises(ConfigError) as unusable:
        load_settings()
    monkeypatch.setenv("WEBHOOK_URL", "http://bot.example.com/hook")
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    with pytest.raises(ConfigError) as plain_http:
        load_settings()

    assert "WEBHOOK_SECRET" in str(missing.value)
    assert "WEBHOOK_SECRET" in str(unusable.value)
    assert "$ign" not in str(unusable.value)
    assert "WEBHOOK_URL" in str(plain_http.value)


@pytest.mark.slow
async def test_consultbot_run_with_a_webhook_url_takes_updates_on_the_configured_port(
    fake: FakeTelegram, database_url: str
) -> None:
    """`consultbot run` with WEBHOOK_URL sets the webhook, answers Telegram's posts, and stops cleanly on SIGTERM."""
    port = _free_port()
    ada = fake.user(4242, first_name="Ada")
    process = BotProcess(fake, database_url, WEBHOOK_URL=WEBHOOK_URL, WEBHOOK_SECRET=SECRET, HTTP_PORT=str(port))
    await process.start()
    try:
        await ada.send_text("/start website")
        for _ in range(int(STARTUP * 10)):
            if fake.webhook_url:
                break
            await asyncio.sleep(0.1)
        statuses = await fake.deliver_webhook(f"http://127.0.0.1:{port}/telegram/webhook")
        await ada.next_message(timeout=STARTUP)
        question = await ada.next_message()
    finally:
        status = await process.stop(signal.SIGTERM)

    assert statuses == [200]
    assert "Which processes" in question.text
    assert fake.calls_of("getUpdates") == []
    assert status == 0
    assert SECRET not in process.logged
    assert fake.token not in process.logged
    assert "Traceback" not in process.logged


@pytest.mark.slow
async def test_sigterm_lets_the_update_in_hand_finish_and_exits_0(fake: FakeTelegram, database_url: str) -> None:
    """A SIGTERM while a reply is on its way: the reply is still sent, and the process exits 0 within the grace."""
    ada = fake.user(4242, first_name="Ada")
    process = BotProcess(fake, database_url, SHUTDOWN_GRACE_SECONDS="15")
    await process.start()
    await fake.wait_for_long_poll(timeout=STARTUP)
    fake.delay("sendMessage", 1.0)
    await ada.send_text("/start website")
    await fake.wait_for_call_in_flight("sendMessage")

    status = await process.stop(signal.SIGTERM, grace=15)

    assert status == 0
    assert [call.ok for call in fake.calls_of("sendMessage")] == [True, True]
    assert "Which processes" in ada.messages()[-1].text
    assert "Traceback" not in process.logged


@pytest.mark.slow
async def test_an_update_outlasting_the_grace_period_does_not_hold_the_process(
    fake: FakeTelegram, database_url: str
) -> None:
    """With SHUTDOWN_GRACE_SECONDS=1 and a reply that takes far longer, SIGTERM still ends the process promptly."""
    ada = fake.user(4242, first_name="Ada")
    process = BotProcess(fake, database_url, SHUTDOWN_GRACE_SECONDS="1")
    await process.start()
    await fake.wait_for_long_poll(timeout=STARTUP)
    fake.delay("sendMessage", 30.0)
    await ada.send_text("/start website")
    await fake.wait_for_call_in_flight("sendMessage")

    status = await process.stop(signal.SIGTERM, grace=10)

    assert status == 0
    assert "1 update(s) still in hand after 1 s were cancelled" in process.logged
    assert "Traceback" not in process.logged


@pytest.mark.slow
async def test_json_logs_carry_the_update_chat_and_lead_ids_and_no_personal_data(
    fake: FakeTelegram, database_url: str
) -> None:
    """LOG_FORMAT=json: every line is a JSON object with its ids; nothing the prospect typed appears at INFO."""
    ada = fake.user(4242, first_name="Ada", last_name="Lovelace", username="ada_l")
    process = BotProcess(fake, database_url, LOG_FORMAT="json")
    await process.start()
    try:
        await fake.wait_for_long_poll(timeout=STARTUP)
        await _qualify_with_every_detail(ada)
    finally:
        status = await process.stop(signal.SIGTERM)

    entries = [json.loads(line) for line in process.logged.splitlines() if line.strip()]
    handled = [entry for entry in entries if entry["message"].startswith("handled ")]
    assert status == 0
    assert all({"ts", "level", "logger", "message"} <= entry.keys() for entry in entries)
    assert handled
    assert all(entry["chat_id"] == 4242 and isinstance(entry["update_id"], int) for entry in handled)
    assert {entry.get("lead_id") for entry in handled} - {None}
    for personal in (*PERSONAL, "Ada"):
        assert personal not in process.logged, f"{personal!r} was logged"
