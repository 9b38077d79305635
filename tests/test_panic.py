"""``/panic``: erase at once, no confirmation step, on any platform; each step on its own (the chat
is cleared even if the erasure fails), and the person is told what could not be removed."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.core.security import KeyRing
from bot.services.participants import Participants
from bot.storage.models import DialogState, Participant
from tests.support import make_settings, open_chat


async def test_panic_erases_without_asking(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        person = chat.person("7701")
        for step in ("/start", "4", "1", "1"):
            await person.send(step)
        replies = await person.send("/panic")
        assert len(replies) == 1 and not replies[0].choices, "no question, no menu: one last message"
        assert "erased" in replies[0].text
        assert "could not remove the messages of this chat" in replies[0].text  # the console cannot delete
        async with chat.bot.services.database.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Participant)) == 0
            assert await session.scalar(select(func.count()).select_from(DialogState)) == 0


async def test_panic_clears_the_chat_even_when_the_erasure_fails(sqlite_url: str, tmp_path: Path, keys: KeyRing,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    async with open_chat(make_settings(sqlite_url, tmp_path), keys) as chat:
        person = chat.person("7702")
        for step in ("/start", "4", "1", "1"):
            await person.send(step)
        services = chat.bot.services

        async def broken(*args: object) -> bool:
            raise RuntimeError("database unavailable")

        monkeypatch.setattr(Participants, "erase", broken)
        replies = await person.send("/panic")
        assert "could not be erased just now" in replies[-1].text
        assert "could not remove the messages of this chat" in replies[-1].text  # still tried, and said so
        async with services.database.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Participant)) == 1  # rolled back, not half done
