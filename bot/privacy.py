"""A prospect's rights over their data, across the leads and scheduling stores: see it all, or have it erased.

The two packages keep their own tables (they share a database, not code), so this is where they meet: the
prospect's id in the leads tables is the `prospect_ref` of their consultations.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from leads.model import ProspectId, Questionnaire
from leads.privacy_repository import ErasureNotices, SqlPrivacyStore
from scheduling.booking_repository import SqlBookingStore
from scheduling.records import Booking


@dataclass(frozen=True)
class Forgotten:
    """What erasing a prospect's data did."""

    leads: int
    cancelled: tuple[Booking, ...]
    """Consultations that had not started, cancelled (the expert's calendar and the sales card follow)."""


class PrivacyService:
    """/mydata and /forget, and the same for operators."""

    def __init__(
        self,
        *,
        leads: SqlPrivacyStore,
        bookings: SqlBookingStore,
        questionnaire: Questionnaire,
        notices: ErasureNotices,
        write_back: Collection[str],
        clock: Callable[[], datetime],
    ) -> None:
        self._leads = leads
        self._bookings = bookings
        self._questionnaire = questionnaire
        self._notices = notices
        self._write_back = tuple(write_back)
        self._clock = clock

    async def personal_data(self, telegram_user_id: int) -> dict[str, Any] | None:
        """Everything stored about the prospect, as one JSON-ready document; None if nothing is."""
        document = await self._leads.personal_data(telegram_user_id)
        if document is None:
            return None
        consultations = await self._bookings.personal_data(document["prospect"]["id"])
        return {
            "exported_at": self._clock().isoformat(),
            "prospect": {key: value for key, value in document["prospect"].items() if key != "id"},
            "leads": document["leads"],
            "consultations": consultations,
        }

    async def coming_consultations(self, telegram_user_id: int) -> list[Booking] | None:
        """The consultations erasing would cancel; None if nothing is stored about the prospect."""
        prospect_id = await self._leads.prospect_id(telegram_user_id)
        if prospect_id is None:
            return None
        return await self._bookings.upcoming(since=self._clock(), prospect_ref=prospect_id)

    async def forget(self, telegram_user_id: int, *, chat_key: str) -> Forgotten | None:
        """Erase the prospect's personal data and cancel their coming consultations; None if nothing was stored.

        The consultations go first: their rows are found through the prospect, whom the second step makes
        unfindable, so a failure between the two leaves a /forget that can simply be asked again.
        """
        prospect_id = await self._leads.prospect_id(telegram_user_id)
        if prospect_id is None:
            return None
        now = self._clock()
        cancelled = await self._bookings.erase_attendee(
            prospect_id, chat_key=chat_key, write_back=self._write_back, now=now
        )
        erased = await self._leads.erase(
            telegram_user_id, questionnaire=self._questionnaire, notices=self._notices, now=now
        )
        return Forgotten(leads=0 if erased is None else len(erased.lead_ids), cancelled=tuple(cancelled))

    async def anonymise_inactive(self, *, retention: timedelta, batch: int = 100) -> int:
        """Erase the personal data of prospects inactive for longer than `retention`; how many were erased.

        One prospect per transaction, so a long backlog neither holds locks for long nor loses its progress.
        """
        erased = 0
        while True:
            before = self._clock() - retention
            found = await self._leads.inactive(before=before, limit=batch)
            for prospect_id, telegram_user_id in found:
                erased += await self._erase_inactive(prospect_id, telegram_user_id, before)
            if len(found) < batch:
                return erased

    async def _erase_inactive(self, prospect_id: ProspectId, telegram_user_id: int | None, before: datetime) -> int:
        now = self._clock()
        # Private chats have the user's id: the chat key of their booking conversation follows from it.
        chat_key = f"tg:{telegram_user_id}"
        await self._bookings.erase_attendee(prospect_id, chat_key=chat_key, write_back=self._write_back, now=now)
        erased = await self._leads.erase_inactive(
            prospect_id, before=before, questionnaire=self._questionnaire, notices=self._notices, now=now
        )
        return 0 if erased is None else 1


def data_document(document: dict[str, Any]) -> bytes:
    """The /mydata file: indented UTF-8 JSON a person can read as well as a program."""
    return json.dumps(document, indent=2, ensure_ascii=False, default=str).encode()
