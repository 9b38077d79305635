"""Issue 3's "done when", end to end: the real core (router, dialogs, outbox, SQLite) behind the
Telegram transport, PTB talking HTTP to the local Bot API server, people pressing buttons."""

from __future__ import annotations

import asyncio
import itertools
import logging
from pathlib import Path
from typing import Any

import pytest
from botapi_server import LocalBotApi, RateLimits, SimUser
from sqlalchemy import select
from telegram_support import Conversation, running_bot

from bot.app import Bot
from bot.config import Settings, TelegramSettings
from bot.core.model import Address, Outbound, Platform
from bot.core.security import KeyRing
from bot.services.delivery import OutboxSender
from bot.services.outbox import OutboxKind, ToParticipant
from bot.storage.models import DialogState, OutboxMessage, ParticipantAddress
from bot.transports.telegram_mapping import RLM
from tests.support import make_settings

LANGUAGES = ["العربية", "کوردی (سۆرانی)", "Kurdî (Kurmancî)", "English"]


def settings_for(bot_api: LocalBotApi, tmp_path: Path, **telegram: Any) -> Settings:
    values: dict[str, Any] = {"token": bot_api.token, "api_base_url": bot_api.base_url,
                              "per_chat_interval_seconds": 0.05, **telegram}
    return make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path,
                         telegram=TelegramSettings(**values))


async def test_onboarding_in_english_by_pressing_buttons(bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing) -> None:
    async with running_bot(settings_for(bot_api, tmp_path), keys):
        amira = Conversation(bot_api, bot_api.user(language_code="en"))
        (languages,) = await amira.say("/start")
        assert languages.labels == LANGUAGES
        (consent,) = await amira.press(languages, label="English")
        assert languages.text.endswith("\u2713 English") and languages.keyboard == []
        assert "Do you agree to your information being handled this way?" in consent.text
        assert "Telegram itself can read this chat" in consent.text
        assert consent.labels == ["I agree", "I do not agree"]
        (invite,) = await amira.press(consent, label="I agree")
        assert "invitation code" in invite.text
        (bulletins,) = await amira.press(invite, label="Skip")
        assert bulletins.labels == ["Yes, send it to me", "No, thank you"]
        done, menu = await amira.press(bulletins, label="Yes, send it to me", count=2)
        assert done.text.startswith("You are all set") and menu.text.startswith("Main menu")
        assert menu.buttons and all(len(b["callback_data"].encode()) <= 64 for b in menu.buttons)
        assert len(bot_api.callback_answers) == 4
        assert not any(m.keyboard for m in (languages, consent, invite, bulletins))


async def test_onboarding_in_arabic_is_right_to_left(bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing) -> None:
    async with running_bot(settings_for(bot_api, tmp_path), keys):
        noor = Conversation(bot_api, bot_api.user(language_code="ar"))
        (languages,) = await noor.say("/start")
        (consent,) = await noor.press(languages, label="العربية")
        assert all(line.startswith(RLM) for line in consent.text.split("\n"))
        assert consent.protected is False and consent.labels[0] != "I agree"
        agree = consent.labels[0]
        (invite,) = await noor.press(consent, index=0)
        assert consent.text.split("\n")[-1] == f"{RLM}\u2713 {agree}"  # the choice, shown right-to-left
        (bulletins,) = await noor.press(invite, index=0)
        assert bulletins.text.startswith(RLM) and bulletins.labels[0].lstrip(RLM) == "نعم، أرسلوها إليّ"
        _, menu = await noor.press(bulletins, index=0, count=2)
        assert menu.text.startswith(RLM) and not menu.text.startswith(f"{RLM}Main menu")
        assert menu.buttons and all(line.startswith(RLM) for line in menu.text.split("\n"))
    assert bot_api.commands[('{"type": "default"}', "ar")][0]["command"] == "start"
    assert bot_api.commands[('{"type": "default"}', "")] == bot_api.commands[('{"type": "default"}', "en")]


async def current_step(bot: Bot) -> tuple[str, str]:
    async with bot.services.database.sessions() as session:
        state = await session.scalar(select(DialogState))
        assert state is not None
        return state.step, state.prompt_id


async def test_forged_stale_oversized_sticker_and_flood(bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    async with running_bot(settings_for(bot_api, tmp_path), keys) as (bot, _):
        sami = Conversation(bot_api, bot_api.user(language_code="en"))
        (old_languages,) = await sami.say("/start")
        (languages,) = await sami.say("/start")  # the first prompt is now stale
        (consent,) = await sami.press(languages, label="English")
        before = await current_step(bot)

        stale_notice, again = await sami.press(old_languages, label="English", count=2)
        assert "no longer valid" in stale_notice.text and again.labels == consent.labels
        step, _ = await current_step(bot)
        assert step == before[0] == "consent"

        sami.user.press(again, data=f"{before[1]}:0")  # replayed: the id of an older prompt
        forged_notice, _ = await sami.replies(2)
        sami.user.press(again, data="x" * 200)  # malformed and oversized
        malformed_notice, current = await sami.replies(2)
        assert "no longer valid" in forged_notice.text and "no longer valid" in malformed_notice.text
        assert (await current_step(bot))[0] == "consent"

        (too_long,) = await sami.say("x" * 4096)
        assert "too long" in too_long.text
        sami.user.send_sticker()
        (unsupported,) = await sami.replies()
        assert "only read text" in unsupported.text
        assert (await current_step(bot))[0] == "consent"

        (invite,) = await sami.press(current, label="I agree")  # the dialog still goes on
        assert "invitation code" in invite.text

        flooder = Conversation(bot_api, bot_api.user())
        handled = bot.router.handled
        for n in range(40):
            flooder.user.say(f"/help {n}")
        await bot_api.wait_for(lambda: bot_api.pending_updates == 0)
        calm = Conversation(bot_api, bot_api.user())
        (hello,) = await calm.say("/help")
        assert "/menu" in hello.text
        await asyncio.wait_for(bot.router.wait_handled(handled + 41), 30)  # every message handled, replies sent
        answered = bot_api.sent_to(flooder.user.id)
        assert len(answered) == 21 and "very quickly" in answered[-1].text  # 20 answers, one notice
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def registered(bot: Bot, users: list[SimUser]) -> list[int]:
    """Participants registered as onboarding would, each with their Telegram chat as address."""
    services = bot.services
    async with services.database.sessions.begin() as session:
        ids = []
        for user in users:
            pseudonym = services.keys.pseudonym("telegram", str(user.id))
            address = Address(Platform("telegram"), str(user.id))
            ids.append((await services.participants.register(session, pseudonym, "en", address)).id)
        return ids


async def bulletins(bot: Bot, participant_ids: list[int], rounds: int) -> None:
    async with bot.services.database.sessions.begin() as session:
        for n in range(rounds):
            for pid in participant_ids:
                await bot.services.outbox.enqueue(session, ToParticipant(pid, "telegram"), OutboxKind.BULLETIN,
                                                  Outbound(f"Bulletin {n}"), ref=f"b{n}")


async def drain(sender: OutboxSender) -> None:
    while (await sender.drain_once()).handled:
        pass


async def test_outbox_drains_200_messages_within_telegrams_limits(
    bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing
) -> None:
    settings = settings_for(bot_api, tmp_path, per_chat_interval_seconds=1.0)  # the defaults: 1/s, 30/s
    assert settings.telegram.rate_per_second == 30
    bot_api.limits = RateLimits()  # the server refuses (429) anything beyond Telegram's limits
    async with running_bot(settings, keys) as (bot, _):
        users = [bot_api.user() for _ in range(50)]
        await bulletins(bot, await registered(bot, users), rounds=4)
        await drain(bot.senders["telegram"])
        async with bot.services.database.sessions() as session:
            assert set(await session.scalars(select(OutboxMessage.status))) == {"sent"}
    assert len(bot_api.sent) == 200
    assert bot_api.limits.refused == 0 and {c.status for c in bot_api.calls_to("sendMessage")} == {200}
    times = sorted(m.at for m in bot_api.sent)  # arrival times at the server
    assert all(times[i + 30] - times[i] >= 1.0 for i in range(len(times) - 30))
    for user in users:
        mine = bot_api.sent_to(user.id)
        assert [m.text for m in mine] == [f"Bulletin {n}" for n in range(4)]
        assert all(b.at - a.at >= 1.0 for a, b in itertools.pairwise(mine))


async def test_429_during_drain_is_obeyed_and_blocked_users_are_dropped(
    bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing
) -> None:
    async with running_bot(settings_for(bot_api, tmp_path), keys) as (bot, _):
        users = [bot_api.user() for _ in range(3)]
        blocked = users[1]
        bot_api.block(blocked)
        await bulletins(bot, await registered(bot, users), rounds=1)
        bot_api.flood_wait(1)
        await drain(bot.senders["telegram"])
        calls = bot_api.calls_to("sendMessage")
        assert calls[0].status == 429 and sorted(c.status for c in calls) == [200, 200, 403, 429]
        retried = next(c for c in calls[1:] if c.chat_id == calls[0].chat_id)
        assert retried.status == 200 and retried.at - calls[0].at >= 1.0  # retry_after obeyed
        async with bot.services.database.sessions() as session:
            addresses = {a.participant_id: (a.reachable, a.unreachable_reason)
                         for a in await session.scalars(select(ParticipantAddress))}
        assert sorted(addresses.values()) == [(False, "blocked"), (True, None), (True, None)]
        await bulletins(bot, list(addresses), rounds=1)  # a second bulletin to all three
        await drain(bot.senders["telegram"])
        assert len([c for c in bot_api.calls_to("sendMessage") if c.chat_id == blocked.id]) == 1
        assert [m.text for m in bot_api.sent_to(users[0].id)] == ["Bulletin 0", "Bulletin 0"]


async def test_a_person_who_blocks_the_bot_is_not_sent_to_again(
    bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing
) -> None:
    """Telegram says so at once (a ``my_chat_member`` update): no refused send is needed to learn it."""
    async with running_bot(settings_for(bot_api, tmp_path), keys) as (bot, _):
        stays, leaves = bot_api.user(), bot_api.user()
        ids = await registered(bot, [stays, leaves])
        bot_api.user_blocks_bot(leaves)

        async def unreachable() -> bool:
            async with bot.services.database.sessions() as session:
                row = await session.scalar(select(ParticipantAddress).where(ParticipantAddress.participant_id == ids[1]))
                return row is not None and not row.reachable and row.unreachable_reason == "blocked"

        await asyncio.wait_for(bot.router.wait_handled(1), 10)  # the block, handled
        assert await unreachable()
        assert bot_api.sent_to(leaves.id) == []  # nothing was answered to the block itself
        await bulletins(bot, ids, rounds=1)
        await drain(bot.senders["telegram"])
        assert [m.text for m in bot_api.sent_to(stays.id)] == ["Bulletin 0"]
        assert [c for c in bot_api.calls_to("sendMessage") if c.chat_id == leaves.id] == []  # not even tried
