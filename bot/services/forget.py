"""After an erasure, the platforms forget the person too (a Matrix room left and forgotten, its
keys and sessions dropped). The request is written in the erasure's own transaction, so a crash
before the transport acted does not lose it; it is retried until done and then deleted."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.logsafe import describe
from bot.core.model import Address, Platform
from bot.core.security import KeyRing
from bot.core.transport import ForgetsPeople, Transport
from bot.storage.db import Database
from bot.storage.models import ForgetRequest, forget_request_context

log = logging.getLogger(__name__)


def _context(ref: str) -> str:
    return forget_request_context(ref)


async def request_forget(session: AsyncSession, keys: KeyRing, address: Address) -> None:
    """Inside the erasure's transaction: ask the address's transport to forget it."""
    ref = secrets.token_hex(16)
    session.add(ForgetRequest(platform=address.platform, ref=ref, attempts=0,
                              address_enc=keys.seal_text(address.value, _context(ref))))


class ForgetJob:
    """Hands pending requests to the transports running here (right after an erasure, at start,
    and on a schedule). Requests for a platform no transport here forgets are simply deleted."""

    def __init__(self, database: Database, keys: KeyRing, transports: Mapping[str, Transport]) -> None:
        self._db = database
        self._keys = keys
        self._transports = transports

    async def __call__(self) -> int:
        """Returns how many requests were done."""
        async with self._db.sessions() as session:
            rows = list(await session.scalars(
                select(ForgetRequest).where(ForgetRequest.platform.in_(list(self._transports)))
                .order_by(ForgetRequest.id)))
        done = 0
        for row in rows:
            transport = self._transports[row.platform]
            if isinstance(transport, ForgetsPeople):
                address = Address(Platform(row.platform), self._keys.open_text(row.address_enc, _context(row.ref)))
                try:
                    await transport.forget(address)
                except Exception as exc:  # retried later; one failure never stops the others
                    log.warning("forgetting an erased person on %s failed (%s); will retry", row.platform,
                                describe(exc))
                    async with self._db.sessions.begin() as session:
                        await session.execute(update(ForgetRequest).where(ForgetRequest.id == row.id)
                                              .values(attempts=ForgetRequest.attempts + 1))
                    continue
            async with self._db.sessions.begin() as session:
                await session.execute(delete(ForgetRequest).where(ForgetRequest.id == row.id))
            done += 1
        if done:
            await self._db.scrub()
        return done
