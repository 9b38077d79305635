"""The local Bot API server answers as Telegram does, as seen through an unmodified PTB ``Bot``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from botapi_faults import BAD_GATEWAY, INTERNAL
from botapi_html import HtmlParseError, parse_html
from botapi_server import LocalBotApi
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken, NetworkError, RetryAfter


@pytest.fixture
async def bot(bot_api: LocalBotApi) -> AsyncIterator[Bot]:
    async with Bot(bot_api.token, base_url=bot_api.base_url) as bot:
        yield bot


# TDLib's own test cases for parse_html (markup -> error), byte offsets into the UTF-8 markup.
HTML_ERRORS = [
    ("🏟 🏟&lt;<abacaba", "Unclosed start tag at byte offset 13"),
    ("🏟 🏟&lt;<abac aba>", 'Unsupported start tag "abac" at byte offset 13'),
    ("🏟 🏟&lt;<i   =aba>", 'Empty attribute name in the tag "i" at byte offset 13'),
    ("🏟 🏟&lt;<i    aba>", 'Can\'t find end tag corresponding to start tag "i"'),
    ("🏟 🏟&lt;<i    aba  =  ", 'Unclosed start tag "i" at byte offset 13'),
    ("🏟 🏟&lt;<i    aba  =  190azAz-.,", "Unexpected end of name token at byte offset 27"),
    ('🏟 🏟&lt;<i    aba  =  "&lt;&gt;&quot;>', "Unclosed start tag at byte offset 13"),
    ("🏟 🏟&lt;</", "Unexpected end tag at byte offset 13"),
    ("🏟 🏟&lt;<b></b></", "Unexpected end tag at byte offset 20"),
    ("🏟 🏟&lt;<i>a</i   ", "Unclosed end tag at byte offset 17"),
    ("🏟 🏟&lt;<i>a</em   >", 'Unmatched end tag at byte offset 17, expected "</i>", found "</em>"'),
    ("1 < 2", 'Unsupported start tag "" at byte offset 2'),
]


@pytest.mark.parametrize(("markup", "error"), HTML_ERRORS)
def test_html_errors_match_tdlib(markup: str, error: str) -> None:
    with pytest.raises(HtmlParseError) as raised:
        parse_html(markup)
    assert str(raised.value) == error


def test_html_entities_are_utf16_offsets() -> None:
    text, entities = parse_html("🏟 🏟<i>🏟 &gt;<b aba   =   caba>&lt🏟</b></i>")
    assert text == "🏟 🏟🏟 ><🏟"
    assert entities == [{"type": "italic", "offset": 5, "length": 7}, {"type": "bold", "offset": 9, "length": 3}]


async def test_send_errors_carry_telegrams_texts(bot_api: LocalBotApi, bot: Bot) -> None:
    user = bot_api.user()
    with pytest.raises(BadRequest, match="Can't parse entities: unsupported start tag \"\" at byte offset 2"):
        await bot.send_message(user.id, "1 < 2", parse_mode="HTML")
    with pytest.raises(BadRequest, match="Message is too long"):
        await bot.send_message(user.id, "x" * 4097)
    with pytest.raises(BadRequest, match="Chat not found"):
        await bot.send_message(424242, "hello")
    too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="d" * 65)]])
    with pytest.raises(BadRequest, match="Button_data_invalid"):
        await bot.send_message(user.id, "hello", reply_markup=too_long_data)
    assert (await bot.send_message(user.id, "x" * 4096)).text == "x" * 4096
    failed = [c.status for c in bot_api.calls_to("sendMessage")]
    assert failed == [400, 400, 400, 400, 200]


async def test_long_polling_answers_as_soon_as_an_update_arrives(bot_api: LocalBotApi, bot: Bot) -> None:
    user = bot_api.user(language_code="ar")
    poll = asyncio.create_task(bot.get_updates(timeout=30))
    await bot_api.wait_for(lambda: bool(bot_api.calls_to("getUpdates")))
    user.say("/start")
    updates = await asyncio.wait_for(poll, 5)  # far below the 30 s poll timeout
    assert [u.message.text for u in updates] == ["/start"]
    assert updates[0].message.from_user.language_code == "ar"
    assert updates[0].message.entities[0].type == "bot_command"
    # not confirmed yet: asked again, the same update comes back; confirmed, it is gone
    again = await bot.get_updates(timeout=0)
    assert [u.update_id for u in again] == [updates[0].update_id]
    assert await bot.get_updates(offset=updates[0].update_id + 1, timeout=0) == ()
    assert bot_api.pending_updates == 0


async def test_a_second_poller_terminates_the_first(bot_api: LocalBotApi, bot: Bot) -> None:
    first = asyncio.create_task(bot.get_updates(timeout=20))
    await bot_api.wait_for(lambda: len(bot_api.calls_to("getUpdates")) == 1)
    async with Bot(bot_api.token, base_url=bot_api.base_url) as other_instance:
        second = asyncio.create_task(other_instance.get_updates(timeout=1))
        with pytest.raises(Conflict, match="terminated by other getUpdates request"):
            await asyncio.wait_for(first, 5)
        assert await second == ()


async def test_callback_queries_and_edits(bot_api: LocalBotApi, bot: Bot) -> None:
    user = bot_api.user()
    markup = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="p:0")]])
    sent = await bot.send_message(user.id, "<b>Question</b>", parse_mode="HTML", reply_markup=markup)
    query_id = user.press(bot_api.sent[0], 0)
    (update,) = await bot.get_updates(timeout=1)
    assert update.callback_query.data == "p:0"
    assert update.callback_query.message.text_html == "<b>Question</b>"
    assert await bot.answer_callback_query(query_id)
    with pytest.raises(BadRequest, match="Query is too old"):
        await bot.answer_callback_query(query_id)
    with pytest.raises(BadRequest, match="Message is not modified"):
        await bot.edit_message_text("<b>Question</b>", chat_id=user.id, message_id=sent.message_id,
                                    parse_mode="HTML", reply_markup=markup)
    edited = await bot.edit_message_text("Question", chat_id=user.id, message_id=sent.message_id)
    assert edited.reply_markup is None  # editMessageText without reply_markup drops the keyboard
    assert bot_api.sent[0].keyboard == []
    with pytest.raises(BadRequest, match="Message can't be edited"):
        await bot.edit_message_text("x", chat_id=user.id, message_id=user.say("mine")["message_id"])
    assert await bot.delete_message(user.id, sent.message_id)
    with pytest.raises(BadRequest, match="Message to delete not found"):
        await bot.delete_message(user.id, sent.message_id)


async def test_fault_injection_is_parsed_by_ptb(bot_api: LocalBotApi, bot: Bot) -> None:
    user = bot_api.user()
    bot_api.flood_wait(7)
    with pytest.raises(RetryAfter) as flood:
        await bot.send_message(user.id, "a")
    assert "Retry in 7" in str(flood.value)
    bot_api.fail(INTERNAL)
    bot_api.fail(BAD_GATEWAY)
    for _ in range(2):
        with pytest.raises(NetworkError):
            await bot.send_message(user.id, "b")
    bot_api.block(user)
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(user.id, "c")
    assert [c.status for c in bot_api.calls_to("sendMessage")] == [429, 500, 502, 403]
    assert bot_api.sent == []


async def test_wrong_token_is_unauthorized(bot_api: LocalBotApi) -> None:
    with pytest.raises(InvalidToken):
        async with Bot("7000000001:wrong", base_url=bot_api.base_url):
            pass


async def test_commands_per_language_and_uploads(bot_api: LocalBotApi, bot: Bot) -> None:
    user = bot_api.user()
    assert await bot.set_my_commands([("start", "Start")])
    assert await bot.set_my_commands([("start", "ابدأ")], language_code="ar")
    assert [c.description for c in await bot.get_my_commands(language_code="ar")] == ["ابدأ"]
    assert [c.description for c in await bot.get_my_commands()] == ["Start"]
    with pytest.raises(BadRequest, match="Bot_command_invalid"):
        await bot.set_my_commands([("Start-Now", "x")])
    document = await bot.send_document(user.id, b"%PDF-1.4 test", filename="a.pdf", caption="report")
    photo = await bot.send_photo(user.id, b"\x89PNG\r\n\x1a\n....", caption="chart")
    assert document.document.file_name == "a.pdf" and photo.caption == "chart"
    assert [s.upload for s in bot_api.sent] == [b"%PDF-1.4 test", b"\x89PNG\r\n\x1a\n...."]


async def test_webhook_blocks_polling_and_delivers_with_the_secret(bot_api: LocalBotApi, bot: Bot) -> None:
    from aiohttp import web

    received: list[tuple[str | None, dict[str, object]]] = []

    async def hook(request: web.Request) -> web.Response:
        received.append((request.headers.get("X-Telegram-Bot-Api-Secret-Token"), await request.json()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
        assert await bot.set_webhook(url, secret_token="s3cret_-")
        with pytest.raises(Conflict, match="webhook is active"):
            await bot.get_updates()
        bot_api.user().say("hi")
        await bot_api.wait_for(lambda: bool(received) and bot_api.pending_updates == 0)
        assert received[0][0] == "s3cret_-" and received[0][1]["message"]["text"] == "hi"  # type: ignore[index]
        assert (await bot.get_webhook_info()).url == url
        assert await bot.delete_webhook()
        assert await bot.get_updates(timeout=0) == ()
    finally:
        await runner.cleanup()


async def test_enforced_limits_refuse_what_telegram_would(bot_api: LocalBotApi, bot: Bot) -> None:
    from botapi_server import RateLimits

    bot_api.limits = RateLimits(overall=3, chat_interval=1.0)
    first, second, third, fourth = (bot_api.user() for _ in range(4))
    await bot.send_message(first.id, "one")
    with pytest.raises(RetryAfter):
        await bot.send_message(first.id, "again at once")  # one a second per private chat
    await bot.send_message(second.id, "two")
    await bot.send_message(third.id, "three")
    with pytest.raises(RetryAfter):
        await bot.send_message(fourth.id, "four")  # three a second overall
    assert bot_api.limits.refused == 2 and len(bot_api.sent) == 3
