"""Issue 11's "done when" on Telegram: check-ins with an association, PTB over HTTP against the
local Bot API server, the real core, outbox senders and SQLite, with the feature's clock moved by
the test (the scheduler only wakes the feature; here the test does, as a scheduler would).

Two contact persons (English, Arabic) join with contact-person codes; the schedule fires at
10:00 Berlin time on both sides of the change to summer time; "Nothing new" answers in one tap;
the second contact person is told it was answered; one reminder; a missed check-in; a restart
between the trigger and the answer; a flagged answer notifies the Telegram staff chat at once,
without the content; two more missed check-ins in a row notify it once.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path

import pytest
from botapi_server import LocalBotApi, SentMessage, SimUser
from sqlalchemy import select
from telegram_support import Conversation, running_bot

from bot.checkins.job import CheckinJob
from bot.checkins.service import Checkins, RunReport
from bot.config import (
    CheckinSettings,
    LimitsSettings,
    OutboxSettings,
    Settings,
    StaffSettings,
    TelegramSettings,
)
from bot.core.security import KeyRing
from bot.storage.models import CheckinCycle, CheckinFlag
from tests.support import CHECKINS_DIR, MovedClock, make_settings

CODE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}")
STAFF_CHAT = -1_001_777_000_111
UPDATE = "Three families displaced from Sinjar need documents"
ANSWER_NOW, NOTHING_NEW, LATER = 0, 1, 2


def fsi(value: object) -> str:
    return f"\u2068{value}\u2069"


def berlin(day: str, time: str = "10:00") -> dt.datetime:
    from zoneinfo import ZoneInfo

    return dt.datetime.fromisoformat(f"{day}T{time}").replace(tzinfo=ZoneInfo("Europe/Berlin")).astimezone(dt.UTC)


def settings_for(bot_api: LocalBotApi, tmp_path: Path, staff: SimUser) -> Settings:
    telegram = TelegramSettings(token=bot_api.token, api_base_url=bot_api.base_url,  # type: ignore[arg-type]
                                per_chat_interval_seconds=0.0)
    return make_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path, telegram=telegram,
        limits=LimitsSettings(flood_messages=10_000), outbox=OutboxSettings(poll_seconds=0.1),
        checkins=CheckinSettings(directory=CHECKINS_DIR, escalate_after_missed=2),
    ).model_copy(update={"staff": StaffSettings(members=[f"telegram:{staff.id}"], telegram_chat=STAFF_CHAT)})


async def onboard(person: Conversation, language: str, code: str) -> None:
    (languages,) = await person.say("/start")
    (consent,) = await person.press(languages, label=language)
    (_invite,) = await person.press(consent, index=0)
    joined, bulletins = await person.say(code, count=2)
    assert "sinjar" in joined.text
    await person.press(bulletins, index=0, count=2)  # the onboarding's question about bulletins; ready, menu


def in_staff_chat(bot_api: LocalBotApi) -> list[SentMessage]:
    return bot_api.sent_to(STAFF_CHAT)


async def test_checkins_on_telegram(bot_api: LocalBotApi, tmp_path: Path, keys: KeyRing,
                                    caplog: pytest.LogCaptureFixture) -> None:
    coordinator = Conversation(bot_api, bot_api.user(language_code="en", first_name="Coordinator"))
    amal = Conversation(bot_api, bot_api.user(language_code="en", first_name="Amal"))
    noor = Conversation(bot_api, bot_api.user(language_code="ar", first_name="Noor"))
    group = bot_api.group(STAFF_CHAT, "Staff")
    settings = settings_for(bot_api, tmp_path, coordinator.user)
    clock = MovedClock(dt.datetime(2026, 3, 20, 7, 0, tzinfo=dt.UTC))

    async with running_bot(settings, keys, outbox_loop=True, clock=clock) as (bot, _):
        job = CheckinJob(bot.services.database, bot.services.get(Checkins))
        await coordinator.say("/org add sinjar association Families of Sinjar")
        codes = []
        for _ in range(2):
            (invite,) = await coordinator.say("/checkin invite sinjar")
            assert invite.protected and invite.text.startswith(f"Contact-person code for {fsi('sinjar')}:")
            codes.append(CODE.search(invite.text).group(0))  # type: ignore[union-attr]
        await onboard(amal, "English", codes[0])
        await onboard(noor, "العربية", codes[1])
        (scheduled,) = await coordinator.say("/checkin schedule sinjar --every 7d --at 10:00 --tz Europe/Berlin")
        assert scheduled.text.endswith(f"The next one is due {fsi('2026-03-20 10:00 (UTC+01:00)')}.")

        # -- 10:00 in Berlin, winter time: both contact persons get the check-in --------------------
        clock.set(berlin("2026-03-20", "09:59"))
        assert await job() == RunReport()
        clock.set(berlin("2026-03-20"))
        assert (await job()).opened == 1
        (offer,) = await amal.replies()
        (arabic_offer,) = await noor.replies()
        assert offer.labels == ["Answer now", "Nothing new", "Later"] and offer.protected
        assert offer.text.startswith("Regular check-in with your association")
        assert arabic_offer.labels[1].lstrip("\u200f") == "لا جديد" and "المتابعة الدورية" in arabic_offer.text

        (first_question,) = await noor.press(arabic_offer, index=ANSWER_NOW)  # Noor starts ...
        assert "كيف حال جمعيتكم" in first_question.text
        thanks, _menu = await amal.press(offer, index=NOTHING_NEW, count=2)  # ... Amal answers in one tap
        assert thanks.text == "Thank you. We have noted that there is nothing new."
        told, _menu = await noor.press(first_question, index=0, count=2)
        assert "أجاب شخص تواصل آخر من جمعيتكم" in told.text  # answered by another contact person

        # -- the next week nobody answers: one reminder after 48 hours ----------------------------
        clock.set(berlin("2026-03-27"))
        assert (await job()).opened == 1
        (second_offer,) = await amal.replies()
        await noor.replies()
        clock.set(dt.datetime(2026, 3, 29, 8, 59, tzinfo=dt.UTC))
        assert (await job()).reminded == 0
        clock.set(dt.datetime(2026, 3, 29, 9, 0, tzinfo=dt.UTC))  # 48 hours (11:00 in Berlin: summer time began)
        assert (await job()).reminded == 2
        (reminder,) = await amal.replies()
        assert reminder.text.startswith("Reminder: your association has not answered this check-in yet.")
        assert reminder.labels == ["Answer now", "Nothing new", "Later"]
        (arabic_reminder,) = await noor.replies()
        assert arabic_reminder.text.startswith("\u200fتذكير")  # right to left, line by line
        clock.set(berlin("2026-03-31"))
        assert (await job()).reminded == 0, "one reminder only"

        # -- summer time: 10:00 in Berlin is 08:00 UTC; the unanswered week is missed --------------
        clock.set(dt.datetime(2026, 4, 3, 7, 59, tzinfo=dt.UTC))
        assert (await job()).opened == 0
        clock.set(dt.datetime(2026, 4, 3, 8, 0, tzinfo=dt.UTC))
        assert (await job()).opened == 1  # the bot stops right after the trigger

    async with running_bot(settings, keys, outbox_loop=True, clock=clock) as (bot, _):
        job = CheckinJob(bot.services.database, bot.services.get(Checkins))
        assert await job() == RunReport(), "the restarted bot does not send the check-in again"
        (third_offer,) = await amal.replies()
        await noor.replies()
        assert third_offer.labels == ["Answer now", "Nothing new", "Later"]

        # -- a flagged answer: the staff chat is told at once, without the content ---------------
        (situation,) = await amal.press(third_offer, index=ANSWER_NOW)
        (needs,) = await amal.press(situation, label="Our members or our work are in danger")
        (needs,) = await amal.press(needs, label="Legal advice or assistance")
        (updates,) = await amal.press(needs, label="Done")
        (call,) = await amal.say(UPDATE)
        closing, told, _menu = await amal.press(call, label="Yes, please call us", count=3)
        assert closing.text == "Thank you. Your answer has reached our team."
        assert told.text == "Our team has been told at once about what you reported."
        (notice,) = await bot_api.wait_for_messages(STAFF_CHAT, 1)
        assert notice.text.startswith(f"Check-in {fsi(3)} of association {fsi('sinjar')} raised: "
                                      f"{fsi('safety concern, urgent need, call requested')}.")
        assert f"/checkin show {fsi('sinjar')} in the Matrix staff room" in notice.text
        for content in (UPDATE, "danger", "Legal", "Families of Sinjar"):
            assert content not in notice.text
        coordinator.user.say("/checkin show sinjar", chat=group)
        (_, shown) = await bot_api.wait_for_messages(STAFF_CHAT, 2)
        assert "The answers are shown only where content may be shown" in shown.text and UPDATE not in shown.text
        coordinator.user.say("/checkin ack sinjar", chat=group)
        (_, _, acked) = await bot_api.wait_for_messages(STAFF_CHAT, 3)
        assert acked.text == f"{fsi(3)} flags of {fsi('sinjar')} closed."

        # -- two missed check-ins in a row: one notice; a third changes nothing ------------------
        for day, opened in (("2026-04-10", 1), ("2026-04-17", 1), ("2026-04-24", 1)):
            clock.set(berlin(day))
            assert (await job()).opened == opened
        (_, _, _, silence) = await bot_api.wait_for_messages(STAFF_CHAT, 4)
        assert silence.text == (f"Association {fsi('sinjar')} has not answered the last {fsi(2)} check-ins.\n"
                                f"Last answer: {fsi('2026-04-03')}.")
        clock.set(berlin("2026-05-01"))
        assert (await job()).opened == 1
        coordinator.user.say("/checkins", chat=group)
        (*_, overview) = await bot_api.wait_for_messages(STAFF_CHAT, 5)
        assert "missed in a row: \u20683\u2069" in overview.text and len(in_staff_chat(bot_api)) == 5

        async with bot.services.database.sessions() as session:
            cycles = list(await session.scalars(select(CheckinCycle).order_by(CheckinCycle.seq)))
            assert [c.status for c in cycles] == ["answered", "missed", "answered", "missed", "missed", "missed",
                                                  "open"]
            assert all(f.acked_at is not None for f in await session.scalars(select(CheckinFlag)))
    raw = b"".join(f.read_bytes() for f in tmp_path.iterdir() if f.name.startswith("civicbot.db"))
    assert raw and UPDATE.encode() not in raw
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
