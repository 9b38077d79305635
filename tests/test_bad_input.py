"""Bad input gets a clear, localized answer; nothing crashes; no state is lost."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import LimitsSettings
from bot.core.security import KeyRing
from bot.services.participants import Participants
from tests.support import Chat, Person, make_settings, open_chat


async def onboarded(chat: Chat, user_id: str) -> Person:
    person = chat.person(user_id)
    for step in ("/start", "4", "1", "1"):
        await person.send(step)
    return person


async def test_unknown_and_staff_commands_get_the_same_refusal(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = await onboarded(chat, "3001")
        unknown = (await p.send("/frobnicate"))[0].text
        for staff_command in ("/invite ngo1", "/org list", "/whoami", "/group add x focus_group"):
            assert (await p.send(staff_command))[0].text == unknown
        assert "/help" in unknown


async def test_forged_and_stale_buttons_change_nothing(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = chat.person("3002")
        await p.send("/start")
        first_prompt = p.last_prompt
        await p.press("English")
        # Stale: a button of the language prompt, pressed after it was answered.
        replies = await p.press(0, prompt_id=str(first_prompt.prompt_id))
        assert "no longer valid" in replies[0].text
        assert "Do you agree" in replies[1].text  # the current question again, nothing changed
        # Forged: an index out of range and a made-up prompt id.
        assert "no longer valid" in (await p.press(57))[0].text
        assert "no longer valid" in (await p.press(0, prompt_id="forged!!"))[0].text
        assert "no longer valid" in (await p.press(-1))[0].text
        await p.press("I agree")
        assert "invitation code" in p.last.text


async def test_button_without_any_dialog(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = await onboarded(chat, "3003")
        menu = p.last_prompt
        await p.send("/cancel")
        replies = await p.press(0, prompt_id=str(menu.prompt_id))
        assert replies[0].text == "This button is no longer valid. Send /menu to see what you can do."


async def test_oversized_message_is_refused_and_state_kept(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(sqlite_url, tmp_path, limits=LimitsSettings(max_message_chars=300))
    async with open_chat(settings, keys) as chat:
        p = chat.person("3004")
        await p.send("/start")
        replies = await p.send("x" * 301)
        assert replies[0].text.startswith("Your message is too long") and "\u2068300\u2069" in replies[0].text
        await p.send("4")
        assert "Do you agree" in p.last.text


async def test_flood_gets_one_notice_then_silence(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(sqlite_url, tmp_path, limits=LimitsSettings(flood_messages=5, flood_window_seconds=60))
    async with open_chat(settings, keys) as chat:
        p = chat.person("3005")
        for _ in range(5):
            await p.send("/help")
        assert len(p.inbox) == 5
        notice = await p.send("/help")
        assert len(notice) == 1 and "very quickly" in notice[0].text
        for _ in range(20):
            assert await p.send("/help") == []
        # Another person is not affected.
        assert await chat.person("3006").send("/help")


async def test_media_gets_a_clear_answer(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = chat.person("3007")
        replies = await p.send_media()
        assert "only read text" in replies[0].text and "nothing of what you sent was saved" in replies[0].text


async def test_malformed_text_is_harmless(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = await onboarded(chat, "3008")
        for text in ("/", "//", "/ ", "\x00\x01", "   ", "/start@", "/ïnvite", "\u202e/help", "🙂" * 50, "%(n)s %s {0}"):
            await p.send(text)
        await p.send("/menu")
        assert p.last.text.startswith("Main menu")


async def test_an_internal_error_rolls_back_and_answers(sqlite_url: str, tmp_path: Path, keys: KeyRing,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = chat.person("3009", language_hint="ar")
        await p.send("/start")
        await p.press("Kurdî (Kurmancî)")

        async def broken(*args: object, **kwargs: object) -> None:
            raise RuntimeError("database went away")

        monkeypatch.setattr(Participants, "register", broken)
        replies = await p.press(0)  # "I agree"
        assert replies[0].language == "ku"  # the person's chosen language, not the hint
        monkeypatch.undo()
        await p.press(0)  # the same prompt is still current: nothing was lost
        assert len(p.last.choices) == 1  # the invitation step


async def test_a_redelivered_event_is_handled_once(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    from bot.core.model import Inbound

    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        p = await onboarded(chat, "3010")
        before = len(p.inbox)
        event = Inbound(chat.transport.platform, "3010", p.address, text="/help", event_id="$event-1")
        await chat.bot.router.handle(event)
        await chat.bot.router.handle(event)  # the platform delivers it again after a crash
        assert len(p.inbox) == before + 1
        await chat.bot.router.handle(Inbound(chat.transport.platform, "3010", p.address, text="/help",
                                             event_id="$event-2"))
        assert len(p.inbox) == before + 2


async def test_replies_that_cannot_be_sent_now_go_to_the_outbox(sqlite_url: str, tmp_path: Path,
                                                                keys: KeyRing) -> None:
    from sqlalchemy import select

    from bot.core.transport import TransientDeliveryError
    from bot.storage.models import OutboxMessage

    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = await onboarded(chat, "3011")
        chat.transport.failures.append(TransientDeliveryError("homeserver_down"))
        await p.send("/menu")
        async with chat.bot.services.database.sessions() as session:
            rows = list(await session.scalars(select(OutboxMessage)))
        assert [(r.kind, r.status) for r in rows] == [("reply", "pending")]
        assert chat.bot.services.outbox.read(rows[0]).text.startswith("Main menu")


async def test_a_person_who_blocked_the_bot_is_marked_unreachable_silently(sqlite_url: str, tmp_path: Path,
                                                                         keys: KeyRing) -> None:
    from sqlalchemy import func, select

    from bot.core.model import Inbound, InboundKind
    from bot.storage.models import Base, ParticipantAddress

    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = await onboarded(chat, "3012")
        before = len(p.inbox)
        await chat.bot.router.handle(Inbound(chat.transport.platform, "3012", p.address, kind=InboundKind.GONE))
        assert len(p.inbox) == before  # nothing said: they cannot read it
        async with chat.bot.services.database.sessions() as session:
            address = await session.scalar(select(ParticipantAddress))
            assert address is not None and not address.reachable and address.unreachable_reason == "blocked"
        await p.send("/menu")  # they come back: reachable again
        async with chat.bot.services.database.sessions() as session:
            assert (await session.scalar(select(ParticipantAddress))).reachable  # type: ignore[union-attr]

        stranger = chat.person("3013")
        await chat.bot.router.handle(Inbound(chat.transport.platform, "3013", stranger.address,
                                             kind=InboundKind.GONE))
        assert stranger.inbox == []
        async with chat.bot.services.database.sessions() as session:
            counts = {t.name: await session.scalar(select(func.count()).select_from(t))
                      for t in Base.metadata.sorted_tables}
        assert counts["participants"] == 1 and counts["dialog_states"] == 1  # only the first person's menu



async def test_free_text_outside_any_dialog_is_not_passed_on(sqlite_url: str, tmp_path: Path, keys: KeyRing) -> None:
    not_passed = ("Your message was not passed on to anyone: I only read commands and answers to my questions. "
                  "Here is the menu; you can also send /menu at any time.")
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        p = await onboarded(chat, "3010")
        await p.send("/cancel")  # no conversation open at all
        replies = await p.send("My brother was taken last week, please tell someone")
        assert [r.text for r in replies[:1]] == [not_passed]
        assert replies[1].choices and replies[1].text.startswith("Main menu")
        # At the main menu, text that is none of its options is the same: a message to nobody.
        replies = await p.send("Is anyone reading this?")
        assert replies[0].text == not_passed and replies[1].text.startswith("Main menu")
        assert "What you can do" in (await p.send("help"))[0].text  # an option typed still works

        arabic = chat.person("3011", language_hint="ar")
        for step in ("/start", "1", "1", "1", "/cancel"):
            await arabic.send(step)
        replies = await arabic.send("مرحبا، هل يقرأ أحد هذه الرسالة؟")
        tr = chat.bot.services.i18n.translator("ar")
        from bot.core.notices import NOT_PASSED_ON

        assert replies[0].text == tr._(NOT_PASSED_ON) and replies[0].text != not_passed
