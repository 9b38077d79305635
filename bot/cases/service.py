"""Cases: opening, the person's messages, staff claims, answers and closing, reminders.

Every write happens in the caller's transaction, together with the outbox rows that tell
staff (the staff room as content arrives, content-free notices elsewhere) and the person.
Staff operations append their audit entry here, so the chat command and the CLI verb of the
same name are one function with one audit trail. Nothing here logs content or identities.
"""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases import crypto, texts
from bot.cases.domain import ACTIVE, Author, MessageKind, Request, Status
from bot.cases.references import new_reference
from bot.cases.routing import routed_members
from bot.cases.staff import StaffNames
from bot.config import Settings
from bot.conversation.turn import Services
from bot.core.i18n import I18n, Translator
from bot.core.model import Outbound
from bot.core.security import DecryptionError, KeyRing
from bot.services.audit import AuditLog
from bot.services.outbox import Outbox, OutboxKind, StaffDestination, ToParticipant, ToStaff
from bot.services.participants import Participants
from bot.storage.models import Case, CaseMessage, Participant, case_message_context, utcnow

ROOM = StaffDestination.MATRIX_ROOM  # end-to-end encrypted: content, one thread per case
CHAT = StaffDestination.TELEGRAM_CHAT  # Telegram can read it: content-free notices unless configured
CLI_ACTOR = "cli"
_REFERENCE_ATTEMPTS = 32


class Outcome(enum.Enum):
    DONE = "done"
    ALREADY = "already"  # claiming a case one holds already
    TAKEN_OVER = "taken_over"  # claiming a case another staff member held
    UNKNOWN = "unknown"
    CLOSED = "closed"
    WITHDRAWN = "withdrawn"
    ERASED = "erased"  # withdrawn because the person erased their data
    TOO_LONG = "too_long"
    EMPTY = "empty"
    UNAVAILABLE = "unavailable"  # no staff public key configured: nothing can be stored safely


@dataclass(frozen=True, slots=True)
class StaffResult:
    outcome: Outcome
    reference: str
    done: str = ""  # what to say when it worked (an N_ message taking the reference)
    previous: str | None = None  # who held the case before a take-over (display name)
    length: int = 0
    limit: int = 0


@dataclass(frozen=True, slots=True)
class CaseRow:
    """One line of ``/cases``: metadata only."""

    reference: str
    topic: str
    language: str
    platform: str
    status: Status
    age: dt.timedelta
    claimed_by: str | None
    waiting: dt.timedelta | None
    claim_late: bool
    answer_late: bool


@dataclass(frozen=True, slots=True)
class Listing:
    rows: list[CaseRow]
    claim_hours: float
    answer_hours: float

    @property
    def unclaimed(self) -> int:
        return sum(1 for r in self.rows if r.status is Status.OPEN)

    @property
    def waiting(self) -> int:
        return sum(1 for r in self.rows if r.waiting is not None)

    @property
    def claim_late(self) -> int:
        return sum(1 for r in self.rows if r.claim_late)

    @property
    def answer_late(self) -> int:
        return sum(1 for r in self.rows if r.answer_late)


@dataclass(frozen=True, slots=True)
class TranscriptEntry:
    at: dt.datetime
    author: str
    kind: str
    body: str | None  # None: cannot be opened (erased person, other staff key)
    problem: str = ""


@dataclass(frozen=True, slots=True)
class Transcript:
    case: Case
    entries: list[TranscriptEntry]


def aware(moment: dt.datetime) -> dt.datetime:
    """SQLite hands timestamps back without their (UTC) zone."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)


class CaseService:
    """Domain logic of confidential contact requests; built once and passed in."""

    @classmethod
    def from_services(cls, services: Services) -> CaseService:
        """The feature's service, or (while the feature is off: erasure, ``cases show``) one built for the call."""
        if services.has(cls):
            return services.get(cls)
        return cls(services.settings, services.keys, services.i18n, services.participants, services.outbox,
                   StaffNames.from_settings(services.settings, services.keys), services.audit, services.text_limits)

    def __init__(self, settings: Settings, keys: KeyRing, i18n: I18n, participants: Participants, outbox: Outbox,
                 staff: StaffNames, audit: AuditLog, text_limits: Mapping[str, int],
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self._settings = settings
        self._contacts = settings.contacts
        self._keys = keys
        self._i18n = i18n
        self._participants = participants
        self._outbox = outbox
        self._staff = staff
        self._audit = audit
        self._text_limits = text_limits  # the wiring's own mapping: it learns the running transports' limits
        self._clock = clock
        self._public = (crypto.StaffPublicKey.from_text(self._contacts.staff_public_key)
                        if self._contacts.staff_public_key else None)

    @property
    def available(self) -> bool:
        """Without the staff public key nothing could be stored safely, so nothing is offered."""
        return self._public is not None

    @property
    def staff_tr(self) -> Translator:
        """Staff rooms are written to in the deployment's default language."""
        return self._i18n.translator(self._settings.i18n.default_language)

    def who(self, actor: str | None, tr: Translator) -> str:
        if actor is None:
            return "?"
        if actor == CLI_ACTOR:
            return tr._(texts.COMMAND_LINE)
        return self._staff.display_name(actor) or actor

    def text_limit(self, platform: str) -> int | None:
        return self._text_limits.get(platform)

    def now(self) -> dt.datetime:
        return self._clock()

    # -- lookups ------------------------------------------------------------------------------

    async def active_case_of(self, session: AsyncSession, participant_id: int) -> Case | None:
        return await session.scalar(
            select(Case).where(Case.participant_id == participant_id, Case.status.in_(ACTIVE))
            .order_by(Case.id.desc()).limit(1)
        )

    async def find(self, session: AsyncSession, reference: str, *, lock: bool = False) -> Case | None:
        query = select(Case).where(Case.reference == reference)
        if lock:  # PostgreSQL: a staff answer and the person's own turn update the same row
            query = query.with_for_update()
        return await session.scalar(query)

    @staticmethod
    def thread_of(case: Case) -> str:
        """The outbox thread of a case in the staff room."""
        return f"case:{case.id}"

    async def case_for_thread(self, session: AsyncSession, room: str, root: str) -> Case | None:
        """The case whose staff-room thread starts with ``root`` (an answer written in it is for it)."""
        if self._outbox.staff_addresses.address_of(ROOM) != room:
            return None
        thread = await self._outbox.thread_at(session, ROOM, root)
        if thread is None or not thread.startswith("case:") or not thread[5:].isdigit():
            return None
        return await session.get(Case, int(thread[5:]))

    # -- the person ---------------------------------------------------------------------------

    async def open(self, session: AsyncSession, participant: Participant, request: Request) -> Case:
        """A new case; staff are told at once, through the outbox, in this transaction."""
        now = self._clock()
        case = Case(reference=await self._unused_reference(session), participant_id=participant.id,
                    platform=participant.platform, language=participant.language, topic=request.topic.value,
                    status=Status.OPEN.value, created_at=now, waiting_since=now, last_person_at=now)
        session.add(case)
        await session.flush()
        await self._store(session, case, Author.PERSON, MessageKind.REQUEST, request.to_json(), now)
        await self._tell_staff_new(session, case, request)
        return case

    async def add_person_message(self, session: AsyncSession, case: Case, text: str) -> bool:
        """What the person wrote goes to staff now and is sealed away; False if they write too much too fast."""
        now = self._clock()
        recent = await session.scalar(
            select(func.count()).select_from(CaseMessage).where(
                CaseMessage.case_id == case.id, CaseMessage.author == Author.PERSON.value,
                CaseMessage.seq > 1,  # the request itself does not count
                CaseMessage.created_at > now - dt.timedelta(hours=1))
        )
        if (recent or 0) >= self._contacts.max_messages_per_hour:
            return False
        await self._store(session, case, Author.PERSON, MessageKind.TEXT, text, now)
        case.last_person_at = now
        if case.waiting_since is None:
            case.waiting_since = now
        tr = self.staff_tr
        await self._to_room(session, case, tr._(texts.FROM_PERSON, reference=case.reference) + "\n" + text)
        await self._to_chat(session, case, tr._(texts.FROM_PERSON, reference=case.reference) + "\n" + text
                            if self._contacts.content_on_telegram
                            else tr._(texts.FROM_PERSON_NO_CONTENT, reference=case.reference))
        return True

    async def withdraw(self, session: AsyncSession, case: Case, *, erased: bool = False) -> None:
        case.status, case.closed_at, case.waiting_since = Status.WITHDRAWN.value, self._clock(), None
        tr = self.staff_tr
        notice = tr._(texts.ERASED_NOTICE if erased else texts.WITHDRAWN_NOTICE, reference=case.reference)
        await self._to_room(session, case, notice)
        await self._to_chat(session, case, notice)

    async def erase_participant(self, session: AsyncSession, participant_id: int) -> int:
        """``/delete_me``: open cases are withdrawn (staff are told) and every message is deleted.

        The messages were sealed with the person's key, which the erasure destroys: copies in
        backups cannot be opened any more, not even with the staff private key.
        """
        cases = list(await session.scalars(select(Case).where(Case.participant_id == participant_id)))
        for case in cases:
            if Status(case.status).active:
                await self.withdraw(session, case, erased=True)
        if cases:
            await session.execute(delete(CaseMessage).where(CaseMessage.case_id.in_([c.id for c in cases])))
        return len(cases)

    # -- staff ----------------------------------------------------------------------------------

    async def claim(self, session: AsyncSession, actor: str, reference: str,
                    origin: StaffDestination | None = None) -> StaffResult:
        case, refused = await self._active(session, reference)
        if case is None:
            return refused
        if case.claimed_by == actor:
            return StaffResult(Outcome.ALREADY, reference)
        previous = case.claimed_by
        case.status, case.claimed_by, case.claimed_at = Status.CLAIMED.value, actor, self._clock()
        await self._audit.append(session, actor, "case.claim", reference)
        tr = self.staff_tr
        notice = tr._(texts.CLAIMED_NOTICE, reference=reference, who=self.who(actor, tr))
        await self._to_room(session, case, notice, skip=origin)
        await self._to_chat(session, case, notice, skip=origin)
        if previous is not None:
            return StaffResult(Outcome.TAKEN_OVER, reference, previous=self.who(previous, tr))
        return StaffResult(Outcome.DONE, reference, texts.CLAIMED_DONE)

    async def reply(self, session: AsyncSession, actor: str, reference: str, text: str, *,
                    via: str, origin: StaffDestination | None = None) -> StaffResult:
        """Relay a staff answer to the person, anonymously; the case becomes the answerer's if unclaimed."""
        text = text.strip()
        if not text:
            return StaffResult(Outcome.EMPTY, reference)
        if not self.available:
            return StaffResult(Outcome.UNAVAILABLE, reference)
        case, refused = await self._active(session, reference)
        if case is None:
            return refused
        participant = await session.get(Participant, case.participant_id) if case.participant_id else None
        if participant is None:
            return StaffResult(Outcome.ERASED, reference)
        person_tr = self._i18n.translator(participant.language)
        header = person_tr._(texts.FROM_STAFF, reference=reference)
        limit = self.text_limit(participant.platform)
        if limit is not None and len(header) + 1 + len(text) > limit:
            return StaffResult(Outcome.TOO_LONG, reference, length=len(text), limit=limit - len(header) - 1)
        now = self._clock()
        await self._store(session, case, Author.STAFF, MessageKind.TEXT, text, now)
        await self._outbox.enqueue(
            session, ToParticipant(participant.id, participant.platform), OutboxKind.CASE_MESSAGE,
            Outbound(text=f"{header}\n{text}", direction=person_tr.direction, sensitive=True,
                     language=person_tr.language),
            ref=f"case:{case.id}",
        )
        case.last_staff_at, case.waiting_since, case.answer_reminded_at = now, None, None
        if case.status == Status.OPEN.value:
            case.status, case.claimed_by, case.claimed_at = Status.CLAIMED.value, actor, now
        await self._audit.append(session, actor, "case.reply", reference, {"via": via})
        tr = self.staff_tr
        if via != "thread":
            await self._to_room(session, case, tr._(texts.ANSWER_SENT_ECHO, reference=reference) + "\n" + text,
                                skip=origin)
        await self._to_chat(session, case, tr._(texts.ANSWER_SENT_ECHO, reference=reference) + "\n" + text
                            if self._contacts.content_on_telegram
                            else tr._(texts.ANSWER_SENT_NO_CONTENT, reference=reference), skip=origin)
        return StaffResult(Outcome.DONE, reference, texts.REPLY_SENT)

    async def close(self, session: AsyncSession, actor: str, reference: str,
                    origin: StaffDestination | None = None) -> StaffResult:
        case, refused = await self._active(session, reference)
        if case is None:
            return refused
        case.status, case.closed_at, case.waiting_since = Status.CLOSED.value, self._clock(), None
        participant = await session.get(Participant, case.participant_id) if case.participant_id else None
        if participant is not None:
            person_tr = self._i18n.translator(participant.language)
            await self._outbox.enqueue(
                session, ToParticipant(participant.id, participant.platform), OutboxKind.CASE_MESSAGE,
                Outbound(text=person_tr._(texts.CLOSED_FOR_PERSON, reference=reference),
                         direction=person_tr.direction, language=person_tr.language),
                ref=f"case:{case.id}",
            )
        await self._audit.append(session, actor, "case.close", reference)
        tr = self.staff_tr
        notice = tr._(texts.CLOSED_NOTICE, reference=reference, who=self.who(actor, tr))
        await self._to_room(session, case, notice, skip=origin)
        await self._to_chat(session, case, notice, skip=origin)
        return StaffResult(Outcome.DONE, reference, texts.CLOSED_DONE)

    async def listing(self, session: AsyncSession, actor: str) -> Listing:
        """Active cases with their service-level figures, oldest first."""
        now = self._clock()
        claim_within = dt.timedelta(hours=self._contacts.claim_within_hours)
        answer_within = dt.timedelta(hours=self._contacts.answer_within_hours)
        rows = []
        for case in await session.scalars(select(Case).where(Case.status.in_(ACTIVE)).order_by(Case.created_at)):
            age = now - aware(case.created_at)
            waiting = now - aware(case.waiting_since) if case.waiting_since is not None else None
            rows.append(CaseRow(
                case.reference, case.topic, case.language, case.platform, Status(case.status), age, case.claimed_by,
                waiting, claim_late=case.status == Status.OPEN.value and age > claim_within,
                answer_late=waiting is not None and waiting > answer_within,
            ))
        await self._audit.append(session, actor, "case.list", None, {"cases": len(rows)})
        return Listing(rows, self._contacts.claim_within_hours, self._contacts.answer_within_hours)

    async def transcript(self, session: AsyncSession, actor: str, reference: str,
                         private: crypto.StaffPrivateKey) -> Transcript | None:
        """Every message of a case, opened with the staff private key (on a staff machine)."""
        case = await self.find(session, reference)
        if case is None:
            return None
        key = None
        if case.participant_id is not None:
            try:
                key = await self._participants.data_key(session, case.participant_id)
            except (LookupError, DecryptionError):  # erased, or wrapped by a retired master key
                key = None
        entries = []
        rows = await session.scalars(select(CaseMessage).where(CaseMessage.case_id == case.id)
                                     .order_by(CaseMessage.seq))
        for row in rows:
            body: str | None = None
            kind, problem = "", ""
            if key is None:
                problem = "erased"
            elif row.staff_key_id != private.public.id:
                problem = f"sealed to another staff key ({row.staff_key_id})"
            else:
                try:
                    kind, body = crypto.open_sealed(private, key, case_message_context(row.id), case.reference, row.body_enc)
                except DecryptionError:
                    problem = "cannot be opened"
            entries.append(TranscriptEntry(aware(row.created_at), row.author, kind, body, problem))
        await self._audit.append(session, actor, "case.show", reference, {"messages": len(entries)})
        return Transcript(case, entries)

    # -- scheduled upkeep -------------------------------------------------------------------------

    async def remind(self, session: AsyncSession, now: dt.datetime) -> int:
        """One reminder per case unclaimed too long, and one per spell of waiting too long for staff."""
        tr = self.staff_tr
        claim_deadline = now - dt.timedelta(hours=self._contacts.claim_within_hours)
        answer_deadline = now - dt.timedelta(hours=self._contacts.answer_within_hours)
        sent = 0
        unclaimed = await session.scalars(
            select(Case).where(Case.status == Status.OPEN.value, Case.created_at <= claim_deadline,
                               Case.claim_reminded_at.is_(None)).with_for_update(skip_locked=True)
        )
        for case in list(unclaimed):
            case.claim_reminded_at = now
            await self._remind(session, case, tr._(texts.REMIND_CLAIM, reference=case.reference,
                                                   topic=texts.topic_short(tr, case.topic),
                                                   age=texts.duration(tr, now - aware(case.created_at))))
            sent += 1
        waiting = await session.scalars(
            select(Case).where(Case.status.in_(ACTIVE), Case.waiting_since.is_not(None),
                               Case.waiting_since <= answer_deadline).with_for_update(skip_locked=True)
        )
        for case in list(waiting):
            assert case.waiting_since is not None
            if case.answer_reminded_at is not None:
                continue  # this spell of waiting was reminded of already (an answer ends the spell)
            case.answer_reminded_at = now
            await self._remind(session, case, tr._(texts.REMIND_ANSWER, reference=case.reference,
                                                   age=texts.duration(tr, now - aware(case.waiting_since))))
            sent += 1
        return sent

    async def withdraw_orphans(self, session: AsyncSession) -> int:
        """Cases whose person was erased by another path (retention of inactive people) are withdrawn too."""
        orphans = list(await session.scalars(
            select(Case).where(Case.participant_id.is_(None), Case.status.in_(ACTIVE))))
        for case in orphans:
            await self.withdraw(session, case, erased=True)
        if orphans:
            await session.execute(delete(CaseMessage).where(CaseMessage.case_id.in_([c.id for c in orphans])))
        return len(orphans)

    # -- internals ------------------------------------------------------------------------------

    async def _active(self, session: AsyncSession, reference: str) -> tuple[Case | None, StaffResult]:
        case = await self.find(session, reference, lock=True)
        if case is None:
            return None, StaffResult(Outcome.UNKNOWN, reference)
        if case.status == Status.CLOSED.value:
            return None, StaffResult(Outcome.CLOSED, reference)
        if case.status == Status.WITHDRAWN.value:
            return None, StaffResult(Outcome.ERASED if case.participant_id is None else Outcome.WITHDRAWN, reference)
        return case, StaffResult(Outcome.DONE, reference)

    async def _unused_reference(self, session: AsyncSession) -> str:
        for _ in range(_REFERENCE_ATTEMPTS):
            reference = new_reference()
            if await session.scalar(select(Case.id).where(Case.reference == reference)) is None:
                return reference
        raise RuntimeError("no unused case reference found")

    async def _store(self, session: AsyncSession, case: Case, author: Author, kind: MessageKind, body: str,
                     now: dt.datetime) -> None:
        assert self._public is not None and case.participant_id is not None
        key = await self._participants.data_key(session, case.participant_id)
        last = await session.scalar(select(func.max(CaseMessage.seq)).where(CaseMessage.case_id == case.id))
        message_id = uuid.uuid4().hex
        sealed = crypto.seal(self._public, key, case_message_context(message_id), case.reference, kind.value, body)
        session.add(CaseMessage(id=message_id, case_id=case.id, seq=(last or 0) + 1, author=author.value,
                                created_at=now, staff_key_id=sealed.staff_key_id, body_enc=sealed.token))
        await session.flush()

    async def _tell_staff_new(self, session: AsyncSession, case: Case, request: Request) -> None:
        tr = self.staff_tr
        headline = tr._(texts.NEW_CASE, case=self.case_line(tr, case))
        members = routed_members(self._contacts.routes, case.topic, case.language)
        routed = (tr._(texts.ROUTED_TO, members=", ".join(self._member_name(m) for m in members))
                  if members else tr._(texts.ROUTED_ALL))
        description = (tr._(texts.DESCRIPTION, text=request.description) if request.description
                       else tr._(texts.NO_DESCRIPTION))
        way = tr._(texts.WAYS[request.way]) if request.way else tr._(texts.NO_PREFERENCE)
        when = texts.when_label(tr, request.when) if request.when else tr._(texts.NO_PREFERENCE)
        content = f"{headline}\n{routed}\n\n{description}\n{tr._(texts.PREFERENCE, way=way, when=when)}"
        await self._to_room(session, case, f"{content}\n\n{tr._(texts.THREAD_HINT, reference=case.reference)}")
        short = f"{headline}\n{tr._(texts.CONTENT_ELSEWHERE, reference=case.reference)}"
        chat_text = content if self._contacts.content_on_telegram else short
        await self._to_chat(session, case, chat_text)
        for member in members:  # a member on Telegram also in their private chat (on Matrix: named in the room)
            recipient = self._outbox.staff_addresses.member(self._keys, member)
            if recipient is not None:
                await self._outbox.enqueue(session, recipient, OutboxKind.STAFF_NOTICE, self._staff_message(chat_text),
                                           ref=f"case:{case.id}")

    def case_line(self, tr: Translator, case: Case) -> str:
        return tr._(texts.CASE_LINE, reference=case.reference, topic=texts.topic_short(tr, case.topic),
                    language=texts.language_name(tr, case.language), platform=texts.platform_name(case.platform))

    @staticmethod
    def _member_name(entry: str) -> str:
        platform, _, user_id = entry.partition(":")
        return user_id if platform == "matrix" else entry

    def _configured(self, destination: StaffDestination) -> bool:
        return self._outbox.staff_addresses.address_of(destination) is not None

    async def _to_room(self, session: AsyncSession, case: Case, text: str,
                       skip: StaffDestination | None = None, *, threaded: bool = True) -> None:
        """Content for the end-to-end encrypted staff room, in the case's thread (unless ``threaded``
        is false: reminders stand in the room's own timeline, where everyone sees them)."""
        if self._configured(ROOM) and skip is not ROOM:
            await self._outbox.enqueue(session, ToStaff(ROOM), OutboxKind.STAFF_NOTICE, self._staff_message(text),
                                       ref=f"case:{case.id}", thread=self.thread_of(case) if threaded else None)

    async def _to_chat(self, session: AsyncSession, case: Case, text: str,
                       skip: StaffDestination | None = None) -> None:
        """The Telegram staff chat: the caller passes content-free text unless content_on_telegram."""
        if self._configured(CHAT) and skip is not CHAT:
            await self._outbox.enqueue(session, ToStaff(CHAT), OutboxKind.STAFF_NOTICE, self._staff_message(text),
                                       ref=f"case:{case.id}")

    async def _remind(self, session: AsyncSession, case: Case, text: str) -> None:
        """A reminder in every staff place (in the case's thread in the Matrix room); metadata only."""
        await self._to_room(session, case, text, threaded=False)
        await self._to_chat(session, case, text)

    def _staff_message(self, text: str) -> Outbound:
        tr = self.staff_tr
        return Outbound(text=text, direction=tr.direction, sensitive=True, language=tr.language)
