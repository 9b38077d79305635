"""What the bulletins capability brings to the bot: its commands and its scheduled job."""

from __future__ import annotations

import logging

from sqlalchemy import select

from bot.bulletins.commands import bulletin
from bot.bulletins.reader import bulletins_command
from bot.bulletins.reporter import BulletinReporter
from bot.bulletins.service import Bulletins, SendStatus
from bot.bulletins.subscription import subscribe, unsubscribe
from bot.core.i18n import N_
from bot.core.logsafe import describe
from bot.handlers.registry import Command
from bot.storage.db import Database
from bot.storage.models import BulletinSend

log = logging.getLogger(__name__)

BULLETIN_COMMANDS = (
    Command("bulletins", bulletins_command, N_("Read the latest bulletins"), needs_participant=True),
    Command("subscribe", subscribe, N_("Receive the bulletins"), needs_participant=True),
    Command("unsubscribe", unsubscribe, N_("Stop receiving the bulletins"), needs_participant=True),
    Command("bulletin", bulletin, N_("Write, send and follow bulletins"), staff_only=True),
)


class BulletinJob:
    """Scheduled (and once at start): starts the sends that are due, also those missed while the bot
    was down; closes sends with nothing left in flight. Its state is in the
    database, so a missed or doubled run changes nothing."""

    def __init__(self, database: Database, bulletins: Bulletins) -> None:
        self._db = database
        self._bulletins = bulletins

    async def __call__(self) -> list[int]:
        try:
            async with self._db.sessions.begin() as session:
                started = await self._bulletins.start_due(session)
            async with self._db.sessions.begin() as session:
                running = await session.scalars(select(BulletinSend).where(
                    BulletinSend.started_at.is_not(None), BulletinSend.finished_at.is_(None),
                    BulletinSend.status.in_([SendStatus.SENDING, SendStatus.CANCELLED])))
                for send in list(running):
                    await self._bulletins.finish_if_done(session, send)
        except Exception as exc:
            log.error("bulletin job failed: %s", describe(exc))
            return []
        return started


__all__ = ["BULLETIN_COMMANDS", "BulletinJob", "BulletinReporter"]
