"""Compact callback data for inline buttons, and reading it back without trusting it."""

from __future__ import annotations

from leads import flow

MAX_CALLBACK_BYTES = 64
"""Telegram refuses buttons whose callback data is longer."""


def encode(given: flow.Input) -> str:
    """The callback data for a button that sends this input."""
    match given:
        case flow.Choose(at=at, option=option):
            data = f"c:{at}:{option}"
        case flow.Toggle(at=at, option=option):
            data = f"t:{at}:{option}"
        case flow.Done(at=at):
            data = f"d:{at}"
        case flow.Skip(at=at):
            data = f"s:{at}"
        case flow.Back(at=at):
            data = f"b:{at}"
        case flow.Confirm():
            data = "ok"
        case flow.OpenEditMenu():
            data = "em"
        case flow.Edit(question=question):
            data = f"e:{question}"
        case flow.Typed():
            raise ValueError("typed text is not sent by a button")
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError(f"callback data {data!r} is longer than Telegram allows")
    return data


def decode(data: str | None) -> flow.Input | None:
    """The input a button sends, or None for data this bot never wrote (forged or mangled)."""
    if not data or len(data.encode()) > MAX_CALLBACK_BYTES:
        return None
    decoded = _read(data)
    # Only data this bot writes is read: "ok:" or "d:services:" would mean the same, but no
    # button of ours sends them, so whoever did is not pressing one of our buttons.
    return decoded if decoded is not None and encode(decoded) == data else None


def _read(data: str) -> flow.Input | None:
    kind, _, rest = data.partition(":")
    at, _, option = rest.partition(":")
    match kind:
        case "c" if at and option:
            return flow.Choose(at=at, option=option)
        case "t" if at and option:
            return flow.Toggle(at=at, option=option)
        case "d" if at and not option:
            return flow.Done(at=at)
        case "s" if at and not option:
            return flow.Skip(at=at)
        case "b" if at and not option:
            return flow.Back(at=at)
        case "ok" if not rest:
            return flow.Confirm()
        case "em" if not rest:
            return flow.OpenEditMenu()
        case "e" if at and not option:
            return flow.Edit(question=at)
    return None
