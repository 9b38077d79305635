"""Database tables. No raw platform id, name or message text is ever a column.

Identity is a keyed pseudonym; addresses and free text are sealed (``*_enc`` columns,
AES-GCM). Deleting a participant cascades to every row that belongs to them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    or_,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.storage.lifecycle import RetentionRule, SealedColumn, SealKey

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UTC = dt.UTC


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: DateTime(timezone=True)}


class Organisation(Base):
    """A CSO, survivor/victim association or protocol signatory. ``code`` is what staff type."""

    __tablename__ = "organisations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def organisation_name_context(organisation_id: int) -> str:
    return f"organisations.name:{organisation_id}"


ORGANISATION_NAME = SealedColumn(Organisation.name_enc, lambda row: organisation_name_context(row.id), SealKey.MASTER)


class Group(Base):
    """An audience: a thematic focus group, an association's members, bulletin readers."""

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id", ondelete="SET NULL"))
    name_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


def group_name_context(group_id: int) -> str:
    return f"groups.name:{group_id}"


GROUP_NAME = SealedColumn(Group.name_enc, lambda row: group_name_context(row.id), SealKey.MASTER)


class Participant(Base):
    """A person who consented. Found by ``pseudonym`` only."""

    __tablename__ = "participants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pseudonym: Mapped[str] = mapped_column(String(64), unique=True)
    platform: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    organisation_id: Mapped[int | None] = mapped_column(
        ForeignKey("organisations.id", ondelete="SET NULL"), index=True
    )
    consented_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A day, not a timestamp: enough for retention, less of a activity trace.
    last_seen_on: Mapped[dt.date] = mapped_column(Date, default=lambda: utcnow().date())

    key: Mapped[ParticipantKey] = relationship(cascade="all, delete-orphan", passive_deletes=True, uselist=False)
    addresses: Mapped[list[ParticipantAddress]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


INACTIVE_PARTICIPANTS = RetentionRule(
    "participants", Participant, lambda cutoff: Participant.last_seen_on < cutoff.date(), "inactive_participant_days")


class ParticipantKey(Base):
    """The participant's data key, wrapped by a master key. Deleting it shreds their data."""

    __tablename__ = "participant_keys"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    master_key_id: Mapped[str] = mapped_column(String(16))


def data_key_context(participant_id: int) -> str:
    """Also what ``KeyRing.new_data_key``/``unwrap`` bind a wrapped key to (``owner`` = the id)."""
    return f"data-key:{participant_id}"


PARTICIPANT_KEY = SealedColumn(ParticipantKey.wrapped, lambda row: data_key_context(row.participant_id),
                               SealKey.MASTER, key_id_column=ParticipantKey.master_key_id)


class ParticipantAddress(Base):
    """Where to reach a participant on one platform (chat id, room id), sealed."""

    __tablename__ = "participant_addresses"
    __table_args__ = (UniqueConstraint("participant_id", "platform"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"))
    platform: Mapped[str] = mapped_column(String(16))
    address_enc: Mapped[bytes] = mapped_column(LargeBinary)
    reachable: Mapped[bool] = mapped_column(Boolean, default=True)
    unreachable_reason: Mapped[str | None] = mapped_column(String(32))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def address_context(participant_id: int, platform: str) -> str:
    return f"participant_addresses.address_enc:{participant_id}:{platform}"


PARTICIPANT_ADDRESS = SealedColumn(ParticipantAddress.address_enc,
                                   lambda row: address_context(row.participant_id, row.platform), SealKey.PARTICIPANT)


memberships = Table(
    "memberships",
    Base.metadata,
    Column("participant_id", ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("joined_on", Date, nullable=False),
)

invite_groups = Table(
    "invite_groups",
    Base.metadata,
    Column("invite_id", ForeignKey("invite_codes.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
)


class InviteCode(Base):
    """Single-use, expiring. Only a keyed digest of the code is stored; who redeemed it is not."""

    __tablename__ = "invite_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_digest: Mapped[str] = mapped_column(String(64), unique=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    redeemed_at: Mapped[dt.datetime | None]


SPENT_INVITES = RetentionRule(
    "invites", InviteCode,
    lambda cutoff: or_(InviteCode.expires_at < cutoff, InviteCode.redeemed_at < cutoff), "expired_invite_days")


class DialogState(Base):
    """Where one person is in one conversation. Keyed by pseudonym so that onboarding
    can be resumed before consent; a decline deletes it."""

    __tablename__ = "dialog_states"

    pseudonym: Mapped[str] = mapped_column(String(64), primary_key=True)
    dialog: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(64))
    prompt_id: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    data_enc: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


def dialog_state_context(pseudonym: str) -> str:
    return f"dialog_states.data:{pseudonym}"


DIALOG_STATE_DATA = SealedColumn(DialogState.data_enc, lambda row: dialog_state_context(row.pseudonym), SealKey.MASTER)
STALE_DIALOG_STATES = RetentionRule(
    "dialog_states", DialogState, lambda cutoff: DialogState.updated_at < cutoff, "dialog_state_days")


class OutboxMessage(Base):
    """One bulk message waiting for, or done with, delivery. Written in the same
    transaction as the work that creates it; drained at the platform's rate."""

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "platform", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # A participant, or else a staff destination ("staff:room", "staff:chat", "staff:member:<pseudonym>").
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    destination: Mapped[str | None] = mapped_column(String(96))
    platform: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    ref: Mapped[str | None] = mapped_column(String(64), index=True)
    payload_enc: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[dt.datetime | None]
    txn_id: Mapped[str] = mapped_column(String(64), unique=True)
    last_error: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None]


def outbox_payload_context(txn_id: str) -> str:
    return f"outbox.payload:{txn_id}"


OUTBOX_PAYLOAD = SealedColumn(OutboxMessage.payload_enc, lambda row: outbox_payload_context(row.txn_id), SealKey.MASTER)
OLD_OUTBOX = RetentionRule("outbox", OutboxMessage, lambda cutoff: OutboxMessage.created_at < cutoff, "outbox_days")


class AuditEntry(Base):
    """Metadata-only record of a staff action, hash-chained so edits and gaps show."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="{}")
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


OLD_AUDIT = RetentionRule("audit", AuditEntry, lambda cutoff: AuditEntry.at < cutoff, "audit_days")


class SurveyRun(Base):
    """One launch of a survey definition to a group."""

    __tablename__ = "survey_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    survey_id: Mapped[str] = mapped_column(String(48), index=True)
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(16), default="open")
    launched_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[dt.datetime | None]


class SurveyInvitation(Base):
    """A person's place in a run: invited, answering (progress sealed with their key), completed."""

    __tablename__ = "survey_invitations"
    __table_args__ = (UniqueConstraint("run_id", "participant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("survey_runs.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="invited")
    progress_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    invited_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reminded_at: Mapped[dt.datetime | None]


def survey_progress_context(invitation_id: int) -> str:
    return f"survey_invitations.progress:{invitation_id}"


SURVEY_PROGRESS = SealedColumn(SurveyInvitation.progress_enc, lambda row: survey_progress_context(row.id),
                               SealKey.PARTICIPANT)


class SurveyResponse(Base):
    """A submitted questionnaire. For anonymous surveys: no participant, no date, a random id,
    and no rowid, so neither order nor time links it to an invitation."""

    __tablename__ = "survey_responses"
    __table_args__ = {"sqlite_with_rowid": False}

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("survey_runs.id", ondelete="CASCADE"), index=True)
    survey_id: Mapped[str] = mapped_column(String(48), index=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    language: Mapped[str] = mapped_column(String(8))
    submitted_on: Mapped[dt.date | None] = mapped_column(Date)


class SurveyAnswer(Base):
    """One answer: an option id, a number, or sealed free text (one row per ticked option)."""

    __tablename__ = "survey_answers"
    __table_args__ = {"sqlite_with_rowid": False}

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    response_id: Mapped[str] = mapped_column(ForeignKey("survey_responses.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[str] = mapped_column(String(48))
    option_id: Mapped[str | None] = mapped_column(String(48))
    number_value: Mapped[int | None] = mapped_column(Integer)
    text_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


def survey_answer_context(answer_id: str) -> str:
    return f"survey_answers.text:{answer_id}"


# The person's key, except for anonymous surveys (no link to anyone: the master key).
SURVEY_ANSWER_TEXT = SealedColumn(SurveyAnswer.text_enc, lambda row: survey_answer_context(row.id), SealKey.PER_ROW)


class ProcessedEvent(Base):
    """Platform events already handled (keyed digest of the event id), so a redelivery after a
    crash is not answered twice. Kept briefly (retention)."""

    __tablename__ = "processed_events"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


PROCESSED_EVENTS = RetentionRule(
    "processed_events", ProcessedEvent, lambda cutoff: ProcessedEvent.seen_at < cutoff, "processed_event_days")


# -- Confidential contact requests (bot/cases) ------------------------------------------------


class Case(Base):
    """A person's request to talk to staff. Metadata only: the content is in ``case_messages``,
    sealed twice. ``participant_id`` becomes NULL when the person is erased; the case stays
    (withdrawn, with no content) until retention purges it."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(12), unique=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id", ondelete="SET NULL"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    topic: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)  # open, claimed, closed, withdrawn
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[dt.datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # a staff actor as the audit log names it
    closed_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    waiting_since: Mapped[dt.datetime | None]  # the person's oldest message no staff member has answered
    last_person_at: Mapped[dt.datetime | None]
    last_staff_at: Mapped[dt.datetime | None]
    claim_reminded_at: Mapped[dt.datetime | None]
    answer_reminded_at: Mapped[dt.datetime | None]
    staff_room: Mapped[str | None] = mapped_column(String(255))  # the staff room its thread is in ...
    staff_thread_root: Mapped[str | None] = mapped_column(String(255), index=True)  # ... and the thread's first event


class CaseMessage(Base):
    """One message of a case, from the person or from staff: sealed to the staff public key,
    then with the person's data key (``bot/cases/crypto.py``)."""

    __tablename__ = "case_messages"
    __table_args__ = (UniqueConstraint("case_id", "seq"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id", ondelete="CASCADE"), index=True)
    seq: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(8))  # person or staff: never which staff member
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    staff_key_id: Mapped[str] = mapped_column(String(16))
    body_enc: Mapped[bytes] = mapped_column(LargeBinary)


def case_message_context(message_id: str) -> str:
    return f"case_messages.body:{message_id}"


# The outer layer is the person's key; the inner one (the staff public key) is no key of ours to rotate.
CASE_MESSAGE_BODY = SealedColumn(CaseMessage.body_enc, lambda row: case_message_context(row.id), SealKey.PARTICIPANT)
ENDED_CASES = RetentionRule(
    "cases", Case, lambda cutoff: and_(Case.status.in_(("closed", "withdrawn")), Case.closed_at < cutoff),
    "cases_days")
