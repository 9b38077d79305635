"""Privacy by construction: no raw ids or typed text in the database file or the logs."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.core.security import KeyRing
from tests.support import Chat, make_settings, open_chat

RAW_USER_ID = "7700990011"
TYPED_SECRET = "QWERTY-ZXCV-MNBV-secret-words-Aleppo"


async def scripted_session(chat: Chat) -> None:
    """A full session: onboarding with a wrong invite code typed, menu, help, language, privacy."""
    staff = chat.person("staff-1")
    await staff.send("/org add ngo1 cso Violet Organisation")
    await staff.send("/group add fg1 focus_group ngo1")
    await staff.send("/invite ngo1 fg1")
    code = staff.last.text.split("\n")[0].split(":")[1].strip().strip("\u2068\u2069")
    p = chat.person(RAW_USER_ID)
    await p.send("/start")
    await p.press("English")
    await p.press("I agree")
    await p.send(TYPED_SECRET)  # free text: a wrong code
    await p.send(code)
    await p.send("/help")
    await p.send("/privacy")
    await p.send("/language")
    await p.press("العربية")
    await p.send("some words nobody should find " + TYPED_SECRET)


def test_database_file_holds_no_raw_id_and_no_typed_text(tmp_path: Path, keys: KeyRing) -> None:
    import asyncio

    db_file = tmp_path / "civicbot.db"
    settings = make_settings(f"sqlite+aiosqlite:///{db_file}", tmp_path, staff=["console:staff-1"])

    async def run() -> None:
        async with open_chat(settings, keys) as chat:
            await scripted_session(chat)
            inbox = chat.person(RAW_USER_ID).inbox
            assert any("I do not recognise this invitation code" in m.text for m in inbox)
            assert any("You have joined" in m.text for m in inbox)

    asyncio.run(run())
    files = [f for f in tmp_path.iterdir() if f.name.startswith("civicbot.db")]
    assert db_file in files
    raw = b"".join(f.read_bytes() for f in files)
    for needle in (RAW_USER_ID, TYPED_SECRET, "Violet Organisation", "secret-words", "staff-1", "chat-" + RAW_USER_ID):
        assert needle.encode() not in raw, needle
        assert needle.encode("utf-16-le") not in raw, needle


@pytest.mark.parametrize("level", [logging.DEBUG])
async def test_logs_carry_no_content_and_no_raw_ids(tmp_path: Path, keys: KeyRing, sqlite_url: str,
                                                    caplog: pytest.LogCaptureFixture, level: int) -> None:
    caplog.set_level(level)
    settings = make_settings(sqlite_url, tmp_path, staff=["console:staff-1"])
    async with open_chat(settings, keys) as chat:
        await scripted_session(chat)
        # Also force the error path: a send failure and an internal error are logged too.
        chat.transport.failures.append(RuntimeError(TYPED_SECRET))
        await chat.person(RAW_USER_ID).send("/help")
    text = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    assert caplog.records, "the session must have logged something for this test to mean anything"
    for needle in (RAW_USER_ID, TYPED_SECRET, "Violet", "secret-words", "staff-1", "Aleppo"):
        assert needle not in text, needle
