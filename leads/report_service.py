"""Staff's reading use cases: lead pages, one lead's history, the weekly stats and the export."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol

from leads.model import LeadId, Questionnaire
from leads.pipeline import PipelineStatus
from leads.reports import Funnel, LeadHistory, LeadRecord, Stats, Week, drop_off_order, week_before, week_of
from leads.service import Clock

PAGE_SIZE = 10
"""Leads per page of /leads and `consultbot leads list`."""


class ReportStore(Protocol):
    """Where the reports read leads from."""

    async def page(
        self, status: PipelineStatus | None, *, limit: int, before: LeadId | None = None
    ) -> list[LeadRecord]: ...

    async def history(self, lead_id: LeadId) -> LeadHistory | None: ...

    async def funnel(self, week: Week, *, now: datetime) -> Funnel: ...

    async def stopped_at(self, week: Week) -> dict[str | None, int]: ...

    def everything(self) -> AsyncIterator[list[LeadRecord]]: ...


class ReportService:
    """Reads leads for staff, with weeks in the sales team's zone."""

    def __init__(self, *, store: ReportStore, questionnaire: Questionnaire, sales_zone: str, clock: Clock) -> None:
        self._store = store
        self._questionnaire = questionnaire
        self._zone = sales_zone
        self._clock = clock

    @property
    def questionnaire(self) -> Questionnaire:
        """The questions whose answers the reports show."""
        return self._questionnaire

    @property
    def sales_zone(self) -> str:
        """The zone report times are shown in."""
        return self._zone

    async def page(
        self, status: PipelineStatus | None, *, before: LeadId | None = None, size: int = PAGE_SIZE
    ) -> tuple[list[LeadRecord], bool]:
        """A page of leads newest first, and whether older ones follow."""
        # One more than the page tells whether a next page exists without counting every lead.
        found = await self._store.page(status, limit=size + 1, before=before)
        return found[:size], len(found) > size

    async def history(self, lead_id: LeadId) -> LeadHistory | None:
        """The lead with every event, oldest first."""
        return await self._store.history(lead_id)

    async def stats(self) -> Stats:
        """The funnel this week and last, and where this week's unfinished questionnaires stopped."""
        now = self._clock()
        this_week = week_of(now, self._zone)
        last_week = week_before(this_week, self._zone)
        this = await self._store.funnel(this_week, now=now)
        last = await self._store.funnel(last_week, now=now)
        stopped = await self._store.stopped_at(this_week)
        return Stats(this_week, this, last, drop_off_order(stopped, self._questionnaire))

    def everything(self) -> AsyncIterator[list[LeadRecord]]:
        """Every lead, oldest first, in batches."""
        return self._store.everything()
