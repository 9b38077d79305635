"""Dialogs driven to each step, and whole-database checkpoints to fuzz them from.

A checkpoint is a copy of the SQLite database taken when a person stands at one step (made
with SQLite's backup API while the bot is idle); restoring it before every generated example
puts that person back at exactly that step, whatever the previous example did (even erasure).
"""

from __future__ import annotations

import asyncio
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.model import Outbound
from bot.core.security import KeyRing
from bot.storage.models import Base, dialog_state_context
from tests.support import Chat, Person

LANGUAGE_NUMBER = {"ar": "1", "ckb": "2", "ku": "3", "en": "4"}
CODE = re.compile(r"([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4})")
VOLATILE = {"processed_events"}  # the handled-event markers a turn adds by design


@dataclass(frozen=True)
class Checkpoint:
    """A person standing at one step, in one language, and the database file that holds it."""

    name: str
    user_id: str
    language: str
    file: Path


class Checkpoints:
    """Takes and restores whole-database copies of one SQLite file."""

    def __init__(self, database: Path, directory: Path) -> None:
        self.database = database
        self.directory = directory
        self.taken: list[Checkpoint] = []

    def take(self, name: str, person: Person, language: str) -> Checkpoint:
        file = self.directory / f"{len(self.taken):03d}.db"
        _copy(self.database, file)
        point = Checkpoint(name, person.user_id, language, file)
        self.taken.append(point)
        return point

    def restore(self, point: Checkpoint) -> None:
        _copy(point.file, self.database)


def _copy(source: Path, target: Path) -> None:
    with _connect(source) as src, _connect(target) as dst:
        src.backup(dst)


@contextmanager
def _connect(path: Path) -> Iterator[sqlite3.Connection]:
    connection = sqlite3.connect(path, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def snapshot(database: Path, keys: KeyRing) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table (but the handled-event markers); a dialog state by what it holds,
    not by its prompt nonce, time or ciphertext (sealing twice never gives the same bytes)."""
    tables: dict[str, list[tuple[Any, ...]]] = {}
    with _connect(database) as connection:
        for table in Base.metadata.sorted_tables:
            if table.name in VOLATILE:
                continue
            if table.name == "dialog_states":
                rows = connection.execute(
                    "SELECT d.pseudonym, d.dialog, d.step, d.language, d.data_enc, k.participant_id, k.wrapped "
                    "FROM dialog_states d LEFT JOIN participants p ON p.pseudonym = d.pseudonym "
                    "LEFT JOIN participant_keys k ON k.participant_id = p.id")
                tables[table.name] = sorted(
                    (p, d, s, lang, json.dumps(json.loads(_open_state(keys, p, data, pid, wrapped)), sort_keys=True))
                    for p, d, s, lang, data, pid, wrapped in rows)
                continue
            tables[table.name] = sorted(connection.execute(f'SELECT * FROM "{table.name}"'), key=repr)
    return tables


def _open_state(keys: KeyRing, pseudonym: str, sealed: bytes, participant_id: int | None, wrapped: bytes | None) -> str:
    """A dialog state as the engine opens it: the master key before consent, the person's own after."""
    context = dialog_state_context(pseudonym)
    if KeyRing.is_master_token(sealed) or participant_id is None or wrapped is None:
        return keys.open_text(sealed, context)
    return keys.unwrap(wrapped, str(participant_id)).open(sealed, context)


def current_prompt(database: Path, keys: KeyRing, user_id: str, platform: str = "console") -> tuple[str, str, str] | None:
    """(dialog, step, prompt id) of the person's stored state, or None."""
    pseudonym = keys.pseudonym(platform, user_id)
    with _connect(database) as connection:
        row = connection.execute("SELECT dialog, step, prompt_id FROM dialog_states WHERE pseudonym = ?",
                                 (pseudonym,)).fetchone()
    return None if row is None else (row[0], row[1], row[2])


def person_language(database: Path, keys: KeyRing, user_id: str, platform: str = "console") -> str | None:
    """The language the bot now speaks with the person: theirs if registered, else their dialog's."""
    pseudonym = keys.pseudonym(platform, user_id)
    with _connect(database) as connection:
        row = connection.execute("SELECT language FROM participants WHERE pseudonym = ?", (pseudonym,)).fetchone() \
            or connection.execute("SELECT language FROM dialog_states WHERE pseudonym = ?", (pseudonym,)).fetchone()
    return None if row is None else str(row[0])


async def press_key(person: Person, key: str) -> list[Outbound]:
    """Press the button of the latest prompt whose choice key is ``key``."""
    keys = [c.key for c in person.last_prompt.choices]
    return await person.press(keys.index(key))


async def settle() -> None:
    """Let background work started by a turn (none expected) run before a checkpoint is copied."""
    await asyncio.sleep(0)


async def invite_code(chat: Chat, staff: Person, organisation: str, group: str | None = None) -> str:
    reply = (await staff.send(f"/invite {organisation} {group}" if group else f"/invite {organisation}"))[0].text
    found = CODE.search(reply)
    assert found, reply
    return found.group(1)
