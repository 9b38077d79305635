"""Outcomes written in batches: one transaction for many rows instead of one per row.

Senders hand each outcome over as soon as it is known; the recorder writes whatever has
gathered when the previous write is done (or after ``outbox.record_interval_seconds``), so
under load a write covers many rows and when idle an outcome waits only a moment.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

from bot.config import OutboxSettings
from bot.core.logsafe import describe
from bot.services.delivery.store import DeliveryStore, Outcome
from bot.services.outbox import OutboxStatus

log = logging.getLogger(__name__)

Done = Callable[[], None] | None


class OutcomeRecorder:
    """Buffers outcomes and writes them with :meth:`DeliveryStore.record`."""

    __slots__ = ("_buffer", "_clock", "_closed", "_counts", "_lock", "_settings", "_signal",
                 "_store")

    def __init__(self, store: DeliveryStore, settings: OutboxSettings, clock: Callable[[], dt.datetime]) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._buffer: list[tuple[Outcome, Done]] = []
        self._signal = asyncio.Event()
        self._lock = asyncio.Lock()
        self._closed = False
        self._counts = {status: 0 for status in OutboxStatus}

    def add(self, outcome: Outcome, done: Done = None) -> None:
        self._buffer.append((outcome, done))
        if not outcome.released:
            status = outcome.status
            self._counts[status] += 1
        self._signal.set()

    def totals(self) -> tuple[int, int, int, int]:
        """Outcomes so far: sent, retried, failed, unreachable."""
        c = self._counts
        return (c[OutboxStatus.SENT], c[OutboxStatus.PENDING], c[OutboxStatus.FAILED], c[OutboxStatus.UNREACHABLE])

    def close(self) -> None:
        self._closed = True
        self._signal.set()

    async def run(self) -> None:
        """Write batches until closed; the last write happens after close."""
        while True:
            await self._signal.wait()
            if not self._closed and len(self._buffer) < self._settings.batch_size:
                await asyncio.sleep(self._settings.record_interval_seconds)
            self._signal.clear()
            await self.flush()
            if self._closed and not self._buffer:
                return

    async def flush(self) -> None:
        """Write everything buffered now. A failed write is retried (the outcomes stay buffered)."""
        async with self._lock:
            while self._buffer:
                batch, self._buffer = self._buffer, []
                try:
                    await self._store.record([o for o, _ in batch], self._clock(), self._settings.max_attempts)
                except Exception as exc:
                    log.error("outbox outcomes not recorded (%d rows; retrying): %s", len(batch), describe(exc))
                    self._buffer[:0] = batch
                    if self._closed:
                        return
                    await asyncio.sleep(1.0)
                    continue
                for _, done in batch:
                    if done is not None:
                        done()
