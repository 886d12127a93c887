"""Shared fixtures: a fresh database per test on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import asyncpg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import database
from bot.config import BUNDLED_EXAMPLE, BusinessConfig, load_config
from leads.model import Questionnaire
from tests.fake_telegram import FakeTelegram
from tests.harness import RunningBot, running_bot

POSTGRES_HINT = (
    "PostgreSQL tests need TEST_DATABASE_URL, e.g. "
    "TEST_DATABASE_URL=postgresql+asyncpg://postgres@127.0.0.1:5432/test (.ci/run sets it)"
)


@pytest.fixture(scope="session")
def bundled_config() -> BusinessConfig:
    """The example configuration that ships with the bot."""
    return load_config(BUNDLED_EXAMPLE)


@pytest.fixture(scope="session")
def questionnaire(bundled_config: BusinessConfig) -> Questionnaire:
    """The example questionnaire."""
    return bundled_config.questionnaire()


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A fake Bot API server on a free local port."""
    server = FakeTelegram()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def bot(fake: FakeTelegram, database_url: str) -> AsyncIterator[RunningBot]:
    """The bot serving the fake server, on a fresh database of each kind."""
    async with running_bot(fake, database_url) as running:
        yield running


class FixedClock:
    """A clock that only moves when told to."""

    def __init__(self, now: datetime | None = None) -> None:
        self.now = now or datetime(2026, 11, 24, 9, 30, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> FixedClock:
    """A fixed clock at a Tuesday morning."""
    return FixedClock()


@pytest.fixture(params=["sqlite", "postgresql"])
async def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[str]:
    """An empty database of each kind; PostgreSQL gets a database of its own per test, dropped after."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db')}/consultbot.db"
        return
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        pytest.skip(POSTGRES_HINT)
    # An unreachable server is an error, not a skip: CI must not pass without PostgreSQL.
    async with _postgres_database(server) as url:
        yield url


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on a database migrated to the newest schema."""
    engine = database.create_engine(database_url)
    await database.upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def store_engine(engine: AsyncEngine) -> Iterator[AsyncEngine | Engine]:
    """The engine the lead store runs on in production (a blocking twin for SQLite)."""
    transactions = database.store_engine(engine)
    yield transactions
    if isinstance(transactions, Engine):
        transactions.dispose()


class _postgres_database:
    """Creates a uniquely named database on the server and drops it afterwards."""

    def __init__(self, server_url: str) -> None:
        self._server = make_url(server_url)
        self._name = f"consultbot_test_{uuid.uuid4().hex[:12]}"

    def _dsn(self, database_name: str) -> str:
        return self._server.set(drivername="postgresql", database=database_name).render_as_string(hide_password=False)

    async def __aenter__(self) -> str:
        admin = await asyncpg.connect(self._dsn(self._server.database or "postgres"))
        try:
            await admin.execute(f'CREATE DATABASE "{self._name}"')
        finally:
            await admin.close()
        return self._server.set(database=self._name).render_as_string(hide_password=False)

    async def __aexit__(self, *_exc: object) -> None:
        admin = await asyncpg.connect(self._dsn(self._server.database or "postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')
        finally:
            await admin.close()
