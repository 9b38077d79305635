"""Handled-event records do not outlive the person: each carries a keyed digest of its owner and
goes with them on erasure, so nobody holding the key file can confirm, by trying message ids, that
an erased person ever wrote."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from bot.core.model import Address, Inbound, Platform
from bot.core.security import KeyRing
from bot.storage.models import ProcessedEvent
from tests.support import Chat, make_settings, open_chat

CONSOLE = Platform("console")


async def say(chat: Chat, user: str, text: str, message_id: int) -> None:
    """A message with a platform event id (as Telegram and Matrix give them)."""
    address = Address(CONSOLE, f"chat-{user}")
    await chat.bot.router.handle(Inbound(CONSOLE, user, address, text=text, event_id=f"{user}:{message_id}"))


def digest(keys: KeyRing, user: str, message_id: int) -> str:
    return keys.secret_digest("event", f"console:{user}:{message_id}")


async def test_erasure_takes_the_persons_handled_event_records_with_it(db_url: str, tmp_path: Path,
                                                                        keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        for user in ("5501", "5502"):
            for n, text in enumerate(("/start", "4", "1", "1", "/help"), start=1):
                await say(chat, user, text, n)
        await say(chat, "5501", "/delete_me", 6)
        await say(chat, "5501", "1", 7)
        assert "has been erased" in chat.person("5501").last.text
        await say(chat, "5503", "/start", 1)  # not registered: only onboarding began
        await say(chat, "5503", "/delete_me", 2)
        assert "stores nothing about you" in chat.person("5503").last.text

        async with chat.bot.services.database.sessions() as session:
            kept = set(await session.scalars(select(ProcessedEvent.digest)))
            total = await session.scalar(select(func.count()).select_from(ProcessedEvent))
        erased = {digest(keys, "5501", n) for n in range(1, 8)} | {digest(keys, "5503", n) for n in (1, 2)}
        assert not erased & kept, "an erased person's event can still be confirmed"
        assert {digest(keys, "5502", n) for n in range(1, 6)} <= kept, "others' records stay (exactly-once)"
        assert total == 5
