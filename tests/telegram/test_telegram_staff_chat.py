"""The staff chat is not a participant's address: a person's reply address is only ever taken from
their private chat, and in the staff chat only staff commands are handled (nothing of a
participant's conversation happens where colleagues read along)."""

from __future__ import annotations

from pathlib import Path

from botapi_server import LocalBotApi
from telegram_support import Conversation, running_bot

from bot.config import StaffSettings, TelegramSettings
from bot.core.security import KeyRing
from tests.support import make_settings

STAFF_GROUP = -1_001_234_567_890


def _settings(bot_api: LocalBotApi, tmp_path: Path, staff_id: int):  # type: ignore[no-untyped-def]
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path,
                             telegram=TelegramSettings(token=bot_api.token, api_base_url=bot_api.base_url,  # type: ignore[arg-type]
                                                       per_chat_interval_seconds=0.0))
    settings.staff = StaffSettings(members=[f"telegram:{staff_id}"], telegram_chat=STAFF_GROUP)
    return settings


async def test_a_command_in_the_staff_chat_does_not_move_a_participants_address(
        bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing) -> None:
    staff_user = bot_api.user(language_code="en", first_name="Staff")
    group = bot_api.group(STAFF_GROUP)
    async with running_bot(_settings(bot_api, tmp_path, staff_user.id), keys) as (bot, _transport):
        person = bot_api.user(language_code="en")
        chat = Conversation(bot_api, person)
        (languages,) = await chat.say("/start")
        (consent,) = await chat.press(languages, label="English")
        (code,) = await chat.press(consent, label="I agree")
        (bulletins,) = await chat.press(code, label="Skip")
        await chat.press(bulletins, label="Yes, send it to me", count=2)

        handled = bot.router.handled
        person.say("/help", chat=group)  # a participant who is also in the staff group
        person.say("/delete_me", chat=group)
        staff_user.say("/start", chat=group)  # a staff member: participant commands are not for this chat
        staff_user.say("hello colleagues", chat=group)
        await bot.router.wait_handled(handled + 3)  # plain chatter in the group never reaches the core
        staff_user.say("/whoami", chat=group)
        await bot_api.wait_for(lambda: any("Your role" in m.text for m in bot_api.sent_to(STAFF_GROUP)))

        services = bot.services
        async with services.database.sessions() as session:
            participant = await services.participants.find(session, keys.pseudonym("telegram", str(person.id)))
            assert participant is not None, "a /delete_me typed in the staff chat erased nobody"
            address = await services.participants.address_of(session, participant.id, "telegram")
        assert address is not None and address.value == str(person.id), "the reply address stays the private chat"

        in_group = [m.text for m in bot_api.sent_to(STAFF_GROUP)]
        assert not any("Choose your language" in t or "erases everything" in t or "What this bot can do" in t
                       for t in in_group), in_group
        assert sum("only answer staff commands" in t for t in in_group) == 1, in_group  # told once, to the staff member
        assert [m.text for m in bot_api.sent_to(person.id)][-1].startswith("Main menu"), \
            "nothing from the staff chat reached the person's private chat"
