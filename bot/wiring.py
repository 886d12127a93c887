"""The composition root: settings and configuration in, connected services out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import database, update_ledger
from bot.blocked_store import SqlBlockedStore
from bot.config import BusinessConfig
from bot.journey import BookingJourney
from bot.privacy import PrivacyService
from bot.settings import Settings
from bot.update_ledger import UpdateLedger
from leads.followup_store import SqlFollowUpStore
from leads.followups import Delays
from leads.handoff import HandoffRules, HandoffService, QualifiedHandoff
from leads.handoff_repository import SqlHandoffStore
from leads.outbox import SqlOutbox
from leads.pipeline import StaffMember
from leads.privacy_repository import ErasureNotices, SqlPrivacyStore
from leads.report_repository import SqlReportStore
from leads.report_service import ReportService
from leads.repository import SqlLeadStore
from leads.service import QualificationService
from scheduling.booking_repository import SqlBookingStore
from scheduling.bookings import BookingPolicy, BookingService
from scheduling.feeds import FetchLimits, FetchResult, Validators, feed_session, fetch_feed
from scheduling.repository import SqlAvailabilityStore
from scheduling.service import AvailabilityService, CalendarSync, SyncPolicy


def utc_now() -> datetime:
    """The real clock; everything below the composition root is handed a clock instead."""
    return datetime.now(UTC)


class Wakeups:
    """Wakes the workers that send what this process just queued (lead cards, CRM webhooks), rather than leaving
    it to their next poll; the poll remains for what other processes queue."""

    def __init__(self) -> None:
        self._wakers: list[Callable[[], None]] = []

    def add(self, wake: Callable[[], None]) -> None:
        """Wake `wake`'s worker too, from now on."""
        self._wakers.append(wake)

    def __call__(self) -> None:
        """Something was queued and committed: wake every worker added."""
        for wake in self._wakers:
            wake()


@dataclass(frozen=True)
class Services:
    """Everything the front ends use, connected."""

    config: BusinessConfig
    engine: AsyncEngine
    clock: Callable[[], datetime]
    qualification: QualificationService
    calendar_sync: CalendarSync
    availability: AvailabilityService
    bookings: BookingService
    booking_store: SqlBookingStore
    handoff: HandoffService
    outbox: SqlOutbox
    journey: BookingJourney
    privacy: PrivacyService
    reports: ReportService
    followups: SqlFollowUpStore
    blocked: SqlBlockedStore
    """Prospects who blocked the bot: the Telegram limiter records them, the senders skip them."""
    ledger: UpdateLedger
    queued: Wakeups = field(default_factory=Wakeups)
    """Called once this process has queued and committed work for the sales workers (bot/cli.py adds them)."""


@asynccontextmanager
async def open_services(
    settings: Settings, config: BusinessConfig, *, clock: Callable[[], datetime] = utc_now
) -> AsyncIterator[Services]:
    """Connect to the database, bring its schema up to date, and build the services on it (tests pass a clock)."""
    engine = database.create_engine(settings.database_url)
    transactions = database.store_engine(engine)
    locks = database.lock_engine(engine, connections=update_ledger.LOCK_CONNECTIONS)
    calendars = config.calendars
    limits = FetchLimits(
        connect_timeout=calendars.connect_timeout_seconds,
        total_timeout=calendars.timeout_seconds,
        max_bytes=calendars.max_feed_mb * 1024 * 1024,
    )
    session = feed_session(limits=limits)
    try:
        await database.upgrade(engine)
        # One lock for every store on SQLite's blocking twin engine (none is needed on PostgreSQL).
        one_writer = asyncio.Lock()
        store = SqlLeadStore(transactions, one_writer=one_writer, clock=clock)
        questionnaire = config.questionnaire()
        rules = handoff_rules(config)
        qualification = QualificationService(
            store=store,
            questionnaire=questionnaire,
            clock=clock,
            on_completed=QualifiedHandoff(rules=rules, questionnaire=questionnaire, clock=clock),
        )
        handoff = HandoffService(
            store=SqlHandoffStore(transactions, one_writer=one_writer),
            questionnaire=questionnaire,
            rules=rules,
            clock=clock,
        )

        async def fetch(location: str, validators: Validators) -> FetchResult:
            return await fetch_feed(session, location, validators=validators, limits=limits)

        availability_store = SqlAvailabilityStore(transactions, one_writer=one_writer)
        policy = sync_policy(config)
        calendar_sync = CalendarSync(
            store=availability_store, fetch=fetch, experts=config.experts, policy=policy, clock=clock
        )
        await calendar_sync.configure()
        availability = AvailabilityService(
            store=availability_store,
            sync=calendar_sync,
            experts=config.experts,
            rules=config.slots,
            policy=policy,
            clock=clock,
        )
        booking_store = SqlBookingStore(transactions, one_writer=one_writer)
        bookings = BookingService(
            store=booking_store,
            availability=availability,
            experts=config.experts,
            rules=config.slots,
            policy=booking_policy(config),
            clock=clock,
            write_back=[expert.key for expert in config.experts if expert.caldav is not None],
        )
        yield Services(
            config=config,
            engine=engine,
            clock=clock,
            qualification=qualification,
            calendar_sync=calendar_sync,
            availability=availability,
            bookings=bookings,
            booking_store=booking_store,
            handoff=handoff,
            outbox=SqlOutbox(transactions, one_writer=one_writer),
            journey=BookingJourney(
                qualification=qualification, bookings=bookings, store=booking_store, config=config, clock=clock
            ),
            privacy=PrivacyService(
                leads=SqlPrivacyStore(transactions, one_writer=one_writer),
                bookings=booking_store,
                questionnaire=questionnaire,
                notices=ErasureNotices(cards=rules.cards, webhooks=rules.webhooks),
                write_back=[expert.key for expert in config.experts if expert.caldav is not None],
                clock=clock,
            ),
            reports=ReportService(
                store=SqlReportStore(transactions, one_writer=one_writer),
                questionnaire=questionnaire,
                sales_zone=config.sales.timezone,
                clock=clock,
            ),
            followups=SqlFollowUpStore(transactions, delays=followup_delays(config), one_writer=one_writer),
            blocked=SqlBlockedStore(transactions, one_writer=one_writer),
            ledger=UpdateLedger(
                transactions,
                locks=locks,
                clock=clock,
                one_writer=one_writer,
                lease=timedelta(seconds=settings.update_lease_seconds),
            ),
        )
    finally:
        await session.close()
        if isinstance(transactions, Engine):
            transactions.dispose()
        if locks is not None:
            await locks.dispose()
        await engine.dispose()


def sync_policy(config: BusinessConfig) -> SyncPolicy:
    """The calendar settings of the configuration as the availability services take them."""
    calendars = config.calendars
    return SyncPolicy(
        horizon=config.slots.horizon,
        stale_after=timedelta(hours=calendars.stale_after_hours),
        when_stale=calendars.when_stale,
        refresh_after=timedelta(minutes=calendars.refresh_after_minutes),
    )


def handoff_rules(config: BusinessConfig) -> HandoffRules:
    """The sales and CRM settings of the configuration as the hand-off takes them."""
    sales = config.sales
    return HandoffRules(
        staff=tuple(StaffMember(member.user_id, member.name, member.services) for member in sales.staff),
        routing=sales.routing,
        service_lines={service.key: service.line for service in config.services},
        services_question=config.booking.services_question,
        cards=sales.chat_id is not None,
        webhooks=config.crm.webhook_url is not None,
    )


def booking_policy(config: BusinessConfig) -> BookingPolicy:
    """The booking settings of the configuration as the booking service takes them."""
    booking = config.booking
    return BookingPolicy(
        reminders=tuple(timedelta(minutes=minutes) for minutes in booking.reminder_minutes),
        change_notice=timedelta(hours=booking.change_notice_hours),
        assignment=booking.assignment,
    )


def followup_delays(config: BusinessConfig) -> Delays:
    """The follow-up settings of the configuration as the follow-up store takes them."""
    followups = config.followups
    return Delays.from_hours(
        unfinished=followups.unfinished_hours, unbooked=followups.unbooked_hours, nurture=followups.nurture_hours
    )
