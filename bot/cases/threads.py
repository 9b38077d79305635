"""Each case is one thread in the Matrix staff room.

The first message of a case that reaches the room starts the thread and its event id is
kept on the case; later ones are sent into it. Rows are completed when they are sent (the
root's id is known only then), through the outbox's delivery hook, so a crash, a retry or
a second worker never starts a second thread while an earlier message is still queued.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.model import Delivery, Outbound
from bot.services import staff_destinations as dest
from bot.services.outbox import PENDING, SENDING
from bot.services.staff_destinations import StaffDestinations
from bot.storage.models import Case, OutboxMessage


def _case_id(row: OutboxMessage) -> int | None:
    if row.ref and row.ref.startswith("case:") and row.ref[5:].isdigit():
        return int(row.ref[5:])
    return None


class CaseThreads:
    """The outbox's :class:`bot.services.outbox.DeliveryHook` for staff-room case messages."""

    __slots__ = ("_staff",)

    def __init__(self, staff: StaffDestinations) -> None:
        self._staff = staff

    async def prepare(self, session: AsyncSession, row: OutboxMessage, message: Outbound) -> Outbound | None:
        target = self._staff.resolve(row.destination or "")
        case_id = _case_id(row)
        if row.destination != dest.ROOM or target is None or case_id is None:
            return message
        case = await session.get(Case, case_id)
        if case is None:  # purged meanwhile: the message still tells staff what happened
            return message
        if case.staff_thread_root and case.staff_room == target.address.value:
            return dataclasses.replace(message, thread_root=case.staff_thread_root)
        earlier = await session.scalar(
            select(OutboxMessage.id).where(
                OutboxMessage.ref == row.ref, OutboxMessage.destination == dest.ROOM,
                OutboxMessage.kind == row.kind, OutboxMessage.id < row.id,
                OutboxMessage.status.in_((PENDING, SENDING)),
            ).limit(1)
        )
        if earlier is not None:
            return None  # the thread's first message is still on its way
        return message  # this one starts the thread

    async def delivered(self, session: AsyncSession, row: OutboxMessage, delivery: Delivery) -> None:
        target = self._staff.resolve(row.destination or "")
        case_id = _case_id(row)
        if row.destination != dest.ROOM or target is None or case_id is None or delivery.message_id is None:
            return
        case = await session.get(Case, case_id)
        if case is not None and (not case.staff_thread_root or case.staff_room != target.address.value):
            case.staff_room, case.staff_thread_root = target.address.value, delivery.message_id
