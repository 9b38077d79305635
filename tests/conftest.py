"""Shared fixtures: key ring, databases (SQLite file always, PostgreSQL where reachable)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.core.security import KeyRing
from tests.support import postgres_database, postgres_reachable

_pg_skip_reason: list[str | None] = []


async def _postgres_skip_reason() -> str | None:
    if not _pg_skip_reason:
        _pg_skip_reason.append(await postgres_reachable())
    return _pg_skip_reason[0]


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing.generate()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
async def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A real, empty database: an SQLite file, and PostgreSQL when reachable."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}"
        return
    reason = await _postgres_skip_reason()
    if reason:
        pytest.skip(reason)
    async with postgres_database() as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}"
