"""Reminders of consultations: sent to the prospect's chat when due, once, never for a changed consultation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.ext.asyncio import AsyncEngine
from telegram import Bot

from bot import database, texts
from bot.config import BUNDLED_EXAMPLE, BusinessConfig, load_config
from bot.settings import Settings
from bot.wiring import booking_policy, sync_policy
from bot.workers import REMINDER_LEASE, ReminderSender
from scheduling.booking_repository import REMINDERS, SqlBookingStore
from scheduling.bookings import Attendee, BookingService
from scheduling.feeds import FetchLimits, FetchResult, Validators, feed_session, fetch_feed
from scheduling.records import Booking
from scheduling.repository import SqlAvailabilityStore
from scheduling.service import AvailabilityService, CalendarSync
from tests.conftest import FixedClock
from tests.fake_telegram import FakeTelegram, SentMessage
from tests.harness import BotProcess
from tests.test_restart import STARTUP

ADA_CHAT = 424242


def ada(chat_id: int | None = ADA_CHAT, *, zone: str = "Asia/Kolkata") -> Attendee:
    """Ada, booking from her Telegram chat, on Kolkata's clock."""
    return Attendee(
        prospect_ref=7,
        lead_ref=7,
        chat_id=chat_id,
        name="Ada Lovelace",
        email="ada@example.com",
        zone=zone,
        company="Analytical Engines Ltd",
        topic="HR & payroll, Accounting & finance",
    )


@dataclass
class World:
    """The booking services on one database, all on a clock the test moves."""

    config: BusinessConfig
    clock: FixedClock
    engine: AsyncEngine
    store: SqlBookingStore
    sync: CalendarSync
    availability: AvailabilityService
    bookings: BookingService

    async def book(self, *, days_ahead: float = 3, attendee: Attendee | None = None, nth: int = 0) -> Booking:
        """Book Amelia's first free slot at least `days_ahead` days from now (skipping `nth`), for Ada by default."""
        slot = await self.slot(days_ahead=days_ahead, nth=nth)
        return await self.bookings.book(expert_key="amelia", start=slot, attendee=attendee or ada())

    async def slot(self, *, days_ahead: float, nth: int = 0, moving: Booking | None = None) -> datetime:
        """The start of a free slot of Amelia's at least `days_ahead` days from now."""
        soonest = self.clock.now + timedelta(days=days_ahead)
        return [start for start in await self.slots(moving=moving) if start >= soonest][nth]

    async def slots(self, *, moving: Booking | None = None) -> list[datetime]:
        """The starts of Amelia's free slots, soonest first."""
        expert = self.bookings.expert("amelia")
        assert expert is not None
        return [offer.slot.start for offer in await self.bookings.offers([expert], moving=moving)]

    async def reminders(self) -> list[dict[str, Any]]:
        """Every stored reminder, oldest first."""
        async with self.engine.connect() as connection:
            rows = await connection.execute(select(REMINDERS).order_by(REMINDERS.c.id))
            return [dict(row) for row in rows.mappings()]


@asynccontextmanager
async def booking_world(
    database_url: str, clock: FixedClock, config: BusinessConfig | None = None
) -> AsyncIterator[World]:
    """The booking services built as wiring builds them, on `clock` instead of the real one; calendars synced."""
    config = config or load_config(BUNDLED_EXAMPLE)
    engine = database.create_engine(database_url)
    await database.upgrade(engine)
    transactions = database.store_engine(engine)
    limits = FetchLimits()
    session = feed_session(limits=limits)
    try:
        one_writer = asyncio.Lock()

        async def fetch(location: str, validators: Validators) -> FetchResult:
            return await fetch_feed(session, location, validators=validators, limits=limits)

        availability_store = SqlAvailabilityStore(transactions, one_writer=one_writer)
        policy = sync_policy(config)
        sync = CalendarSync(store=availability_store, fetch=fetch, experts=config.experts, policy=policy, clock=clock)
        await sync.configure()
        await sync.sync()
        availability = AvailabilityService(
            store=availability_store, sync=sync, experts=config.experts, rules=config.slots, policy=policy, clock=clock
        )
        store = SqlBookingStore(transactions, one_writer=one_writer)
        bookings = BookingService(
            store=store,
            availability=availability,
            experts=config.experts,
            rules=config.slots,
            policy=booking_policy(config),
            clock=clock,
            write_back=[expert.key for expert in config.experts if expert.caldav is not None],
        )
        yield World(config, clock, engine, store, sync, availability, bookings)
    finally:
        await session.close()
        if isinstance(transactions, Engine):
            transactions.dispose()
        await engine.dispose()


@asynccontextmanager
async def telegram_bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    """A python-telegram-bot Bot talking to the fake Bot API, as the running Application's bot does."""
    settings = Settings(telegram_bot_token=fake.token, telegram_base_url=fake.url)
    async with Bot(token=fake.token, base_url=settings.bot_api_base_url) as bot:
        yield bot


def sender(world: World, bot: Bot) -> ReminderSender:
    """A reminder sender on the world's store and clock."""
    return ReminderSender(
        store=world.store, bot=bot, config=world.config, experts=world.config.experts, clock=world.clock
    )


@pytest.fixture(autouse=True)
def _timedelta_periods(monkeypatch: pytest.MonkeyPatch) -> None:
    # A plain Bot builds RetryAfter with a deprecation warning unless opted in, as build_application does.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")


def _sent_to(fake: FakeTelegram, chat_id: int = ADA_CHAT) -> list[SentMessage]:
    return [message for message in fake.user(chat_id).messages() if message.chat_id == chat_id]


async def test_the_24_hour_reminder_goes_exactly_when_due_and_once_then_the_1_hour_one(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """Not a second early, not twice: the 24-hour reminder at start-24h, the 1-hour one at start-1h."""
    fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        reminders = sender(world, bot)
        sent = []
        for moment in (
            booking.starts_at - timedelta(hours=24, seconds=1),
            booking.starts_at - timedelta(hours=24),
            booking.starts_at - timedelta(hours=24),
            booking.starts_at - timedelta(hours=1, seconds=1),
            booking.starts_at - timedelta(hours=1),
            booking.starts_at - timedelta(minutes=1),
        ):
            clock.now = moment
            sent.append((await reminders.send_due(), len(_sent_to(fake))))
        stored = await world.reminders()

    assert sent == [(0, 0), (1, 1), (0, 1), (0, 1), (1, 2), (0, 2)]
    assert [(row["before_minutes"], row["status"]) for row in stored] == [(1440, "sent"), (60, "sent")]
    assert [row["sent_at"] for row in stored] == [
        booking.starts_at - timedelta(hours=24),
        booking.starts_at - timedelta(hours=1),
    ]


async def test_a_reminder_shows_the_time_on_the_prospect_s_clock_the_expert_the_link_and_the_buttons(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """Ada in Kolkata reads when in Kolkata time, with whom, where to join, and can reschedule or cancel."""
    ada_user = fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3, attendee=ada(zone="Asia/Kolkata"))
        clock.now = booking.starts_at - timedelta(hours=24)

        await sender(world, bot).send_due()
        reminder = await ada_user.next_message()

    when = texts.consultation_time(booking.starts_at, booking.ends_at, "Asia/Kolkata")
    assert "Kolkata (UTC+05:30)" in when
    assert reminder.text.splitlines()[0] == "⏰ Reminder: your consultation starts in 24 hours"
    assert f"When: {when}" in reminder.text
    assert "With: Amelia Hughes, Principal consultant, back office (Meridian Outsourcing Partners)" in reminder.text
    assert "Topic: HR & payroll, Accounting & finance" in reminder.text
    assert "Join: https://meet.meridian-outsourcing.example/amelia-hughes" in reminder.text
    assert reminder.parse_mode == "HTML"
    assert reminder.buttons() == [
        (texts.REMINDER_BUTTON_RESCHEDULE, f"mr:{booking.id}"),
        (texts.REMINDER_BUTTON_CANCEL, f"mc:{booking.id}"),
    ]
    assert "Reschedule" in texts.REMINDER_BUTTON_RESCHEDULE
    assert "Cancel" in texts.REMINDER_BUTTON_CANCEL


async def test_a_reminder_after_the_change_deadline_names_whom_to_ask_instead_of_buttons(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """One hour before, the prospect can no longer change it themselves (12 h notice): no buttons, the contact."""
    ada_user = fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        clock.now = booking.starts_at - timedelta(hours=1)

        await sender(world, bot).send_due()
        reminder = await ada_user.next_message()

    assert reminder.text.splitlines()[0] == "⏰ Reminder: your consultation starts in 1 hour"
    assert reminder.buttons() == []
    assert "Please write to consultations@meridian-outsourcing.example" in reminder.text


async def test_a_cancelled_consultation_s_reminders_never_go_out(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """Cancelling drops the pending reminders: at their moments nothing is sent."""
    fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        assert booking.id is not None
        await world.bookings.cancel(booking.id, prospect_ref=7)
        reminders = sender(world, bot)

        counts = []
        for before in (timedelta(hours=24), timedelta(hours=1)):
            clock.now = booking.starts_at - before
            counts.append(await reminders.send_due())
        stored = await world.reminders()

    assert counts == [0, 0]
    assert fake.calls_of("sendMessage") == []
    assert [row["status"] for row in stored] == ["dropped", "dropped"]


async def test_a_moved_consultation_is_reminded_of_at_its_new_time_only(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """The old time's reminders are dropped; the new time's go out at their own moments, showing the new time."""
    ada_user = fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        assert booking.id is not None
        new_start = await world.slot(days_ahead=6, moving=booking)
        moved = await world.bookings.move(booking.id, start=new_start, prospect_ref=7)
        reminders = sender(world, bot)

        clock.now = booking.starts_at - timedelta(hours=1)
        at_old_moments = await reminders.send_due()
        clock.now = moved.starts_at - timedelta(hours=24)
        at_new_moment = await reminders.send_due()
        reminder = await ada_user.next_message()

    assert at_old_moments == 0
    assert at_new_moment == 1
    assert texts.consultation_time(moved.starts_at, moved.ends_at, "Asia/Kolkata") in reminder.text
    assert len(fake.calls_of("sendMessage")) == 1


async def test_a_prospect_who_blocked_the_bot_is_recorded_and_not_tried_again(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """Telegram's 403 marks the reminder blocked; later runs leave it alone."""
    fake.user(ADA_CHAT)
    fake.block_bot(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        reminders = sender(world, bot)
        clock.now = booking.starts_at - timedelta(hours=24)

        first = await reminders.send_due()
        clock.now += REMINDER_LEASE * 3
        second = await reminders.send_due()
        stored = await world.reminders()

    assert (first, second) == (0, 0)
    assert len(fake.calls_of("sendMessage")) == 1
    assert fake.calls_of("sendMessage")[0].status == 403
    assert stored[0]["status"] == "blocked"
    assert "blocked" in stored[0]["last_error"]
    assert stored[1]["status"] == "pending"


async def test_a_reminder_telegram_refuses_for_now_is_sent_once_the_lease_runs_out(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """A 429 leaves the reminder pending; it is not retried within its lease, and goes out after it."""
    fake.user(ADA_CHAT)
    fake.fail_next("sendMessage")
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        reminders = sender(world, bot)
        clock.now = booking.starts_at - timedelta(hours=24)

        refused = await reminders.send_due()
        clock.now += REMINDER_LEASE - timedelta(seconds=1)
        within_lease = await reminders.send_due()
        clock.now += timedelta(seconds=2)
        after_lease = await reminders.send_due()
        stored = await world.reminders()

    assert (refused, within_lease, after_lease) == (0, 0, 1)
    assert [call.status for call in fake.calls_of("sendMessage")] == [429, 200]
    assert stored[0]["status"] == "sent"
    assert stored[0]["attempts"] == 2


async def test_a_reminder_that_keeps_failing_is_given_up_when_the_consultation_starts(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """Telegram down for the whole last hour: the 1-hour reminder is not sent late, after the start."""
    fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        reminders = sender(world, bot)
        clock.now = booking.starts_at - timedelta(hours=24)
        await reminders.send_due()
        fake.fail_next("sendMessage", times=1000)
        clock.now = booking.starts_at - timedelta(hours=1)
        while clock.now < booking.starts_at + REMINDER_LEASE:
            await reminders.send_due()
            clock.now += REMINDER_LEASE + timedelta(seconds=1)
        stored = await world.reminders()

    assert stored[1]["status"] == "skipped"
    assert "given up" in stored[1]["last_error"]
    assert [call.status for call in fake.calls_of("sendMessage")].count(200) == 1
    assert 20 <= [call.status for call in fake.calls_of("sendMessage")].count(429) <= 31


async def test_after_a_downtime_only_the_nearest_due_reminder_is_sent(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """Back 30 minutes before the start: one reminder saying so, not the 24-hour one as well."""
    ada_user = fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world, telegram_bot(fake) as bot:
        booking = await world.book(days_ahead=3)
        clock.now = booking.starts_at - timedelta(minutes=30)

        sent = await sender(world, bot).send_due()
        reminder = await ada_user.next_message()
        stored = await world.reminders()

    assert sent == 1
    assert reminder.text.splitlines()[0] == "⏰ Reminder: your consultation starts in 30 minutes"
    assert [(row["before_minutes"], row["status"]) for row in stored] == [(1440, "skipped"), (60, "sent")]
    assert len(fake.calls_of("sendMessage")) == 1


async def test_a_due_reminder_is_sent_once_across_a_restart(
    database_url: str, fake: FakeTelegram, clock: FixedClock
) -> None:
    """A sender that dies after claiming leaves the reminder to the next process once its lease runs out; once."""
    fake.user(ADA_CHAT)
    async with booking_world(database_url, clock) as world:
        booking = await world.book(days_ahead=3)
        clock.now = booking.starts_at - timedelta(hours=24)
        # The first process claims the reminder and dies before sending it.
        claimed = await world.store.claim_reminders(now=clock.now, lease=REMINDER_LEASE, limit=10)

    async with booking_world(database_url, clock) as restarted, telegram_bot(fake) as bot:
        reminders = sender(restarted, bot)
        while_leased = await reminders.send_due()
        clock.now += REMINDER_LEASE + timedelta(seconds=1)
        after_lease = await reminders.send_due()
        again = await reminders.send_due()

    async with booking_world(database_url, clock) as restarted_again, telegram_bot(fake) as bot:
        after_second_restart = await sender(restarted_again, bot).send_due()

    assert len(claimed) == 1
    assert (while_leased, after_lease, again, after_second_restart) == (0, 1, 0, 0)
    assert len(fake.calls_of("sendMessage")) == 1


async def test_a_consultation_booked_in_the_terminal_has_no_reminders(database_url: str, clock: FixedClock) -> None:
    """Without a chat there is nobody to remind: nothing is scheduled."""
    async with booking_world(database_url, clock) as world:
        await world.book(days_ahead=3, attendee=ada(chat_id=None))

        stored = await world.reminders()

    assert stored == []


async def test_the_running_bot_sends_a_due_reminder(fake: FakeTelegram, database_url: str, clock: FixedClock) -> None:
    """`consultbot run` looks for due reminders as it starts, and sends them."""
    ada_user = fake.user(ADA_CHAT)
    real_now = datetime.now(UTC)
    # Booked two weeks ago with a reminder two weeks ahead: it is due now, in the running bot's real time.
    clock.now = real_now - timedelta(days=14)
    bundled = load_config(BUNDLED_EXAMPLE)
    config = bundled.model_copy(update={"booking": bundled.booking.model_copy(update={"reminder_minutes": (20160,)})})
    async with booking_world(database_url, clock, config) as world:
        start = next(slot for slot in await world.slots() if slot > real_now + timedelta(hours=13))
        booking = await world.bookings.book(expert_key="amelia", start=start, attendee=ada())
    bot = BotProcess(fake, database_url)
    await bot.start()
    try:
        reminder = await ada_user.next_message(timeout=STARTUP)
    finally:
        await bot.stop()

    assert reminder.text.startswith("⏰ Reminder: your consultation starts in")
    assert texts.consultation_time(booking.starts_at, booking.ends_at, "Asia/Kolkata") in reminder.text
    assert reminder.buttons() == [
        (texts.REMINDER_BUTTON_RESCHEDULE, f"mr:{booking.id}"),
        (texts.REMINDER_BUTTON_CANCEL, f"mc:{booking.id}"),
    ]
    assert "Traceback" not in bot.logged
