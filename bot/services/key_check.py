"""Binds the database to its key file, so a lost or wrong key file stops the bot at start.

Without it, a missing key file made the embedded default create a new one beside existing data
(everyone silently "forgotten", their data unreadable), and a wrong one started fine until the
first sealed value failed to open. The ``key_check`` row holds a keyed digest and a sealed fixed
text (neither is of use without the key file) and the ids of the master keys the database needs.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.security import DecryptionError, KeyRing
from bot.storage.db import Database
from bot.storage.models import Base, DialogState, KeyCheck, Organisation, ParticipantKey

_ROW = 1
_CHECK_TEXT = "civicbot key check"
_CONTEXT = b"key_check:1"
_NOT_DATA = frozenset({"processed_events"})  # dedupe memory only: says nothing about keys


class KeyMismatch(Exception):
    """The key file does not open this database; the message says why, without key material."""


def _hmac_check(keys: KeyRing) -> str:
    return keys.secret_digest("key-check", _CHECK_TEXT)


async def database_is_empty(database: Database) -> bool:
    """No key check and no rows of any kind: the only database for which new keys may be made."""
    async with database.sessions() as session:
        for table in Base.metadata.sorted_tables:
            if table.name in _NOT_DATA:
                continue
            if await session.scalar(select(text("1")).select_from(table).limit(1)) is not None:
                return False
    return True


async def record(session: AsyncSession, keys: KeyRing) -> None:
    """Bind the database to ``keys``: after the first start, and after every rotation (everything
    sealed under the current key, so that is the only master key the database needs)."""
    row = await session.get(KeyCheck, _ROW)
    check = keys.seal(_CHECK_TEXT.encode(), _CONTEXT)
    if row is None:
        session.add(KeyCheck(id=_ROW, hmac_check=_hmac_check(keys), master_check=check,
                             key_ids=keys.current_key_id))
    else:
        row.hmac_check, row.master_check, row.key_ids = _hmac_check(keys), check, keys.current_key_id
    await session.flush()


async def verify(session: AsyncSession, keys: KeyRing) -> None:
    """Raise :class:`KeyMismatch` unless ``keys`` is the key file of this database.

    A database from before the check existed is bound on its first start, once one of its sealed
    values has opened with ``keys``."""
    row = await session.get(KeyCheck, _ROW)
    if row is None:
        if not await _opens_existing_data(session, keys):
            raise KeyMismatch("does not belong to this database: its sealed data does not open with it")
        await record(session, keys)
        needed = {kid for kid in await session.scalars(select(ParticipantKey.master_key_id).distinct())}
        row = await session.get(KeyCheck, _ROW)
        assert row is not None
        row.key_ids = ",".join(sorted(needed | {keys.current_key_id}))
        return
    if row.hmac_check != _hmac_check(keys):
        raise KeyMismatch("does not belong to this database: its pseudonym key is another one")
    missing = [kid for kid in row.key_ids.split(",") if kid and kid not in keys.key_ids]
    if missing:
        raise KeyMismatch(f"lacks master key {', '.join(missing)} that this database needs "
                          "(retired since this database was copied, or another key file)")
    try:
        keys.open(row.master_check, _CONTEXT)
    except DecryptionError:
        raise KeyMismatch("does not belong to this database: its master key does not open the key check") from None


async def _opens_existing_data(session: AsyncSession, keys: KeyRing) -> bool:
    """Whether the first sealed value found opens with ``keys`` (True if there is none at all)."""
    wrapped = await session.scalar(select(ParticipantKey).limit(1))
    if wrapped is not None:
        return _opens(lambda: keys.unwrap(wrapped.wrapped, str(wrapped.participant_id)))
    organisation = await session.scalar(select(Organisation).where(Organisation.name_enc.is_not(None)).limit(1))
    if organisation is not None and organisation.name_enc is not None:
        name = organisation.name_enc
        return _opens(lambda: keys.open_text(name, f"organisations.name:{organisation.id}"))
    state = await session.scalar(select(DialogState).limit(1))
    if state is not None:
        return _opens(lambda: keys.open_text(state.data_enc, f"dialog_states.data:{state.pseudonym}"))
    return True


def _opens(attempt: Callable[[], object]) -> bool:
    try:
        attempt()
    except DecryptionError:
        return False
    return True
