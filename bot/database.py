"""The database: engine, connection settings per dialect, and migrations to the current schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import asyncpg
import sqlalchemy
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

import migrations

MIGRATIONS = Path(migrations.__file__).parent


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine with the settings each database needs for this bot's workload."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        # No pool_pre_ping: it costs a round trip on every transaction. A connection the server dropped
        # fails its first statement instead, and the stores run that transaction again on a new one (see
        # SqlStore._run, and leads/repository.py's _begin for the hot path).
        return create_async_engine(url, pool_size=10, max_overflow=10)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    # One connection per process: writers queue in asyncio instead of in SQLite's busy handler,
    # which sleeps in steps of up to 100 ms and would dominate reply latency under load.
    engine = create_async_engine(url, connect_args={"timeout": 30}, pool_size=1, max_overflow=0)
    event.listen(engine.sync_engine, "connect", _configure_sqlite)
    event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def lock_engine(engine: AsyncEngine, *, connections: int) -> AsyncEngine | None:
    """PostgreSQL: a pool of its own for the connections that hold chats' advisory locks; SQLite: None.

    Apart from the stores' pool, so that updates waiting for a chat (each holds one of these connections while
    it waits) can never take the connections the updates in hand need to finish. `connections` must cover the
    updates handled at once; autocommit, as a session-level lock outlives any transaction.
    """
    if engine.dialect.name == "sqlite":
        return None
    return create_async_engine(engine.url, pool_size=connections, max_overflow=0, isolation_level="AUTOCOMMIT")


def lost_connection(error: BaseException) -> bool:
    """Whether `error` says the database connection itself went away (a restart, `pg_terminate_backend`, a
    network cut) rather than that the work was wrong: work rolled back by it may simply be run again."""
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        # SQLAlchemy's asyncpg adapter wraps the driver's error: the cause is asyncpg's own.
        return any(lost_connection(cause) for cause in (error.orig, error.orig and error.orig.__cause__) if cause)
    return isinstance(error, asyncpg.PostgresConnectionError | asyncpg.AdminShutdownError | ConnectionError)


def store_engine(engine: AsyncEngine) -> AsyncEngine | Engine:
    """The engine the stores run their transactions on.

    PostgreSQL: the async engine itself. SQLite: a blocking twin on the same file, which the stores
    run inline on the event loop (see leads/repository.py for why that is faster than aiosqlite).
    """
    if engine.dialect.name != "sqlite":
        return engine
    # The twin waits at most 5 s for another process's write lock, since it waits on the loop.
    twin = sqlalchemy.create_engine(
        engine.url.set(drivername="sqlite"), connect_args={"timeout": 5}, pool_size=1, max_overflow=0
    )
    event.listen(twin, "connect", _configure_sqlite)
    event.listen(twin, "begin", _begin_immediate)
    return twin


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling would begin DEFERRED; take it over (see _begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL lets readers carry on while one process writes. (How long a second process waits for the
    # write lock is the driver's connect timeout, set per engine.)
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # A read-then-write transaction begun DEFERRED fails with "database is locked" when another
    # writer got there first; IMMEDIATE takes the write lock up front, so writers queue instead.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(database_url: str | None = None) -> Config:
    """Alembic's configuration for the bundled migrations, without an alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database_url is not None:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine) -> None:
    """Bring the database to the newest schema; an up-to-date database is left as it is."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade_on, alembic_config())


def _upgrade_on(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def pending_migrations(engine: AsyncEngine) -> list[str]:
    """Revisions the database still lacks, oldest first."""
    async with engine.connect() as connection:
        current = await connection.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
    script = ScriptDirectory.from_config(alembic_config())
    ahead = script.iterate_revisions("heads", current or "base")
    return [revision.revision for revision in reversed(list(ahead)) if revision.revision not in current]
