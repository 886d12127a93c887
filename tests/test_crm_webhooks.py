"""CRM webhooks against a real local receiver that checks signatures the way the README tells CRMs to, on both
databases: retries through an outage and a restart, dead letters and `consultbot outbox`, and a CRM that hangs
while a prospect books."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bot import cli
from bot.config import BUNDLED_EXAMPLE, ConfigError
from bot.crm import (
    LONGEST_RETRY,
    CrmDeliverer,
    judge,
    retry_delay,
    sign,
    verify,
    webhook_secret,
)
from bot.relay import BookingRelay
from bot.settings import Settings
from bot.wiring import utc_now
from leads.outbox import OutboxMessage, enqueue
from tests.fake_telegram import FakeTelegram
from tests.harness import BotProcess, RunningBot, running_bot
from tests.test_booking_telegram import _book_on_the_last_day_shown, _qualify
from tests.test_console import _consultbot
from tests.test_lead_cards import PRIYA, SALES_CHAT, _poster
from tests.test_restart import STARTUP

SECRET = "whsec-test-4f1c9a"
README = Path(__file__).parent.parent / "README.md"
CALENDARS = BUNDLED_EXAMPLE.parent / "calendars"
EVERY_KIND = ["lead.qualified", "lead.status_changed", "booking.created", "booking.rescheduled", "booking.cancelled"]


def readme_verifier() -> Callable[..., bool]:
    """The verification snippet of the README's CRM section, as a CRM would paste it."""
    section = README.read_text(encoding="utf-8").split("## CRM webhooks", 1)[1]
    [snippet] = re.findall(r"```python\n(.*?)```", section.split("\n## ", 1)[0], flags=re.DOTALL)
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)
    verifier: Callable[..., bool] = namespace["verify_consultbot_signature"]
    return verifier


class SkewedClock:
    """The real clock, moved ahead by the test: back-off waits pass at once, and everyone agrees on the time."""

    def __init__(self) -> None:
        self.skew = timedelta()

    def __call__(self) -> Any:
        return utc_now() + self.skew

    def advance(self, by: timedelta) -> None:
        self.skew += by


class Receiver:
    """A CRM endpoint: refuses connections while down, can hang or fail, verifies signatures with the README's
    snippet, and keeps each event once by its idempotency key."""

    def __init__(self, clock: SkewedClock) -> None:
        self._clock = clock
        self._verify = readme_verifier()
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.status = 200
        self.hang = False
        self.hanging = 0
        self.hung = asyncio.Event()
        """Set once a request is held open."""
        self.events: dict[str, dict[str, Any]] = {}
        self.arrivals: list[str] = []
        """Every idempotency key that came with a good signature, repeats included."""
        self.refused_signatures = 0
        self.arrived = asyncio.Event()
        """Set once an event is accepted."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/consultbot"

    async def up(self) -> None:
        """Listen (again on the same port, after `down`)."""
        app = web.Application()
        app.router.add_post("/hooks/consultbot", self._hook)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.1, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def down(self) -> None:
        """Stop listening: connections are refused."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.hang:
            self.hanging += 1
            self.hung.set()
            await asyncio.Event().wait()
        header = request.headers.get("Consultbot-Signature", "")
        if not self._verify(SECRET.encode(), header, body, now=self._clock().timestamp()):
            self.refused_signatures += 1
            return web.Response(status=401)
        if self.status != 200:
            return web.Response(status=self.status)
        key = request.headers["Idempotency-Key"]
        event = json.loads(body)
        assert event["id"] == key
        assert request.headers["Consultbot-Event"] == event["type"]
        self.arrivals.append(key)
        self.events.setdefault(key, event)
        self.arrived.set()
        return web.Response(status=204)

    def types(self) -> list[str]:
        return [event["type"] for event in self.events.values()]


def _config(tmp_path: Path, url: str, *, max_attempts: int = 12) -> Path:
    text = BUNDLED_EXAMPLE.read_text(encoding="utf-8").replace('"calendars/', f'"{CALENDARS}/')
    text = text.replace('# webhook_url = "https://crm.example.com/hooks/consultbot"', f'webhook_url = "{url}"')
    text = text.replace("max_attempts = 12", f"max_attempts = {max_attempts}")
    path = tmp_path / "consultbot.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def clock() -> SkewedClock:
    """The real time, which the test moves ahead past back-off waits."""
    return SkewedClock()


@pytest.fixture
async def receiver(clock: SkewedClock) -> AsyncIterator[Receiver]:
    """A CRM listening on a free local port."""
    crm = Receiver(clock)
    await crm.up()
    yield crm
    await crm.down()


@asynccontextmanager
async def _bot(fake: FakeTelegram, database_url: str, config: Path, clock: SkewedClock) -> AsyncIterator[RunningBot]:
    async with running_bot(fake, database_url, config, clock=clock) as running:
        yield running


def _deliverer(bot: RunningBot, clock: SkewedClock) -> CrmDeliverer:
    return CrmDeliverer.for_config(
        bot.services.config, outbox=bot.services.outbox, clock=clock, environment={"CRM_WEBHOOK_SECRET": SECRET}
    )


async def _every_kind_of_event(fake: FakeTelegram, bot: RunningBot) -> None:
    """Ada qualifies, Priya claims her card, and Ada books, is moved to a later time, and cancels."""
    sales = fake.group(SALES_CHAT)
    ada = fake.user(7301, first_name="Ada", last_name="Lovelace")
    outcome = await _qualify(ada)
    await _poster(bot).post_due()
    card = await sales.next_message()
    await sales.press_as(fake.user(PRIYA, first_name="Priya"), card, "p:c:1")
    await sales.next_edit(card)
    relay = BookingRelay(bookings=bot.services.booking_store, handoff=bot.services.handoff, clock=bot.services.clock)
    await _book_on_the_last_day_shown(ada, outcome)
    bookings = bot.services.bookings
    [booking] = await bookings.upcoming_for(1)
    assert booking.id is not None
    expert = bookings.expert(booking.expert_key)
    assert expert is not None
    later = (await bookings.offers([expert]))[-1].slot.start
    await bookings.move(booking.id, start=later, prospect_ref=booking.prospect_ref)
    await bookings.cancel(booking.id, prospect_ref=booking.prospect_ref)
    assert await relay.relay_due() == 3


async def _outbox(bot: RunningBot, *arguments: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """`consultbot outbox ...` run in this process on the bot's database and configuration."""
    settings = Settings(database_url=bot.services.engine.url.render_as_string(hide_password=False))
    capsys.readouterr()
    status = await cli._run_command(cli._parser().parse_args(["outbox", *arguments]), settings, bot.services.config)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


async def test_events_of_a_real_lead_and_consultation_reach_the_crm_signed_with_their_data(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver, clock: SkewedClock
) -> None:
    """Qualified, claimed, booked, rescheduled, cancelled: five events, in order, each with its lead's data."""
    async with _bot(fake, database_url, _config(tmp_path, receiver.url), clock) as bot:
        await _every_kind_of_event(fake, bot)
        async with _deliverer(bot, clock) as deliverer:
            delivered = await deliverer.deliver_due()
        pending = await bot.services.outbox.pending_count("crm")

    assert delivered == 5
    assert pending == 0
    assert receiver.types() == EVERY_KIND
    qualified, claimed, booked, moved, cancelled = (event["data"] for event in receiver.events.values())
    assert qualified["lead_id"] == 1
    assert qualified["prospect"]["first_name"] == "Ada"
    assert qualified["routed_to"] == {"user_id": PRIYA, "name": "Priya Raman"}
    assert qualified["answers"]["services"]["answer"] == "HR & payroll, IT infrastructure"
    assert (claimed["from"], claimed["to"], claimed["by"]["name"]) == ("new", "claimed", "Priya Raman")
    assert booked["status"] == "confirmed"
    assert booked["expert"] == "amelia"
    assert moved["previous_starts_at"] == booked["starts_at"]
    assert moved["starts_at"] != booked["starts_at"]
    assert cancelled["status"] == "cancelled"
    assert {booked["uid"], moved["uid"], cancelled["uid"]} == {booked["uid"]}
    assert receiver.refused_signatures == 0
    assert fake.rejected() == []


async def test_a_crm_down_for_three_attempts_then_up_gets_every_event_exactly_once(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver, clock: SkewedClock
) -> None:
    """Three rounds of refused connections leave every event pending with its error; the fourth delivers each once."""
    async with _bot(fake, database_url, _config(tmp_path, receiver.url), clock) as bot:
        await _every_kind_of_event(fake, bot)
        await receiver.down()
        async with _deliverer(bot, clock) as deliverer:
            failed_rounds = []
            for _ in range(3):
                failed_rounds.append(await deliverer.deliver_due())
                clock.advance(LONGEST_RETRY)
            waiting = await bot.services.outbox.entries(range(1, 100))
            await receiver.up()
            delivered = await deliverer.deliver_due()
            again = await deliverer.deliver_due()
            clock.advance(LONGEST_RETRY)
            later = await deliverer.deliver_due()

    assert failed_rounds == [0, 0, 0]
    crm = [entry for entry in waiting if entry.destination == "crm"]
    assert [entry.attempts for entry in crm] == [3] * 5
    assert all(entry.status == "pending" for entry in crm)
    assert all("ClientConnectorError" in (entry.last_error or "") for entry in crm)
    assert (delivered, again, later) == (5, 0, 0)
    assert receiver.types() == EVERY_KIND
    assert sorted(receiver.arrivals) == sorted(receiver.events)


async def test_a_bot_restarted_in_the_middle_of_retries_and_of_a_request_still_delivers_each_event_once(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver, clock: SkewedClock
) -> None:
    """Two failed rounds, then the process dies while a POST hangs; the next process delivers everything once."""
    config = _config(tmp_path, receiver.url)
    async with _bot(fake, database_url, config, clock) as bot:
        await _every_kind_of_event(fake, bot)
        await receiver.down()
        deliverer = _deliverer(bot, clock)
        for _ in range(2):
            await deliverer.deliver_due()
            clock.advance(LONGEST_RETRY)
        await receiver.up()
        receiver.hang = True
        dying = asyncio.create_task(deliverer.deliver_due())
        await asyncio.wait_for(receiver.hung.wait(), 5)
        dying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dying
        await deliverer.close()
    receiver.hang = False

    async with _bot(fake, database_url, config, clock) as restarted:
        async with _deliverer(restarted, clock) as deliverer:
            while_leased = await deliverer.deliver_due()
            clock.advance(LONGEST_RETRY)
            delivered = await deliverer.deliver_due()
        pending = await restarted.services.outbox.pending_count("crm")

    assert while_leased == 0
    assert delivered == 5
    assert pending == 0
    assert sorted(receiver.types()) == sorted(EVERY_KIND)
    assert sorted(receiver.arrivals) == sorted(receiver.events)


async def test_a_crm_that_always_fails_ends_in_dead_letters_that_consultbot_outbox_lists_and_retries(
    fake: FakeTelegram,
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
    clock: SkewedClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """After max_attempts 500s the event is dead; the listing shows it with its error; retry by id delivers it."""
    async with _bot(fake, database_url, _config(tmp_path, receiver.url, max_attempts=3), clock) as bot:
        await _qualify(fake.user(7302, first_name="Grace"))
        receiver.status = 500
        async with _deliverer(bot, clock) as deliverer:
            for _ in range(3):
                await deliverer.deliver_due()
                clock.advance(LONGEST_RETRY)
            listed = await _outbox(bot, capsys=capsys)
            [dead] = await bot.services.outbox.dead_letters("crm")
            unknown = await _outbox(bot, "retry", "999", capsys=capsys)
            receiver.status = 200
            before_retry = await deliverer.deliver_due()
            retried = await _outbox(bot, "retry", str(dead.message_id), capsys=capsys)
            delivered = await deliverer.deliver_due()
            not_dead = await _outbox(bot, "retry", str(dead.message_id), capsys=capsys)
            after = await _outbox(bot, capsys=capsys)

    status, out, _ = listed
    assert status == 0
    assert "dead letters  1" in out
    assert f"#{dead.message_id}  crm  lead.qualified  3 tries" in out
    assert "HTTP 500 Internal Server Error" in out
    assert "consultbot outbox retry" in out
    assert unknown[0] == 2
    assert "no outbox message #999" in unknown[2]
    assert before_retry == 0
    assert retried[0] == 0
    assert f"will send again: #{dead.message_id}" in retried[1]
    assert delivered == 1
    assert receiver.types() == ["lead.qualified"]
    assert not_dead[0] == 2
    assert "is not a dead letter (it is done)" in not_dead[2]
    assert "dead letters  0" in after[1]


async def test_retry_all_dead_sends_every_dead_letter_again(
    fake: FakeTelegram,
    database_url: str,
    tmp_path: Path,
    receiver: Receiver,
    clock: SkewedClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A CRM that answers 404 (wrong URL) kills each event at once; --all-dead revives them all after the fix."""
    async with _bot(fake, database_url, _config(tmp_path, receiver.url), clock) as bot:
        await _every_kind_of_event(fake, bot)
        receiver.status = 404
        async with _deliverer(bot, clock) as deliverer:
            await deliverer.deliver_due()
            dead = await bot.services.outbox.dead_letters("crm")
            receiver.status = 200
            status, out, _ = await _outbox(bot, "retry", "--all-dead", capsys=capsys)
            delivered = await deliverer.deliver_due()

    assert [entry.attempts for entry in dead] == [1] * 5
    assert all(entry.last_error == "HTTP 404 Not Found" for entry in dead)
    assert status == 0
    assert "5 dead letters will be sent again" in out
    assert delivered == 5
    assert receiver.types() == EVERY_KIND


async def test_a_crm_that_is_down_is_tried_with_one_batch_per_round_and_later_gets_the_rest(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver, clock: SkewedClock
) -> None:
    """Twenty-five queued events and refused connections: one batch of ten is tried; the other fifteen wait."""
    events = [OutboxMessage("crm", "lead.qualified", f"lead.qualified:{n}", None, {"lead_id": n}) for n in range(25)]
    async with _bot(fake, database_url, _config(tmp_path, receiver.url), clock) as bot:
        async with bot.services.engine.begin() as connection:
            await connection.run_sync(lambda sync: enqueue(sync, events, clock()))
        await receiver.down()
        async with _deliverer(bot, clock) as deliverer:
            while_down = await deliverer.deliver_due()
            tried = [entry.attempts for entry in await bot.services.outbox.entries(range(1, 26))]
            await receiver.up()
            untried = await deliverer.deliver_due()
            clock.advance(LONGEST_RETRY)
            backed_off = await deliverer.deliver_due()

    assert while_down == 0
    assert tried == [1] * 10 + [0] * 15
    assert (untried, backed_off) == (15, 10)
    assert len(receiver.events) == 25


async def test_a_hanging_crm_does_not_slow_the_prospects_conversation(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver, clock: SkewedClock
) -> None:
    """While the CRM holds the lead.qualified POST open, the prospect goes on to book and is confirmed."""
    receiver.hang = True
    async with _bot(fake, database_url, _config(tmp_path, receiver.url), clock) as bot:
        deliverer = _deliverer(bot, clock)
        working = asyncio.create_task(deliverer.keep_delivering(every=timedelta(milliseconds=20)))
        try:
            ada = fake.user(7303, first_name="Ada")
            outcome = await _qualify(ada)
            await asyncio.wait_for(receiver.hung.wait(), 5)
            _, confirmation = await _book_on_the_last_day_shown(ada, outcome)
            still_hanging = receiver.hanging == 1 and not receiver.events
        finally:
            working.cancel()
            with pytest.raises(asyncio.CancelledError):
                await working

    assert "Your consultation is booked" in confirmation.text
    assert still_hanging
    assert fake.rejected() == []


async def test_consultbot_run_delivers_a_qualified_lead_to_the_crm_in_the_background(
    fake: FakeTelegram, database_url: str, tmp_path: Path, receiver: Receiver
) -> None:
    """The running bot, configured with a webhook URL and its secret, POSTs lead.qualified without being asked."""
    process = BotProcess(
        fake, database_url, CONSULTBOT_CONFIG=str(_config(tmp_path, receiver.url)), CRM_WEBHOOK_SECRET=SECRET
    )
    await process.start()
    try:
        await fake.wait_for_long_poll(timeout=STARTUP)
        await _qualify(fake.user(7304, first_name="Ada"))
        await asyncio.wait_for(receiver.arrived.wait(), STARTUP)
    finally:
        status = await process.stop()

    assert status == 0
    assert receiver.types() == ["lead.qualified"]
    assert "Traceback" not in process.logged


def test_consultbot_run_refuses_to_start_without_the_signing_secret_and_names_its_variable(tmp_path: Path) -> None:
    """No CRM_WEBHOOK_SECRET: exit status 2 and a message naming the variable, before anything is served."""
    config = _config(tmp_path, "http://127.0.0.1:9/hooks/consultbot")

    result = _consultbot(
        "run",
        CONSULTBOT_CONFIG=str(config),
        DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path}/bot.db",
        TELEGRAM_BOT_TOKEN="123456:TEST",
        CRM_WEBHOOK_SECRET="",
    )

    assert result.returncode == 2
    assert "CRM_WEBHOOK_SECRET: is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_signature_verifies_only_with_the_secret_the_body_and_a_fresh_timestamp() -> None:
    """Forged (another secret), tampered (another body), stale and future signatures are all refused."""
    now = utc_now()
    body = b'{"id":"lead.qualified:1","type":"lead.qualified"}'
    header = sign(SECRET.encode(), int(now.timestamp()), body)

    assert verify(SECRET.encode(), header, body, now=now)
    assert verify(SECRET.encode(), header, body, now=now + timedelta(minutes=4))
    assert not verify(b"another secret", header, body, now=now)
    assert not verify(SECRET.encode(), header, body + b" ", now=now)
    assert not verify(SECRET.encode(), header, body, now=now + timedelta(minutes=6))
    assert not verify(SECRET.encode(), header, body, now=now - timedelta(minutes=6))
    assert not verify(SECRET.encode(), "v1=" + header.split("v1=")[1], body, now=now)
    assert not verify(SECRET.encode(), "", body, now=now)


def test_the_readme_snippet_accepts_the_bots_signatures_and_refuses_forged_and_stale_ones() -> None:
    """A CRM pasting the README's code verifies what the bot signs, and only that."""
    readme = readme_verifier()
    now = utc_now()
    body = b'{"data":{"lead_id":1},"id":"lead.qualified:1","type":"lead.qualified"}'
    header = sign(SECRET.encode(), int(now.timestamp()), body)

    assert readme(SECRET.encode(), header, body)
    assert not readme(b"forged", header, body)
    assert not readme(SECRET.encode(), header, body.replace(b"1", b"2"))
    assert not readme(SECRET.encode(), header, body, now=now.timestamp() + 301)


@pytest.mark.parametrize("attempt", [1, 2, 3, 5, 8, 12, 40])
def test_back_off_is_full_jitter_under_a_doubling_ceiling_capped_at_an_hour(attempt: int) -> None:
    """After try n the wait is between one second and 30 s doubled n - 1 times (at most an hour), set by the draw."""
    ceiling = min(timedelta(seconds=30) * 2 ** (attempt - 1), timedelta(hours=1))

    shortest = retry_delay(attempt, draw=0.0)
    longest = retry_delay(attempt, draw=1.0)
    middle = retry_delay(attempt, draw=0.5)

    assert shortest == timedelta(seconds=1)
    assert longest == ceiling
    assert middle == ceiling / 2


def test_a_receivers_retry_after_is_honoured_on_429_and_503_up_to_an_hour() -> None:
    """Seconds or an HTTP date on 429 and 503 set the wait; none on a plain 500; a day is cut to an hour."""
    now = utc_now().replace(microsecond=0)

    busy = judge(429, "Too Many Requests", headers={"Retry-After": "120"}, now=now)
    in_seven_minutes = format_datetime(now + timedelta(minutes=7), usegmt=True)
    maintenance = judge(503, "", headers={"Retry-After": in_seven_minutes}, now=now)
    broken = judge(500, "", headers={"Retry-After": "120"}, now=now)
    tomorrow = judge(429, "", headers={"Retry-After": "86400"}, now=now)

    assert (busy.outcome, busy.wait) == ("retry", timedelta(seconds=120))
    assert retry_delay(1, draw=0.0, retry_after=busy.wait) == timedelta(seconds=120)
    assert maintenance.wait == timedelta(minutes=7)
    assert (broken.outcome, broken.wait) == ("retry", None)
    assert retry_delay(1, draw=0.0, retry_after=tomorrow.wait) == timedelta(hours=1)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        *[(200, "done"), (204, "done")],
        *[(408, "retry"), (409, "retry"), (429, "retry"), (500, "retry"), (503, "retry")],
        *[(301, "dead"), (400, "dead"), (401, "dead"), (404, "dead"), (410, "dead"), (422, "dead")],
    ],
)
def test_what_each_answer_of_the_crm_means_for_the_event(status: int, outcome: str) -> None:
    """2xx is delivered; answers that may pass are retried; a refusal of the signed body itself is dead at once."""
    assert judge(status, "", headers={}, now=utc_now()).outcome == outcome


def test_a_missing_signing_secret_is_an_error_naming_the_variable(bundled_config: Any) -> None:
    """The error names the variable from crm.secret_env and no secret; a set one is read as bytes."""
    with pytest.raises(ConfigError) as missing:
        webhook_secret(bundled_config, {})

    assert "CRM_WEBHOOK_SECRET" in str(missing.value)
    assert webhook_secret(bundled_config, {"CRM_WEBHOOK_SECRET": SECRET}) == SECRET.encode()
