"""The audit chain notices a cut at either end: retention purges leave a checkpoint entry that
vouches for the new start, and the head hash exported with ``civicbot audit head`` shows
whether entries were removed from the end since."""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select, update

from bot.config import RetentionSettings
from bot.core.security import KeyRing
from bot.services.audit import AuditLog
from bot.services.retention import purge
from bot.storage.models import AuditEntry
from tests.support import make_settings, open_chat

CIVICBOT = str(Path(sys.executable).parent / "civicbot")


def civicbot(*args: str, cwd: Path, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    return subprocess.run([CIVICBOT, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env,
                          input=stdin)


def test_cut_start_and_cut_end_are_detected(tmp_path: Path) -> None:
    staff = civicbot("run", "--console", "--as-staff", cwd=tmp_path,
                     stdin="/org add ngo1 cso\n/invite ngo1\n/invite ngo1\n/invite ngo1\n/invite ngo1\n")
    assert staff.returncode == 0, staff.stderr
    head = civicbot("audit", "head", cwd=tmp_path)
    assert head.returncode == 0, head.stderr
    exported = head.stdout.strip()
    assert exported.startswith("5:") and len(exported) == 2 + 64
    assert civicbot("audit", "verify", "--head", exported, cwd=tmp_path).returncode == 0

    db = tmp_path / "data" / "civicbot.db"
    backup = tmp_path / "copy.db"
    with sqlite3.connect(db) as source, sqlite3.connect(backup) as target:
        source.backup(target)

    with sqlite3.connect(db) as conn:
        conn.execute("delete from audit_log where id = 1")  # the oldest entry, removed by hand
    cut_start = civicbot("audit", "verify", cwd=tmp_path)
    assert cut_start.returncode == 1 and "start" in cut_start.stderr, cut_start.stderr

    with sqlite3.connect(db) as conn:
        conn.execute("delete from audit_log")
    with sqlite3.connect(backup) as source, sqlite3.connect(db) as target:
        source.backup(target)
    with sqlite3.connect(db) as conn:
        conn.execute("delete from audit_log where id >= 4")  # the newest entries
    assert civicbot("audit", "verify", cwd=tmp_path).returncode == 0, "without the head a cut end looks whole"
    cut_end = civicbot("audit", "verify", "--head", exported, cwd=tmp_path)
    assert cut_end.returncode == 1 and "end" in cut_end.stderr, cut_end.stderr
    assert cut_end.stderr.strip().count("\n") == 0


async def test_a_retention_purge_leaves_a_checkpoint_that_vouches_for_the_new_start(
        db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path, staff=["console:boss"])
    async with open_chat(settings, keys) as chat:
        boss = chat.person("boss")
        await boss.send("/org add ngo cso")
        for _ in range(3):
            await boss.send("/invite ngo")
        database = chat.bot.services.database
        log = AuditLog()
        now = dt.datetime.now(dt.UTC)
        async with database.sessions() as session:
            first_two = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id).limit(2)))
        async with database.sessions.begin() as session:  # as if the first two had been written long ago
            for entry in first_two:
                await session.execute(update(AuditEntry).where(AuditEntry.id == entry.id)
                                      .values(at=now - dt.timedelta(days=800)))
        async with database.sessions.begin() as session:
            await _rechain(session)
            head_before = await log.head(session)
        async with database.sessions.begin() as session:
            report = await purge(session, RetentionSettings(), now, chat.bot.features.retention())
        assert report["audit"] == 2
        async with database.sessions() as session:
            entries = list(await session.scalars(select(AuditEntry).order_by(AuditEntry.id)))
            assert entries[-1].action == "audit.checkpoint" and entries[-1].actor == "retention"
            assert '"purged":2' in entries[-1].details
            check = await log.verify(session)
            assert check.ok, check
            assert (await log.verify(session, head=head_before)).ok, "the old head is still in the chain"
            first_kept = entries[0].id
        async with database.sessions.begin() as session:
            await session.execute(AuditEntry.__table__.delete().where(AuditEntry.id == first_kept))
        async with database.sessions() as session:
            check = await log.verify(session)
            assert not check.ok and check.problem == "start"
            assert await session.scalar(select(func.count()).select_from(AuditEntry)) == 2


async def _rechain(session) -> None:  # type: ignore[no-untyped-def]
    """Recompute every hash after a test edited timestamps (what a real history would hold)."""
    from bot.services.audit import GENESIS, entry_digest

    prev = GENESIS
    for entry in await session.scalars(select(AuditEntry).order_by(AuditEntry.id)):
        entry.prev_hash = prev
        entry.hash = entry_digest(entry)
        prev = entry.hash
    await session.flush()
