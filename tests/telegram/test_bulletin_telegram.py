"""A bulletin over the local Bot API server: 2,000 recipients in four languages with 10 % of the
sends failing (429, 500, 502, timeouts), a person who says STOP, one who blocked the bot, the
staff progress message edited in place, the summary, cancel and approval from the staff group."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from botapi_faults import Chaos
from botapi_server import LocalBotApi, SimUser
from sqlalchemy import select
from telegram_support import FAST_RETRY

from bot.app import Bot, build_platform_transports, running
from bot.bulletins.loader import parse_bulletin
from bot.bulletins.service import Bulletins
from bot.config import (
    BulletinSettings,
    DatabaseSettings,
    LimitsSettings,
    OutboxSettings,
    SecuritySettings,
    Settings,
    StaffSettings,
    TelegramSettings,
)
from bot.core.model import Address, Platform
from bot.core.security import KeyRing
from bot.storage.models import AuditEntry

GROUP = -1_001_234_567_890
RLM = "\u200f"
BULLETIN = """id: june-update
en:
  title: June update
  body: |
    Consultations **resume** on Monday. Details: [the notice](https://example.org/notice?a=1&b=2).

    - Families of the missing: a survey is open.
    - Associations: check-ins in the second week.
ar:
  title: تحديث حزيران
  body: |
    تُستأنف المشاورات **يوم الإثنين**. التفاصيل: [الإعلان](https://example.org/notice?a=1&b=2).

    - عائلات المفقودين: استبيان مفتوح.
ckb:
  title: نوێکاری حوزەیران
  body: |
    ڕاوێژەکان **دووشەممە** دەست پێدەکەنەوە.
"""
FIRST_LINES = {"en": "June update", "ar": RLM + "تحديث حزيران", "ckb": RLM + "نوێکاری حوزەیران"}


def fsi_free(text: str) -> str:
    return text.replace("\u2068", "").replace("\u2069", "")


def settings_for(api: LocalBotApi, tmp_path: Path, staff: list[SimUser], **bulletins: object) -> Settings:
    return Settings(
        database=DatabaseSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}"),
        security=SecuritySettings(key_file=tmp_path / "keys.json"),
        telegram=TelegramSettings(token=api.token, api_base_url=api.base_url,  # type: ignore[arg-type]
                                  rate_per_second=1000.0, per_chat_interval_seconds=0.0),
        staff=StaffSettings(members=[f"telegram:{s.id}" for s in staff], telegram_chat=GROUP),
        # window: rows claimed at once, as with Telegram's real limits (30); a cancel stops the rest
        outbox=OutboxSettings(base_backoff_seconds=0.2, max_backoff_seconds=1.0, poll_seconds=0.2, batch_size=200,
                              concurrency=32, max_attempts=30, window=32),
        bulletins=BulletinSettings(progress_interval_seconds=1.0, check_seconds=1.0, **bulletins),  # type: ignore[arg-type]
        limits=LimitsSettings(flood_messages=1000),
    )


@asynccontextmanager
async def running_with_bulletins(settings: Settings, keys: KeyRing) -> AsyncIterator[Bot]:
    """``civicbot run``'s wiring with short Telegram timeouts: outbox senders, the progress
    reporter and the scheduler (the bulletin job) running."""
    options = {"retry": FAST_RETRY, "poll_timeout_seconds": 1, "read_timeout_seconds": 2.0,
               "shutdown_grace_seconds": 5.0}
    async with running(settings, keys=keys, upgrade=True, scheduler=True,
                       transports=lambda services: build_platform_transports(services, telegram=options)) as bot:
        yield bot


async def register(bot: Bot, users: list[tuple[SimUser, str]]) -> None:
    """Participants who went through onboarding before (registered directly: 2,000 onboardings
    through the chat would test onboarding, not the bulletin)."""
    services = bot.services
    async with services.database.sessions.begin() as session:
        for user, language in users:
            await services.participants.register(session, services.keys.pseudonym("telegram", str(user.id)), language,
                                                 Address(Platform("telegram"), str(user.id)))


def bulletin_copies(api: LocalBotApi) -> Counter[int]:
    copies: Counter[int] = Counter()
    for sent in api.sent:
        if sent.chat_id > 0 and sent.parse_mode == "HTML":
            copies[sent.chat_id] += 1
    return copies


async def test_two_thousand_recipients_in_four_languages_through_faults(bot_api: LocalBotApi, tmp_path: Path) -> None:
    keys = KeyRing.generate()
    staff = bot_api.user(language_code="en", first_name="Staff")
    group = bot_api.group(GROUP)
    languages = ("en", "ar", "ckb", "ku")
    users = [(bot_api.user(language_code=languages[n % 4]), languages[n % 4]) for n in range(2000)]
    settings = settings_for(bot_api, tmp_path, [staff])
    async with running_with_bulletins(settings, keys) as bot:
        await register(bot, users)
        quitter, blocker = users[0][0], users[1][0]
        quitter.say("STOP")
        await bot_api.wait_for_messages(quitter.id, 1, timeout=30)
        assert "/subscribe" in bot_api.sent_to(quitter.id)[0].text
        bot_api.block(blocker)
        async with bot.services.database.sessions.begin() as session:
            await bot.services.get(Bulletins).create(session, parse_bulletin(BULLETIN), "cli")

        # 429 pauses every send of the bot (Telegram's flood control is per bot), so fewer of those.
        chaos = Chaos(0.10, seed=11, timeout_delay=2.5, weights={"429": 1, "500": 3, "502": 3, "timeout": 3})
        bot_api.faults.chaos = chaos
        staff.say("/bulletin send june-update all", chat=group)
        expected = {user.id for user, _ in users[2:]}
        await bot_api.wait_for(lambda: expected <= set(bulletin_copies(bot_api)), timeout=600)
        await bot_api.wait_for(lambda: any("Summary" in s.text for s in bot_api.sent_to(GROUP)), timeout=60)
        bot_api.faults.chaos = None

    copies = bulletin_copies(bot_api)
    assert quitter.id not in copies and blocker.id not in copies
    assert sum(chaos.kinds.values()) > 150 and set(chaos.kinds) == {"429", "500", "502", "timeout"}
    twice = {chat for chat, n in copies.items() if n > 1}
    assert twice <= chaos.timed_out  # a copy is repeated only where Telegram answered too late
    by_chat = {user.id: language for user, language in users}
    for sent in bot_api.sent:
        if sent.chat_id in expected and sent.parse_mode == "HTML":
            language = by_chat[sent.chat_id]
            if language == "ku":  # no Kurmanji text: English, with one line in Kurmanji saying so
                first, title = sent.text.split("\n\n")[:2]
                assert "Kurdî" not in title and "English" in first and title == "June update"
            else:
                assert sent.text.startswith(FIRST_LINES[language]), (language, sent.text[:40])
            if language == "en":
                link = next(e for e in sent.message["entities"] if e["type"] == "text_link")
                assert link["url"] == "https://example.org/notice?a=1&b=2"

    group_messages = bot_api.sent_to(GROUP)
    progress = next(m for m in group_messages if "sending…" in m.text)
    assert progress.edits, "the progress message is edited in place"
    assert fsi_free(progress.text).endswith("1,999 / 1,999 (100 %)")
    summary = fsi_free(group_messages[-1].text)
    assert "Sent: 1,998 of 1,999" in summary and "Unreachable (blocked the bot or left): 1 (blocked 1)" in summary
    assert "Telegram: 1,998 sent, 0 failed, 1 unreachable" in summary and "English: 999 sent" in summary
    assert "Received it in the first language instead of their own: 500" in summary
    edit_times = [c.at for c in bot_api.calls_to("editMessageText") if c.chat_id == GROUP]
    assert all(b - a >= 0.8 for a, b in zip(edit_times, edit_times[1:], strict=False))  # throttled


async def test_cancel_and_four_eyes_from_the_staff_group(bot_api: LocalBotApi, tmp_path: Path) -> None:
    keys = KeyRing.generate()
    author, approver = bot_api.user(first_name="Author"), bot_api.user(first_name="Approver")
    group = bot_api.group(GROUP)
    users = [(bot_api.user(language_code="en"), "en") for _ in range(300)]
    settings = settings_for(bot_api, tmp_path, [author, approver], require_approval=True)
    async with running_with_bulletins(settings, keys) as bot:
        await register(bot, users)
        async with bot.services.database.sessions.begin() as session:
            await bot.services.get(Bulletins).create(session, parse_bulletin(BULLETIN), f"staff:{keys.pseudonym('telegram', str(author.id))[:12]}")
        seen = 0

        def replies() -> list[str]:  # the answers, not the progress report and summary
            return [fsi_free(m.text) for m in bot_api.sent_to(GROUP)
                    if "sending…" not in m.text and "Summary" not in m.text]

        async def answer(user: SimUser, text: str) -> str:
            nonlocal seen
            user.say(text, chat=group)
            await bot_api.wait_for(lambda: len(replies()) > seen, timeout=30)
            seen += 1
            return replies()[seen - 1]

        assert "once another staff member approves it" in await answer(author, "/bulletin send june-update all")
        assert "another staff member must approve it" in await answer(author, "/bulletin approve june-update")
        assert not bulletin_copies(bot_api)
        # Slow down Telegram so the send is still running when it is cancelled.
        bot_api.fail(None, delay=0.2, times=None)
        assert "Its send has started" in await answer(approver, "/bulletin approve june-update")
        await bot_api.wait_for(lambda: len(bulletin_copies(bot_api)) >= 20, timeout=60)
        cancelled = await answer(approver, "/bulletin cancel june-update")
        assert "messages not yet sent were withdrawn" in cancelled
        bot_api.faults.clear()
        await bot_api.wait_for(lambda: any("cancelled. Summary" in fsi_free(s.text) for s in bot_api.sent_to(GROUP)),
                               timeout=60)
        delivered = len(bulletin_copies(bot_api))
        await asyncio.sleep(1.5)  # the senders keep polling: nothing withdrawn goes out
        assert len(bulletin_copies(bot_api)) == delivered < 300
        status = await answer(author, "/bulletin status june-update")
        assert f"Sent: {delivered} of 300" in status and "Cancelled while sending" in status
        async with bot.services.database.sessions() as session:
            actions = list(await session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
        assert actions == ["bulletin.send", "bulletin.approve", "bulletin.cancel"]
