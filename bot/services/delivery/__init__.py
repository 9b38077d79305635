"""The delivery engine: drains the outbox per platform (see :mod:`bot.services.outbox` for the API)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from bot.services.delivery.listener import NotifyListener
from bot.services.delivery.sender import DrainReport, OutboxSender
from bot.services.outbox import Wakeup
from bot.storage.db import Database

__all__ = ["DrainReport", "OutboxSender", "run_delivery"]


async def run_delivery(senders: Mapping[str, OutboxSender], database: Database, wakeup: Wakeup,
                       stop: asyncio.Event) -> None:
    """Every sender until ``stop``, plus, on PostgreSQL, the listener that wakes them when another
    worker commits rows."""
    jobs = [sender.run(stop) for sender in senders.values()]
    if senders and not database.is_sqlite:
        jobs.append(NotifyListener(database.url, wakeup).run(stop))
    await asyncio.gather(*jobs)
