"""Scheduled jobs that never overlap across workers.

Only the leader runs the scheduler, but leadership can move while a job is running (the
old leader finishes its run while the new one starts its first). Each job's state is in
the data it works on, so a doubled run changes nothing; on PostgreSQL a run also holds an
advisory lock named after its job, so two runs of one job never overlap at all.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import text

from bot.operations.leader import LOCK_NAMESPACE
from bot.storage.db import Database

log = logging.getLogger(__name__)

Job = Callable[[], Awaitable[Any]]


def job_lock_key(name: str) -> int:
    """A stable 31-bit key per job name (the leader's own lock is key 1)."""
    return 2 + int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % (2**31 - 3)


def exclusive(database: Database, name: str, job: Job) -> Job:
    """``job`` run under its advisory lock on PostgreSQL; skipped while another worker runs it.

    SQLite has one process, and its jobs' transactions already exclude each other.
    """
    if database.is_sqlite:
        return job
    key = job_lock_key(name)

    async def locked() -> Any:
        async with database.engine.connect() as connection:
            got = await connection.scalar(text("SELECT pg_try_advisory_lock(:ns, :key)"),
                                          {"ns": LOCK_NAMESPACE, "key": key})
            await connection.commit()
            if not got:
                log.info("scheduled job %s is running on another worker; skipped", name)
                return None
            try:
                return await job()
            finally:
                await connection.execute(text("SELECT pg_advisory_unlock(:ns, :key)"), {"ns": LOCK_NAMESPACE, "key": key})
                await connection.commit()

    return locked
