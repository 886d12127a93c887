"""The lead card's buttons in the sales chat: Claim, Contacted, Won, Lost (with a reason), Disqualify.

Only configured staff may press them; anyone else gets an alert and nothing changes. Callback data is never
trusted: the pipeline decides again from the lead's stored state, under a row lock.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence

from telegram import LinkPreviewOptions, Message, Update
from telegram.ext import ContextTypes

from bot import texts
from bot.cards import CardView, render_card
from bot.handlers.qualification import quietly
from leads.handoff import HandoffService, LeadCard
from leads.model import LeadId
from leads.pipeline import Action, Refused
from scheduling.model import Expert

log = logging.getLogger(__name__)

CALLBACK_PATTERN = re.compile(r"^p:")
_PRESS = re.compile(r"^p:([ctwldbr]):(\d{1,12})(?::(\d{1,2}))?$")
_ACTIONS: Mapping[str, Action] = {"c": "claim", "t": "contacted", "w": "won", "d": "disqualify", "r": "lost"}


class SalesHandlers:
    """Works leads from their cards."""

    def __init__(
        self, *, handoff: HandoffService, sales_zone: str, experts: Sequence[Expert], lost_reasons: Sequence[str]
    ) -> None:
        self._handoff = handoff
        self._sales_zone = sales_zone
        self._experts = {expert.key: expert for expert in experts}
        self._lost_reasons = tuple(lost_reasons)

    async def on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """Apply a card button, then show the lead as it now is on the card."""
        query = update.callback_query
        assert query is not None
        staff = self._handoff.staff_member(query.from_user.id)
        if staff is None:
            await query.answer(texts.CARD_NOT_STAFF, show_alert=True)
            return
        press = _PRESS.match(query.data or "")
        if press is None:
            await query.answer(texts.INVALID_BUTTON)
            return
        kind, lead_id, reason_index = press.group(1), LeadId(int(press.group(2))), press.group(3)
        message = query.message if isinstance(query.message, Message) else None
        if kind in ("l", "b"):
            # Lost asks for the reason on the card itself; Back puts the pipeline buttons back.
            card = await self._handoff.card(lead_id)
            if card is None or card.handoff.pipeline is None:
                await query.answer(texts.CARD_UNKNOWN, show_alert=True)
                return
            await query.answer(texts.CARD_PICK_REASON if kind == "l" else None)
            await self._show(message, self._view(card, choosing_reason=kind == "l"))
            return
        reason = None
        if kind == "r":
            index = int(reason_index) if reason_index is not None else -1
            if not 0 <= index < len(self._lost_reasons):
                await query.answer(texts.INVALID_BUTTON)
                return
            reason = self._lost_reasons[index]
        action = _ACTIONS[kind]
        moved = await self._handoff.move(lead_id, action, staff, reason=reason)
        if moved is None:
            await query.answer(texts.CARD_UNKNOWN, show_alert=True)
            return
        if isinstance(moved, Refused):
            refusal = texts.CARD_REFUSED[moved.reason].format(owner=moved.owner_name, status=moved.status)
            # The card already shows why (the owner, or the closed status): editing it again would change nothing.
            await query.answer(refusal, show_alert=True)
            return
        await query.answer(texts.CARD_DONE[action])
        await self._show(message, self._view(moved.card))

    def _view(self, card: LeadCard, *, choosing_reason: bool = False) -> CardView:
        return render_card(
            card,
            sales_zone=self._sales_zone,
            experts=self._experts,
            choosing_reason=choosing_reason,
            lost_reasons=self._lost_reasons,
        )

    async def _show(self, message: Message | None, view: CardView) -> None:
        if message is None:
            return
        # "Message is not modified" (the card already shows this) is a refusal quietly() logs and drops.
        no_preview = LinkPreviewOptions(is_disabled=True)
        await quietly(message.edit_text(view.html, reply_markup=view.keyboard, link_preview_options=no_preview))
