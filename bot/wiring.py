"""The composition root: settings and configuration in, connected services out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import database
from bot.config import BusinessConfig
from bot.settings import Settings
from leads.repository import SqlLeadStore
from leads.service import QualificationService


def utc_now() -> datetime:
    """The real clock; everything below the composition root is handed a clock instead."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Services:
    """Everything the front ends use, connected."""

    config: BusinessConfig
    engine: AsyncEngine
    qualification: QualificationService


@asynccontextmanager
async def open_services(settings: Settings, config: BusinessConfig) -> AsyncIterator[Services]:
    """Connect to the database, bring its schema up to date, and build the services on it."""
    engine = database.create_engine(settings.database_url)
    transactions = database.store_engine(engine)
    try:
        await database.upgrade(engine)
        store = SqlLeadStore(transactions)
        qualification = QualificationService(store=store, questionnaire=config.questionnaire(), clock=utc_now)
        yield Services(config=config, engine=engine, qualification=qualification)
    finally:
        if isinstance(transactions, Engine):
            transactions.dispose()
        await engine.dispose()
