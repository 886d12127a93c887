"""Alembic environment: async engines, the models' metadata, batch mode for SQLite."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection, text
from sqlmodel import SQLModel

import bot.tables  # noqa: F401  (registers the tables on the metadata)
import leads.tables  # noqa: F401  (registers the tables on the metadata)
import scheduling.tables  # noqa: F401

target_metadata = SQLModel.metadata


MIGRATION_LOCK = 0x43420002
"""The advisory lock migrations hold on PostgreSQL ("CB", 2; key 0), apart from the chats' (bot/update_ledger.py)."""


def _run(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Replicas starting at once each bring the schema up to date: one migrates while the others wait here,
        # then find it current. Held to the end of the transaction, which holds every migration (PostgreSQL's
        # DDL is transactional). SQLite needs nothing: its BEGIN IMMEDIATE (bot/database.py) queues writers.
        connection.execute(text("SELECT pg_advisory_xact_lock(:space, 0)"), {"space": MIGRATION_LOCK})
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode copies the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    from bot.database import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _database_url() -> str:
    configured = context.config.get_main_option("sqlalchemy.url")
    if configured:
        return configured
    from bot.settings import load_settings

    return load_settings().database_url


connection = context.config.attributes.get("connection")
if connection is not None:
    # Called from a running program (bot.database.upgrade), which lends its connection.
    _run(connection)
elif context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_with_own_engine(_database_url()))
