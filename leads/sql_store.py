"""The base of the leads package's stores whose operations are each one transaction.

The same shape as scheduling/repository.py's SqlStore, which this package may not import (the packages share a
database, not code).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncEngine

Result = TypeVar("Result")


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
            async with self._engine.begin() as connection:
                return await connection.run_sync(work)
        async with self._one_writer:
            with self._engine.begin() as connection:
                return work(connection)
