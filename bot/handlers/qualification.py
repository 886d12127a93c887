"""Telegram handlers of the qualification conversation: parse the update, call the service, render."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from telegram import Chat, Message, Update, User
from telegram.error import BadRequest, Forbidden, NetworkError
from telegram.ext import ContextTypes

from bot import callbacks, database, logs, render, texts
from bot.config import BusinessConfig
from bot.render import booking_keyboard
from bot.telegram_io import already_shown

if TYPE_CHECKING:
    from bot.handlers.booking import BookingHandlers
from bot.texts import escape
from leads import flow
from leads.service import Ignored, QualificationService, Turn, Visitor

log = logging.getLogger(__name__)

Result = TypeVar("Result")


async def _once_more_if_disconnected(call: Callable[[], Awaitable[Result]]) -> Result:
    try:
        return await call()
    except Exception as error:
        if not database.lost_connection(error):
            raise
        log.warning("database connection lost during an update; handling it again on a new connection")
        return await call()


Context = ContextTypes.DEFAULT_TYPE

# Telegram deep-link payloads are at most 64 characters of A-Z, a-z, 0-9, _ and -.
_SOURCE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class QualificationHandlers:
    """The prospect's side of the bot."""

    def __init__(
        self,
        service: QualificationService,
        config: BusinessConfig,
        booking: BookingHandlers | None = None,
        *,
        queued: Callable[[], None] = lambda: None,
    ) -> None:
        self._service = service
        self._config = config
        self._booking = booking
        """Where a qualified prospect goes on to book a consultation."""
        self._queued = queued
        """Told when a completed questionnaire has queued the lead's card and CRM event (bot/wiring.py, Wakeups)."""

    # The service's calls, run once more if the database connection went away under them (a database restart,
    # `pg_terminate_backend`): each is one transaction, rolled back with the connection, and an update already
    # applied is recognised by its update_id, so running it again never applies an answer twice.

    async def _begin(
        self,
        *,
        chat_key: str,
        visitor: Visitor,
        source: str | None = None,
        update_id: int | None = None,
        restart: bool = False,
    ) -> Turn | Ignored:
        return await _once_more_if_disconnected(
            lambda: self._service.begin(
                chat_key=chat_key, visitor=visitor, source=source, update_id=update_id, restart=restart
            )
        )

    async def _respond(self, *, chat_key: str, given: flow.Input, update_id: int | None) -> Turn | Ignored:
        turn = await _once_more_if_disconnected(
            lambda: self._service.respond(chat_key=chat_key, given=given, update_id=update_id)
        )
        if isinstance(turn, Turn) and turn.finished:
            # Committed with the lead: sales get its card now, not at the card poster's next poll.
            self._queued()
        return turn

    async def _cancel(self, *, chat_key: str, update_id: int | None) -> bool:
        return await _once_more_if_disconnected(lambda: self._service.cancel(chat_key=chat_key, update_id=update_id))

    async def on_start(self, update: Update, context: Context) -> None:
        """Begin the questionnaire (a deep-link payload is the lead's source), or resume it."""
        chat, user = _chat_and_user(update)
        payload = context.args[0] if context.args else None
        source = payload if payload and _SOURCE.match(payload) else None
        turn = await self._begin(
            chat_key=_chat_key(chat), visitor=_visitor(user), source=source, update_id=update.update_id
        )
        _note_lead(turn)
        await self._greet(chat, turn)

    async def on_restart(self, update: Update, context: Context) -> None:
        """Start the questionnaire over."""
        chat, user = _chat_and_user(update)
        turn = await self._begin(
            chat_key=_chat_key(chat), visitor=_visitor(user), update_id=update.update_id, restart=True
        )
        if isinstance(turn, Turn):
            await chat.send_message(texts.STARTING_OVER)
            await self._show(chat, turn.reply.screen)

    async def on_cancel(self, update: Update, context: Context) -> None:
        """Stop the questionnaire under way."""
        chat, _ = _chat_and_user(update)
        cancelled = await self._cancel(chat_key=_chat_key(chat), update_id=update.update_id)
        await chat.send_message(texts.CANCELLED if cancelled else texts.NOTHING_TO_CANCEL)

    async def on_help(self, update: Update, context: Context) -> None:
        """List the commands."""
        chat, _ = _chat_and_user(update)
        await chat.send_message(texts.HELP.format(company=escape(self._config.company.name)))

    async def on_privacy(self, update: Update, context: Context) -> None:
        """Say what is stored, why, and for how long."""
        chat, _ = _chat_and_user(update)
        company = self._config.company
        await chat.send_message(
            texts.PRIVACY.format(
                company=escape(company.name),
                contact=escape(company.privacy_contact),
                retention=texts.retention(self._config.privacy.retention_days),
            )
        )

    async def on_button(self, update: Update, context: Context) -> None:
        """Apply a button press to the conversation and update the message it was on."""
        query = update.callback_query
        assert query is not None
        chat, user = _chat_and_user(update)
        # Callback data is never trusted: decode refuses what this bot did not write, and the
        # service refuses a button from any screen but the current one.
        given = callbacks.decode(query.data)
        if given is None:
            await query.answer(texts.INVALID_BUTTON)
            return
        turn = await self._respond(chat_key=_chat_key(chat), given=given, update_id=update.update_id)
        _note_lead(turn)
        if turn is Ignored.DUPLICATE:
            return
        if turn is Ignored.NO_CONVERSATION:
            await query.answer(texts.plain(texts.NOT_STARTED), show_alert=True)
            return
        reply = turn.reply
        if reply.stale:
            await query.answer(texts.STALE_BUTTON)
            return
        if reply.problem is not None:
            await query.answer(texts.plain(texts.problem(reply.problem)), show_alert=True)
            return
        message = query.message if isinstance(query.message, Message) else None
        if isinstance(given, flow.Toggle):
            updates = [] if message is None else [quietly(message.edit_reply_markup(render.keyboard(reply.screen)))]
            await asyncio.gather(quietly(query.answer()), *updates)
            return
        answered = self._answered(given, turn)
        if isinstance(reply.screen, flow.Prompt):
            # The next question takes the pressed one's place, under the answer just given: one call
            # where an edit and a new message would be two, and Telegram limits calls per chat.
            shown = render.prompt(reply.screen, answered=answered)
            await asyncio.gather(quietly(query.answer()), show_in_place(chat, message, shown))
            return
        # A summary, the edit menu and the outcome stay in the transcript as messages of their own.
        # The calls do not depend on each other: sent together, the reply takes one round trip.
        retire = [] if message is None else [_retire(message, answered)]
        following = self._show(chat, reply.screen, language_code=user.language_code)
        await asyncio.gather(quietly(query.answer()), *retire, following)

    async def on_text(self, update: Update, context: Context) -> None:
        """Take typed text as the answer to the question on screen."""
        chat, user = _chat_and_user(update)
        message = update.message
        if message is None or message.text is None:
            return
        typed = flow.Typed(message.text)
        turn = await self._respond(chat_key=_chat_key(chat), given=typed, update_id=update.update_id)
        _note_lead(turn)
        if turn is Ignored.DUPLICATE:
            return
        if turn is Ignored.NO_CONVERSATION:
            # Someone who just writes "hi" gets the questionnaire, as if they had pressed Start.
            started = await self._begin(chat_key=_chat_key(chat), visitor=_visitor(user), update_id=update.update_id)
            await self._greet(chat, started)
            return
        reply = turn.reply
        if reply.stale:
            # The questionnaire is done: typed text may be the time zone booking asked for.
            if self._booking is None or not await self._booking.on_text(chat, message.text, update.update_id):
                await chat.send_message(texts.ALREADY_FINISHED)
        elif reply.problem is not None:
            await self._show(chat, reply.screen, problem=texts.problem(reply.problem))
        else:
            await self._show(chat, reply.screen, language_code=user.language_code)

    async def on_other(self, update: Update, context: Context) -> None:
        """Explain that only text and buttons are understood."""
        chat, _ = _chat_and_user(update)
        await chat.send_message(texts.TEXT_ONLY)

    async def on_unknown_command(self, update: Update, context: Context) -> None:
        """Point to /help."""
        chat, _ = _chat_and_user(update)
        await chat.send_message(texts.UNKNOWN_COMMAND)

    async def _greet(self, chat: Chat, turn: Turn | Ignored) -> None:
        if not isinstance(turn, Turn):
            return
        if not turn.resumed:
            await chat.send_message(escape(self._config.messages.welcome))
        elif isinstance(turn.reply.screen, flow.Finished):
            await chat.send_message(texts.ALREADY_FINISHED)
            return
        else:
            await chat.send_message(texts.WELCOME_BACK)
        await self._show(chat, turn.reply.screen)

    async def _show(
        self, chat: Chat, screen: flow.Screen, *, problem: str | None = None, language_code: str | None = None
    ) -> None:
        messages = self._config.messages
        if isinstance(screen, flow.Prompt):
            shown = render.prompt(screen, problem=problem)
        else:
            if problem is not None:
                await chat.send_message(problem)
            shown = render.screen(screen, qualified_text=messages.qualified, nurture_text=messages.nurture)
            if isinstance(screen, flow.Finished) and screen.assessment.qualified and self._booking is not None:
                # Booking starts in the outcome message itself: its first question rides on the same message.
                first = await self._booking.begin(chat, language_code)
                shown = render.Message(f"{shown.html}\n\n{first.html}", booking_keyboard(first))
        await chat.send_message(shown.html, reply_markup=shown.keyboard)

    def _answered(self, given: flow.Input, turn: Turn) -> str | None:
        """How the pressed question reads once answered by Choose, Done or Skip; None for other buttons."""
        if not isinstance(given, flow.Choose | flow.Done | flow.Skip):
            return None
        question = self._service.questionnaire.question(given.at)
        if question is None:
            return None
        return render.answered(question, turn.reply.state.answers.get(question.key))


async def show_in_place(chat: Chat, message: Message | None, shown: render.Message) -> None:
    """Edit the pressed message into `shown`, or send `shown` as a new message if that message cannot be edited."""
    if message is not None:
        try:
            await message.edit_text(shown.html, reply_markup=shown.keyboard)
        except BadRequest as error:
            if already_shown(error):
                # The message already shows exactly this (a press redelivered after a crash, whose edit had
                # arrived): a copy of it would be a duplicate.
                return
            # Telegram refuses edits of some messages ("message can't be edited"); the prospect must
            # still get the next question.
            log.debug("edit refused by Telegram, sending a new message: %s", error)
        else:
            return
    await chat.send_message(shown.html, reply_markup=shown.keyboard)


async def _retire(message: Message, answered: str | None) -> None:
    """Take the buttons off a message that has been answered, showing the answer in their place if there is one."""
    if answered is not None:
        await quietly(message.edit_text(answered))
    else:
        await quietly(message.edit_reply_markup(None))


async def quietly(edit: Awaitable[object]) -> None:
    """Await an edit of an earlier message or a button's answer; it is cosmetic, so a failure is logged, not raised."""
    try:
        await edit
    except (BadRequest, Forbidden) as error:
        log.debug("edit refused by Telegram: %s", error)
    except NetworkError as error:
        # A 5xx or lost connection the limiter gave up on (it does not retry calls without a chat, such as
        # answerCallbackQuery): the answer or the screen still comes, so the update must not fail for it.
        log.warning("edit or button answer failed: %s", error)


def _chat_and_user(update: Update) -> tuple[Chat, User]:
    chat, user = update.effective_chat, update.effective_user
    if chat is None or user is None:
        raise ValueError(f"update {update.update_id} has no chat or user")
    return chat, user


def _chat_key(chat: Chat) -> str:
    return f"tg:{chat.id}"


def _visitor(user: User) -> Visitor:
    return Visitor(
        telegram_user_id=user.id,
        first_name=user.first_name,
        last_name=user.last_name,
        username=user.username,
        language_code=user.language_code,
    )


def _note_lead(turn: Turn | Ignored) -> None:
    """Put the lead's id on the log lines of the rest of this update (ids only, never what the prospect said)."""
    if isinstance(turn, Turn):
        logs.LEAD_ID.set(int(turn.lead_id))
