"""The staff actions on bulletins, each with its audit entry, written once for the chat command
and the command line: both call these, and both answer with :mod:`bot.bulletins.texts`.

Each action runs in the caller's transaction: a refused action raises before anything is
written, so it changes nothing (and leaves no audit entry).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.bulletins import texts
from bot.bulletins.audience import AudienceError, parse_audience
from bot.bulletins.definition import Bulletin
from bot.bulletins.progress import Progress
from bot.bulletins.service import (
    BulletinRefused,
    Bulletins,
    Created,
    Listing,
    NoticeTarget,
    Preview,
    SendStatus,
    SendView,
    audience_refusal,
)
from bot.core.i18n import Translator, western_digits
from bot.services.audit import AuditLog


class BadTime(ValueError):
    """A time that is not ISO 8601."""


def parse_time(typed: str) -> dt.datetime:
    """ISO 8601 (``2026-06-05T09:00+03:00``, or ``2026-06-05 09:00`` meaning UTC); Eastern digits accepted."""
    text = western_digits(typed.strip()).replace("Z", "+00:00")
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadTime(typed) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


@dataclass(frozen=True, slots=True)
class SendOutcome:
    view: SendView | None  # None for a dry run
    preview: Preview
    first_language: str


@dataclass(frozen=True, slots=True)
class StatusReport:
    bulletin_id: str
    version: int
    approved: bool
    view: SendView | None
    progress: Progress | None

    def text(self, tr: Translator) -> str:
        return texts.status(tr, self.bulletin_id, self.version, self.approved, self.view, self.progress)


class BulletinActions:
    __slots__ = ("bulletins", "_audit")

    def __init__(self, bulletins: Bulletins, audit: AuditLog) -> None:
        self.bulletins = bulletins
        self._audit = audit

    async def create(self, session: AsyncSession, bulletin: Bulletin, actor: str) -> Created:
        result = await self.bulletins.create(session, bulletin, actor)
        if result.new:
            await self._audit.append(session, actor, "bulletin.create", bulletin.id,
                                     {"version": result.version, "languages": ",".join(bulletin.languages)})
        return result

    async def send(self, session: AsyncSession, bulletin_id: str, audience_terms: Sequence[str],
                   at: dt.datetime | None, actor: str, language: str, notify: Sequence[NoticeTarget] = (),
                   *, dry_run: bool = False) -> SendOutcome:
        try:
            audience = parse_audience(audience_terms)
        except AudienceError as exc:
            raise audience_refusal(exc) from None
        if dry_run:
            bulletin, _ = await self.bulletins.bulletin(session, bulletin_id)
            return SendOutcome(None, await self.bulletins.preview(session, bulletin, audience), bulletin.first.language)
        send, preview = await self.bulletins.request_send(session, bulletin_id, audience, at, actor, language, notify)
        view = await self.bulletins.view(session, send)
        details: dict[str, str | int] = {"audience": str(audience), "recipients": preview.total,
                                         "send": send.id, "status": view.status.value}
        if at is not None:
            details["at"] = texts.when(at)
        await self._audit.append(session, actor, "bulletin.send", bulletin_id, details)
        bulletin, _ = await self.bulletins.bulletin(session, bulletin_id)
        return SendOutcome(view, preview, bulletin.first.language)

    async def cancel(self, session: AsyncSession, bulletin_id: str, actor: str) -> tuple[bool, int]:
        """(whether it was already sending, rows withdrawn)."""
        send, withdrawn = await self.bulletins.cancel(session, bulletin_id, actor)
        was_sending = send.started_at is not None
        await self._audit.append(session, actor, "bulletin.cancel", bulletin_id,
                                 {"send": send.id, "withdrawn": withdrawn, "was_sending": int(was_sending)})
        return was_sending, withdrawn

    async def approve(self, session: AsyncSession, bulletin_id: str, actor: str) -> tuple[int, bool]:
        """(the version approved, whether a send started with it)."""
        version, started = await self.bulletins.approve(session, bulletin_id, actor)
        await self._audit.append(session, actor, "bulletin.approve", bulletin_id,
                                 {"version": version.number, "started": len(started)})
        return version.number, bool(started)

    async def status(self, session: AsyncSession, bulletin_id: str) -> StatusReport:
        """Read-only but for one thing: a send with nothing left in flight is recorded as ended
        (as the running bot would), so the answer never shows a finished send as still sending."""
        _, version = await self.bulletins.bulletin(session, bulletin_id)
        send = await self.bulletins.latest_send(session, bulletin_id)
        if send is not None and send.started_at is not None and send.finished_at is None:
            await self.bulletins.finish_if_done(session, send)
        view = await self.bulletins.view(session, send) if send is not None else None
        progress = None
        if send is not None and view is not None and view.status is not SendStatus.SCHEDULED:
            progress = await self.bulletins.progress(session, send)
        return StatusReport(bulletin_id, version.number, version.approved_at is not None, view, progress)

    async def list(self, session: AsyncSession) -> list[Listing]:
        return await self.bulletins.listing(session)


__all__ = ["BadTime", "BulletinActions", "BulletinRefused", "SendOutcome", "StatusReport", "parse_time"]
