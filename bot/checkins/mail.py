"""Check-in messages into the outbox, in the caller's transaction: to a contact person, or to
every configured staff destination (the Matrix staff room, the Telegram staff chat)."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.model import Outbound
from bot.services.outbox import Outbox, OutboxKind, ToParticipant

StaffMessage = Callable[[str], Outbound]
"""Builds the notice for one staff platform (``"matrix"``, ``"telegram"``): what it may show differs."""


def cycle_ref(cycle_id: int) -> str:
    """What a cycle's messages to contact persons are queued under (to cancel the unsent ones)."""
    return f"checkin:{cycle_id}"


class Mail:
    __slots__ = ("_outbox",)

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    async def to_person(self, session: AsyncSession, participant_id: int, platform: str, message: Outbound, *,
                        reminder: bool, ref: str) -> None:
        kind = OutboxKind.CHECKIN_REMINDER if reminder else OutboxKind.CHECKIN
        await self._outbox.enqueue(session, ToParticipant(participant_id, platform), kind, message, ref=ref)

    async def to_staff(self, session: AsyncSession, message_for: StaffMessage, ref: str) -> int:
        """Queue a notice for every configured staff destination; returns how many."""
        destinations = self._outbox.staff_recipients()
        for destination in destinations:
            await self._outbox.enqueue(session, destination, OutboxKind.STAFF_NOTICE,
                                       message_for(destination.platform), ref=ref)
        return len(destinations)

    async def cancel(self, session: AsyncSession, ref: str) -> int:
        """Drop what was queued under ``ref`` and not sent yet."""
        return await self._outbox.cancel(session, ref)
