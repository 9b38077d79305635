"""Erasure reaches the SQLite files themselves: nothing of an erased person comes back from a copy
of the write-ahead log taken right after ``/delete_me``, and the database files are private."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

from sqlalchemy import select, text

from bot.core.security import KeyRing
from bot.storage.db import Database
from bot.storage.models import ParticipantKey, SurveyAnswer
from tests.support import make_settings, open_chat
from tests.test_surveys import launch, settings_for, setup_group

SUGGESTION = "Please write about the Sednaya detainees, my brother Karim among them"


def _copies(tmp_path: Path) -> dict[str, bytes]:
    """What someone who copies the data directory at this moment gets."""
    found = {}
    for file in tmp_path.iterdir():
        if file.name.startswith("civicbot.db"):
            copy = tmp_path / "seized" / file.name
            copy.parent.mkdir(exist_ok=True)
            shutil.copyfile(file, copy)
            found[file.name] = copy.read_bytes()
    return found


async def test_a_copy_of_the_wal_after_delete_me_gives_back_nothing_of_the_person(
        tmp_path: Path, keys: KeyRing) -> None:
    db_file = tmp_path / "civicbot.db"
    settings = settings_for(f"sqlite+aiosqlite:///{db_file}", tmp_path)
    async with open_chat(settings, keys) as chat:
        person = (await setup_group(chat, {"7101": "en"}))["7101"]
        await launch(chat, "bulletin-feedback")
        for step in ("/surveys", "Start", "no", "1", "yes", SUGGESTION):
            await person.send(step)
        assert "Thank you for your feedback" in person.inbox[-2].text
        async with chat.bot.services.database.sessions() as session:
            wrapped = (await session.scalars(select(ParticipantKey))).one().wrapped
            answer = (await session.scalars(select(SurveyAnswer).where(SurveyAnswer.text_enc.is_not(None)))).one()
            sealed_answer = answer.text_enc
        assert sealed_answer is not None
        before = _copies(tmp_path)
        assert any(wrapped in data for data in before.values()), "the test must see the key before erasure"

        await person.send("/delete_me")
        await person.press("Yes, erase everything")
        assert "has been erased" in person.last.text
        after = _copies(tmp_path)  # taken while the bot still runs, as a seizure would

    assert "civicbot.db" in after
    for name, data in after.items():
        assert wrapped not in data, f"the wrapped data key is still in {name}"
        assert sealed_answer not in data, f"the sealed answer is still in {name}"
        assert SUGGESTION.encode() not in data


async def test_the_wal_is_kept_small_and_database_files_are_private(tmp_path: Path, keys: KeyRing) -> None:
    db_file = tmp_path / "data" / "civicbot.db"
    settings = make_settings(f"sqlite+aiosqlite:///{db_file}", tmp_path)
    async with open_chat(settings, keys) as chat:
        p = chat.person("7102")
        for step in ("/start", "4", "1"):
            await p.send(step)
        async with chat.bot.services.database.engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA journal_size_limit"))).scalar() == 0
        files = [f for f in db_file.parent.iterdir() if f.name.startswith("civicbot.db")]
        assert {f.name for f in files} >= {"civicbot.db", "civicbot.db-wal"}
        for file in files:
            assert stat.S_IMODE(file.stat().st_mode) == 0o600, file.name
        assert stat.S_IMODE(db_file.parent.stat().st_mode) == 0o700


async def test_an_existing_database_file_readable_by_others_is_made_private(tmp_path: Path) -> None:
    db_file = tmp_path / "civicbot.db"
    db_file.touch(mode=0o644)
    db_file.chmod(0o644)
    database = Database(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with database.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await database.dispose()
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
