"""Bulletins as a service: versions and approval, sends (now or at a time), subscriptions.

Every method works inside the caller's transaction, so a send is started (its outbox rows
written) in the same transaction that marks it started: a crash or a second worker can
neither drop nor double it. The state of scheduled sends is in the database; the scheduler
only wakes :meth:`Bulletins.start_due`.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from bot.bulletins.audience import Audience, AudienceError, Member, parse_audience, resolve
from bot.bulletins.definition import Bulletin
from bot.bulletins.progress import Progress, count
from bot.bulletins.render import profile_for, render_text
from bot.config import BulletinSettings
from bot.core.i18n import ENDONYMS, N_, I18n
from bot.core.model import Address, Outbound, Platform
from bot.core.security import KeyRing
from bot.services.outbox import Outbox, OutboxKind, OutboxStatus, ToParticipant
from bot.storage.models import (
    BulletinNotice,
    BulletinRecipient,
    BulletinRecord,
    BulletinSend,
    BulletinSubscription,
    BulletinVersion,
    OutboxMessage,
    bulletin_content_context,
    bulletin_notice_context,
    utcnow,
)

log = logging.getLogger(__name__)

FALLBACK_NOTE = N_("This bulletin is not available in %(language)s. Here it is in %(original)s.")


class SendStatus(enum.StrEnum):
    SCHEDULED = "scheduled"  # waiting for its time (and, with four eyes, for approval)
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class Refusal(enum.StrEnum):
    """Why a staff action changed nothing; each has one clear sentence (:mod:`bot.bulletins.texts`)."""

    UNKNOWN_BULLETIN = "unknown_bulletin"
    AUDIENCE_SYNTAX = "audience_syntax"
    UNKNOWN_LANGUAGE = "unknown_language"
    UNKNOWN_GROUP = "unknown_group"
    UNKNOWN_ORGANISATION = "unknown_organisation"
    EMPTY_AUDIENCE = "empty_audience"
    PAST = "past"
    ALREADY_SENT = "already_sent"
    ALREADY_SCHEDULED = "already_scheduled"
    NOTHING_TO_CANCEL = "nothing_to_cancel"
    OWN_BULLETIN = "own_bulletin"
    ALREADY_APPROVED = "already_approved"
    NOT_SENT = "not_sent"


class BulletinRefused(Exception):
    def __init__(self, reason: Refusal, detail: str = "") -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.detail = detail


_AUDIENCE_REFUSALS = {"syntax": Refusal.AUDIENCE_SYNTAX, "language": Refusal.UNKNOWN_LANGUAGE,
                      "group": Refusal.UNKNOWN_GROUP, "org": Refusal.UNKNOWN_ORGANISATION}


def audience_refusal(error: AudienceError) -> BulletinRefused:
    return BulletinRefused(_AUDIENCE_REFUSALS[error.reason], error.term)


@dataclass(frozen=True, slots=True)
class Created:
    bulletin_id: str
    version: int
    new: bool  # False: the same content was stored already


@dataclass(frozen=True, slots=True)
class Preview:
    """What a send would do: recipients per language and platform, fallbacks, known unreachable."""

    total: int
    by_language: Counter[str]
    by_platform: Counter[str]
    fallback: Counter[str]  # reader's language -> how many get the first language instead
    unreachable: int


@dataclass(frozen=True, slots=True)
class NoticeTarget:
    """A staff chat that follows a send (where the command was typed, or the configured staff rooms)."""

    address: Address
    language: str


@dataclass(frozen=True, slots=True)
class SendView:
    id: int
    bulletin_id: str
    status: SendStatus
    audience: str
    due_at: dt.datetime
    timed: bool
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    recipients: int
    waiting_for_approval: bool
    late: bool
    approved_late: bool


@dataclass(frozen=True, slots=True)
class Listing:
    bulletin_id: str
    version: int
    languages: tuple[str, ...]
    approved: bool
    send: SendView | None


def _aware(value: dt.datetime) -> dt.datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)


class Bulletins:
    """Domain logic of bulletins; dependencies passed in, no state of its own."""

    def __init__(self, keys: KeyRing, outbox: Outbox, i18n: I18n, settings: BulletinSettings,
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._keys = keys
        self._outbox = outbox
        self._i18n = i18n
        self.settings = settings
        self.clock = clock

    def now(self) -> dt.datetime:
        return self.clock()

    # -- versions and approval --------------------------------------------------------------

    async def create(self, session: AsyncSession, bulletin: Bulletin, author: str) -> Created:
        """Store the bulletin; a changed file becomes a new version (which needs approval again)."""
        record = await session.get(BulletinRecord, bulletin.id)
        if record is None:
            session.add(BulletinRecord(id=bulletin.id))
            await session.flush()
        latest = await self._latest(session, bulletin.id)
        if latest is not None and latest.digest == bulletin.digest:
            return Created(bulletin.id, latest.number, new=False)
        number = latest.number + 1 if latest is not None else 1
        session.add(BulletinVersion(
            bulletin_id=bulletin.id, number=number, digest=bulletin.digest, languages=",".join(bulletin.languages),
            content_enc=self._keys.seal_text(bulletin.to_json(), _content_context(bulletin.id, number)),
            author=author[:64],
        ))
        await session.flush()
        return Created(bulletin.id, number, new=True)

    async def bulletin(self, session: AsyncSession, bulletin_id: str) -> tuple[Bulletin, BulletinVersion]:
        """The latest version's content; raises BulletinRefused(UNKNOWN_BULLETIN)."""
        version = await self._latest(session, bulletin_id)
        if version is None:
            raise BulletinRefused(Refusal.UNKNOWN_BULLETIN, bulletin_id)
        return self.open(version), version

    def open(self, version: BulletinVersion) -> Bulletin:
        return Bulletin.from_json(self._keys.open_text(version.content_enc,
                                                       _content_context(version.bulletin_id, version.number)))

    async def approve(self, session: AsyncSession, bulletin_id: str, approver: str) -> tuple[BulletinVersion, list[int]]:
        """Four eyes: anyone but the version's author. Due sends waiting for it start now."""
        _, version = await self.bulletin(session, bulletin_id)
        if version.approved_at is not None:
            raise BulletinRefused(Refusal.ALREADY_APPROVED, version.approved_by or "")
        if version.author == approver[:64]:
            raise BulletinRefused(Refusal.OWN_BULLETIN)
        version.approved_by, version.approved_at = approver[:64], self.now()
        await session.flush()
        return version, await self.start_due(session, bulletin_id)

    def approval_needed(self, version: BulletinVersion) -> bool:
        return self.settings.require_approval and version.approved_at is None

    # -- audience ---------------------------------------------------------------------------

    async def members(self, session: AsyncSession, audience: Audience) -> list[Member]:
        try:
            return await resolve(session, audience)
        except AudienceError as exc:
            raise audience_refusal(exc) from None

    async def preview(self, session: AsyncSession, bulletin: Bulletin, audience: Audience) -> Preview:
        members = await self.members(session, audience)
        by_language: Counter[str] = Counter()
        by_platform: Counter[str] = Counter()
        fallback: Counter[str] = Counter()
        unreachable = 0
        for member in members:
            if not member.reachable:
                unreachable += 1
                continue
            text, is_fallback = bulletin.text_for(member.language)
            by_language[text.language] += 1
            by_platform[member.platform] += 1
            if is_fallback:
                fallback[member.language] += 1
        return Preview(sum(by_platform.values()), by_language, by_platform, fallback, unreachable)

    # -- sends --------------------------------------------------------------------------------

    async def request_send(self, session: AsyncSession, bulletin_id: str, audience: Audience,
                           at: dt.datetime | None, actor: str, language: str,
                           notify: Sequence[NoticeTarget] = ()) -> tuple[BulletinSend, Preview]:
        """Check everything, record the send, and start it at once when it is due and approved.

        Refused (nothing changed): unknown bulletin, group or organisation, an audience with nobody
        subscribed, a time in the past, a bulletin already sent or scheduled.
        """
        bulletin, version = await self.bulletin(session, bulletin_id)
        now = self.now()
        if at is not None and _aware(at) <= now:
            raise BulletinRefused(Refusal.PAST, at.isoformat())
        for earlier in await session.scalars(select(BulletinSend).where(BulletinSend.bulletin_id == bulletin_id)):
            if earlier.status == SendStatus.SCHEDULED:
                raise BulletinRefused(Refusal.ALREADY_SCHEDULED)
            if earlier.started_at is not None:
                raise BulletinRefused(Refusal.ALREADY_SENT)
        preview = await self.preview(session, bulletin, audience)
        if preview.total == 0:
            raise BulletinRefused(Refusal.EMPTY_AUDIENCE, str(audience))
        send = BulletinSend(
            bulletin_id=bulletin_id, version_id=version.id, audience=str(audience), status=SendStatus.SCHEDULED,
            requested_by=actor[:64], requested_at=now, due_at=_aware(at) if at is not None else now,
            timed=at is not None, language=language, recipients=0,
        )
        session.add(send)
        await session.flush()
        for target in notify:
            token = uuid.uuid4().hex
            session.add(BulletinNotice(
                send_id=send.id, platform=target.address.platform, token=token, language=target.language,
                address_enc=self._keys.seal_text(target.address.value, _notice_context(token)),
            ))
        await session.flush()
        if send.due_at <= now:
            await self.start_due(session, bulletin_id, now)
        return send, preview

    async def start_due(self, session: AsyncSession, bulletin_id: str | None = None,
                        now: dt.datetime | None = None) -> list[int]:
        """Start every scheduled send whose time has come and whose version may go out.

        The status changes with a conditional UPDATE, in the same transaction as the outbox
        rows: of two workers (or the bot and the command line) only one starts a send.
        """
        now = now or self.now()
        query = select(BulletinSend).where(BulletinSend.status == SendStatus.SCHEDULED, BulletinSend.due_at <= now)
        if bulletin_id is not None:
            query = query.where(BulletinSend.bulletin_id == bulletin_id)
        started = []
        for send in list(await session.scalars(query.order_by(BulletinSend.due_at))):
            bulletin, version = await self.bulletin(session, send.bulletin_id)
            if self.approval_needed(version):
                continue
            claimed = await session.execute(
                update(BulletinSend).where(BulletinSend.id == send.id, BulletinSend.status == SendStatus.SCHEDULED)
                .values(status=SendStatus.SENDING, started_at=now, version_id=version.id)
                .execution_options(synchronize_session=False)
            )
            if not claimed.rowcount:  # type: ignore[attr-defined]
                continue
            await session.refresh(send)
            send.recipients = await self._fan_out(session, send, bulletin)
            started.append(send.id)
            log.info("bulletin send %d started: %d recipients", send.id, send.recipients)
        await session.flush()
        return started

    async def _fan_out(self, session: AsyncSession, send: BulletinSend, bulletin: Bulletin) -> int:
        """One outbox row per reachable recipient (in their language, rendered for their platform),
        added in bulk, at bulk priority, under the send's ``ref``."""
        members = await resolve(session, parse_audience([send.audience]))
        messages: dict[tuple[str, str], tuple[Outbound, str, bool]] = {}
        reachable = [m for m in members if m.reachable]
        for member in reachable:
            key = (member.language, member.platform)
            if key not in messages:
                messages[key] = self._message(bulletin, member.language, member.platform)
        row_ids = await self._outbox.enqueue_many(
            session, [(ToParticipant(m.participant_id, m.platform), messages[(m.language, m.platform)][0])
                      for m in reachable],
            OutboxKind.BULLETIN, ref=send_ref(send.id),
        )
        rows = dict(zip((m.participant_id for m in reachable), row_ids, strict=True))
        for member in members:
            _, language, fallback = messages.get((member.language, member.platform), (None, member.language, False))
            session.add(BulletinRecipient(send_id=send.id, participant_id=member.participant_id,
                                          outbox_id=rows.get(member.participant_id), platform=member.platform,
                                          language=language, fallback=fallback))
        await session.flush()
        return len(members)

    def message(self, bulletin: Bulletin, reader_language: str, platform: str) -> Outbound:
        return self._message(bulletin, reader_language, platform)[0]

    def _message(self, bulletin: Bulletin, reader_language: str, platform: str) -> tuple[Outbound, str, bool]:
        """The reader's copy: their language, or the first one with a line in theirs saying so."""
        text, fallback = bulletin.text_for(reader_language)
        reader = self._i18n.translator(reader_language)
        body = self._i18n.translator(text.language)
        note = reader._(FALLBACK_NOTE, language=ENDONYMS.get(reader_language, reader_language),
                        original=ENDONYMS.get(text.language, text.language)) if fallback else None
        parts = render_text(text, profile_for(platform), body.direction, note=note, note_direction=reader.direction)
        plain = "\n\n".join(p.text for p in parts)
        return Outbound(text=plain, direction=body.direction, language=text.language, formatted=parts), \
            text.language, fallback

    async def cancel(self, session: AsyncSession, bulletin_id: str, actor: str) -> tuple[BulletinSend, int]:
        """Stop a scheduled or running send; what is not yet sent is withdrawn. Returns rows withdrawn."""
        if await session.get(BulletinRecord, bulletin_id) is None:
            raise BulletinRefused(Refusal.UNKNOWN_BULLETIN, bulletin_id)
        send = await session.scalar(
            select(BulletinSend).where(BulletinSend.bulletin_id == bulletin_id,
                                       BulletinSend.status.in_([SendStatus.SCHEDULED, SendStatus.SENDING]))
            .order_by(BulletinSend.id.desc()).limit(1)
        )
        if send is None:
            raise BulletinRefused(Refusal.NOTHING_TO_CANCEL)
        withdrawn = 0
        if send.status == SendStatus.SENDING:
            withdrawn = await self._outbox.cancel(session, send_ref(send.id))
        else:
            send.finished_at = self.now()
        send.status, send.cancelled_by = SendStatus.CANCELLED, actor[:64]
        await session.flush()
        return send, withdrawn

    async def latest_send(self, session: AsyncSession, bulletin_id: str) -> BulletinSend | None:
        return await session.scalar(select(BulletinSend).where(BulletinSend.bulletin_id == bulletin_id)
                                    .order_by(BulletinSend.id.desc()).limit(1))

    async def progress(self, session: AsyncSession, send: BulletinSend) -> Progress:
        if send.summary is not None:
            return Progress.from_json(send.summary)
        return await count(session, send.id)

    async def view(self, session: AsyncSession, send: BulletinSend) -> SendView:
        version = await session.get(BulletinVersion, send.version_id) if send.version_id else None
        latest = await self._latest(session, send.bulletin_id)
        due = _aware(send.due_at)
        started = _aware(send.started_at) if send.started_at else None
        late = started is not None and started - due > dt.timedelta(minutes=self.settings.late_after_minutes)
        approved_at = _aware(version.approved_at) if version is not None and version.approved_at else None
        return SendView(
            id=send.id, bulletin_id=send.bulletin_id, status=SendStatus(send.status), audience=send.audience,
            due_at=due, timed=send.timed, started_at=started,
            finished_at=_aware(send.finished_at) if send.finished_at else None, recipients=send.recipients,
            waiting_for_approval=send.status == SendStatus.SCHEDULED and latest is not None
            and self.approval_needed(latest),
            late=late, approved_late=late and approved_at is not None and approved_at > due,
        )

    async def finish_if_done(self, session: AsyncSession, send: BulletinSend) -> Progress | None:
        """Freeze the summary once nothing is in flight (also after a cancel). None while still sending."""
        progress = await count(session, send.id)
        if not progress.finished:
            return None
        send.summary, send.finished_at = progress.to_json(), self.now()
        if send.status == SendStatus.SENDING:
            send.status = SendStatus.DONE
        await session.flush()
        return progress

    async def listing(self, session: AsyncSession) -> list[Listing]:
        rows = []
        for record in await session.scalars(select(BulletinRecord).order_by(BulletinRecord.created_at.desc(),
                                                                            BulletinRecord.id)):
            version = await self._latest(session, record.id)
            if version is None:
                continue
            send = await self.latest_send(session, record.id)
            rows.append(Listing(record.id, version.number, tuple(version.languages.split(",")),
                                version.approved_at is not None, await self.view(session, send) if send else None))
        return rows

    # -- notices (the staff messages that follow a send) ----------------------------------------------

    async def notices(self, session: AsyncSession, send_id: int) -> list[BulletinNotice]:
        return list(await session.scalars(select(BulletinNotice).where(BulletinNotice.send_id == send_id)
                                          .order_by(BulletinNotice.id)))

    def notice_address(self, notice: BulletinNotice) -> Address:
        return Address(Platform(notice.platform), self._keys.open_text(notice.address_enc, _notice_context(notice.token)))

    # -- participants --------------------------------------------------------------------------------

    async def has_chosen(self, session: AsyncSession, participant_id: int) -> bool:
        return await session.get(BulletinSubscription, participant_id) is not None

    async def subscribed(self, session: AsyncSession, participant_id: int) -> bool:
        row = await session.get(BulletinSubscription, participant_id)
        return row is None or row.subscribed

    async def subscribe(self, session: AsyncSession, participant_id: int, yes: bool) -> int:
        """Record the choice. Unsubscribing also withdraws bulletins still queued for them. Returns rows withdrawn."""
        row = await session.get(BulletinSubscription, participant_id)
        if row is None:
            session.add(BulletinSubscription(participant_id=participant_id, subscribed=yes, changed_on=self.now().date()))
        elif row.subscribed != yes:
            row.subscribed, row.changed_on = yes, self.now().date()
        withdrawn = 0
        if not yes:
            result = await session.execute(delete(OutboxMessage).where(
                OutboxMessage.participant_id == participant_id, OutboxMessage.kind == OutboxKind.BULLETIN.value,
                OutboxMessage.status == OutboxStatus.PENDING.value))
            withdrawn = int(result.rowcount or 0)  # type: ignore[attr-defined]
        await session.flush()
        return withdrawn

    async def received(self, session: AsyncSession, participant_id: int, limit: int = 5) -> list[tuple[int, Bulletin]]:
        """The last bulletins sent to this person (newest first), with their content."""
        rows = await session.execute(
            select(BulletinSend.id, BulletinSend.version_id)
            .join(BulletinRecipient, BulletinRecipient.send_id == BulletinSend.id)
            .where(BulletinRecipient.participant_id == participant_id, BulletinSend.started_at.is_not(None),
                   BulletinSend.version_id.is_not(None))
            .order_by(BulletinSend.started_at.desc(), BulletinSend.id.desc()).limit(limit)
        )
        result = []
        for send_id, version_id in rows:
            version = await session.get(BulletinVersion, version_id)
            if version is not None:
                result.append((send_id, self.open(version)))
        return result

    async def _latest(self, session: AsyncSession, bulletin_id: str) -> BulletinVersion | None:
        return await session.scalar(select(BulletinVersion).where(BulletinVersion.bulletin_id == bulletin_id)
                                    .order_by(BulletinVersion.number.desc()).limit(1))


def send_ref(send_id: int) -> str:
    """The outbox ``ref`` of a send's rows: how they are counted and withdrawn."""
    return f"bulletin:{send_id}"


_content_context = bulletin_content_context
_notice_context = bulletin_notice_context
