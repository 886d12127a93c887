"""The questionnaire in a terminal: numbered options, typed answers, and the sales summary at the end.

Standard input may be a pipe, so a whole conversation can be scripted, one answer per line.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from bot import booking_view, journey, texts
from bot.config import BusinessConfig
from bot.journey import BookingJourney
from bot.texts import escape
from leads import flow
from leads.model import Question
from leads.records import describe_answer
from leads.service import Ignored, QualificationService, Turn, Visitor

HELP = "Commands: 'back' (previous question), 'skip' (optional questions), 'restart', 'quit'."


@dataclass
class Terminal:
    """Where the conversation is read from and written to."""

    input: TextIO
    output: TextIO

    @property
    def scripted(self) -> bool:
        """Input comes from a pipe or file rather than a person at a keyboard."""
        return not self.input.isatty()

    def say(self, html: str = "") -> None:
        """Print a bot message."""
        print(texts.plain(html), file=self.output, flush=True)

    async def ask(self) -> str | None:
        """One line typed by the prospect, or None at the end of input."""
        self.output.write("> ")
        self.output.flush()
        line = await asyncio.to_thread(self.input.readline)
        if not line:
            self.output.write("\n")
            return None
        answer = line.rstrip("\r\n")
        if self.scripted:
            # Echo scripted answers so the transcript reads as a conversation.
            self.output.write(answer + "\n")
        return answer


async def chat(
    service: QualificationService,
    config: BusinessConfig,
    terminal: Terminal,
    *,
    journey: BookingJourney | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Run one conversation to its end, booking included; the exit status is 0 when it finished or the prospect quit."""
    chat_key = f"term:{uuid.uuid4()}"
    visitor = Visitor(telegram_user_id=None, first_name="Terminal prospect", channel="terminal")
    turn = await service.begin(chat_key=chat_key, visitor=visitor, source="terminal")
    assert isinstance(turn, Turn)
    terminal.say(f"{escape(config.messages.welcome)}\n\n{HELP}")
    screen: flow.Screen = turn.reply.screen
    while True:
        if isinstance(screen, flow.Finished):
            _finish(terminal, screen, config)
            summary = await service.lead_summary(turn.lead_id)
            assert summary is not None
            terminal.say("\n──────── Lead summary for sales ────────")
            terminal.say(texts.lead_summary(summary))
            if journey is None or not screen.assessment.qualified:
                return 0
            return await _book(terminal, journey, chat_key, config, clock)
        terminal.say()
        terminal.say(_render(screen))
        line = await terminal.ask()
        if line is None:
            terminal.say("Input ended before the questionnaire was finished; your answers so far are saved.")
            return 1
        command = line.strip().casefold()
        if command in {"quit", "exit", "cancel"}:
            await service.cancel(chat_key=chat_key)
            terminal.say(texts.CANCELLED.split(".")[0] + ".")
            return 0
        if command == "help":
            terminal.say(HELP)
            continue
        if command == "restart":
            turn = await service.begin(chat_key=chat_key, visitor=visitor, restart=True)
            assert isinstance(turn, Turn)
            terminal.say(texts.STARTING_OVER)
            screen = turn.reply.screen
            continue
        result = await service.respond(chat_key=chat_key, given=_input(screen, line))
        if isinstance(result, Ignored):
            raise RuntimeError(f"the terminal conversation was lost: {result.value}")
        if result.reply.problem is not None:
            terminal.say(texts.problem(result.reply.problem, terminal=True))
        elif result.reply.stale:
            terminal.say("That is not one of the choices here.")
        screen = result.reply.screen


def _input(screen: flow.Screen, line: str) -> flow.Input:
    """What a typed line means on a screen: a command word, a menu number, or an answer."""
    command = line.strip().casefold()
    if command == "back":
        return flow.Back(at=screen.name)
    if isinstance(screen, flow.Prompt):
        if command == "skip":
            return flow.Skip(at=screen.name)
        if command in {"", "done"} and screen.question.kind == "multi" and screen.question.optional:
            return flow.Done(at=screen.name)
        return flow.Typed(line)
    if isinstance(screen, flow.Summary):
        choices: dict[str, flow.Input] = {
            "1": flow.Confirm(),
            "2": flow.OpenEditMenu(),
            "3": flow.Back(at=screen.name),
        }
        return choices.get(command, flow.Typed(line))
    if isinstance(screen, flow.EditMenu) and command.isdigit() and 1 <= int(command) <= len(screen.questions):
        return flow.Edit(question=screen.questions[int(command) - 1].key)
    return flow.Typed(line)


def _render(screen: flow.Screen) -> str:
    match screen:
        case flow.Prompt():
            return _prompt(screen)
        case flow.Summary(items=items):
            lines = [texts.SUMMARY_TITLE, ""]
            lines += [f"{escape(q.label)}: {escape(_answer(q, v))}" for q, v in items]
            lines += ["", "  1) Confirm", "  2) Edit an answer", "  3) Back"]
            return "\n".join(lines)
        case flow.EditMenu(questions=questions):
            lines = [texts.EDIT_MENU]
            lines += [f"  {n}) {escape(q.label)}" for n, q in enumerate(questions, 1)]
            lines.append("Type a number, or 'back' for the summary.")
            return "\n".join(lines)
        case flow.Finished():
            return ""


def _prompt(shown: flow.Prompt) -> str:
    question = shown.question
    lines = [texts.QUESTION_PROGRESS.format(number=shown.number, total=shown.total), escape(question.prompt)]
    if question.optional:
        lines.append(f"{texts.OPTIONAL} Type 'skip' to leave it out.")
    for number, option in enumerate(question.options, 1):
        earlier = shown.previous_answer
        chosen = option.key in earlier if isinstance(earlier, tuple) else option.key == earlier
        lines.append(f"  {number}) {escape(option.label)}{'  (your earlier answer)' if chosen else ''}")
    if question.kind == "multi":
        lines.append("Type the numbers of your choices, separated by commas (e.g. 1, 3).")
    elif question.kind == "single":
        lines.append("Type the number of your choice.")
    elif shown.previous_answer is not None:
        earlier_text = escape(describe_answer(question, shown.previous_answer))
        lines.append(texts.EARLIER_ANSWER.format(answer=earlier_text))
    return "\n".join(lines)


def _answer(question: Question, value: object) -> str:
    if value is None:
        return texts.SKIPPED
    assert isinstance(value, str | int | tuple)
    return texts.shorten(describe_answer(question, value))


def _finish(terminal: Terminal, screen: flow.Finished, config: BusinessConfig) -> None:
    terminal.say()
    if screen.assessment.qualified:
        terminal.say(f"✅ Qualified (score {screen.assessment.score}).")
        terminal.say(escape(config.messages.qualified))
    else:
        terminal.say(f"🌱 Nurture (score {screen.assessment.score}).")
        terminal.say(escape(config.messages.nurture))


_DONE = (
    journey.Confirmed,
    journey.Cancelled,
    journey.Kept,
    journey.CallbackRequested,
    journey.NotQualified,
    journey.TooLateToChange,
)
"""Screens after which booking in the terminal is over."""


async def _book(
    terminal: Terminal, journey_: BookingJourney, chat_key: str, config: BusinessConfig, clock: Callable[[], datetime]
) -> int:
    """The booking conversation: numbered choices, or typed text where a time zone is asked."""
    terminal.say("\n──────── Booking your consultation ────────")
    screen: journey.Screen = await journey_.begin(chat_key)
    while True:
        shown = booking_view.view(screen, config=config, now=clock())
        terminal.say()
        terminal.say(shown.html)
        if shown.document is not None:
            terminal.say(_saved(*shown.document))
        if isinstance(screen, _DONE):
            return 0
        buttons = [button for row in shown.rows for button in row]
        for number, (label, _) in enumerate(buttons, 1):
            terminal.say(f"  {number}) {escape(label)}")
        line = await terminal.ask()
        if line is None:
            terminal.say("Input ended before a consultation was booked; send /start in Telegram or run chat again.")
            return 1
        choice = line.strip()
        if choice.casefold() in {"quit", "exit"}:
            return 0
        if choice.isdigit() and 1 <= int(choice) <= len(buttons):
            pressed = await journey_.press(chat_key, buttons[int(choice) - 1][1])
            screen = pressed if pressed is not None else screen
            continue
        typed = await journey_.typed(chat_key, line)
        if typed is None:
            terminal.say("Type the number of your choice.")
            continue
        screen = typed


def _saved(name: str, content: bytes, caption: str) -> str:
    """Write an invite where the prospect can open it; where it went."""
    path = Path(tempfile.gettempdir()) / f"consultbot-{uuid.uuid4().hex[:8]}-{name}"
    path.write_bytes(content)
    return f"{caption}\nInvite saved to {path} (open it to add the consultation to your calendar)."


def stdio() -> Terminal:
    """The process's own terminal, or whatever is piped to it."""
    return Terminal(input=sys.stdin, output=sys.stdout)
