"""The durable outbox: everything that is not a direct reply is a row first, a delivery second.

Rows are added in the same transaction as the work that creates them (a bulletin, a survey
launch, a check-in, a notice to staff), so a message exists exactly when its cause does.
The delivery engine (:mod:`bot.services.delivery`) drains them per platform.

Guarantees callers can rely on:

- **Per-recipient order.** A person (or a staff destination) receives their messages in the
  order the rows were created; a row held back by a failure holds back that recipient's later
  rows until it is sent or has failed for good. A row with ``not_before`` takes its place in
  that order once it is due.
- **Priorities** order different recipients only: an interactive reply goes before bulk.
- **Privacy.** The payload is sealed (a participant's row with that person's data key, so
  erasure shreds it; a staff row with the master key) and erased once the row is sent or has
  failed for good. What stays is the metadata statistics need: kind, ref, platform, language,
  status, failure reason, attempts and times.
- **Wake-up.** Committing a transaction that enqueued rows wakes the senders at once (in
  process; on PostgreSQL also in other workers through ``LISTEN/NOTIFY``); polling is only
  the fallback.
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    bindparam,
    delete,
    event,
    exists,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session

from bot.core.model import Choice, Direction, Formatted, Outbound, Platform, PromptId
from bot.core.security import DataKey, DecryptionError, KeyRing
from bot.storage.models import (
    OutboxMessage,
    OutboxThread,
    ParticipantKey,
    legacy_outbox_payload_context,
    outbox_payload_context,
    utcnow,
)

NOTIFY_CHANNEL = "civicbot_outbox"
"""PostgreSQL channel on which committed rows announce their platform to every worker."""


class OutboxKind(enum.StrEnum):
    """Why a row exists. Stored as its value; statistics and cancellation group by it."""

    REPLY = "reply"  # a live reply that could not go out directly (platform briefly down)
    SURVEY_INVITATION = "survey.invitation"
    SURVEY_REMINDER = "survey.reminder"
    BULLETIN = "bulletin"
    CHECKIN = "checkin"  # a scheduled check-in question to an association
    CHECKIN_REMINDER = "checkin.reminder"
    CASE_MESSAGE = "case.message"  # staff's answer to a confidential contact request, relayed
    STAFF_NOTICE = "staff.notice"  # escalations, new cases, bulletin summaries: to a staff destination


class OutboxStatus(enum.StrEnum):
    """Where a row is. ``SENT``, ``FAILED`` and ``UNREACHABLE`` are final: the payload is erased."""

    PENDING = "pending"  # waiting (maybe for ``not_before`` or a retry's backoff)
    SENDING = "sending"  # leased by a sender; claimed again if the lease runs out
    SENT = "sent"
    FAILED = "failed"  # rejected, unreadable, or out of attempts
    UNREACHABLE = "unreachable"  # the person blocked the bot or is gone; their address is marked

    @property
    def is_final(self) -> bool:
        return self in _FINAL


_FINAL = frozenset({OutboxStatus.SENT, OutboxStatus.FAILED, OutboxStatus.UNREACHABLE})


class Priority(enum.IntEnum):
    """Lower goes first. Only orders different recipients; one recipient's rows keep their order."""

    INTERACTIVE = 0  # replies (and their retries): someone is waiting for them
    NORMAL = 1  # notices to staff, relayed case messages, reminders
    BULK = 2  # bulletins, survey invitations, check-ins sent to a whole audience


DEFAULT_PRIORITY: Mapping[OutboxKind, Priority] = {
    OutboxKind.REPLY: Priority.INTERACTIVE,
    OutboxKind.CASE_MESSAGE: Priority.NORMAL,
    OutboxKind.STAFF_NOTICE: Priority.NORMAL,
    OutboxKind.SURVEY_REMINDER: Priority.NORMAL,
    OutboxKind.CHECKIN_REMINDER: Priority.NORMAL,
    OutboxKind.SURVEY_INVITATION: Priority.BULK,
    OutboxKind.BULLETIN: Priority.BULK,
    OutboxKind.CHECKIN: Priority.BULK,
}


class StaffDestination(enum.StrEnum):
    """A place where staff work together, taken from the configuration at send time."""

    MATRIX_ROOM = "staff.matrix_room"
    TELEGRAM_CHAT = "staff.telegram_chat"

    @property
    def platform(self) -> Platform:
        return Platform("matrix" if self is StaffDestination.MATRIX_ROOM else "telegram")


@dataclass(frozen=True, slots=True)
class ToParticipant:
    """A person on one platform (their sealed address is looked up at send time)."""

    participant_id: int
    platform: str

    @property
    def queue(self) -> str:
        return f"p:{self.participant_id}"


@dataclass(frozen=True, slots=True)
class ToStaff:
    """A staff destination (``staff.matrix_room`` or ``staff.telegram_chat``)."""

    destination: StaffDestination

    @property
    def platform(self) -> str:
        return str(self.destination.platform)

    @property
    def queue(self) -> str:
        return str(self.destination.value)


MEMBER_PREFIX = "staff.member:"
"""A staff member's private chat: ``staff.member:`` and a short key of their pseudonym."""


@dataclass(frozen=True, slots=True)
class ToStaffMember:
    """One staff member in their private chat with the bot (Telegram, the console: where the chat
    id is the account). Named by :func:`member_key`; the account is looked up in the configuration
    at send time, so no staff account is stored."""

    member: str
    platform: str

    @property
    def queue(self) -> str:
        return f"{MEMBER_PREFIX}{self.member}"


def member_key(keys: KeyRing, entry: str) -> str:
    """The short name of a configured staff entry (``telegram:123456``) in the outbox."""
    platform, _, user_id = entry.partition(":")
    return keys.pseudonym(platform, user_id)[:16]


Recipient = ToParticipant | ToStaff | ToStaffMember
_PRIVATE_CHAT_PLATFORMS = frozenset({"telegram", "console"})


class OutboxError(ValueError):
    """A row cannot be added as asked (e.g. a staff destination that is not configured)."""


@dataclass(frozen=True, slots=True)
class StaffAddresses:
    """The configured staff destinations (``[staff] matrix_room`` / ``telegram_chat``), and the
    members reachable in a private chat (by :func:`member_key`: ``(platform, account)``)."""

    matrix_room: str | None = None
    telegram_chat: int | None = None
    members: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    def configured(cls, keys: KeyRing, matrix_room: str | None, telegram_chat: int | None,
                   members: Iterable[str] = ()) -> StaffAddresses:
        reachable = {}
        for entry in members:
            platform, _, user_id = entry.partition(":")
            if platform in _PRIVATE_CHAT_PLATFORMS and user_id:
                reachable[member_key(keys, entry)] = (platform, user_id)
        return cls(matrix_room, telegram_chat, reachable)

    def address_of(self, destination: StaffDestination) -> str | None:
        if destination is StaffDestination.MATRIX_ROOM:
            return self.matrix_room or None
        return str(self.telegram_chat) if self.telegram_chat is not None else None

    def member(self, keys: KeyRing, entry: str) -> ToStaffMember | None:
        """A configured entry (``telegram:123456``) as a recipient, if a private chat reaches them."""
        found = self.members.get(member_key(keys, entry))
        return ToStaffMember(member_key(keys, entry), found[0]) if found is not None else None

    def resolve(self, staff_destination: str, platform: str) -> str | None:
        """The address of a row's staff destination (a shared place or a member) on ``platform``."""
        if staff_destination.startswith(MEMBER_PREFIX):
            found = self.members.get(staff_destination[len(MEMBER_PREFIX):])
            return found[1] if found is not None and found[0] == platform else None
        try:
            return self.address_of(StaffDestination(staff_destination))
        except ValueError:
            return None


def payload_context(queue: str, txn_id: str) -> str:
    """What a payload is bound to when sealed: its recipient and its row's transaction id."""
    return outbox_payload_context(queue, txn_id)


def encode_message(message: Outbound) -> str:
    return json.dumps(
        {
            "text": message.text,
            "choices": [[c.key, c.label] for c in message.choices],
            "prompt_id": message.prompt_id,
            "direction": message.direction.value,
            "sensitive": message.sensitive,
            "language": message.language,
            "image": base64.b64encode(message.image).decode() if message.image else None,
            "image_name": message.image_name,
            "numbered": message.numbered,
            "formatted": [[part.text, part.html] for part in message.formatted],
            "thread_root": message.thread_root,
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


def decode_message(payload: str) -> Outbound:
    data = json.loads(payload)
    return Outbound(
        text=data["text"],
        choices=tuple(Choice(k, label) for k, label in data["choices"]),
        prompt_id=PromptId(data["prompt_id"]) if data["prompt_id"] else None,
        direction=Direction(data["direction"]),
        sensitive=data["sensitive"],
        language=data["language"],
        image=base64.b64decode(data["image"]) if data["image"] else None,
        image_name=data["image_name"],
        numbered=data.get("numbered", True),
        formatted=tuple(Formatted(text, markup) for text, markup in data.get("formatted", ())),
        thread_root=data.get("thread_root"),
    )


class Wakeup:
    """In-process doorbell of the senders, one per platform. ``ring`` after a commit."""

    __slots__ = ("_listeners",)

    def __init__(self) -> None:
        self._listeners: dict[str, list[Callable[[], None]]] = {}

    def subscribe(self, platform: str, listener: Callable[[], None]) -> None:
        self._listeners.setdefault(platform, []).append(listener)

    def ring(self, platform: str) -> None:
        for listener in self._listeners.get(platform, ()):
            listener()


@dataclass(frozen=True, slots=True)
class ProgressRow:
    platform: str
    language: str
    status: OutboxStatus
    reason: str | None
    count: int


@dataclass(frozen=True, slots=True)
class Progress:
    """Counts of one bulk send (by ``ref``): by status, platform, language and failure reason."""

    ref: str
    rows: tuple[ProgressRow, ...] = ()

    @property
    def total(self) -> int:
        return sum(r.count for r in self.rows)

    @property
    def finished(self) -> int:
        """Rows that will not change any more (sent, failed, unreachable)."""
        return sum(r.count for r in self.rows if r.status.is_final)

    @property
    def by_status(self) -> dict[OutboxStatus, int]:
        return self._sum(lambda r: r.status)

    @property
    def by_platform(self) -> dict[str, dict[OutboxStatus, int]]:
        return self._nested(lambda r: r.platform)

    @property
    def by_language(self) -> dict[str, dict[OutboxStatus, int]]:
        return self._nested(lambda r: r.language)

    @property
    def by_reason(self) -> dict[str, int]:
        """Why rows failed or could not reach their recipient (short codes, never content)."""
        return self._sum(lambda r: r.reason or "unknown", only=lambda r: r.status in _UNSUCCESSFUL)

    def _sum(self, key: Callable[[ProgressRow], Any], only: Callable[[ProgressRow], bool] = lambda r: True) -> dict[Any, int]:
        counts: dict[Any, int] = {}
        for row in self.rows:
            if only(row):
                counts[key(row)] = counts.get(key(row), 0) + row.count
        return counts

    def _nested(self, key: Callable[[ProgressRow], str]) -> dict[str, dict[OutboxStatus, int]]:
        counts: dict[str, dict[OutboxStatus, int]] = {}
        for row in self.rows:
            inner = counts.setdefault(key(row), {})
            inner[row.status] = inner.get(row.status, 0) + row.count
        return counts


_UNSUCCESSFUL = frozenset({OutboxStatus.FAILED, OutboxStatus.UNREACHABLE})


@dataclass(slots=True)
class _PendingWake:
    platforms: set[str] = field(default_factory=set)


class Outbox:
    """Adds, cancels and counts outbox rows, always inside the caller's transaction."""

    __slots__ = ("_keys", "_staff", "_wakeup")

    def __init__(self, keys: KeyRing, staff: StaffAddresses | None = None, wakeup: Wakeup | None = None) -> None:
        self._keys = keys
        self._staff = staff or StaffAddresses()
        self._wakeup = wakeup or Wakeup()

    @property
    def wakeup(self) -> Wakeup:
        return self._wakeup

    @property
    def staff_addresses(self) -> StaffAddresses:
        return self._staff

    def staff_recipients(self) -> list[ToStaff]:
        """Every configured staff destination, e.g. to notify staff wherever they are."""
        return [ToStaff(d) for d in StaffDestination if self._staff.address_of(d) is not None]

    async def enqueue(
        self,
        session: AsyncSession,
        to: Recipient,
        kind: OutboxKind,
        message: Outbound,
        *,
        ref: str | None = None,
        not_before: dt.datetime | None = None,
        priority: Priority | None = None,
        thread: str | None = None,
    ) -> int:
        """Queue ``message`` for ``to`` in the caller's transaction; returns the row id.

        ``ref`` names a bulk send (e.g. ``"bulletin:12"``) for :meth:`cancel` and
        :meth:`progress`; ``not_before`` schedules it (timezone-aware); ``priority``
        defaults to the kind's (:data:`DEFAULT_PRIORITY`). ``thread`` (staff destinations only)
        names a conversation, e.g. ``"case:12"``: where the platform has threads (Matrix), its
        first row starts one and the later rows are sent into it. Raises :class:`OutboxError` for
        a staff destination that is not configured or a participant without a data key.
        """
        if thread is not None and not isinstance(to, ToStaff):
            raise OutboxError("only rows to a staff destination are threaded")
        [row_id] = await self.enqueue_many(session, [(to, message)], kind, ref=ref, not_before=not_before,
                                           priority=priority, thread=thread)
        return row_id

    async def enqueue_many(
        self,
        session: AsyncSession,
        items: Iterable[tuple[Recipient, Outbound]],
        kind: OutboxKind,
        *,
        ref: str | None = None,
        not_before: dt.datetime | None = None,
        priority: Priority | None = None,
        thread: str | None = None,
    ) -> list[int]:
        """:meth:`enqueue` for a whole audience: keys loaded in bulk, rows inserted in one statement.

        Returns the row ids in the order of ``items``. Use it for bulletins and launches to
        thousands of people.
        """
        batch = list(items)
        if not batch:
            return []
        if not_before is not None and not_before.tzinfo is None:
            raise OutboxError("not_before must be timezone-aware")
        rank = int(priority if priority is not None else DEFAULT_PRIORITY.get(kind, Priority.NORMAL))
        keys = await self._data_keys(session, {to.participant_id for to, _ in batch if isinstance(to, ToParticipant)})
        now = utcnow()
        due = max(now, not_before) if not_before is not None else now
        values: list[dict[str, Any]] = []
        for to, message in batch:
            txn_id = uuid.uuid4().hex
            plaintext = encode_message(message)
            if isinstance(to, ToParticipant):
                sealed = keys[to.participant_id].seal(plaintext, payload_context(to.queue, txn_id))
                participant_id, staff = to.participant_id, None
            else:
                staff = to.queue
                if self._staff.resolve(staff, to.platform) is None:
                    raise OutboxError(f"{staff} is not configured")
                sealed = self._keys.seal_text(plaintext, payload_context(to.queue, txn_id))
                participant_id = None
            values.append({
                "participant_id": participant_id, "staff_destination": staff, "queue": to.queue,
                "platform": to.platform, "kind": kind.value, "priority": rank, "ref": ref,
                "language": message.language[:8], "payload_enc": sealed, "status": OutboxStatus.PENDING.value,
                "attempts": 0, "not_before": not_before, "next_attempt_at": due, "txn_id": txn_id,
                "created_at": now, "thread": thread if staff is not None else None,
            })
        ids: list[int] = []
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            statement = insert(OutboxMessage).returning(OutboxMessage.id, sort_by_parameter_order=True)
            result = await session.execute(statement, chunk)
            ids.extend(result.scalars().all())
        if len(values) >= _ANALYZE_AFTER and _is_postgresql(session):
            # A large send changes the table's shape at once, and autovacuum may not notice for a
            # minute: without current statistics the senders' claim query is planned for a tiny
            # table and scans the backlog for every row. ANALYZE here sees this transaction's rows.
            await session.execute(text("ANALYZE outbox"))
        await self._wake_on_commit(session, {v["platform"] for v in values})
        return ids

    async def thread_at(self, session: AsyncSession, destination: StaffDestination, root_id: str) -> str | None:
        """The thread whose first message is ``root_id`` in the destination as configured now
        (a staff answer in that thread belongs to it), or None."""
        address = self._staff.address_of(destination)
        if address is None:
            return None
        return await session.scalar(select(OutboxThread.thread).where(
            OutboxThread.staff_destination == destination.value, OutboxThread.root_id == root_id,
            OutboxThread.address == address))

    async def cancel(self, session: AsyncSession, ref: str) -> int:
        """Delete the rows of bulk send ``ref`` that were not sent yet; returns how many.

        Rows a sender holds at this moment (``sending``) are finishing and are left alone;
        what was sent stays counted.
        """
        result = await session.execute(
            delete(OutboxMessage).where(OutboxMessage.ref == ref, OutboxMessage.status == OutboxStatus.PENDING.value)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def progress(self, session: AsyncSession, ref: str) -> Progress:
        """Counts of bulk send ``ref`` by platform, language, status and failure reason."""
        rows = await session.execute(
            select(OutboxMessage.platform, OutboxMessage.language, OutboxMessage.status, OutboxMessage.last_error,
                   func.count())
            .where(OutboxMessage.ref == ref)
            .group_by(OutboxMessage.platform, OutboxMessage.language, OutboxMessage.status, OutboxMessage.last_error)
        )
        return Progress(ref, tuple(
            ProgressRow(platform, language, OutboxStatus(status), reason if status in _UNSUCCESSFUL else None, count)
            for platform, language, status, reason, count in rows
        ))

    @staticmethod
    def unsent_condition(to: Recipient, now: dt.datetime) -> ColumnElement[bool]:
        """Rows of ``to`` that are due (or were) and not sent yet: a live reply must queue behind them."""
        return and_(
            OutboxMessage.platform == to.platform, OutboxMessage.queue == to.queue,
            OutboxMessage.status.in_((OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)),
            or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= now),
        )

    @staticmethod
    def queued_for(participant_id: ColumnElement[int] | InstrumentedAttribute[int]) -> ColumnElement[bool]:
        """Whether a participant (a column, to go into the turn's own query) has rows a live reply
        must not overtake: :meth:`has_unsent` without a statement of its own. The platform and the
        time are bound parameters (``platform``, ``now``): the turn's statement is built once."""
        return exists().where(
            OutboxMessage.participant_id == participant_id, OutboxMessage.platform == bindparam("platform"),
            OutboxMessage.status.in_((OutboxStatus.PENDING.value, OutboxStatus.SENDING.value)),
            or_(OutboxMessage.not_before.is_(None), OutboxMessage.not_before <= bindparam("now")),
        )

    async def has_unsent(self, session: AsyncSession, to: Recipient) -> bool:
        """Whether ``to`` has unsent rows that a live reply must not overtake."""
        found = await session.scalar(select(OutboxMessage.id).where(self.unsent_condition(to, utcnow())).limit(1))
        return found is not None

    async def enqueue_behind(self, session: AsyncSession, to: Recipient, messages: Sequence[Outbound]) -> list[int]:
        """Queue live replies behind ``to``'s unsent rows, keeping the order. Those rows now stand
        between a person and their answer, so they go first (interactive priority, not behind the
        rest of a bulletin), and rows held back by a retry are due now: the person just wrote, so
        the platform reaches them."""
        now = utcnow()
        unsent = self.unsent_condition(to, now)
        await session.execute(update(OutboxMessage).where(unsent).values(priority=int(Priority.INTERACTIVE)))
        await session.execute(
            update(OutboxMessage)
            .where(unsent, OutboxMessage.status == OutboxStatus.PENDING.value, OutboxMessage.next_attempt_at > now)
            .values(next_attempt_at=now)
        )
        return await self.enqueue_many(session, [(to, m) for m in messages], OutboxKind.REPLY)

    async def read(self, session: AsyncSession, row: OutboxMessage) -> Outbound | None:
        """The message of an unsent row (None once it is final: the payload is erased)."""
        if row.payload_enc is None:
            return None
        key = None
        if row.participant_id is not None and not KeyRing.is_master_token(row.payload_enc):
            key = (await self._data_keys(session, {row.participant_id}))[row.participant_id]
        return self.open_payload(row.payload_enc, row.txn_id, key, row.queue)

    def open_payload(self, sealed: bytes, txn_id: str, data_key: DataKey | None, queue: str) -> Outbound:
        """The message of a row (the engine's one way in): person's key, or master key for staff.
        Rows queued before 0005_hardening were bound to their transaction id only."""
        if data_key is None or KeyRing.is_master_token(sealed):  # staff rows, and rows queued before 0004
            def opener(context: str) -> str:
                return self._keys.open_text(sealed, context)
        else:
            key = data_key

            def opener(context: str) -> str:
                return key.open(sealed, context)
        try:
            plaintext = opener(payload_context(queue, txn_id))
        except DecryptionError:
            plaintext = opener(legacy_outbox_payload_context(txn_id))
        return decode_message(plaintext)

    async def _data_keys(self, session: AsyncSession, participant_ids: set[int]) -> dict[int, DataKey]:
        keys: dict[int, DataKey] = {}
        ordered = sorted(participant_ids)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start:start + 500]
            rows = await session.execute(
                select(ParticipantKey.participant_id, ParticipantKey.wrapped).where(ParticipantKey.participant_id.in_(chunk))
            )
            for participant_id, wrapped in rows:
                keys[participant_id] = self._keys.unwrap(wrapped, str(participant_id))
        missing = participant_ids - keys.keys()
        if missing:
            raise OutboxError(f"{len(missing)} recipient(s) have no data key (erased)")
        return keys

    async def _wake_on_commit(self, session: AsyncSession, platforms: set[str]) -> None:
        """Ring the senders once the caller's transaction commits (never before: they would find nothing)."""
        pending: _PendingWake | None = session.info.get("outbox_wake")
        if pending is None:
            pending = session.info["outbox_wake"] = _PendingWake()
            wakeup = self._wakeup
            sync_session = session.sync_session

            def committed(_: Session) -> None:
                for platform in pending.platforms:
                    wakeup.ring(platform)
                pending.platforms.clear()

            def rolled_back(_: Session) -> None:
                pending.platforms.clear()

            event.listen(sync_session, "after_commit", committed)
            event.listen(sync_session, "after_rollback", rolled_back)
        new = platforms - pending.platforms
        pending.platforms.update(platforms)
        if new and _is_postgresql(session):
            for platform in sorted(new):  # transactional: delivered to listeners on commit only
                await session.execute(text("SELECT pg_notify(:channel, :platform)"),
                                      {"channel": NOTIFY_CHANNEL, "platform": platform})


_ANALYZE_AFTER = 500


def _is_postgresql(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def recipients_for(participants: Sequence[tuple[int, str]]) -> list[ToParticipant]:
    """Convenience: ``[(participant_id, platform), ...]`` as recipients."""
    return [ToParticipant(pid, platform) for pid, platform in participants]
