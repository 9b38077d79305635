"""Progress of running sends, shown to staff: one message per staff chat, edited in place at most
once every ``bulletins.progress_interval_seconds``, then a summary when the send ends.

Where each message is (its platform message id), what it last showed and whether the summary
went out are stored with the send, so a restart goes on editing the same message. A lease on
the send keeps two workers from reporting the same send at once. Sends and edits happen
outside any database transaction.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from bot.bulletins import texts
from bot.bulletins.progress import Progress, count
from bot.bulletins.service import Bulletins, SendStatus, SendView
from bot.core.i18n import I18n
from bot.core.logsafe import describe
from bot.core.model import Address, Outbound, SendOptions
from bot.core.transport import DeliveryError, Transport
from bot.storage.db import Database
from bot.storage.models import BulletinNotice, BulletinSend, utcnow

log = logging.getLogger(__name__)

# Long enough for one report's sends and edits; short, because after a crash in the middle of a
# report the restarted bot waits this long before it reports that send again.
LEASE = dt.timedelta(seconds=15)


@dataclass(slots=True)
class _Plan:
    notice_id: int
    token: str
    address: Address
    language: str
    message_id: str | None
    shown: str | None
    summary_sent: bool


class BulletinReporter:
    """Runs in ``civicbot run`` beside the outbox senders."""

    def __init__(self, database: Database, bulletins: Bulletins, i18n: I18n, transports: Mapping[str, Transport],
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._db = database
        self._bulletins = bulletins
        self._i18n = i18n
        self._transports = transports
        self._clock = clock
        self._interval = bulletins.settings.progress_interval_seconds

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.report_once()
            except Exception as exc:  # the loop must survive a database hiccup
                log.error("bulletin progress failed: %s", describe(exc))
            try:
                await asyncio.wait_for(stop.wait(), timeout=self._interval)
            except TimeoutError:
                pass

    async def report_once(self) -> int:
        """Report every send that is running or whose summary is still owed; returns how many."""
        async with self._db.sessions() as session:
            owed = select(BulletinNotice.send_id).where(BulletinNotice.summary_sent.is_(False))
            ids = list(await session.scalars(
                select(BulletinSend.id).where(
                    BulletinSend.started_at.is_not(None),
                    or_(BulletinSend.status == SendStatus.SENDING, BulletinSend.finished_at.is_(None),
                        BulletinSend.id.in_(owed)))
                .order_by(BulletinSend.id)
            ))
        reported = 0
        for send_id in ids:
            if await self._report(send_id):
                reported += 1
        return reported

    async def _report(self, send_id: int) -> bool:
        now = self._clock()
        async with self._db.sessions.begin() as session:
            claimed = await session.execute(
                update(BulletinSend).where(
                    BulletinSend.id == send_id,
                    or_(BulletinSend.reporter_lease_until.is_(None), BulletinSend.reporter_lease_until <= now))
                .values(reporter_lease_until=now + LEASE).execution_options(synchronize_session=False)
            )
            if not claimed.rowcount:  # type: ignore[attr-defined]
                return False  # another worker reports this send
            send = await session.get(BulletinSend, send_id)
            if send is None:
                return False
            progress: Progress | None = None
            if send.finished_at is None:
                progress = await self._bulletins.finish_if_done(session, send)
            if progress is None:
                progress = await self._bulletins.progress(session, send) if send.summary else \
                    await count(session, send.id)
            view = await self._bulletins.view(session, send)
            plans = [_Plan(n.id, n.token, self._bulletins.notice_address(n), n.language, n.message_id, n.shown,
                           n.summary_sent) for n in await self._bulletins.notices(session, send.id)]
        ended = view.finished_at is not None
        for plan in plans:
            await self._show(plan, view, progress, ended)
        async with self._db.sessions.begin() as session:
            # Until the next tick nobody reports it again: at most one edit per interval.
            await session.execute(update(BulletinSend).where(BulletinSend.id == send_id).values(
                reporter_lease_until=self._clock() + dt.timedelta(seconds=self._interval * 0.9)))
        return True

    async def _record(self, plan: _Plan) -> None:
        """Right after each send or edit, so a crash forgets as little as possible of what was shown."""
        async with self._db.sessions.begin() as session:
            await session.execute(update(BulletinNotice).where(BulletinNotice.id == plan.notice_id).values(
                message_id=plan.message_id, shown=plan.shown, summary_sent=plan.summary_sent, edited_at=self._clock()))

    async def _show(self, plan: _Plan, view: SendView, progress: Progress, ended: bool) -> None:
        transport = self._transports.get(plan.address.platform)
        if transport is None:
            return  # that platform is not running in this worker
        tr = self._i18n.translator(plan.language)
        line = texts.progress_line(tr, view.bulletin_id, progress)
        digest = hashlib.sha256(line.encode("utf-8")).hexdigest()[:32]
        message = Outbound(text=line, direction=tr.direction, language=tr.language)
        try:
            # Transaction ids of their own: on Matrix, a message sent again after a crash (before it
            # was recorded) is the same message, not a second one.
            if plan.message_id is None:
                delivery = await transport.send(plan.address, message,
                                                SendOptions(transaction_id=f"bulletin-progress-{plan.token}"))
                plan.message_id, plan.shown = delivery.message_id or "", digest
                await self._record(plan)
            elif plan.shown != digest and plan.message_id:
                await transport.edit(plan.address, plan.message_id, message)
                plan.shown = digest
                await self._record(plan)
            if ended and not plan.summary_sent:
                summary = texts.summary(tr, view, progress)
                await transport.send(plan.address, Outbound(text=summary, direction=tr.direction, language=tr.language),
                                     SendOptions(transaction_id=f"bulletin-summary-{plan.token}"))
                plan.summary_sent = True
                await self._record(plan)
        except DeliveryError as exc:  # tried again at the next tick
            log.warning("bulletin progress not shown on %s: %s", plan.address.platform, exc.reason)
