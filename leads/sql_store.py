"""The base of the leads package's stores whose operations are each one transaction.

The same shape as scheduling/repository.py's SqlStore, which this package may not import (the packages share a
database, not code).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

Result = TypeVar("Result")

log = logging.getLogger(__name__)


class SqlStore:
    """A store whose operations are each one transaction, written as a plain function of a connection.

    PostgreSQL runs the function on the async engine; SQLite runs it inline on the blocking twin engine, holding
    the lock every store on that engine shares (see bot/database.py, store_engine).
    """

    def __init__(self, engine: AsyncEngine | Engine, *, one_writer: asyncio.Lock | None = None) -> None:
        self._engine = engine
        self._one_writer = one_writer or asyncio.Lock()

    async def _run(self, work: Callable[[Connection], Result]) -> Result:
        if isinstance(self._engine, AsyncEngine):
            try:
                async with self._engine.begin() as connection:
                    return await connection.run_sync(work)
            except DBAPIError as error:
                # A connection the server dropped (pg_terminate_backend, a failover) fails its transaction, and
                # SQLAlchemy then discards every pooled connection older than the failure: run the work once more
                # on a fresh one rather than fail the prospect's update. The work is a plain function of its
                # connection, rolled back with it, so running it again from scratch is safe.
                if not error.connection_invalidated:
                    raise
                log.warning("database connection lost; running the transaction again on a new one")
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        async with self._one_writer:
            with self._engine.begin() as connection:
                return work(connection)
