"""The Telegram adapter's own table: the ledger of updates, so a redelivered update is handled once.

Telegram delivers an update again when it did not see it acknowledged (a replica died mid-request, or it timed
out), and with several replicas behind a load balancer a duplicate may reach another replica. The ledger is how
replicas agree: an update is claimed with a lease before it is handled and marked done after, so a duplicate of
a done or in-hand update is dropped, and one whose handler died is handled again once the lease runs out.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, String
from sqlmodel import Field, SQLModel

from leads.tables import UTCDateTime


def _instant(*, nullable: bool = False) -> Any:
    return Field(sa_column=Column(UTCDateTime(), nullable=nullable))


class TelegramUpdateRow(SQLModel, table=True):
    """One update received from Telegram, by its update_id."""

    __tablename__ = "telegram_updates"
    __table_args__ = (Index("ix_telegram_updates_received_at", "received_at"),)

    update_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    chat_id: int | None = Field(default=None, sa_column=Column(BigInteger))
    status: str = Field(sa_column=Column(String(16), nullable=False))
    """handling (claimed; see leased_until) or done."""
    leased_until: datetime | None = _instant(nullable=True)
    received_at: datetime = _instant()
    done_at: datetime | None = _instant(nullable=True)
