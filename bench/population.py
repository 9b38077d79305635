"""Many registered participants, written the way the bot writes them (pseudonym, wrapped data key,
sealed address) but in bulk, so a benchmark's setup takes seconds rather than minutes."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import insert

from bot.core.security import KeyRing
from bot.storage.db import Database
from bot.storage.models import Participant, ParticipantAddress, ParticipantKey, address_context

LANGUAGES = ("ar", "ckb", "ku", "en")


async def register(database: Database, keys: KeyRing, platform: str, user_ids: Sequence[str | int],
                   chunk: int = 2000) -> list[int]:
    """Register one participant per user id (address = the user id, as for private chats); returns ids."""
    ids: list[int] = []
    for start in range(0, len(user_ids), chunk):
        part = [str(u) for u in user_ids[start:start + chunk]]
        async with database.sessions.begin() as session:
            rows = [{"pseudonym": keys.pseudonym(platform, u), "platform": platform,
                     "language": LANGUAGES[(start + n) % len(LANGUAGES)]} for n, u in enumerate(part)]
            result = await session.execute(
                insert(Participant).returning(Participant.id, sort_by_parameter_order=True), rows)
            new_ids = list(result.scalars().all())
            key_rows, address_rows = [], []
            for participant_id, user_id in zip(new_ids, part, strict=True):
                data_key, wrapped = keys.new_data_key(str(participant_id))
                key_rows.append({"participant_id": participant_id, "wrapped": wrapped.blob,
                                 "master_key_id": wrapped.key_id})
                address_rows.append({"participant_id": participant_id, "platform": platform,
                                     "address_enc": data_key.seal(user_id, address_context(participant_id, platform)),
                                     "reachable": True})
            await session.execute(insert(ParticipantKey), key_rows)
            await session.execute(insert(ParticipantAddress), address_rows)
        ids.extend(new_ids)
    return ids
