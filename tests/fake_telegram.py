"""A fake Telegram Bot API server that the real python-telegram-bot stack talks to over HTTP."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any

import aiohttp
from aiohttp import web

from tests.local_server import LocalServer

__all__ = [
    "ApiCall",
    "EntityParseError",
    "FakeTelegram",
    "FakeUser",
    "SentMessage",
    "UploadedFile",
    "parse_telegram_html",
    "utf16_length",
]

MAX_MESSAGE_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are exactly "
    "the same as a current content and reply markup of the message"
)
POLL_CONFLICT = "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
WEBHOOK_CONFLICT = (
    "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first"
)
QUERY_TOO_OLD = "Bad Request: query is too old and response timeout expired or query ID is invalid"
CANT_BE_EDITED = "Bad Request: message can't be edited"

# HTTP status recorded for a call whose client hung up before the answer (nginx's convention): PTB cancels
# its long poll on shutdown, and such a call was neither accepted nor rejected as far as the bot knows.
ABANDONED_STATUS = 499


def utf16_length(text: str) -> int:
    """Length of `text` in UTF-16 code units, the unit Telegram counts limits and offsets in."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


# The HTML parser below ports tdlib's parse_html (td/telegram/MessageEntity.cpp), which the Bot API server
# runs, so that its error texts, byte offsets and leniencies are Telegram's own.


class EntityParseError(Exception):
    """Raised when Telegram would refuse a text's HTML markup."""


_SUPPORTED_TAGS = frozenset(b"a b strong i em s strike del u ins tg-spoiler tg-emoji span pre code blockquote".split())
# tdlib's is_space counts NUL as space; that is how its scans stop at the end of the C string.
_SPACES = frozenset(b" \t\r\n\x00\x0b\x0c")
_NAMED_ENTITIES = {b"lt": ord("<"), b"gt": ord(">"), b"amp": ord("&"), b"quot": ord('"')}
_LT, _GT, _AMP, _SLASH, _EQ, _SQ, _DQ, _SEMI = (ord(c) for c in "<>&/='\";")
# tdlib sorts entities by offset, then longer first, then by this priority.
_PRIORITY = {
    "blockquote": 0,
    "expandable_blockquote": 0,
    "pre": 11,
    "code": 20,
    "text_link": 49,
    "text_mention": 49,
    "bold": 90,
    "italic": 91,
    "underline": 92,
    "strikethrough": 93,
    "spoiler": 94,
    "custom_emoji": 99,
}
_SIMPLE_TAG_TYPES = {
    b"b": "bold",
    b"strong": "bold",
    b"i": "italic",
    b"em": "italic",
    b"u": "underline",
    b"ins": "underline",
    b"s": "strikethrough",
    b"strike": "strikethrough",
    b"del": "strikethrough",
    b"tg-spoiler": "spoiler",
    b"span": "spoiler",
}
_USER_LINK = re.compile(r"^tg://user\?id=(\d{1,19})$", re.IGNORECASE)
_URL_SCHEME = re.compile(r"^([a-z][a-z0-9+.-]*):", re.IGNORECASE)
_BARE_HOST = re.compile(r"^[\w-]+(\.[\w-]+)+([:/?#].*)?$")


def _is_alpha(c: int) -> bool:
    return 0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A


def _is_digit(c: int) -> bool:
    return 0x30 <= c <= 0x39


def _is_hex_digit(c: int) -> bool:
    return _is_digit(c) or 0x41 <= c <= 0x46 or 0x61 <= c <= 0x66


def _decode_html_entity(text: bytes, pos: int) -> tuple[int, int]:
    """Code point of the character reference at `pos` and the position after it; code 0 if there is none."""

    def at(i: int) -> int:
        return text[i] if i < len(text) else 0

    end = pos + 1
    code = 0
    if at(pos + 1) == ord("#"):
        end += 1
        if at(pos + 2) == ord("x"):
            end += 1
            while _is_hex_digit(at(end)):
                code = code * 16 + int(chr(at(end)), 16)
                end += 1
        else:
            while _is_digit(at(end)):
                code = code * 10 + at(end) - 0x30
                end += 1
        if code == 0 or code >= 0x10FFFF or end - pos >= 10:
            return 0, pos
    else:
        while _is_alpha(at(end)):
            end += 1
        named = _NAMED_ENTITIES.get(text[pos + 1 : end])
        if named is None:
            # Telegram keeps an `&` that starts no known entity as a literal character, it does not refuse it.
            return 0, pos
        code = named
    if at(end) == _SEMI:
        end += 1
    return code, end


def _encode_code_point(code: int) -> bytes:
    # surrogatepass lets a lone surrogate through so that the final UTF-8 check can refuse it, as tdlib does.
    return chr(code).encode("utf-8", "surrogatepass")


def _checked_link(url: str) -> str:
    """Approximation of tdlib's LinkManager::get_checked_link: the URL Telegram keeps, or "" to drop it."""
    url = url.strip()
    scheme = _URL_SCHEME.match(url)
    if scheme is None:
        return f"http://{url}" if _BARE_HOST.match(url) else ""
    if scheme.group(1).lower() in ("http", "https"):
        return url if len(url) > len(scheme.group(0)) + 2 else ""
    return url if scheme.group(1).lower() in ("tg", "ton", "mailto", "tel") else ""


@dataclass
class _OpenTag:
    name: bytes
    argument: bytes
    utf16_offset: int
    result_pos: int


def parse_telegram_html(markup: str) -> tuple[str, list[dict[str, Any]]]:
    """Plain text and MessageEntity dicts of `markup` in HTML parse mode, or Telegram's EntityParseError."""
    text = markup.encode("utf-8")
    size = len(text)

    def at(i: int) -> int:
        return text[i] if i < size else 0

    def fail(detail: str) -> EntityParseError:
        return EntityParseError(detail)

    def tag_text(raw: bytes) -> str:
        return raw.decode("utf-8", "replace")

    result = bytearray()
    entities: list[dict[str, Any]] = []
    nested: list[_OpenTag] = []
    utf16 = 0
    need_utf8_recheck = False
    i = 0
    while i < size:
        c = text[i]
        if c == _AMP:
            code, end = _decode_html_entity(text, i)
            if code:
                utf16 += 2 if code > 0xFFFF else 1
                need_utf8_recheck |= 0xD800 <= code <= 0xDFFF
                result += _encode_code_point(code)
                i = end
                continue
        if c != _LT:
            if c & 0xC0 != 0x80:
                utf16 += 2 if c >= 0xF0 else 1
            result.append(c)
            i += 1
            continue

        begin = i
        i += 1
        if at(i) != _SLASH:
            while at(i) not in _SPACES and at(i) != _GT:
                i += 1
            if at(i) == 0:
                raise fail(f"Unclosed start tag at byte offset {begin}")
            name = text[begin + 1 : i].lower()
            if name not in _SUPPORTED_TAGS:
                raise fail(f'Unsupported start tag "{tag_text(name)}" at byte offset {begin}')
            argument = b""
            while at(i) != _GT:
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) == _GT:
                    break
                attribute_begin = i
                while at(i) not in _SPACES and at(i) not in (_EQ, _GT, _SLASH, _DQ, _SQ):
                    i += 1
                attribute = text[attribute_begin:i]
                if not attribute:
                    raise fail(f'Empty attribute name in the tag "{tag_text(name)}" at byte offset {begin}')
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) != _EQ:
                    if at(i) == 0:
                        raise fail(f'Unclosed start tag "{tag_text(name)}" at byte offset {begin}')
                    if name == b"blockquote" and attribute == b"expandable":
                        argument = b"1"
                    continue
                i += 1
                while at(i) != 0 and at(i) in _SPACES:
                    i += 1
                if at(i) == 0:
                    raise fail(f'Unclosed start tag "{tag_text(name)}" at byte offset {begin}')
                if at(i) not in (_SQ, _DQ):
                    token_begin = i
                    while _is_alpha(at(i)) or _is_digit(at(i)) or at(i) in (ord("."), ord("-")):
                        i += 1
                    value = text[token_begin:i].lower()
                    if at(i) not in _SPACES and at(i) != _GT:
                        raise fail(f"Unexpected end of name token at byte offset {token_begin}")
                else:
                    quote = at(i)
                    i += 1
                    buffer = bytearray()
                    while at(i) != quote and at(i) != 0:
                        if at(i) == _AMP:
                            code, end = _decode_html_entity(text, i)
                            if code:
                                buffer += _encode_code_point(code)
                                i = end
                                continue
                        buffer.append(at(i))
                        i += 1
                    if at(i) == quote:
                        i += 1
                    value = bytes(buffer)
                if at(i) == 0:
                    raise fail(f"Unclosed start tag at byte offset {begin}")
                if (name == b"a" and attribute == b"href") or (name == b"tg-emoji" and attribute == b"emoji-id"):
                    argument = value
                elif name == b"code" and attribute == b"class" and value.startswith(b"language-"):
                    argument = value[len(b"language-") :]
                elif name == b"span" and attribute == b"class" and value.startswith(b"tg-"):
                    argument = value[len(b"tg-") :]
                elif name == b"blockquote" and attribute == b"expandable":
                    argument = b"1"
            if name == b"span" and argument != b"spoiler":
                raise fail(f'Tag "span" must have class "tg-spoiler" at byte offset {begin}')
            nested.append(_OpenTag(name, argument, utf16, len(result)))
            i += 1
            continue

        if not nested:
            raise fail(f"Unexpected end tag at byte offset {begin}")
        while at(i) not in _SPACES and at(i) != _GT:
            i += 1
        end_name = text[begin + 2 : i].lower()
        while at(i) in _SPACES and at(i) != 0:
            i += 1
        if at(i) != _GT:
            raise fail(f"Unclosed end tag at byte offset {begin}")
        opened = nested[-1]
        if end_name and end_name != opened.name:
            raise fail(
                f'Unmatched end tag at byte offset {begin}, expected "</{tag_text(opened.name)}>", '
                f'found "</{tag_text(end_name)}>"'
            )
        if utf16 > opened.utf16_offset:
            _close_entity(opened, utf16, bytes(result[opened.result_pos :]), entities)
        nested.pop()
        i += 1

    if nested:
        raise fail(f'Can\'t find end tag corresponding to start tag "{tag_text(nested[-1].name)}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"], _PRIORITY[e["type"]]))
    try:
        plain = bytes(result).decode("utf-8")
    except UnicodeDecodeError:
        if not need_utf8_recheck:
            raise
        raise fail(
            "Text contains invalid Unicode characters after decoding HTML entities, "
            "check for unmatched surrogate code units"
        ) from None
    return plain, entities


def _close_entity(opened: _OpenTag, utf16: int, inner: bytes, entities: list[dict[str, Any]]) -> None:
    """Append the entity that the closing of `opened` produces, following tdlib's rules."""
    offset = opened.utf16_offset
    length = utf16 - offset
    name = opened.name
    argument = opened.argument.decode("utf-8", "replace")
    if name in _SIMPLE_TAG_TYPES:
        entities.append({"type": _SIMPLE_TAG_TYPES[name], "offset": offset, "length": length})
    elif name == b"tg-emoji":
        if not re.fullmatch(r"-?\d{1,19}", argument) or int(argument) == 0 or abs(int(argument)) >= 2**63:
            raise EntityParseError("Invalid custom emoji identifier specified")
        entities.append({"type": "custom_emoji", "offset": offset, "length": length, "custom_emoji_id": argument})
    elif name == b"a":
        url = argument or inner.decode("utf-8", "replace")
        user = _USER_LINK.match(url.strip())
        if user is not None:
            mentioned = {"id": int(user.group(1)), "is_bot": False, "first_name": ""}
            entities.append({"type": "text_mention", "offset": offset, "length": length, "user": mentioned})
        elif checked := _checked_link(url):
            entities.append({"type": "text_link", "offset": offset, "length": length, "url": checked})
    elif name == b"pre":
        last = entities[-1] if entities else None
        same_span = last is not None and (last["offset"], last["length"]) == (offset, length)
        if last is not None and same_span and last["type"] == "code" and last.get("language"):
            last["type"] = "pre"
            return
        entities.append({"type": "pre", "offset": offset, "length": length})
    elif name == b"code":
        last = entities[-1] if entities else None
        if last and last["type"] == "pre" and (last["offset"], last["length"]) == (offset, length) and argument:
            last["language"] = argument
            return
        entities.append({"type": "code", "offset": offset, "length": length, "language": argument})
    elif name == b"blockquote":
        kind = "expandable_blockquote" if argument else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})


def _strip_formatted(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Trim surrounding whitespace as Telegram does before storing a text, shifting the entities with it."""
    stripped = text.strip(" \t\r\n")
    if stripped == text:
        return text, entities
    lead = utf16_length(text[: len(text) - len(text.lstrip(" \t\r\n"))])
    total = utf16_length(stripped)
    kept: list[dict[str, Any]] = []
    for entity in entities:
        start = max(entity["offset"] - lead, 0)
        end = min(entity["offset"] + entity["length"] - lead, total)
        if end > start:
            kept.append({**entity, "offset": start, "length": end - start})
    return stripped, kept


@dataclass(frozen=True)
class ApiCall:
    """One request the bot made and Telegram's verdict (status 499: the bot hung up before the answer)."""

    method: str
    params: dict[str, Any]
    ok: bool
    error: str | None
    # time.monotonic() on arrival; `calls` is in completion order, which a long poll can put far later
    at: float
    status: int = 200


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request."""

    filename: str | None
    content: bytes
    content_type: str | None


@dataclass(eq=False)
class SentMessage:
    """A message the bot sent; the fake keeps this very object up to date as the bot edits or deletes it."""

    message_id: int
    chat_id: int
    text: str
    html: str
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    document: dict[str, Any] | None = None
    edits: int = 0
    entities: list[dict[str, Any]] = field(default_factory=list)
    date: int = 0
    sent_at: float = 0.0
    edited_at: float | None = None
    deleted: bool = False
    reply_to_message_id: int | None = None
    editable: bool = True
    """False once FakeTelegram.refuse_edits was called on it."""

    def buttons(self) -> list[tuple[str, str]]:
        """(text, callback_data) of every inline button, row by row; "" for buttons without callback_data."""
        rows = (self.reply_markup or {}).get("inline_keyboard") or []
        return [(str(b.get("text", "")), str(b.get("callback_data", ""))) for row in rows for b in row]

    def button(self, label_substring: str) -> str:
        """Callback data of the first inline button whose text contains `label_substring`."""
        for label, data in self.buttons():
            if label_substring in label:
                return data
        raise AssertionError(
            f"no button containing {label_substring!r} on message {self.message_id}; buttons: {self.buttons()}"
        )

    def describe(self) -> str:
        """Short human-readable summary, for assertion messages."""
        kind = f"document {self.document['filename']!r} " if self.document else ""
        extras = f" buttons={self.buttons()}" if self.buttons() else ""
        state = " (deleted)" if self.deleted else (f" (edited {self.edits}x)" if self.edits else "")
        return f"#{self.message_id} {kind}{self.text!r}{extras}{state}"


@dataclass
class _Chat:
    user: FakeUser
    next_message_id: int = 1
    sent: list[SentMessage] = field(default_factory=list)
    by_id: dict[int, SentMessage] = field(default_factory=dict)
    user_messages: set[int] = field(default_factory=set)
    blocked: bool = False
    screens: list[_Screen] = field(default_factory=list)

    def take_message_id(self) -> int:
        message_id = self.next_message_id
        self.next_message_id += 1
        return message_id


@dataclass(frozen=True)
class _Screen:
    """A message as sent (edit 0, `sent_index` its place in the chat), or an edit that gave it new text and buttons."""

    message: SentMessage
    edit: int
    sent_index: int | None


def _fail(status: int, retry_after: int) -> None:
    if status != 429:
        raise _ApiError(status, HTTPStatus(status).phrase)
    raise _ApiError(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


@dataclass
class _Storm:
    every: int
    status: int
    retry_after: int
    calls: int = 0


_SENDING_METHODS = frozenset(
    {"sendMessage", "sendDocument", "editMessageText", "editMessageCaption", "editMessageReplyMarkup"}
)
"""What counts against the sending limits when the fake enforces them."""


@dataclass
class _RateLimits:
    """Sliding windows of the messages the fake accepted: overall, and per chat."""

    limits: dict[str, tuple[int, float]]
    slack: float
    accepted: collections.defaultdict[object, collections.deque[float]]

    def check(self, chat_id: object) -> None:
        """Accept a message to `chat_id` now, or raise Telegram's 429 if a window is full."""
        now = time.monotonic()
        kind = "group" if isinstance(chat_id, str) or (isinstance(chat_id, int) and chat_id < 0) else "private"
        windows: list[tuple[object, tuple[int, float]]] = [("overall", self.limits["overall"])]
        if chat_id is not None:
            windows.append((chat_id, self.limits[kind]))
        for key, (count, seconds) in windows:
            times = self.accepted[key]
            while times and times[0] <= now - (seconds - self.slack):
                times.popleft()
            if len(times) >= count:
                wait = max(1, math.ceil(times[0] + seconds - now))
                raise _ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)
        for key, _ in windows:
            self.accepted[key].append(now)


@dataclass
class _CallbackQuery:
    user_id: int
    answered: bool = False


class _ApiError(Exception):
    """An error answer in Telegram's envelope."""

    def __init__(self, code: int, description: str, *, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error_code": self.code, "description": self.description}
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def _bad(detail: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {detail}")


_BOT_COMMAND = re.compile(r"^/[A-Za-z0-9_]{1,64}(@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_COMMAND_NAME = re.compile(r"^[a-z0-9_]{1,32}$")
_CHAT_ACTIONS = frozenset(
    [
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    ]
)
# What Telegram sends when allowed_updates is empty: everything but chat_member and reactions.
_DEFAULT_UPDATE_TYPES = frozenset(
    [
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
        "business_connection",
        "business_message",
        "edited_business_message",
        "deleted_business_messages",
        "inline_query",
        "chosen_inline_result",
        "callback_query",
        "shipping_query",
        "pre_checkout_query",
        "purchased_paid_media",
        "poll",
        "poll_answer",
        "my_chat_member",
        "chat_join_request",
        "chat_boost",
        "removed_chat_boost",
    ]
)

# Values arrive as strings in form and multipart bodies (PTB JSON-encodes every non-string value into a form
# field), so the fake types them by name the way the Bot API server does.
_INT_PARAMS = frozenset(
    [
        "chat_id",
        "message_id",
        "offset",
        "limit",
        "user_id",
        "cache_time",
        "max_connections",
        "message_thread_id",
        "reply_to_message_id",
        "from_chat_id",
    ]
)
_FLOAT_PARAMS = frozenset({"timeout"})
_BOOL_PARAMS = frozenset(
    [
        "disable_web_page_preview",
        "disable_notification",
        "protect_content",
        "show_alert",
        "drop_pending_updates",
        "allow_sending_without_reply",
        "disable_content_type_detection",
        "has_spoiler",
        "allow_paid_broadcast",
    ]
)
_JSON_PARAMS = {
    "reply_markup": "reply keyboard markup",
    "allowed_updates": "allowed updates",
    "entities": "message entities",
    "caption_entities": "caption entities",
    "link_preview_options": "link preview options",
    "reply_parameters": "reply parameters",
    "commands": "bot commands",
    "scope": "bot command scope",
}


def _normalise_param(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if name in _JSON_PARAMS:
        try:
            return json.loads(value)
        except ValueError:
            raise _bad(f"can't parse {_JSON_PARAMS[name]} JSON object") from None
    if name in _INT_PARAMS:
        with contextlib.suppress(ValueError):
            return int(value)
    elif name in _FLOAT_PARAMS:
        with contextlib.suppress(ValueError):
            return float(value)
    elif name in _BOOL_PARAMS:
        return value.strip().lower() in ("true", "1")
    return value


_Handler = Callable[[dict[str, Any]], Awaitable[Any]]


def _update_chat(update: dict[str, Any]) -> int:
    """The chat an update belongs to, for delivering each chat's updates in order (0 when it has none)."""
    for value in update.values():
        if isinstance(value, dict):
            message = value.get("message", value)
            chat = message.get("chat") if isinstance(message, dict) else None
            if isinstance(chat, dict) and isinstance(chat.get("id"), int):
                return int(chat["id"])
            sender = value.get("from")
            if isinstance(sender, dict) and isinstance(sender.get("id"), int):
                return int(sender["id"])
    return 0


class FakeUser:
    """A Telegram user chatting with the bot in a private chat whose id is the user's id."""

    def __init__(
        self,
        server: FakeTelegram,
        user_id: int,
        *,
        first_name: str,
        last_name: str | None,
        username: str | None,
        language_code: str | None,
    ) -> None:
        self._server = server
        self.id = user_id
        self.first_name = first_name
        self.last_name = last_name
        self.username = username
        self.language_code = language_code
        self._cursor = 0
        self._screen_cursor = 0
        self._edits_seen: dict[int, int] = {}

    @property
    def chat_id(self) -> int:
        """Id of the private chat with the bot."""
        return self.id

    def to_api(self) -> dict[str, Any]:
        """The User object Telegram sends for this user."""
        user: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key) is not None:
                user[key] = getattr(self, key)
        return user

    def chat_api(self) -> dict[str, Any]:
        """The private Chat object Telegram sends for this user's chat."""
        chat: dict[str, Any] = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name is not None:
            chat["last_name"] = self.last_name
        if self.username is not None:
            chat["username"] = self.username
        return chat

    async def send_text(self, text: str) -> dict[str, Any]:
        """Enqueue a private message from this user, with a bot_command entity if it starts with a command."""
        chat = self._server._chat(self.id)
        message_id = chat.take_message_id()
        chat.user_messages.add(message_id)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": self.to_api(),
            "chat": self.chat_api(),
            "date": int(time.time()),
            "text": text,
        }
        command = _BOT_COMMAND.match(text)
        if command is not None:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command.group(0))}]
        return self._server.enqueue_update("message", message)

    async def press(self, message: SentMessage, callback_data: str, *, forge: bool = False) -> dict[str, Any]:
        """Enqueue a callback_query on `message`; forge=True skips checking that such a button exists."""
        if message.chat_id != self.id:
            raise AssertionError(f"message {message.message_id} is in chat {message.chat_id}, not {self.id}")
        if not forge:
            if message.deleted:
                raise AssertionError(f"message {message.message_id} was deleted by the bot")
            if callback_data not in [data for _, data in message.buttons() if data]:
                raise AssertionError(f"message {message.describe()} has no button with callback_data {callback_data!r}")
        query_id = self._server._new_callback_query(self.id)
        query = {
            "id": query_id,
            "from": self.to_api(),
            "message": self._server._message_api(message),
            "chat_instance": str(-self.id),
            "data": callback_data,
        }
        return self._server.enqueue_update("callback_query", query)

    async def next_message(self, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109 - shared test API
        """The next message the bot sent to this chat after the last one returned, in order; edits are passed over."""
        chat = self._server._chat(self.id)
        arrived = await self._server._wait_until(lambda: len(chat.sent) > self._cursor, timeout)
        if not arrived:
            raise TimeoutError(
                f"the bot sent no new message to chat {self.id} within {timeout}s\n{self._server.report(self.id)}"
            )
        message = chat.sent[self._cursor]
        # next_screen reads on after this message: edits into new questions before it are passed over.
        while chat.screens[self._screen_cursor].sent_index != self._cursor:
            self._screen_cursor += 1
        self._screen_cursor += 1
        self._cursor += 1
        self._edits_seen.setdefault(message.message_id, 0)
        return message

    async def next_screen(self, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109 - shared test API
        """The next message the bot sent, or the next edit that gave one of its messages new text and buttons.

        In the order the fake accepted them, so a question shown in place of the one just answered comes
        where a new message would. Edits that change only the buttons (a tick) or take them away (an
        answered question) are not screens: next_edit waits for those. Reading is shared with
        next_message and next_edit: nothing either of them returned is returned again.
        """
        chat = self._server._chat(self.id)
        arrived = await self._server._wait_until(lambda: self._unseen_screen(chat) is not None, timeout)
        found = self._unseen_screen(chat)
        if not arrived or found is None:
            raise TimeoutError(
                f"the bot sent no new message and edited none into a new question in chat {self.id} within "
                f"{timeout}s\n{self._server.report(self.id)}"
            )
        position, screen = found
        self._screen_cursor = position + 1
        if screen.sent_index is not None:
            self._cursor = screen.sent_index + 1
        message_id = screen.message.message_id
        self._edits_seen[message_id] = max(self._edits_seen.get(message_id, 0), screen.edit)
        return screen.message

    def _unseen_screen(self, chat: _Chat) -> tuple[int, _Screen] | None:
        """The first screen from the cursor on that no reading method has returned yet, with its position."""
        for position in range(self._screen_cursor, len(chat.screens)):
            screen = chat.screens[position]
            if screen.sent_index is not None:
                if screen.sent_index >= self._cursor:
                    return position, screen
            elif screen.edit > self._edits_seen.get(screen.message.message_id, 0):
                return position, screen
        return None

    async def next_reply(self, text: str, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109 - shared test API
        """Send `text`, then return the next message the bot sends."""
        await self.send_text(text)
        return await self.next_message(timeout)

    async def next_edit(self, message: SentMessage, timeout: float = 5.0) -> SentMessage:  # noqa: ASYNC109
        """Wait until the bot edits `message` once more than the edits already seen through this method."""
        seen = self._edits_seen.get(message.message_id, 0)
        edited = await self._server._wait_until(lambda: message.edits > seen, timeout)
        if not edited:
            raise TimeoutError(
                f"the bot did not edit message {message.describe()} within {timeout}s\n{self._server.report(self.id)}"
            )
        self._edits_seen[message.message_id] = message.edits
        return message

    def messages(self) -> list[SentMessage]:
        """All the bot's messages currently in the chat, as edited."""
        return [m for m in self._server._chat(self.id).sent if not m.deleted]

    def callback_answers(self) -> list[dict[str, Any]]:
        """Params of every successful answerCallbackQuery for this user's button presses."""
        return [dict(answer) for user_id, answer in self._server._callback_answers if user_id == self.id]

    async def wait_for_callback_answers(self, count: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - shared test API
        """Wait until `count` of this user's presses have been answered (confirmed is not yet handled)."""
        if not await self._server._wait_until(lambda: len(self.callback_answers()) >= count, timeout):
            raise TimeoutError(f"fewer than {count} presses of user {self.id} answered within {timeout}s")


class FakeGroup(FakeUser):
    """A supergroup the bot is a member of (the sales chat): members write and press buttons in it."""

    def __init__(self, server: FakeTelegram, chat_id: int, *, title: str) -> None:
        super().__init__(server, chat_id, first_name=title, last_name=None, username=None, language_code=None)
        self.title = title

    def chat_api(self) -> dict[str, Any]:
        return {"id": self.id, "type": "supergroup", "title": self.title}

    async def send_text_as(self, member: FakeUser, text: str) -> dict[str, Any]:
        """Enqueue a message `member` writes in the group."""
        message_id = self._server._chat(self.id).take_message_id()
        self._server._chat(self.id).user_messages.add(message_id)
        message: dict[str, Any] = {
            "message_id": message_id,
            "from": member.to_api(),
            "chat": self.chat_api(),
            "date": int(time.time()),
            "text": text,
        }
        command = _BOT_COMMAND.match(text)
        if command is not None:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command.group(0))}]
        return self._server.enqueue_update("message", message)

    async def press_as(
        self, member: FakeUser, message: SentMessage, callback_data: str, *, forge: bool = False
    ) -> dict[str, Any]:
        """Enqueue `member`'s press of a button on one of the bot's messages in the group."""
        if message.chat_id != self.id:
            raise AssertionError(f"message {message.message_id} is in chat {message.chat_id}, not {self.id}")
        if not forge and callback_data not in [data for _, data in message.buttons() if data]:
            raise AssertionError(f"message {message.describe()} has no button with callback_data {callback_data!r}")
        query = {
            "id": self._server._new_callback_query(member.id),
            "from": member.to_api(),
            "message": self._server._message_api(message),
            "chat_instance": str(self.id),
            "data": callback_data,
        }
        return self._server.enqueue_update("callback_query", query)


class FakeTelegram(LocalServer):
    """An aiohttp server speaking the Bot API subset the bot uses, with Telegram's own rejections."""

    def __init__(self, *, token: str = "123456:TEST-TOKEN", bot_username: str = "consultbot_test_bot") -> None:
        super().__init__()
        self.token = token
        self.bot_username = bot_username
        self.bot_id = int(token.split(":", 1)[0])
        self.calls: list[ApiCall] = []
        # monotonic time each update was last handed to the bot by getUpdates
        self.update_served_at: dict[int, float] = {}
        self.webhook_posts: list[tuple[int, int, int]] = []
        """(update_id, replica index, HTTP status or 0 for no answer) of each post of dispatch_webhooks."""
        self.webhook_url = ""
        self.webhook_secret_token: str | None = None
        self.my_commands: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self._users: dict[int, FakeUser] = {}
        self._chats: dict[int, _Chat] = {}
        self._pending: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._allowed_updates: frozenset[str] = _DEFAULT_UPDATE_TYPES
        self._poll_generation = 0
        self._polls_waiting = 0
        self._failures: dict[str, tuple[int, int, int]] = {}
        self._delays: dict[str, float] = {}
        self._in_flight: dict[str, int] = {}
        self._limits: _RateLimits | None = None
        self._storms: dict[str, list[_Storm]] = {}
        self._callback_queries: dict[str, _CallbackQuery] = {}
        self._callback_answers: list[tuple[int, dict[str, Any]]] = []
        self._query_ids = itertools.count(1)
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._closing = False
        self._methods: dict[str, _Handler] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._delete_webhook,
            "setWebhook": self._set_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "editMessageCaption": self._edit_message_caption,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback_query,
            "sendDocument": self._send_document,
            "setMyCommands": self._set_my_commands,
            "getMyCommands": self._get_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "sendChatAction": self._send_chat_action,
        }
        self._canonical = {name.lower(): name for name in self._methods}

    async def start(self) -> None:
        """Bind 127.0.0.1 on a free port and start serving."""
        self._closing = False
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        # A long poll whose client hung up (PTB cancels its poll on shutdown) is cancelled, not answered
        # later with a conflict nobody reads.
        await self._serve(app, shutdown_timeout=1.0)

    async def stop(self) -> None:
        """Answer pending long polls and shut the server down."""
        self._closing = True
        self._pulse()
        await super().stop()

    def user(
        self,
        user_id: int,
        *,
        first_name: str = "Ada",
        last_name: str | None = None,
        username: str | None = None,
        language_code: str | None = "en",
    ) -> FakeUser:
        """The user with this id (created on first use), whose private chat the bot may then write to."""
        if user_id not in self._users:
            user = FakeUser(
                self,
                user_id,
                first_name=first_name,
                last_name=last_name,
                username=username,
                language_code=language_code,
            )
            self._users[user_id] = user
            self._chats[user_id] = _Chat(user)
        return self._users[user_id]

    def group(self, chat_id: int, *, title: str = "Sales") -> FakeGroup:
        """The supergroup with this (negative) id, created on first use; the bot is a member and may write to it."""
        if chat_id not in self._chats:
            group = FakeGroup(self, chat_id, title=title)
            self._chats[chat_id] = _Chat(group)
        found = self._chats[chat_id].user
        assert isinstance(found, FakeGroup)
        return found

    def rejected(self) -> list[ApiCall]:
        """Calls that got an error response."""
        return [call for call in self.calls if call.error is not None]

    def calls_of(self, method: str) -> list[ApiCall]:
        """Calls of one method (case-insensitive name)."""
        canonical = self._canonical.get(method.lower(), method)
        return [call for call in self.calls if call.method == canonical]

    def refuse_edits(self, message: SentMessage) -> None:
        """Answer every later edit of `message` with Telegram's "Bad Request: message can't be edited".

        Telegram gives that answer for a message the bot may not edit. It always does for the user's own
        messages (the fake too); when it does for the bot's older ones is not documented, so for those the
        fake refuses only where a test calls this.
        """
        message.editable = False

    def fail_next(self, method: str, *, times: int = 1, retry_after: int = 1, status: int = 429) -> None:
        """Answer the next `times` calls of `method` with 429 Too Many Requests, or with a 5xx `status`."""
        canonical = self._canonical.get(method.lower(), method)
        self._failures[canonical] = (times, retry_after, status)

    def storm(self, method: str, *, every: int, status: int = 429, retry_after: int = 1) -> None:
        """From now on, answer every `every`-th call of `method` with `status` (429 with `retry_after`, or a 5xx)."""
        canonical = self._canonical.get(method.lower(), method)
        self._storms.setdefault(canonical, []).append(_Storm(every, status, retry_after))

    def calm(self) -> None:
        """End every storm."""
        self._storms.clear()

    def enforce_rate_limits(
        self,
        *,
        overall: tuple[int, float] = (30, 1.0),
        group: tuple[int, float] = (20, 60.0),
        private: tuple[int, float] = (3, 3.0),
        slack: float = 0.05,
    ) -> None:
        """Answer 429 to a message beyond (count, seconds) overall, to one group or to one private chat.

        Telegram does this to a bot that sends too fast. A request arrives a little after its sender decided
        to send it, so windows are `slack` seconds shorter than stated.
        """
        self._limits = _RateLimits(
            {"overall": overall, "group": group, "private": private}, slack, collections.defaultdict(collections.deque)
        )

    def delay(self, method: str, seconds: float) -> None:
        """Answer every later call of `method` only after `seconds`, as a slow Bot API would."""
        self._delays[self._canonical.get(method.lower(), method)] = seconds

    async def wait_for_call_in_flight(self, method: str, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until a call of `method` has arrived and is not answered yet (see `delay`)."""
        canonical = self._canonical.get(method.lower(), method)
        if not await self._wait_until(lambda: self._in_flight.get(canonical, 0) > 0, timeout):
            raise TimeoutError(f"no {canonical} call in flight within {timeout}s")

    async def deliver_webhook(self, to: str) -> list[int]:
        """Post the pending updates to the bot's webhook at `to`, as Telegram would; the HTTP statuses, in order.

        The webhook URL the bot set is public https; `to` is where the same path is served locally. The secret
        token the bot set goes with every update, and an update is confirmed (no longer pending) only on a 200.
        """
        if not self.webhook_url:
            raise AssertionError("no webhook is set; the bot must call setWebhook first")
        headers = (
            {} if self.webhook_secret_token is None else {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret_token}
        )
        statuses = []
        async with aiohttp.ClientSession() as session:
            for update in self._deliverable():
                async with session.post(to, json=update, headers=headers) as response:
                    statuses.append(response.status)
                if response.status == 200:
                    self._pending.remove(update)
        self._pulse()
        return statuses

    async def dispatch_webhooks(
        self, replicas: Sequence[str], *, duplicate_ratio: float = 0.0, rng: random.Random | None = None
    ) -> None:
        """Post pending updates to the replicas' webhooks until cancelled, as Telegram with a load balancer would.

        Each chat's updates go one after another, in order, and different chats' at once. An update goes to a
        random replica and, `duplicate_ratio` of the time, to another one too at the same moment (a duplicate);
        it is confirmed once any of them answered 200. One that no replica took (connection refused or cut, a
        5xx) is posted again a moment later to the next replica, as Telegram redelivers. Every post is recorded
        in `webhook_posts`; the first post of each update sets its `update_served_at`.
        """
        chance = rng or random.Random()
        headers = (
            {} if self.webhook_secret_token is None else {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret_token}
        )
        busy: set[int] = set()

        def ready() -> list[dict[str, Any]]:
            chats: set[int] = set()
            found = []
            for update in self._deliverable():
                chat = _update_chat(update)
                if chat not in busy and chat not in chats:
                    found.append(update)
                chats.add(chat)
            return found

        async def post(session: aiohttp.ClientSession, replica: int, update: dict[str, Any]) -> int:
            try:
                async with session.post(replicas[replica], json=update, headers=headers) as response:
                    status = response.status
            except (aiohttp.ClientError, OSError, TimeoutError):
                status = 0
            self.webhook_posts.append((update["update_id"], replica, status))
            return status

        async def deliver(session: aiohttp.ClientSession, update: dict[str, Any], chat: int) -> None:
            try:
                target = chance.randrange(len(replicas))
                for attempt in itertools.count():
                    targets = [target]
                    if len(replicas) > 1 and chance.random() < duplicate_ratio:
                        targets.append((target + 1 + chance.randrange(len(replicas) - 1)) % len(replicas))
                    self.update_served_at.setdefault(update["update_id"], time.monotonic())
                    statuses = await asyncio.gather(*(post(session, replica, update) for replica in targets))
                    if 200 in statuses:
                        self._pending.remove(update)
                        return
                    target = (target + 1) % len(replicas)
                    await asyncio.sleep(min(0.05 * (attempt + 1), 0.5))
            finally:
                busy.discard(chat)
                self._pulse()

        timeout = aiohttp.ClientTimeout(total=60)
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session, asyncio.TaskGroup() as tasks:
            while True:
                for update in ready():
                    chat = _update_chat(update)
                    busy.add(chat)
                    tasks.create_task(deliver(session, update, chat))
                await self._wait_until(lambda: bool(ready()), 1.0)

    def block_bot(self, chat_id: int) -> None:
        """Make the user of `chat_id` block the bot: sends to the chat answer 403."""
        self._chat(chat_id).blocked = True

    def unblock_bot(self, chat_id: int) -> None:
        """Undo block_bot."""
        self._chat(chat_id).blocked = False

    def pending_updates(self) -> int:
        """Updates enqueued and not yet confirmed by the bot."""
        return len(self._pending)

    async def wait_until_idle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - shared test API
        """Wait until the bot has confirmed (passed with its offset) every queued update."""
        if not await self._wait_until(lambda: not self._pending, timeout):
            raise TimeoutError(
                f"{len(self._pending)} update(s) still unconfirmed after {timeout}s: "
                f"{[u['update_id'] for u in self._pending]}; getUpdates calls so far: "
                f"{len(self.calls_of('getUpdates'))}"
            )

    async def wait_for_long_poll(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109 - shared test API
        """Wait until a getUpdates call is parked waiting for updates."""
        if not await self._wait_until(lambda: self._polls_waiting > 0, timeout):
            raise TimeoutError(f"no getUpdates call was waiting for updates within {timeout}s")

    def enqueue_update(self, kind: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Queue an arbitrary update of type `kind` (e.g. "message") and return it with its update_id."""
        update = {"update_id": next(self._update_ids), kind: payload}
        self._pending.append(update)
        self._pulse()
        return update

    def report(self, chat_id: int | None = None) -> str:
        """What the bot did (messages sent, rejected calls), one item a line, for failure messages."""
        chats = [self._chats[chat_id]] if chat_id in self._chats else list(self._chats.values())
        lines = []
        for chat in chats:
            lines.append(f"messages the bot sent to chat {chat.user.id}:{'' if chat.sent else ' none'}")
            lines.extend(f"  {message.describe()}" for message in chat.sent)
        rejected = self.rejected()
        lines.append(f"rejected calls:{'' if rejected else ' none'}")
        lines.extend(f"  {call.method}: {call.error}" for call in rejected)
        return "\n".join(lines)

    def _pulse(self) -> None:
        """Wake the waiters whose condition now holds.

        Checking a condition is a function call; waking a task that finds its condition still false
        costs far more, and with hundreds of simulated users that cost swamped benchmarks.
        """
        waiting = []
        for condition, woken in self._waiters:
            if woken.done():
                continue
            if condition():
                woken.set_result(None)
            else:
                waiting.append((condition, woken))
        self._waiters = waiting

    async def _wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:  # noqa: ASYNC109
        """Wait for `condition` to hold, re-checked at each state change; False if `timeout` passes first."""
        if condition():
            return True
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((condition, woken))
        try:
            async with asyncio.timeout(timeout):
                await woken
        except TimeoutError:
            return condition()
        finally:
            woken.cancel()
        return True

    def _chat(self, chat_id: int) -> _Chat:
        if chat_id not in self._chats:
            raise AssertionError(f"no user {chat_id}; create it with fake.user({chat_id})")
        return self._chats[chat_id]

    def _new_callback_query(self, user_id: int) -> str:
        query_id = f"{user_id}{next(self._query_ids):08d}"
        self._callback_queries[query_id] = _CallbackQuery(user_id)
        return query_id

    def _bot_user(self) -> dict[str, Any]:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": "Consultbot Test",
            "username": self.bot_username,
        }

    def _message_api(self, message: SentMessage) -> dict[str, Any]:
        """The Message object Telegram returns for one of the bot's messages."""
        chat = self._chats[message.chat_id]
        result: dict[str, Any] = {
            "message_id": message.message_id,
            "from": self._bot_user(),
            "chat": chat.user.chat_api(),
            "date": message.date,
        }
        if message.edited_at is not None:
            result["edit_date"] = int(time.time())
        if message.document is not None:
            document = message.document
            result["document"] = {
                "file_id": document["file_id"],
                "file_unique_id": document["file_unique_id"],
                "file_size": len(document["content"] or b""),
            }
            if document["filename"] is not None:
                result["document"]["file_name"] = document["filename"]
            if document["mime_type"] is not None:
                result["document"]["mime_type"] = document["mime_type"]
            if message.text:
                result["caption"] = message.text
            if message.entities:
                result["caption_entities"] = message.entities
        else:
            result["text"] = message.text
            if message.entities:
                result["entities"] = message.entities
        # Telegram echoes only inline keyboards; reply keyboards stay on the client.
        if message.reply_markup is not None and "inline_keyboard" in message.reply_markup:
            result["reply_markup"] = message.reply_markup
        return result

    async def _read_params(self, request: web.Request) -> dict[str, Any]:
        raw: dict[str, Any] = dict(request.query)
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    raise _bad("can't parse JSON encoded request") from None
                if not isinstance(body, dict):
                    raise _bad("can't parse JSON encoded request")
                raw.update(body)
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        raw[key] = UploadedFile(value.filename, value.file.read(), value.content_type)
                    else:
                        raw[key] = value
        return {key: _normalise_param(key, value) for key, value in raw.items()}

    async def _handle(self, request: web.Request) -> web.Response:
        arrived = time.monotonic()
        raw_method = request.match_info["method"]
        method = self._canonical.get(raw_method.lower(), raw_method)
        params: dict[str, Any] = {}
        try:
            if request.match_info["token"] != self.token:
                raise _ApiError(401, "Unauthorized")
            params = await self._read_params(request)
            handler = self._methods.get(method)
            if handler is None:
                raise _ApiError(404, "Not Found: method not found")
            self._maybe_rate_limit(method, params)
            if method in self._delays:
                self._in_flight[method] = self._in_flight.get(method, 0) + 1
                self._pulse()
                try:
                    await asyncio.sleep(self._delays[method])
                finally:
                    self._in_flight[method] -= 1
            result = await handler(params)
        except _ApiError as err:
            if request.transport is None or request.transport.is_closing():
                # A long poll that lost a conflict after its client hung up: the bot never saw this error.
                self.calls.append(ApiCall(method, params, False, None, arrived, ABANDONED_STATUS))
            else:
                self.calls.append(ApiCall(method, params, False, err.description, arrived, err.code))
            self._pulse()
            return web.json_response(err.body(), status=err.code)
        except asyncio.CancelledError:
            self.calls.append(ApiCall(method, params, False, None, arrived, ABANDONED_STATUS))
            raise
        self.calls.append(ApiCall(method, params, True, None, arrived))
        self._pulse()
        return web.json_response({"ok": True, "result": result})

    def _maybe_rate_limit(self, method: str, params: dict[str, Any]) -> None:
        if self._limits is not None and method in _SENDING_METHODS:
            self._limits.check(params.get("chat_id"))
        for storm in self._storms.get(method, []):
            storm.calls += 1
            if storm.calls % storm.every == 0:
                _fail(storm.status, storm.retry_after)
        if method not in self._failures:
            return
        times, retry_after, status = self._failures[method]
        if times <= 1:
            del self._failures[method]
        else:
            self._failures[method] = (times - 1, retry_after, status)
        _fail(status, retry_after)

    def _target_chat(self, params: dict[str, Any], *, sending: bool) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad("chat_id is empty")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise _bad("chat not found")
        chat = self._chats[chat_id]
        if sending and chat.blocked:
            raise _ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _formatted(
        self,
        text: str,
        params: dict[str, Any],
        *,
        mode_key: str,
        entities_key: str,
        limit: int,
        too_long: str,
    ) -> tuple[str, list[dict[str, Any]]]:
        """Plain text and entities of `text` as Telegram would store them, or Telegram's refusal."""
        parse_mode = params.get(mode_key)
        mode = str(parse_mode).lower() if parse_mode else ""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise _bad("text must be encoded in UTF-8") from None
        if mode == "html":
            try:
                plain, entities = parse_telegram_html(text)
            except EntityParseError as err:
                raise _bad(f"can't parse entities: {err}") from None
        elif mode in ("", "markdown", "markdownv2"):
            # Markdown parsing is not emulated: the text is stored as sent.
            given = params.get(entities_key) if not mode else None
            plain, entities = text, list(given) if isinstance(given, list) else []
        else:
            raise _bad(f"unsupported parse_mode {parse_mode}")
        plain, entities = _strip_formatted(plain, entities)
        if utf16_length(plain) > limit:
            raise _bad(too_long)
        return plain, entities

    def _checked_markup(self, markup: Any) -> dict[str, Any] | None:
        if markup is None or markup == "":
            return None
        if not isinstance(markup, dict):
            raise _bad("can't parse reply keyboard markup JSON object")
        if "inline_keyboard" not in markup:
            return markup
        rows = markup["inline_keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays')
        for row in rows:
            for button in row:
                if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                    raise _bad('can\'t parse inline keyboard button: Field "text" must be of type String')
                if "callback_data" in button:
                    data = button["callback_data"]
                    if not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
                        raise _bad("BUTTON_DATA_INVALID")
                elif not set(button) - {"text"}:
                    raise _bad("text buttons are unallowed in the inline keyboard")
        return markup

    def _reply_to(self, chat: _Chat, params: dict[str, Any]) -> int | None:
        reply = params.get("reply_parameters")
        message_id = reply.get("message_id") if isinstance(reply, dict) else params.get("reply_to_message_id")
        if message_id is None:
            return None
        allow_missing = bool(
            reply.get("allow_sending_without_reply")
            if isinstance(reply, dict)
            else params.get("allow_sending_without_reply")
        )
        exists = message_id in chat.user_messages or message_id in chat.by_id
        if not exists and not allow_missing:
            raise _bad("message to be replied not found")
        return int(message_id) if exists else None

    def _store(self, chat: _Chat, message: SentMessage) -> dict[str, Any]:
        chat.screens.append(_Screen(message, 0, len(chat.sent)))
        chat.sent.append(message)
        chat.by_id[message.message_id] = message
        return self._message_api(message)

    def _message_to_edit(self, params: dict[str, Any]) -> SentMessage:
        if params.get("inline_message_id"):
            raise _bad("message to edit not found")
        chat = self._target_chat(params, sending=False)
        message = self._bot_message(chat, params)
        if message is None:
            if params.get("message_id") in chat.user_messages:
                raise _ApiError(400, CANT_BE_EDITED)
            raise _bad("message to edit not found")
        if not message.editable:
            raise _ApiError(400, CANT_BE_EDITED)
        return message

    @staticmethod
    def _bot_message(chat: _Chat, params: dict[str, Any]) -> SentMessage | None:
        message_id = params.get("message_id")
        message = chat.by_id.get(message_id) if isinstance(message_id, int) else None
        return None if message is None or message.deleted else message

    @staticmethod
    def _inline_markup(message: SentMessage) -> dict[str, Any] | None:
        markup = message.reply_markup
        return markup if markup is not None and "inline_keyboard" in markup else None

    def _apply_edit(self, message: SentMessage, *, new_text: bool) -> dict[str, Any]:
        message.edits += 1
        message.edited_at = time.monotonic()
        if new_text and message.buttons():
            self._chats[message.chat_id].screens.append(_Screen(message, message.edits, None))
        return self._message_api(message)

    async def _get_me(self, params: dict[str, Any]) -> Any:
        return {
            **self._bot_user(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def _deliverable(self) -> list[dict[str, Any]]:
        return [u for u in self._pending if next(k for k in u if k != "update_id") in self._allowed_updates]

    async def _get_updates(self, params: dict[str, Any]) -> Any:
        if self.webhook_url:
            raise _ApiError(409, WEBHOOK_CONFLICT)
        self._poll_generation += 1
        generation = self._poll_generation
        self._pulse()
        offset = params.get("offset")
        if isinstance(offset, int) and offset != 0:
            if offset > 0:
                self._pending = [u for u in self._pending if u["update_id"] >= offset]
            else:
                self._pending = self._pending[offset:]
            self._pulse()
        allowed = params.get("allowed_updates")
        if isinstance(allowed, list):
            self._allowed_updates = frozenset(allowed) if allowed else _DEFAULT_UPDATE_TYPES
        # Telegram never stores updates of types the bot opted out of.
        self._pending = self._deliverable()
        limit = params.get("limit")
        limit = min(max(limit, 1), 100) if isinstance(limit, int) else 100
        timeout = params.get("timeout")
        timeout = float(timeout) if isinstance(timeout, int | float) and timeout > 0 else 0.0
        if not self._pending and timeout > 0:
            self._polls_waiting += 1
            self._pulse()
            try:
                await self._wait_until(
                    lambda: self._closing or self._poll_generation != generation or bool(self._deliverable()),
                    timeout,
                )
            finally:
                self._polls_waiting -= 1
            if self._poll_generation != generation:
                raise _ApiError(409, POLL_CONFLICT)
        served = self._deliverable()[:limit]
        now = time.monotonic()
        for update in served:
            self.update_served_at[update["update_id"]] = now
        return served

    async def _delete_webhook(self, params: dict[str, Any]) -> Any:
        self.webhook_url = ""
        self.webhook_secret_token = None
        if params.get("drop_pending_updates"):
            self._pending.clear()
            self._pulse()
        return True

    async def _set_webhook(self, params: dict[str, Any]) -> Any:
        url = str(params.get("url") or "")
        if url and not url.startswith("https://"):
            raise _bad("bad webhook: An HTTPS URL must be provided for webhook")
        self.webhook_url = url
        self.webhook_secret_token = params.get("secret_token")
        if params.get("drop_pending_updates"):
            self._pending.clear()
            self._pulse()
        return True

    async def _get_webhook_info(self, params: dict[str, Any]) -> Any:
        info: dict[str, Any] = {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._pending),
        }
        if self.webhook_url:
            info["max_connections"] = 40
        return info

    def _message_text(self, raw: object, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        """A message's text as Telegram shows it, and its entities; refused as Telegram refuses it."""
        if raw is None or raw == "":
            raise _bad("message text is empty")
        text, entities = self._formatted(
            str(raw),
            params,
            mode_key="parse_mode",
            entities_key="entities",
            limit=MAX_MESSAGE_LENGTH,
            too_long="message is too long",
        )
        if not text:
            raise _bad("message must be non-empty")
        return text, entities

    async def _send_message(self, params: dict[str, Any]) -> Any:
        chat = self._target_chat(params, sending=True)
        raw = params.get("text")
        text, entities = self._message_text(raw, params)
        markup = self._checked_markup(params.get("reply_markup"))
        reply_to = self._reply_to(chat, params)
        message = SentMessage(
            message_id=chat.take_message_id(),
            chat_id=chat.user.id,
            text=text,
            html=str(raw),
            parse_mode=params.get("parse_mode"),
            reply_markup=markup,
            entities=entities,
            date=int(time.time()),
            sent_at=time.monotonic(),
            reply_to_message_id=reply_to,
        )
        return self._store(chat, message)

    async def _send_document(self, params: dict[str, Any]) -> Any:
        chat = self._target_chat(params, sending=True)
        document = params.get("document")
        if isinstance(document, str) and document.startswith("attach://"):
            document = params.get(document.removeprefix("attach://"))
        if document is None or document == "":
            raise _bad("there is no document in the request")
        if isinstance(document, UploadedFile) and not document.content:
            raise _bad("file must be non-empty")
        raw_caption = str(params.get("caption") or "")
        caption, entities = self._formatted(
            raw_caption,
            params,
            mode_key="parse_mode",
            entities_key="caption_entities",
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
        )
        markup = self._checked_markup(params.get("reply_markup"))
        reply_to = self._reply_to(chat, params)
        message_id = chat.take_message_id()
        if isinstance(document, UploadedFile):
            stored = {
                "filename": document.filename,
                "content": document.content,
                "mime_type": document.content_type,
                "file_id": f"BQACAgIAAx{chat.user.id}_{message_id}",
            }
        else:
            # A file_id or URL: nothing was uploaded, so there are no bytes to keep.
            stored = {"filename": None, "content": None, "mime_type": None, "file_id": str(document)}
        stored["caption"] = caption
        stored["file_unique_id"] = f"AgAD{chat.user.id}_{message_id}"
        message = SentMessage(
            message_id=message_id,
            chat_id=chat.user.id,
            text=caption,
            html=raw_caption,
            parse_mode=params.get("parse_mode"),
            reply_markup=markup,
            document=stored,
            entities=entities,
            date=int(time.time()),
            sent_at=time.monotonic(),
            reply_to_message_id=reply_to,
        )
        return self._store(chat, message)

    async def _edit_message_text(self, params: dict[str, Any]) -> Any:
        message = self._message_to_edit(params)
        if message.document is not None:
            raise _bad("there is no text in the message to edit")
        raw = params.get("text")
        text, entities = self._message_text(raw, params)
        # Omitting reply_markup in an edit removes the inline keyboard, as on Telegram.
        markup = self._checked_markup(params.get("reply_markup"))
        if (text, entities, markup) == (message.text, message.entities, self._inline_markup(message)):
            raise _ApiError(400, NOT_MODIFIED)
        new_text = text != message.text
        message.text, message.entities, message.html = text, entities, str(raw)
        message.parse_mode = params.get("parse_mode")
        message.reply_markup = markup
        return self._apply_edit(message, new_text=new_text)

    async def _edit_message_caption(self, params: dict[str, Any]) -> Any:
        message = self._message_to_edit(params)
        if message.document is None:
            raise _bad("there is no caption in the message to edit")
        raw = str(params.get("caption") or "")
        caption, entities = self._formatted(
            raw,
            params,
            mode_key="parse_mode",
            entities_key="caption_entities",
            limit=MAX_CAPTION_LENGTH,
            too_long="message caption is too long",
        )
        markup = self._checked_markup(params.get("reply_markup"))
        if (caption, entities, markup) == (message.text, message.entities, self._inline_markup(message)):
            raise _ApiError(400, NOT_MODIFIED)
        new_text = caption != message.text
        message.text, message.entities, message.html = caption, entities, raw
        message.parse_mode = params.get("parse_mode")
        message.reply_markup = markup
        message.document["caption"] = caption
        return self._apply_edit(message, new_text=new_text)

    async def _edit_message_reply_markup(self, params: dict[str, Any]) -> Any:
        message = self._message_to_edit(params)
        markup = self._checked_markup(params.get("reply_markup"))
        if markup == self._inline_markup(message):
            raise _ApiError(400, NOT_MODIFIED)
        message.reply_markup = markup
        return self._apply_edit(message, new_text=False)

    async def _delete_message(self, params: dict[str, Any]) -> Any:
        chat = self._target_chat(params, sending=False)
        message = self._bot_message(chat, params)
        if message is None:
            raise _bad("message to delete not found")
        message.deleted = True
        return True

    async def _answer_callback_query(self, params: dict[str, Any]) -> Any:
        query = self._callback_queries.get(str(params.get("callback_query_id", "")))
        if query is None or query.answered:
            raise _ApiError(400, QUERY_TOO_OLD)
        text = params.get("text")
        if isinstance(text, str) and utf16_length(text) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad("MESSAGE_TOO_LONG")
        query.answered = True
        self._callback_answers.append((query.user_id, dict(params)))
        return True

    @staticmethod
    def _commands_key(params: dict[str, Any]) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), str(params.get("language_code") or "")

    async def _set_my_commands(self, params: dict[str, Any]) -> Any:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad("can't parse bot commands JSON object")
        if len(commands) > 100:
            raise _bad("BOT_COMMANDS_TOO_MUCH")
        for command in commands:
            if not isinstance(command, dict) or not _COMMAND_NAME.match(str(command.get("command", ""))):
                raise _bad("BOT_COMMAND_INVALID")
            if not 1 <= len(str(command.get("description", ""))) <= 256:
                raise _bad("BOT_COMMAND_DESCRIPTION_INVALID")
        self.my_commands[self._commands_key(params)] = [
            {"command": c["command"], "description": c["description"]} for c in commands
        ]
        return True

    async def _get_my_commands(self, params: dict[str, Any]) -> Any:
        return self.my_commands.get(self._commands_key(params), [])

    async def _delete_my_commands(self, params: dict[str, Any]) -> Any:
        self.my_commands.pop(self._commands_key(params), None)
        return True

    async def _send_chat_action(self, params: dict[str, Any]) -> Any:
        self._target_chat(params, sending=True)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _bad("wrong parameter action in request")
        return True
