"""``/panic`` on Telegram: everything about the person is erased at once, without a question, and
the chat's messages younger than 48 hours (the bot's and the person's) are deleted; the one
message left says what could not be removed."""

from __future__ import annotations

from pathlib import Path

from botapi_faults import ApiError
from botapi_server import LocalBotApi, SentMessage
from telegram_support import Conversation, running_bot

from bot.config import TelegramSettings
from bot.core.security import KeyRing
from tests.support import make_settings


async def last_word(bot_api: LocalBotApi, person_id: int) -> SentMessage:
    """The message /panic leaves in the chat once it has cleared it."""
    def said() -> list[SentMessage]:
        return [m for m in bot_api.sent_to(person_id) if "erased" in m.text]
    await bot_api.wait_for(lambda: bool(said()), timeout=15)
    return said()[-1]


def _settings(bot_api: LocalBotApi, tmp_path: Path):  # type: ignore[no-untyped-def]
    return make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path,
                         telegram=TelegramSettings(token=bot_api.token, api_base_url=bot_api.base_url,  # type: ignore[arg-type]
                                                   per_chat_interval_seconds=0.0))


async def onboard(chat: Conversation) -> None:
    (languages,) = await chat.say("/start")
    (consent,) = await chat.press(languages, label="English")
    (code,) = await chat.press(consent, label="I agree")
    (bulletins,) = await chat.press(code, label="Skip")
    await chat.press(bulletins, label="Yes, send it to me", count=2)


async def test_panic_erases_at_once_and_deletes_the_chat(bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing) -> None:
    async with running_bot(_settings(bot_api, tmp_path), keys) as (bot, _transport):
        person = bot_api.user(language_code="en")
        chat = Conversation(bot_api, person)
        await onboard(chat)
        await chat.say("/help")
        person.say("/panic")
        summary = await last_word(bot_api, person.id)

        services = bot.services
        async with services.database.sessions() as session:
            assert await services.participants.find(session, keys.pseudonym("telegram", str(person.id))) is None
        earlier = [m for m in bot_api.sent if m.chat_id == person.id][:-1]
        assert len(earlier) >= 5 and all(m.deleted for m in earlier), "every earlier message of the bot is gone"
        assert bot_api.sent_to(person.id) == [summary], "one message is left: the one saying what happened"
        deleted = {int(c.params["message_id"]) for c in bot_api.calls_to("deleteMessage")}
        assert len(deleted) == len(earlier) + 3, "the person's own messages (/start, /help, /panic) too"
        assert "erased" in summary.text and "removed" in summary.text
        assert "delete this chat yourself" in summary.text  # older messages, and those from before a restart


async def test_panic_from_the_menu_says_what_it_could_not_remove(bot_api: LocalBotApi, tmp_path: Path,
                                                                 keys: KeyRing) -> None:
    async with running_bot(_settings(bot_api, tmp_path), keys) as (bot, _transport):
        person = bot_api.user(language_code="en")
        chat = Conversation(bot_api, person)
        await onboard(chat)
        menu = bot_api.sent_to(person.id)[-1]
        assert "Erase everything now" in menu.labels
        bot_api.fail(ApiError(400, "Bad Request: message can't be deleted for everyone"), method="deleteMessage",
                     times=2)
        person.press(menu, label="Erase everything now")
        summary = await last_word(bot_api, person.id)
        assert "\u20682\u2069 messages could not be removed" in summary.text, summary.text
        async with bot.services.database.sessions() as session:
            assert await bot.services.participants.find(session, keys.pseudonym("telegram", str(person.id))) is None
