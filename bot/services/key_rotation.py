"""Master key rotation: seal everything again under a new key, then optionally retire the old.

Retiring is what makes erasure reach old backups: a backup holds the wrapped data keys of
people erased since, but once the master key that wrapped them is gone, so is their data.
Run it with the bot stopped: a running worker still holds the old key ring.

Rotation knows no column of its own: it goes through every :class:`SealedColumn` the features
declare. Values sealed with a participant's data key are left as they are (their data key,
``participant_keys.wrapped``, is itself a declared master-sealed column and is re-wrapped).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.security import DecryptionError, KeyRing
from bot.storage.lifecycle import SealedColumn


@dataclass(frozen=True, slots=True)
class RotationReport(Mapping[str, int]):
    """Values sealed again, per column (``report["outbox.payload_enc"]``)."""

    counts: dict[str, int] = field(default_factory=dict)

    def __getitem__(self, name: str) -> int:
        return self.counts[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.counts)

    def __len__(self) -> int:
        return len(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())


async def reseal_database(session: AsyncSession, keys: KeyRing, columns: Iterable[SealedColumn]) -> RotationReport:
    """Re-seal every master-key value under ``keys``' current key (``keys`` must still hold the old ones).

    A value still bound the way an older version bound it (``legacy_context``) is bound with the
    column's context on the way, even if the current key sealed it."""
    counts: dict[str, int] = {}
    for declared in columns:
        model, attribute = declared.column.class_, declared.column.key
        counts.setdefault(declared.name, 0)
        for row in await session.scalars(select(model).where(declared.column.is_not(None))):
            token = getattr(row, attribute)
            if not token or not KeyRing.is_master_token(token):
                continue
            context = declared.context(row).encode()
            try:
                plaintext = keys.open(token, context)
            except DecryptionError:
                if declared.legacy_context is None:
                    raise
                plaintext = keys.open(token, declared.legacy_context(row).encode())
            else:
                if keys.sealed_with_current(token):
                    continue
            setattr(row, attribute, keys.seal(plaintext, context))
            if declared.key_id_column is not None:
                setattr(row, declared.key_id_column.key, keys.current_key_id)
            counts[declared.name] += 1
    await session.flush()
    return RotationReport(counts)
