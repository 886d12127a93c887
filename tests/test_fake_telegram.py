"""Tests of the fake Telegram Bot API server, driven through python-telegram-bot's own HTTP stack."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from telegram import Bot, BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, RetryAfter
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot.telegram_http import AiohttpRequest
from tests.fake_telegram import FakeTelegram, FakeUser, UploadedFile, parse_telegram_html


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    """A started fake server."""
    async with FakeTelegram() as server:
        yield server


@pytest.fixture(params=["httpx", "aiohttp"])
async def bot(fake: FakeTelegram, request: pytest.FixtureRequest) -> AsyncIterator[Bot]:
    """A real PTB Bot pointed at the fake, on PTB's default transport and on the one consultbot runs on.

    The fake must answer both alike, and consultbot's transport (bot/telegram_http.py) must give PTB's errors,
    uploads and long polls exactly as PTB's own does: every test here runs on each.
    """
    transport = None if request.param == "httpx" else AiohttpRequest(connection_pool_size=8)
    async with Bot(fake.token, base_url=f"{fake.url}/bot", request=transport) as client:
        yield client


@pytest.fixture
def ada(fake: FakeTelegram) -> FakeUser:
    """A user whose private chat the bot can write to."""
    return fake.user(1001, first_name="Ada", username="ada")


def keyboard(*pairs: tuple[str, str]) -> InlineKeyboardMarkup:
    """One row of callback buttons."""
    return InlineKeyboardMarkup([[InlineKeyboardButton(text, callback_data=data) for text, data in pairs]])


def ptb_message(telegram_description: str) -> str:
    """PTB's BadRequest message: prefix stripped, then str.capitalize(), which lowercases the rest."""
    return telegram_description.removeprefix("Bad Request: ").capitalize()


async def test_get_me_describes_the_configured_bot(fake: FakeTelegram, bot: Bot) -> None:
    """getMe answers with the bot user built from the token and username."""
    me = await bot.get_me()
    assert (me.id, me.is_bot, me.username) == (123456, True, "consultbot_test_bot")
    assert me.can_join_groups is True
    assert fake.calls[0].method == "getMe"


async def test_html_message_is_stored_as_plain_text_with_entities(bot: Bot, ada: FakeUser) -> None:
    """sendMessage in HTML mode stores the plain text and returns Telegram's entities to PTB."""
    html = '<b>Bold</b> &amp; <a href="https://example.com">link</a> &lt;3'
    returned = await bot.send_message(ada.id, html, parse_mode=ParseMode.HTML)
    sent = await ada.next_message()
    assert sent.text == returned.text == "Bold & link <3"
    assert sent.html == html
    assert sent.parse_mode == "HTML"
    assert [(e.type, e.offset, e.length, e.url) for e in returned.entities] == [
        ("bold", 0, 4, None),
        ("text_link", 7, 4, "https://example.com"),
    ]
    assert returned.from_user is not None
    assert returned.from_user.is_bot


async def test_text_over_4096_utf16_units_after_parsing_is_too_long(
    fake: FakeTelegram, bot: Bot, ada: FakeUser
) -> None:
    """The 4096 limit counts UTF-16 units of the parsed text: markup is free, an emoji costs two."""
    await bot.send_message(ada.id, "<b>" + "a" * 4096 + "</b>", parse_mode=ParseMode.HTML)
    await bot.send_message(ada.id, "😀" * 2048)
    with pytest.raises(BadRequest) as raised:
        await bot.send_message(ada.id, "😀" * 2048 + "a")
    assert str(raised.value) == "Message is too long"
    assert fake.rejected()[-1].error == "Bad Request: message is too long"


async def test_empty_or_blank_text_is_refused(bot: Bot, ada: FakeUser) -> None:
    """Empty text and text that is blank after parsing are refused with Telegram's two texts."""
    with pytest.raises(BadRequest, match=r"^Message text is empty$"):
        await bot.send_message(ada.id, "")
    with pytest.raises(BadRequest, match=r"^Message must be non-empty$"):
        await bot.send_message(ada.id, "<b> </b>\n", parse_mode=ParseMode.HTML)


@pytest.mark.parametrize(
    ("markup", "detail"),
    [
        ("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
        ("é<foo>", 'Unsupported start tag "foo" at byte offset 2'),
        ("Hello <b>world", 'Can\'t find end tag corresponding to start tag "b"'),
        ("<i>a</b>", 'Unmatched end tag at byte offset 4, expected "</i>", found "</b>"'),
        ("abc</b>", "Unexpected end tag at byte offset 3"),
        ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
        ("1<2 apples", 'Unsupported start tag "2" at byte offset 1'),
        ("1<2", "Unclosed start tag at byte offset 1"),
        ("trailing <", "Unclosed start tag at byte offset 9"),
        ("<b>x</b", "Unclosed end tag at byte offset 4"),
        ('<span class="x">s</span>', 'Tag "span" must have class "tg-spoiler" at byte offset 0'),
        ("<a href=x/y>z</a>", "Unexpected end of name token at byte offset 8"),
        ('<tg-emoji emoji-id="abc">👍</tg-emoji>', "Invalid custom emoji identifier specified"),
    ],
)
async def test_malformed_html_is_refused_with_telegrams_parser_wording(
    fake: FakeTelegram, bot: Bot, ada: FakeUser, markup: str, detail: str
) -> None:
    """Malformed HTML gets 400 "can't parse entities" with tdlib's own detail and byte offset."""
    with pytest.raises(BadRequest) as raised:
        await bot.send_message(ada.id, markup, parse_mode=ParseMode.HTML)
    telegram_text = f"Bad Request: can't parse entities: {detail}"
    assert fake.rejected()[-1].error == telegram_text
    assert str(raised.value) == ptb_message(telegram_text)


async def test_ptb_lowercases_telegrams_error_detail(bot: Bot, ada: FakeUser) -> None:
    """PTB capitalize()s the description, so tdlib's capitalised detail reaches the bot lowercased."""
    with pytest.raises(BadRequest) as raised:
        await bot.send_message(ada.id, "<foo>", parse_mode=ParseMode.HTML)
    assert str(raised.value) == 'Can\'t parse entities: unsupported start tag "foo" at byte offset 0'


async def test_bare_ampersand_and_unknown_entities_stay_literal_as_on_telegram(bot: Bot, ada: FakeUser) -> None:
    """Telegram keeps an `&` that starts no supported entity instead of refusing the text."""
    sent = await bot.send_message(ada.id, "AT&T &copy; &#0; &#x41;&#66", parse_mode=ParseMode.HTML)
    assert sent.text == "AT&T &copy; &#0; AB"


def test_html_parser_produces_nested_entities_in_utf16_offsets() -> None:
    """Nested tags, pre+code language, spoilers and expandable quotes map to Telegram's entity dicts."""
    text, entities = parse_telegram_html(
        '😀<b>x<i>y</i></b><pre><code class="language-py">z</code></pre>'
        "<tg-spoiler>s</tg-spoiler><blockquote expandable>q</blockquote>"
    )
    assert text == "😀xyzsq"
    assert entities == [
        {"type": "bold", "offset": 2, "length": 2},
        {"type": "italic", "offset": 3, "length": 1},
        {"type": "pre", "offset": 4, "length": 1, "language": "py"},
        {"type": "spoiler", "offset": 5, "length": 1},
        {"type": "expandable_blockquote", "offset": 6, "length": 1},
    ]


async def test_caption_over_1024_is_too_long(bot: Bot, ada: FakeUser) -> None:
    """A document caption longer than 1024 parsed characters is refused."""
    with pytest.raises(BadRequest, match=r"^Message caption is too long$"):
        await bot.send_document(ada.id, b"data", filename="a.txt", caption="x" * 1025)


@pytest.mark.parametrize("data", ["x" * 65, "é" * 33, ""])
async def test_callback_data_empty_or_over_64_bytes_is_button_data_invalid(
    fake: FakeTelegram, bot: Bot, ada: FakeUser, data: str
) -> None:
    """callback_data must be 1-64 bytes of UTF-8, else BUTTON_DATA_INVALID."""
    with pytest.raises(BadRequest) as raised:
        await bot.send_message(ada.id, "Pick", reply_markup=keyboard(("ok", "fine"), ("bad", data)))
    assert fake.rejected()[-1].error == "Bad Request: BUTTON_DATA_INVALID"
    assert str(raised.value) == "Button_data_invalid"


async def test_callback_data_of_exactly_64_bytes_is_accepted(bot: Bot, ada: FakeUser) -> None:
    """64 bytes is still within Telegram's limit."""
    await bot.send_message(ada.id, "Pick", reply_markup=keyboard(("ok", "é" * 32)))
    assert (await ada.next_message()).buttons() == [("ok", "é" * 32)]


async def test_edit_to_identical_content_is_not_modified(fake: FakeTelegram, bot: Bot, ada: FakeUser) -> None:
    """Editing to the same parsed text and markup is refused; dropping the keyboard is a real change."""
    markup = keyboard(("Yes", "yes"))
    sent = await bot.send_message(ada.id, "<b>Sure?</b>", parse_mode=ParseMode.HTML, reply_markup=markup)
    with pytest.raises(BadRequest) as raised:
        await bot.edit_message_text(
            "<strong>Sure?</strong>", ada.id, sent.message_id, parse_mode="HTML", reply_markup=markup
        )
    assert fake.rejected()[-1].error == (
        "Bad Request: message is not modified: specified new message content and reply markup are exactly "
        "the same as a current content and reply markup of the message"
    )
    assert str(raised.value).startswith("Message is not modified: specified new message content")
    await bot.edit_message_text("<b>Sure?</b>", ada.id, sent.message_id, parse_mode="HTML")
    message = await ada.next_message()
    assert (message.reply_markup, message.edits) == (None, 1)
    with pytest.raises(BadRequest, match=r"^Message is not modified"):
        await bot.edit_message_reply_markup(ada.id, sent.message_id)


async def test_edit_of_unknown_message_is_not_found(bot: Bot, ada: FakeUser) -> None:
    """Editing a message id the chat does not have is refused."""
    with pytest.raises(BadRequest, match=r"^Message to edit not found$"):
        await bot.edit_message_text("new", ada.id, 999)


async def test_edits_update_the_sent_message_object_and_wake_next_edit(bot: Bot, ada: FakeUser) -> None:
    """The SentMessage from next_message reflects later edits, and next_edit waits for one."""
    sent = await bot.send_message(ada.id, "Choose", reply_markup=keyboard(("A", "a"), ("B", "b")))
    message = await ada.next_message()
    waiter = asyncio.create_task(ada.next_edit(message, timeout=2))
    await bot.edit_message_reply_markup(ada.id, sent.message_id, reply_markup=keyboard(("A", "a")))
    assert await waiter is message
    assert message.buttons() == [("A", "a")]
    assert ada.messages() == [message]


async def test_next_screen_returns_new_messages_and_edits_into_new_text_with_buttons_in_order(
    bot: Bot, ada: FakeUser
) -> None:
    """A question edited in place comes where a new message would; a tick or an answered question's edit does not."""
    first = await bot.send_message(ada.id, "Which?", reply_markup=keyboard(("A", "a"), ("B", "b")))
    await bot.edit_message_reply_markup(ada.id, first.message_id, reply_markup=keyboard(("✅ A", "a"), ("B", "b")))
    await bot.edit_message_text("Which?\n→ A\n\nAnd then?", ada.id, first.message_id, reply_markup=keyboard(("C", "c")))
    await bot.edit_message_text("And then?\n→ C", ada.id, first.message_id)
    await bot.send_message(ada.id, "Thanks")

    question = await ada.next_screen()
    asked_in_place = await ada.next_screen()
    thanks = await ada.next_screen()

    assert question is asked_in_place
    assert question.message_id == first.message_id
    assert thanks.text == "Thanks"
    with pytest.raises(TimeoutError, match=r"no new message and edited none into a new question"):
        await ada.next_screen(timeout=0.05)


async def test_next_screen_never_returns_what_next_message_or_next_edit_returned(bot: Bot, ada: FakeUser) -> None:
    """The three reading methods share one reading position: next_message passes over edits, next_edit takes its own."""
    first = await bot.send_message(ada.id, "One?", reply_markup=keyboard(("A", "a")))
    await bot.edit_message_text("Two?", ada.id, first.message_id, reply_markup=keyboard(("B", "b")))
    await bot.send_message(ada.id, "Three?", reply_markup=keyboard(("C", "c")))
    read = [await ada.next_message(), await ada.next_message()]
    fourth = await bot.send_message(ada.id, "Four?", reply_markup=keyboard(("D", "d")))
    read.append(await ada.next_screen())
    await bot.edit_message_text("Five?", ada.id, fourth.message_id, reply_markup=keyboard(("E", "e")))
    read.append(await ada.next_edit(read[-1]))

    with pytest.raises(TimeoutError):
        await ada.next_screen(timeout=0.05)
    assert [message.text for message in read] == ["Two?", "Three?", "Five?", "Five?"]
    assert read[2] is read[3]


async def test_a_message_telegram_will_not_let_the_bot_edit_is_refused_as_cant_be_edited(
    fake: FakeTelegram, bot: Bot, ada: FakeUser
) -> None:
    """refuse_edits makes every edit of that message fail as Telegram says; a user's own message always does."""
    sent = await bot.send_message(ada.id, "Which?", reply_markup=keyboard(("A", "a")))
    message = await ada.next_message()
    fake.refuse_edits(message)
    typed = await ada.send_text("hello")

    with pytest.raises(BadRequest, match=r"^Message can't be edited$"):
        await bot.edit_message_text("And then?", ada.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"^Message can't be edited$"):
        await bot.edit_message_reply_markup(ada.id, sent.message_id)
    with pytest.raises(BadRequest, match=r"^Message can't be edited$"):
        await bot.edit_message_text("edited", ada.id, typed["message"]["message_id"])

    assert (message.text, message.buttons(), message.edits) == ("Which?", [("A", "a")], 0)
    assert {call.error for call in fake.rejected()} == {"Bad Request: message can't be edited"}


async def test_answer_callback_query_refuses_unknown_answered_and_long_answers(
    fake: FakeTelegram, bot: Bot, ada: FakeUser
) -> None:
    """Queries can be answered once, with at most 200 characters; unknown ids are 'too old'."""
    await bot.send_message(ada.id, "Pick", reply_markup=keyboard(("Yes", "yes")))
    update = await ada.press(await ada.next_message(), "yes")
    query_id = update["callback_query"]["id"]
    with pytest.raises(BadRequest, match=r"^Message_too_long$"):
        await bot.answer_callback_query(query_id, text="x" * 201)
    assert await bot.answer_callback_query(query_id, text="Noted")
    with pytest.raises(BadRequest) as raised:
        await bot.answer_callback_query(query_id)
    assert fake.rejected()[-1].error == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
    assert str(raised.value) == "Query is too old and response timeout expired or query id is invalid"
    with pytest.raises(BadRequest, match=r"^Query is too old"):
        await bot.answer_callback_query("12345")
    assert [answer["text"] for answer in ada.callback_answers()] == ["Noted"]


async def test_sending_to_a_user_who_blocked_the_bot_is_forbidden(bot: Bot, ada: FakeUser, fake: FakeTelegram) -> None:
    """A blocked chat answers 403, which PTB raises as Forbidden."""
    fake.block_bot(ada.id)
    with pytest.raises(Forbidden, match=r"^Forbidden: bot was blocked by the user$"):
        await bot.send_message(ada.id, "hello?")
    assert fake.rejected()[-1].status == 403


async def test_sending_to_an_unknown_chat_is_chat_not_found(bot: Bot) -> None:
    """Only chats of users created with fake.user() exist."""
    with pytest.raises(BadRequest, match=r"^Chat not found$"):
        await bot.send_message(424242, "hi")


async def test_fail_next_answers_429_that_ptb_raises_as_retry_after(
    fake: FakeTelegram, bot: Bot, ada: FakeUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fail_next makes the next calls answer 429 with retry_after, then the method works again."""
    # Without it PTB warns that retry_after will become a timedelta, and warnings are errors here.
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    fake.fail_next("SENDMESSAGE", times=2, retry_after=3)
    for _ in range(2):
        with pytest.raises(RetryAfter) as raised:
            await bot.send_message(ada.id, "hi")
        assert raised.value.retry_after == dt.timedelta(seconds=3)
    await bot.send_message(ada.id, "hi")
    assert [c.error for c in fake.calls_of("sendMessage")] == [
        "Too Many Requests: retry after 3",
        "Too Many Requests: retry after 3",
        None,
    ]


async def test_get_updates_redelivers_unconfirmed_and_forgets_confirmed_updates(
    fake: FakeTelegram, bot: Bot, ada: FakeUser
) -> None:
    """Updates stay until an offset passes them, as when a bot dies between fetching and confirming."""
    first = await ada.send_text("one")
    await ada.send_text("two")
    fetched = await bot.get_updates(timeout=0)
    refetched = await bot.get_updates(timeout=0)
    assert [u.update_id for u in fetched] == [u.update_id for u in refetched] == [1, 2]
    rest = await bot.get_updates(offset=first["update_id"] + 1, timeout=0)
    assert [u.effective_message.text for u in rest if u.effective_message] == ["two"]
    assert fake.pending_updates() == 1
    assert await bot.get_updates(offset=3, timeout=0) == ()
    assert fake.pending_updates() == 0


async def test_get_updates_honours_limit(bot: Bot, ada: FakeUser) -> None:
    """limit caps how many pending updates one call returns."""
    for word in ("a", "b", "c"):
        await ada.send_text(word)
    assert [u.update_id for u in await bot.get_updates(limit=2, timeout=0)] == [1, 2]


async def test_long_poll_returns_as_soon_as_an_update_arrives(fake: FakeTelegram, bot: Bot, ada: FakeUser) -> None:
    """A waiting getUpdates answers on the new update, long before its timeout."""
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=10))
    await fake.wait_for_long_poll()
    update = await ada.send_text("/start website")
    updates = await poll
    assert time.monotonic() - started < 5
    assert [u.update_id for u in updates] == [update["update_id"]]
    assert fake.update_served_at[update["update_id"]] >= started


async def test_long_poll_with_nothing_pending_returns_empty_after_timeout(bot: Bot) -> None:
    """With nothing to deliver, getUpdates waits out its timeout and returns []."""
    started = time.monotonic()
    assert await bot.get_updates(timeout=dt.timedelta(seconds=0.2)) == ()
    assert time.monotonic() - started >= 0.2


async def test_second_get_updates_terminates_the_waiting_one_with_conflict(fake: FakeTelegram, bot: Bot) -> None:
    """A newer getUpdates makes the older long poll answer 409, as when two bot instances run."""
    first = asyncio.create_task(bot.get_updates(timeout=10))
    await fake.wait_for_long_poll()
    async with Bot(fake.token, base_url=f"{fake.url}/bot") as second_instance:
        assert await second_instance.get_updates(timeout=0) == ()
    with pytest.raises(Conflict, match=r"^Conflict: terminated by other getUpdates request"):
        await first
    assert [c.status for c in fake.rejected()] == [409]


async def test_webhook_is_stored_and_blocks_get_updates_until_deleted(fake: FakeTelegram, bot: Bot) -> None:
    """setWebhook stores url and secret; getUpdates conflicts until deleteWebhook."""
    assert await bot.set_webhook("https://example.com/hook", secret_token="s3cret")
    info = await bot.get_webhook_info()
    assert (info.url, fake.webhook_secret_token) == ("https://example.com/hook", "s3cret")
    with pytest.raises(Conflict, match=r"webhook is active"):
        await bot.get_updates(timeout=0)
    assert await bot.delete_webhook()
    assert (await bot.get_webhook_info()).url == ""
    assert await bot.get_updates(timeout=0) == ()


async def test_delete_webhook_can_drop_pending_updates(fake: FakeTelegram, bot: Bot, ada: FakeUser) -> None:
    """drop_pending_updates forgets the queue."""
    await ada.send_text("stale")
    await bot.delete_webhook(drop_pending_updates=True)
    assert fake.pending_updates() == 0


async def test_document_upload_is_recorded_with_bytes_caption_and_keyboard(
    fake: FakeTelegram, bot: Bot, ada: FakeUser
) -> None:
    """sendDocument's multipart upload keeps the file name, bytes, parsed caption and JSON-string markup."""
    content = b"%PDF-1.4 consultation brief"
    returned = await bot.send_document(
        ada.id,
        content,
        filename="brief.pdf",
        caption="<i>Your</i> brief",
        parse_mode=ParseMode.HTML,
        reply_markup=keyboard(("Thanks", "thanks")),
    )
    message = await ada.next_message()
    assert message.document is not None
    assert (message.document["filename"], message.document["content"]) == ("brief.pdf", content)
    assert message.document["caption"] == message.text == "Your brief"
    assert message.buttons() == [("Thanks", "thanks")]
    assert returned.document is not None
    assert returned.document.file_name == "brief.pdf"
    assert returned.caption == "Your brief"
    upload = fake.calls_of("sendDocument")[0].params["document"]
    assert isinstance(upload, UploadedFile)
    assert upload.content == content


async def test_bot_commands_are_set_read_and_deleted(bot: Bot) -> None:
    """setMyCommands validates and stores commands that getMyCommands returns."""
    assert await bot.set_my_commands([BotCommand("start", "Start over"), BotCommand("help", "What I do")])
    assert [c.command for c in await bot.get_my_commands()] == ["start", "help"]
    with pytest.raises(BadRequest, match=r"^Bot_command_invalid$"):
        await bot.set_my_commands([BotCommand("Start-Now", "Bad name")])
    assert await bot.delete_my_commands()
    assert await bot.get_my_commands() == ()


async def test_chat_action_is_accepted_and_recorded(fake: FakeTelegram, bot: Bot, ada: FakeUser) -> None:
    """sendChatAction accepts Telegram's actions and refuses others."""
    assert await bot.send_chat_action(ada.id, "typing")
    with pytest.raises(BadRequest, match=r"^Wrong parameter action in request$"):
        await bot.send_chat_action(ada.id, "dancing")
    assert [c.ok for c in fake.calls_of("sendChatAction")] == [True, False]


async def test_raw_http_accepts_any_method_case_json_form_and_query_string(fake: FakeTelegram, ada: FakeUser) -> None:
    """Method names are case-insensitive and params may come as JSON, urlencoded form or query string."""
    base = f"{fake.url}/bot{fake.token}"
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{base}/sendmessage", json={"chat_id": ada.id, "text": "json"}) as response:
            assert (response.status, (await response.json())["result"]["text"]) == (200, "json")
        async with session.post(f"{base}/SENDMESSAGE", data={"chat_id": str(ada.id), "text": "form"}) as response:
            assert response.status == 200
        async with session.get(f"{base}/sendMessage", params={"chat_id": str(ada.id), "text": "query"}) as response:
            assert response.status == 200
    assert [m.text for m in ada.messages()] == ["json", "form", "query"]
    assert {c.method for c in fake.calls} == {"sendMessage"}


async def test_raw_http_wrong_token_is_401_and_unknown_method_is_404(fake: FakeTelegram) -> None:
    """Errors come in Telegram's envelope: wrong token 401 Unauthorized, unknown method 404."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{fake.url}/bot999:WRONG/getMe") as response:
            body: dict[str, Any] = await response.json()
            assert (response.status, body) == (
                401,
                {"ok": False, "error_code": 401, "description": "Unauthorized"},
            )
        async with session.post(f"{fake.url}/bot{fake.token}/sendRichMessage") as response:
            body = await response.json()
            assert (response.status, body["description"]) == (404, "Not Found: method not found")


async def test_press_requires_a_button_with_that_data_unless_forged(
    fake: FakeTelegram, bot: Bot, ada: FakeUser
) -> None:
    """press() refuses callback data the message does not offer, so tests cannot press phantom buttons."""
    await bot.send_message(ada.id, "Pick", reply_markup=keyboard(("Yes", "yes")))
    message = await ada.next_message()
    with pytest.raises(AssertionError, match=r"no button with callback_data 'nope'"):
        await ada.press(message, "nope")
    with pytest.raises(AssertionError, match=r"no button containing 'Maybe'.*\('Yes', 'yes'\)"):
        message.button("Maybe")
    forged = await ada.press(message, "nope", forge=True)
    assert forged["callback_query"]["data"] == "nope"
    assert fake.pending_updates() == 1


async def test_next_message_timeout_describes_what_the_bot_did(bot: Bot, ada: FakeUser) -> None:
    """A missing reply fails with the messages sent so far and the rejected calls."""
    await bot.send_message(ada.id, "first")
    await ada.next_message()
    with pytest.raises(BadRequest):
        await bot.send_message(ada.id, "<b>oops", parse_mode=ParseMode.HTML)
    with pytest.raises(TimeoutError) as raised:
        await ada.next_message(timeout=0.05)
    assert "#1 'first'" in str(raised.value)
    assert "sendMessage: Bad Request: can't parse entities" in str(raised.value)


async def test_wait_until_idle_waits_for_the_bot_to_confirm_updates(
    fake: FakeTelegram, bot: Bot, ada: FakeUser
) -> None:
    """wait_until_idle times out while an update is unconfirmed and returns once an offset passes it."""
    update = await ada.send_text("hello")
    with pytest.raises(TimeoutError, match=r"1 update"):
        await fake.wait_until_idle(timeout=0.05)
    await bot.get_updates(offset=update["update_id"] + 1, timeout=0)
    await fake.wait_until_idle(timeout=0.05)


async def test_application_gets_command_and_button_press_through_long_polling(
    fake: FakeTelegram, ada: FakeUser
) -> None:
    """A PTB Application polling the fake handles /start with args, a button press, and shuts down cleanly."""
    received_args: list[list[str]] = []

    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_message is not None
        received_args.append(list(context.args or []))
        await update.effective_message.reply_text(
            "<b>Hi!</b> Which service?",
            parse_mode=ParseMode.HTML,
            reply_markup=keyboard(("Website", "svc:web"), ("App", "svc:app")),
        )

    async def chosen(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("Noted")
        await query.edit_message_text(f"You chose {query.data}")

    app = Application.builder().token(fake.token).base_url(f"{fake.url}/bot").build()
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CallbackQueryHandler(chosen))
    async with app:
        assert app.updater is not None
        await app.start()
        await app.updater.start_polling(poll_interval=0, timeout=1)
        menu = await ada.next_reply("/start website")
        assert menu.text == "Hi! Which service?"
        await ada.press(menu, menu.button("Website"))
        await ada.next_edit(menu)
        await fake.wait_until_idle()
        await app.updater.stop()
        await app.stop()
    assert received_args == [["website"]]
    assert (menu.text, menu.reply_markup) == ("You chose svc:web", None)
    assert [answer["text"] for answer in ada.callback_answers()] == ["Noted"]
    assert fake.rejected() == []
    assert fake.pending_updates() == 0
