"""Lead cards in the sales chat: what a card says and which buttons it has, and the worker that posts and edits
cards from the outbox."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.constants import MessageLimit, ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot import texts
from bot.telegram_io import already_shown
from bot.texts import escape, shorten
from bot.workers import keep_doing, retry_delay
from leads.handoff import HandoffService, LeadCard
from leads.model import LeadId
from leads.outbox import DueMessage, SqlOutbox
from leads.pipeline import CLOSED, OPEN
from scheduling.model import Expert

log = logging.getLogger(__name__)

CARD_EVERY = timedelta(seconds=5)
"""How often the running bot looks for cards to post from other processes; its own changes wake it at once."""
CARD_LEASE = timedelta(minutes=2)
BATCH = 50

_STATUS_LABEL = {
    "new": "🆕 New",
    "claimed": "🙋 Claimed",
    "contacted": "📞 Contacted",
    "won": "🏆 Won",
    "lost": "❌ Lost",
    "disqualified": "🚫 Disqualified",
    "nurture": "🌱 Nurture",
}
_ANSWER_LIMITS = (300, 120, 60)
"""Each answer is cut to the first of these lengths that keeps the card within Telegram's limit."""


@dataclass(frozen=True)
class CardView:
    """A card's HTML and buttons."""

    html: str
    keyboard: InlineKeyboardMarkup | None


def render_card(
    card: LeadCard,
    *,
    sales_zone: str,
    experts: Mapping[str, Expert],
    choosing_reason: bool = False,
    lost_reasons: Sequence[str] = (),
) -> CardView:
    """The card within Telegram's 4096 characters: long answers are shortened, with /lead for the full record."""
    for limit in _ANSWER_LIMITS:
        html = _card_html(card, sales_zone=sales_zone, experts=experts, answer_limit=limit)
        if texts.telegram_length(html) <= MessageLimit.MAX_TEXT_LENGTH:
            break
    return CardView(html, _keyboard(card, choosing_reason=choosing_reason, lost_reasons=lost_reasons))


def _card_html(card: LeadCard, *, sales_zone: str, experts: Mapping[str, Expert], answer_limit: int) -> str:
    summary, handoff = card.summary, card.handoff
    prospect = summary.prospect
    status = "new" if handoff.pipeline is None else handoff.pipeline.status
    score = "none" if summary.score is None else str(summary.score)
    lines = [f"<b>Lead #{summary.lead_id}</b> · {_STATUS_LABEL[status]} · score {score}"]
    contact = escape(prospect.display_name)
    if prospect.telegram_user_id is None and prospect.channel == "telegram":
        # Only erasure (/forget, or the retention period) takes a Telegram prospect's id away.
        contact = "<i>personal data erased at the prospect's request or after the retention period</i>"
    if prospect.telegram_user_id is not None:
        contact += f' · <a href="tg://user?id={prospect.telegram_user_id}">Telegram</a>'
    if prospect.username:
        contact += f" @{escape(prospect.username)}"
    lines.append(f"<b>Prospect:</b> {contact}")
    shortened = False
    for label, answer in summary.answers:
        short = shorten(answer, answer_limit)
        shortened = shortened or short != answer
        lines.append(f"<b>{escape(label)}:</b> {escape(short)}")
    if summary.reasons:
        why = "; ".join(
            f"{'✖' if reason.points is None else f'{reason.points:+d}'} {escape(reason.text)}"
            for reason in summary.reasons
        )
        lines.append(f"<b>Why:</b> {why}")
    lines.append(f"<b>Source:</b> {escape(summary.source or 'direct')}")
    if card.routed_to is not None:
        lines.append(f"<b>Routed to:</b> {escape(card.routed_to.name)}")
    pipeline = handoff.pipeline
    if pipeline is not None and pipeline.owner_name:
        lines.append(f"<b>Owner:</b> {escape(pipeline.owner_name)}")
    if pipeline is not None and pipeline.lost_reason:
        lines.append(f"<b>Lost because:</b> {escape(pipeline.lost_reason)}")
    lines.append(_consultation_line(card, sales_zone, experts))
    if shortened:
        lines.append(f"<i>Answers shortened: /lead {summary.lead_id} shows everything.</i>")
    return "\n".join(line for line in lines if line)


def _consultation_line(card: LeadCard, sales_zone: str, experts: Mapping[str, Expert]) -> str:
    consultation = card.handoff.consultation
    if consultation is None:
        return "<b>Consultation:</b> not booked yet"
    expert = experts.get(consultation.expert_key)
    who = escape(expert.name if expert else consultation.expert_key)
    when = texts.consultation_time(consultation.starts_at, consultation.ends_at, sales_zone)
    if consultation.status == "cancelled":
        return f"<b>Consultation:</b> <s>{when} with {who}</s> (cancelled)"
    return f"<b>Consultation:</b> {when} with {who}"


def _keyboard(card: LeadCard, *, choosing_reason: bool, lost_reasons: Sequence[str]) -> InlineKeyboardMarkup | None:
    lead_id = card.summary.lead_id
    pipeline = card.handoff.pipeline
    if pipeline is None or pipeline.status not in OPEN:
        return None
    if choosing_reason:
        rows = [
            [InlineKeyboardButton(reason, callback_data=f"p:r:{lead_id}:{index}")]
            for index, reason in enumerate(lost_reasons)
        ]
        rows.append([InlineKeyboardButton(texts.CARD_BACK, callback_data=f"p:b:{lead_id}")])
        return InlineKeyboardMarkup(rows)
    first = (
        []
        if pipeline.owner_user_id is not None
        else [InlineKeyboardButton(texts.CARD_CLAIM, callback_data=f"p:c:{lead_id}")]
    )
    moves = [
        InlineKeyboardButton(texts.CARD_CONTACTED, callback_data=f"p:t:{lead_id}"),
        InlineKeyboardButton(texts.CARD_WON, callback_data=f"p:w:{lead_id}"),
        InlineKeyboardButton(texts.CARD_LOST, callback_data=f"p:l:{lead_id}"),
        InlineKeyboardButton(texts.CARD_DISQUALIFY, callback_data=f"p:d:{lead_id}"),
    ]
    if pipeline.status == "contacted":
        moves = moves[1:]
    return InlineKeyboardMarkup([row for row in (first, moves) if row])


assert set(_STATUS_LABEL) >= set(OPEN) | set(CLOSED)


class CardPoster:
    """Posts each new lead's card to the sales chat, and edits it when the lead changes, from the outbox.

    Jobs of one lead claimed together are one post or edit: the card shows the lead as it is now. A Telegram
    failure that may pass (flood control, network) is retried with back-off; the bot removed from the chat
    (Forbidden) is dead, with the error kept for `consultbot outbox`.
    """

    def __init__(
        self,
        *,
        outbox: SqlOutbox,
        handoff: HandoffService,
        bot: Bot,
        chat_id: int,
        sales_zone: str,
        experts: Sequence[Expert],
        clock: Callable[[], datetime],
        max_attempts: int = 20,
        jitter: Callable[[], float] = lambda: random.uniform(-1, 1),
    ) -> None:
        self._outbox = outbox
        self._handoff = handoff
        self._bot = bot
        self._chat_id = chat_id
        self._sales_zone = sales_zone
        self._experts = {expert.key: expert for expert in experts}
        self._clock = clock
        self._max_attempts = max_attempts
        self._jitter = jitter
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for cards now (a change was just committed in this process)."""
        self._wake.set()

    async def post_due(self) -> int:
        """Post or edit every card that is due; how many cards were posted or edited."""
        done = 0
        while True:
            claimed = await self._outbox.claim("card", now=self._clock(), lease=CARD_LEASE, limit=BATCH)
            by_lead: dict[int | None, list[DueMessage]] = {}
            for job in claimed:
                by_lead.setdefault(job.lead_id, []).append(job)
            for lead_id, jobs in by_lead.items():
                done += await self._show(lead_id, jobs)
            if len(claimed) < BATCH:
                return done

    async def keep_posting(self, every: timedelta = CARD_EVERY) -> None:
        """Post due cards now, then whenever woken or once per `every`, until cancelled."""
        await keep_doing(self.post_due, every=every, what="posting lead cards", wake=self._wake)

    async def _show(self, lead_id: int | None, jobs: list[DueMessage]) -> int:
        card = None if lead_id is None else await self._handoff.card(LeadId(lead_id))
        if card is None:
            await self._finish(jobs, "dead", "no such lead")
            return 0
        view = render_card(card, sales_zone=self._sales_zone, experts=self._experts)
        try:
            await self._post_or_edit(card, view)
        except (RetryAfter, TelegramError) as error:
            permanent = isinstance(error, Forbidden)
            log.warning("card of lead %s not shown: %s", lead_id, error)
            await self._finish(jobs, "dead" if permanent else "retry", f"{type(error).__name__}: {error.message}")
            return 0
        await self._finish(jobs, "done", None)
        return 1

    async def _post_or_edit(self, card: LeadCard, view: CardView) -> None:
        handoff = card.handoff
        if handoff.card_chat_id is not None and handoff.card_message_id is not None:
            try:
                await self._bot.edit_message_text(
                    view.html,
                    chat_id=handoff.card_chat_id,
                    message_id=handoff.card_message_id,
                    parse_mode=ParseMode.HTML,
                    reply_markup=view.keyboard,
                    link_preview_options=LinkPreviewOptions(is_disabled=True),
                )
                return
            except BadRequest as error:
                if already_shown(error):
                    return
                if "not found" not in error.message.lower():
                    raise
                # The card was deleted from the chat: post it again.
        sent = await self._bot.send_message(
            self._chat_id,
            view.html,
            parse_mode=ParseMode.HTML,
            reply_markup=view.keyboard,
            link_preview_options=LinkPreviewOptions(is_disabled=True),
        )
        await self._handoff.card_posted(card.summary.lead_id, chat_id=sent.chat_id, message_id=sent.message_id)

    async def _finish(
        self, jobs: list[DueMessage], outcome: Literal["done", "retry", "dead"], error: str | None
    ) -> None:
        now = self._clock()
        for job in jobs:
            final = "dead" if outcome == "retry" and job.attempts >= self._max_attempts else outcome
            at = now + retry_delay(job.attempts, jitter=self._jitter()) if final == "retry" else now
            await self._outbox.finish(job.message_id, outcome=final, error=error, at=at)
