"""The schema is made by migrations, and the migrations match the models."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

import bot.tables  # noqa: F401  (the models whose tables the migrations must create)
import leads.tables  # noqa: F401
from bot import database
from tests.harness import CONSULTBOT


async def test_upgrade_head_on_an_empty_database_creates_every_table(database_url: str) -> None:
    """`consultbot db upgrade` on an empty database creates the tables the bot uses."""
    engine = database.create_engine(database_url)

    await database.upgrade(engine)

    async with engine.connect() as connection:
        tables = await connection.run_sync(lambda sync: set(inspect(sync).get_table_names()))
    await engine.dispose()
    assert {"prospects", "conversations", "leads", "lead_events"} <= tables


async def test_autogenerate_finds_no_difference_between_migrations_and_models(engine: AsyncEngine) -> None:
    """A model changed without a migration would show up here as a difference."""

    def differences(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as connection:
        found = await connection.run_sync(differences)

    assert found == []


async def test_upgrading_an_up_to_date_database_changes_nothing(engine: AsyncEngine) -> None:
    """Every start runs the upgrade; on a current database it is a no-op and leaves nothing pending."""
    await database.upgrade(engine)

    assert await database.pending_migrations(engine) == []


async def test_replicas_starting_at_once_on_an_empty_database_each_find_it_up_to_date(database_url: str) -> None:
    """Three processes migrating one empty database at the same moment: one migrates, the others wait for it and
    find nothing left to do; none fails on a table another is creating."""
    processes = [
        await asyncio.create_subprocess_exec(
            CONSULTBOT, "db", "upgrade", env={**os.environ, "DATABASE_URL": database_url}, stderr=subprocess.PIPE
        )
        for _ in range(3)
    ]
    # communicate(), not wait() then read: a process whose stderr pipe filled would never exit.
    errors = [(await process.communicate())[1].decode(errors="replace") for process in processes]
    outcomes = [(process.returncode, error) for process, error in zip(processes, errors, strict=True)]
    engine = database.create_engine(database_url)
    try:
        pending = await database.pending_migrations(engine)
    finally:
        await engine.dispose()

    assert [outcome for outcome in outcomes if outcome[0] != 0] == []
    assert pending == []
