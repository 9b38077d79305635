"""Runs inbound work in order per chat and concurrently across chats.

PTB processes updates one at a time by default, so a reply paced at one message per
second to one person would hold up everyone else; processing all updates concurrently
would instead let two quick taps of one person race. Here each chat has its own queue
and worker, a bounded number of chats run at once, and a chat that floods the bot has
its excess dropped instead of growing memory without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[None]]
Dropped = Callable[[], None]


class ChatQueues:
    """Per-chat FIFO queues drained by one worker task per busy chat."""

    __slots__ = ("_max_backlog", "_overflowing", "_queues", "_slots", "_workers", "dropped")

    def __init__(self, max_concurrent: int = 64, max_backlog: int = 50) -> None:
        self._queues: dict[str, deque[tuple[Job, Dropped | None]]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(max_concurrent)
        self._max_backlog = max_backlog
        self._overflowing: set[str] = set()  # chats already reported, so a flood logs one line
        self.dropped = 0

    def submit(self, key: str, job: Job, on_drop: Dropped | None = None) -> bool:
        """Queue ``job`` behind the chat's earlier work; False if the chat's backlog is full.
        ``on_drop`` runs instead of the job if the job is shed later (:meth:`shed`)."""
        queue = self._queues.get(key)
        if queue is None:
            queue = self._queues[key] = deque()
            worker = asyncio.get_running_loop().create_task(self._work(key, queue), name="telegram-chat-worker")
            self._workers.add(worker)
            worker.add_done_callback(self._workers.discard)
        if len(queue) >= self._max_backlog:
            self.dropped += 1
            if key not in self._overflowing:
                self._overflowing.add(key)
                log.warning("telegram: dropping updates from a chat that has too much queued work")
            return False
        queue.append((job, on_drop))
        return True

    def shed(self, key: str) -> int:
        """Drop the chat's queued work (not what is running): it holds up everyone else's updates.
        Returns how many jobs were dropped."""
        queue = self._queues.get(key)
        if not queue:
            return 0
        dropped = 0
        while queue:
            _job, on_drop = queue.popleft()
            if on_drop is not None:
                on_drop()
            dropped += 1
        self.dropped += dropped
        log.warning("telegram: dropped the queued updates of a chat that held up every other chat")
        return dropped

    async def _work(self, key: str, queue: deque[tuple[Job, Dropped | None]]) -> None:
        try:
            while queue:
                job, _on_drop = queue.popleft()
                async with self._slots:
                    try:
                        await job()
                    except Exception as exc:  # one bad update must not stop the chat's queue
                        log.error("telegram: handling an update failed: %s", type(exc).__name__)
        finally:
            if self._queues.get(key) is queue:
                del self._queues[key]
            self._overflowing.discard(key)

    @property
    def busy_chats(self) -> int:
        return len(self._queues)

    async def drain(self, timeout: float) -> bool:
        """Wait for queued work to finish; cancel what is left after ``timeout``. True if all finished."""
        if not self._workers:
            return True
        _, pending = await asyncio.wait(set(self._workers), timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
            log.warning("telegram: %d chats still had work at shutdown; it was cancelled", len(pending))
        return not pending
