"""Master key rotation through the real command: everything still opens; retired keys shred old backups."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.core.model import Outbound
from bot.core.security import DecryptionError, KeyRing
from bot.services.outbox import OutboxKind, ToParticipant
from bot.storage.models import Organisation, ParticipantKey
from tests.support import make_settings, open_chat

CIVICBOT = str(Path(sys.executable).parent / "civicbot")


def test_rotate_and_retire(tmp_path: Path) -> None:
    db_file = tmp_path / "civicbot.db"
    key_file = tmp_path / "keys.json"
    KeyRing.generate().save(key_file)
    settings = make_settings(f"sqlite+aiosqlite:///{db_file}", tmp_path, staff=["console:boss"])

    async def populate() -> None:
        async with open_chat(settings, KeyRing.load(key_file)) as chat:
            await chat.person("boss").send("/org add ngo1 cso Violet Documentation Centre")
            person = chat.person("42")
            for step in ("/start", "1", "1", "1"):
                await person.send(step)
            await chat.person("43").send("/start")  # an unfinished onboarding: a sealed dialog state
            async with chat.bot.services.database.sessions.begin() as session:
                pid = (await session.scalars(select(ParticipantKey.participant_id))).one()
                await chat.bot.services.outbox.enqueue(session, ToParticipant(pid, "console"), OutboxKind.BULLETIN,
                                                       Outbound("Bulletin"))

    asyncio.run(populate())
    backup = tmp_path / "backup.db"
    with sqlite3.connect(db_file) as source, sqlite3.connect(backup) as target:
        source.backup(target)
    old_ring = KeyRing.load(key_file)

    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update(CIVICBOT_DATABASE__URL=f"sqlite+aiosqlite:///{db_file}", CIVICBOT_SECURITY__KEY_FILE=str(key_file),
               CIVICBOT_MATRIX__STORE_PATH=str(tmp_path / "no-matrix"))
    result = subprocess.run([CIVICBOT, "keys", "rotate", "--retire"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    # participant key, organisation, the unfinished onboarding's state (no key of its own yet); the registered
    # person's state and the queued message are sealed with the person's key
    assert "3 database values" in result.stdout
    new_ring = KeyRing.load(key_file)
    assert len(json.loads(key_file.read_text())["master_keys"]) == 1
    assert new_ring.current_key_id != old_ring.current_key_id
    assert new_ring.pseudonym("console", "42") == old_ring.pseudonym("console", "42")  # people are still found

    async def still_works() -> None:
        async with open_chat(settings, new_ring) as chat:
            person = chat.person("42")
            await person.send("/menu")  # the answer queues behind the bulletin queued for them
            assert (await chat.bot.senders["console"].drain_once()).sent == 2  # the queued message still opens
            assert person.inbox[-2].text == "Bulletin"
            assert person.last.language == "ar" and person.last.choices
            await chat.person("43").send("4")  # the unfinished onboarding continues
            assert chat.person("43").last.choices
            async with chat.bot.services.database.sessions() as session:
                org = await session.scalar(select(Organisation))
                assert org is not None
                assert chat.bot.services.organisations.organisation_name(org) == "Violet Documentation Centre"

    asyncio.run(still_works())

    with sqlite3.connect(backup) as old_copy:
        participant_id, wrapped = old_copy.execute("select participant_id, wrapped from participant_keys").fetchone()
    assert old_ring.unwrap(wrapped, str(participant_id))  # the old key file would still open the backup...
    with pytest.raises(DecryptionError):
        new_ring.unwrap(wrapped, str(participant_id))  # ...but it is retired: the backup is shredded
    shutil.rmtree(tmp_path / "no-matrix", ignore_errors=True)


def test_matrix_session_files_are_sealed_again(tmp_path: Path) -> None:
    from bot.transports.matrix_session import MatrixSessionStore

    old = KeyRing.generate()
    store = MatrixSessionStore(tmp_path / "store", old)
    store.ensure_dir()
    store.save_cross_signing({"master": "seed-a", "self_signing": "seed-b"})
    rotated = old.rotated()
    assert store.reseal(rotated) == 1
    retired = rotated.retired()
    assert MatrixSessionStore(tmp_path / "store", retired).load_cross_signing() == {
        "master": "seed-a", "self_signing": "seed-b"}
