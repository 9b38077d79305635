"""Schema and migrations on SQLite and PostgreSQL; retention purge; SQLite settings."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select, text, update

from bot.config import RetentionSettings
from bot.core.model import Outbound
from bot.core.security import KeyRing
from bot.services.retention import RetentionJob, purge
from bot.storage import migrate
from bot.storage.db import Database
from bot.storage.models import AuditEntry, Base, DialogState, InviteCode, OutboxMessage, Participant
from tests.support import make_settings, open_chat


async def test_migrations_build_exactly_the_models(db_url: str) -> None:
    database = Database(db_url)
    try:
        assert await migrate.current_revision(database) is None
        await migrate.upgrade(database)
        assert await migrate.is_current(database)
        await migrate.upgrade(database)  # idempotent

        def diff(connection):  # type: ignore[no-untyped-def]
            return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                    Base.metadata)

        async with database.engine.connect() as conn:
            assert await conn.run_sync(diff) == []
    finally:
        await database.dispose()


async def test_sqlite_runs_in_wal_with_foreign_keys_and_secure_delete(sqlite_url: str) -> None:
    database = Database(sqlite_url)
    try:
        async with database.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await conn.execute(text("PRAGMA secure_delete"))).scalar() == 1
    finally:
        await database.dispose()


async def test_retention_purges_only_what_has_expired(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path, staff=["console:boss"])
    async with open_chat(settings, keys) as chat:
        staff = chat.person("boss")
        await staff.send("/org add ngo cso")
        await staff.send("/invite ngo")
        await staff.send("/invite ngo")
        for user in ("old", "new"):
            p = chat.person(user)
            for step in ("/start", "4", "1", "1"):
                await p.send(step)
        await chat.person("abandoned").send("/start")  # unfinished onboarding: a dialog state only
        db = chat.bot.services.database
        now = dt.datetime.now(dt.UTC)
        async with db.sessions.begin() as session:
            old = await session.scalar(select(Participant).where(Participant.pseudonym == keys.pseudonym("console", "old")))
            assert old is not None
            await chat.bot.services.outbox.enqueue(session, old.id, "console", "bulletin",
                                                   Outbound("x"))
            old.last_seen_on = (now - dt.timedelta(days=800)).date()
            await session.execute(update(DialogState).where(
                DialogState.pseudonym == keys.pseudonym("console", "abandoned")).values(
                updated_at=now - dt.timedelta(days=15)))
            first_invite = await session.scalar(select(InviteCode.id).order_by(InviteCode.id))
            await session.execute(update(InviteCode).where(InviteCode.id == first_invite).values(
                expires_at=now - dt.timedelta(days=31)))
            await session.execute(update(AuditEntry).where(AuditEntry.action == "organisation.add").values(
                at=now - dt.timedelta(days=731)))
        rules = chat.bot.features.retention()
        report = await RetentionJob(db, RetentionSettings(), rules)()
        assert report is not None
        assert (report["participants"], report["dialog_states"], report["invites"], report["audit"]) == (1, 1, 1, 1)
        async with db.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(Participant)) == 1
            assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 0  # cascaded
            assert await session.scalar(select(func.count()).select_from(InviteCode)) == 1
        async with db.sessions.begin() as session:
            again = await purge(session, RetentionSettings(), now, rules)
        assert again.total == 0 and set(again) == set(report)  # doubled trigger: harmless
