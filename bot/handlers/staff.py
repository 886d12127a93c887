"""Staff commands, in the sales chat or a staff member's private chat: /leads, /lead, /stats, /export.

Only configured staff reach these handlers (a user filter at registration); anyone else's command falls through
to the prospect handlers in a private chat, and gets a polite refusal in the sales chat.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from telegram import InputFile, Message, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes, filters

from bot import staff_view
from bot.handlers.qualification import quietly
from leads.model import LeadId
from leads.report_service import ReportService
from leads.reports import csv_row, csv_text, export_header

log = logging.getLogger(__name__)

Context = ContextTypes.DEFAULT_TYPE


class StaffHandlers:
    """Reads leads for the sales team."""

    def __init__(self, *, reports: ReportService, staff: Collection[int], clock: Callable[[], datetime]) -> None:
        self._reports = reports
        self._staff = frozenset(staff)
        self._clock = clock

    @property
    def staff(self) -> frozenset[int]:
        """The Telegram user ids of the sales team."""
        return self._staff

    async def on_leads(self, update: Update, context: Context) -> None:
        """A page of leads, newest first, in the status named (all when none is)."""
        message = _message(update)
        word = " ".join(context.args or [])
        status = staff_view.status_named(word)
        if word and status is None and word.lower() != "all":
            await message.reply_text(staff_view.unknown_status(word))
            return
        records, more = await self._reports.page(status)
        view = staff_view.leads_page(records, status=status, before=None, more=more, zone=self._reports.sales_zone)
        await message.reply_text(view.html, reply_markup=view.keyboard)

    async def on_page(self, update: Update, context: Context) -> None:
        """Show the page a paging button asks for, in place."""
        query = update.callback_query
        assert query is not None
        if query.from_user.id not in self._staff:
            await query.answer(staff_view.NOT_STAFF, show_alert=True)
            return
        request = staff_view.parse_page(query.data or "")
        if request is None:
            await query.answer(staff_view.INVALID_PAGE)
            return
        records, more = await self._reports.page(request.status, before=request.before)
        view = staff_view.leads_page(
            records, status=request.status, before=request.before, more=more, zone=self._reports.sales_zone
        )
        await query.answer()
        if isinstance(query.message, Message):
            await quietly(query.message.edit_text(view.html, reply_markup=view.keyboard))

    async def on_lead(self, update: Update, context: Context) -> None:
        """Everything about one lead: answers, outcome, pipeline, consultation and the history of events."""
        message = _message(update)
        args = context.args or []
        if len(args) != 1 or not args[0].lstrip("#").isdigit() or len(args[0]) > 12:
            await message.reply_text(staff_view.LEAD_USAGE)
            return
        lead_id = LeadId(int(args[0].lstrip("#")))
        history = await self._reports.history(lead_id)
        if history is None:
            await message.reply_text(staff_view.NO_SUCH_LEAD.format(lead_id=lead_id))
            return
        zone = self._reports.sales_zone
        for part in staff_view.lead_record(history, self._reports.questionnaire, zone=zone):
            await message.reply_text(part)

    async def on_stats(self, update: Update, context: Context) -> None:
        """The funnel this week and last, and the drop-off per question."""
        stats = await self._reports.stats()
        await _message(update).reply_text(staff_view.stats(stats, zone=self._reports.sales_zone))

    async def on_export(self, update: Update, context: Context) -> None:
        """Every lead as a CSV document."""
        questionnaire = self._reports.questionnaire
        parts, count = [csv_text([export_header(questionnaire)])], 0
        # Batch by batch: the records are dropped once written, only the CSV text is kept for the upload.
        async for batch in self._reports.everything():
            parts.append(csv_text(csv_row(record, questionnaire) for record in batch))
            count += len(batch)
        # A BOM, so that spreadsheet programs open the UTF-8 file with accents and emoji intact.
        data = "".join(parts).encode("utf-8-sig")
        now = self._clock()
        document = InputFile(io.BytesIO(data), filename=f"leads-{now:%Y%m%d-%H%M}.csv")
        caption = staff_view.export_caption(count, now, self._reports.sales_zone)
        await _message(update).reply_document(document, caption=caption)

    async def on_not_staff(self, update: Update, context: Context) -> None:
        """Tell someone outside the sales team, in the sales chat, that these commands are not theirs."""
        await _message(update).reply_text(staff_view.NOT_STAFF)


def _message(update: Update) -> Message:
    message = update.effective_message
    if message is None:
        raise ValueError(f"update {update.update_id} has no message")
    return message


STAFF_COMMANDS = ("leads", "lead", "stats", "export")


def register_staff(
    application: Application[Any, Any, Any, Any, Any, Any], staff: StaffHandlers, *, sales_chat_id: int | None
) -> None:
    """Staff commands for staff in their private chats and the sales chat; a polite no to others in the sales chat.

    Added before the prospect handlers: a staff member's command stops here, anyone else's falls through to them.
    """
    if not staff.staff:
        return
    members = filters.User(user_id=sorted(staff.staff))
    where: filters.BaseFilter = filters.ChatType.PRIVATE
    if sales_chat_id is not None:
        where = where | filters.Chat(chat_id=sales_chat_id)
    for command, callback in zip(
        STAFF_COMMANDS, (staff.on_leads, staff.on_lead, staff.on_stats, staff.on_export), strict=True
    ):
        application.add_handler(CommandHandler(command, callback, filters=members & where))
    if sales_chat_id is not None:
        outsiders = filters.Chat(chat_id=sales_chat_id) & ~members
        application.add_handler(CommandHandler(list(STAFF_COMMANDS), staff.on_not_staff, filters=outsiders))
    application.add_handler(CallbackQueryHandler(staff.on_page, pattern=staff_view.CALLBACK_PATTERN))
