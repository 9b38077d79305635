"""Bulletins, declared once: commands, verbs, dialogs, menu entry, the onboarding question, stop
words, the job that starts due sends, the progress reporter, sealed columns and retention."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import select

from bot.bulletins.cli import BULLETIN_VERBS
from bot.bulletins.commands import bulletin
from bot.bulletins.composer import ComposerDialog
from bot.bulletins.reader import ReaderDialog, bulletins_command, offer_bulletins
from bot.bulletins.reporter import BulletinReporter
from bot.bulletins.service import Bulletins, SendStatus
from bot.bulletins.subscription import ONBOARDING_STEP, stop_words, subscribe, unsubscribe
from bot.config import Settings
from bot.conversation.commands import Command, Usage
from bot.conversation.feature import Clock, Feature, Job, MenuEntry, Worker
from bot.conversation.turn import Services
from bot.core.i18n import N_
from bot.core.logsafe import describe
from bot.core.transport import Transport
from bot.storage.db import Database
from bot.storage.models import (
    BULLETIN_CONTENT,
    BULLETIN_NOTICE_ADDRESS,
    OLD_BULLETIN_SENDS,
    BulletinSend,
    utcnow,
)

log = logging.getLogger(__name__)

BULLETIN_COMMANDS = (
    Command("bulletins", bulletins_command, N_("Read the latest bulletins"), needs_participant=True),
    Command("subscribe", subscribe, N_("Receive the bulletins"), needs_participant=True),
    Command("unsubscribe", unsubscribe, N_("Stop receiving the bulletins (STOP does it too)"),
            needs_participant=True),
    Command("bulletin", bulletin, N_("Write, send and follow bulletins"), staff_only=True, usage=(
        Usage("new", N_("write a bulletin, step by step, with a preview")),
        Usage("send <id> <audience> [--at <time>] [--dry-run]",
              N_("send it; the audience is all, group:CODE, org:CODE or lang:CODE")),
        Usage("status|cancel|approve <id>", N_("follow, stop or approve a send")),
        Usage("list", N_("the bulletins and their sends")),
    )),
)


class BulletinJob:
    """Scheduled (and soon after start): starts the sends that are due, also those missed while the
    bot was down; closes sends with nothing left in flight. Its state is in the database, so a
    missed or doubled run changes nothing."""

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


def _due_trigger(settings: Settings) -> IntervalTrigger:
    # The first run a second after start: what fell due while the bot was down goes out at once.
    return IntervalTrigger(seconds=settings.bulletins.check_seconds, start_date=utcnow() + dt.timedelta(seconds=1))


def _due_job(services: Services, clock: Clock) -> BulletinJob:
    return BulletinJob(services.database, services.get(Bulletins))


def _reporter(services: Services, transports: Mapping[str, Transport]) -> Callable[[asyncio.Event],
                                                                                     Coroutine[Any, Any, None]]:
    return BulletinReporter(services.database, services.get(Bulletins), services.i18n, transports).run


def _service(services: Services) -> Bulletins:
    return Bulletins(services.keys, services.outbox, services.i18n, services.settings.bulletins)


BULLETINS = Feature(
    name="bulletins",
    commands=BULLETIN_COMMANDS,
    cli=(BULLETIN_VERBS,),
    dialogs=(ComposerDialog(), ReaderDialog()),
    menu=(MenuEntry("bulletins", N_("Bulletins"), 15, offer_bulletins),),
    jobs=(Job("bulletins-due", _due_trigger, _due_job),),
    sealed=(BULLETIN_CONTENT, BULLETIN_NOTICE_ADDRESS),
    retention=(OLD_BULLETIN_SENDS,),
    service=_service,
    interceptors=(stop_words,),
    onboarding=(ONBOARDING_STEP,),
    workers=(Worker("bulletin-progress", _reporter),),
)
