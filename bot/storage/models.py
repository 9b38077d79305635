"""Database tables. No raw platform id, name or message text is ever a column.

Identity is a keyed pseudonym; addresses and free text are sealed (``*_enc`` columns,
AES-GCM). Deleting a participant cascades to every row that belongs to them.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    cast,
    false,
    literal,
    or_,
    select,
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
    # Whoever redeems it becomes a contact person of the organisation (answers its check-ins).
    contact_person: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


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


# The person's key once they are registered; before consent (no key of their own yet) the master key.
DIALOG_STATE_DATA = SealedColumn(DialogState.data_enc, lambda row: dialog_state_context(row.pseudonym),
                                 SealKey.PER_ROW)
STALE_DIALOG_STATES = RetentionRule(
    "dialog_states", DialogState, lambda cutoff: DialogState.updated_at < cutoff, "dialog_state_days")


class OutboxMessage(Base):
    """One message waiting for, or done with, delivery (see :mod:`bot.services.outbox`).

    Written in the same transaction as the work that creates it. It addresses a participant
    (``participant_id``) or a staff destination (``staff_destination``, resolved from the
    configuration when sent); ``queue`` names the recipient, whose rows leave in ``id`` order.
    The payload is sealed, and erased (NULL) once the row is final; the rest is the metadata
    delivery statistics need.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "platform", "status", "priority", "next_attempt_at", "id"),
        Index("ix_outbox_queue", "platform", "queue", "status", "id"),
        CheckConstraint("(participant_id IS NULL) <> (staff_destination IS NULL)", name="one_recipient"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    participant_id: Mapped[int | None] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    staff_destination: Mapped[str | None] = mapped_column(String(32))
    queue: Mapped[str] = mapped_column(String(40))
    thread: Mapped[str | None] = mapped_column(String(64))  # staff rows: sent in this thread where threads exist
    platform: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(SmallInteger, default=1)
    ref: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str] = mapped_column(String(8), default="en")
    payload_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[dt.datetime | None]
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    lease_until: Mapped[dt.datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(32))
    txn_id: Mapped[str] = mapped_column(String(64), unique=True)
    last_error: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    sent_at: Mapped[dt.datetime | None]


def outbox_payload_context(queue: str, txn_id: str) -> str:
    """A payload is bound to its recipient (the row's ``queue``: a person or a staff destination)
    and its row's transaction id: copied into another recipient's row, it no longer opens."""
    return f"outbox.payload:{queue}:{txn_id}"


def legacy_outbox_payload_context(txn_id: str) -> str:
    """How payloads were bound before 0005_hardening; ``keys rotate`` rebinds them."""
    return f"outbox.payload:{txn_id}"


# A participant's row is sealed with their data key, a staff destination's with the master key.
OUTBOX_PAYLOAD = SealedColumn(OutboxMessage.payload_enc, lambda row: outbox_payload_context(row.queue, row.txn_id),
                              SealKey.PER_ROW, legacy_context=lambda row: legacy_outbox_payload_context(row.txn_id))
OLD_OUTBOX = RetentionRule("outbox", OutboxMessage, lambda cutoff: OutboxMessage.created_at < cutoff, "outbox_days")


class OutboxThread(Base):
    """Where a thread of a staff destination starts (Matrix: the event of its first message), so
    later rows of the same thread are sent into it. Metadata of the staff room only."""

    __tablename__ = "outbox_threads"

    staff_destination: Mapped[str] = mapped_column(String(32), primary_key=True)
    thread: Mapped[str] = mapped_column(String(64), primary_key=True)
    address: Mapped[str] = mapped_column(String(255))  # the staff room the thread is in (configuration may change)
    root_id: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


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


def survey_answer_context(answer: SurveyAnswer) -> str:
    """A free-text answer is bound to its response, question and row: moved into another
    response (or relabelled as another question's answer), it no longer opens."""
    return f"survey_answers.text:{answer.response_id}:{answer.question_id}:{answer.id}"


def legacy_survey_answer_context(answer: SurveyAnswer) -> str:
    """How answers were bound before 0005_hardening (the row id only); ``keys rotate`` rebinds those
    under the master key; those under a person's key keep it (they can move only among that
    person's own rows)."""
    return f"survey_answers.text:{answer.id}"


# The person's key, except for anonymous surveys (no link to anyone: the master key).
SURVEY_ANSWER_TEXT = SealedColumn(SurveyAnswer.text_enc, survey_answer_context, SealKey.PER_ROW,
                                  legacy_context=legacy_survey_answer_context)


class SurveyBallot(Base):
    """An anonymous response waiting to be stored with others (the ballot box).

    Written in its own transaction, never in the one that marks the invitation completed, and
    moved into ``survey_responses`` in batches at random times. Nothing in it names or orders it
    against a person: a random id, no rowid, no timestamp; the answers sealed with the master key."""

    __tablename__ = "survey_ballots"
    __table_args__ = {"sqlite_with_rowid": False}

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("survey_runs.id", ondelete="CASCADE"))
    survey_id: Mapped[str] = mapped_column(String(48))
    language: Mapped[str] = mapped_column(String(8))
    payload_enc: Mapped[bytes] = mapped_column(LargeBinary)


def survey_ballot_context(ballot_id: str) -> str:
    return f"survey_ballots.payload:{ballot_id}"


SURVEY_BALLOT = SealedColumn(SurveyBallot.payload_enc, lambda row: survey_ballot_context(row.id), SealKey.MASTER)


class ProcessedEvent(Base):
    """Platform events already handled (keyed digest of the event id), so a redelivery after a
    crash is not answered twice. Kept briefly (retention), and deleted with their owner
    (``owner``: a keyed digest of the person's pseudonym), so an erased person's message ids
    cannot be confirmed by trying them."""

    __tablename__ = "processed_events"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)


PROCESSED_EVENTS = RetentionRule(
    "processed_events", ProcessedEvent, lambda cutoff: ProcessedEvent.seen_at < cutoff, "processed_event_days")


# -- check-ins with associations ------------------------------------------------------------
# An association's history (cycles, answers, flags) belongs to the association: it is sealed
# with the master key and stays when a contact person is erased; only the link to them goes.


class OrganisationContact(Base):
    """A member the organisation named to answer for it (check-ins). Erased with the person."""

    __tablename__ = "organisation_contacts"

    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True,
                                                index=True)
    since: Mapped[dt.date] = mapped_column(Date, default=lambda: utcnow().date())


class CheckinSchedule(Base):
    """An association's rhythm (every N days at a local time, or cron, in its time zone) and the
    next due time, which the scheduled job claims and advances."""

    __tablename__ = "checkin_schedules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), unique=True)
    template_id: Mapped[str] = mapped_column(String(48))
    timezone: Mapped[str] = mapped_column(String(64))
    every_days: Mapped[int | None] = mapped_column(Integer)
    at_time: Mapped[str | None] = mapped_column(String(5))
    anchor_on: Mapped[dt.date | None] = mapped_column(Date)
    cron: Mapped[str | None] = mapped_column(String(120))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    next_due_at: Mapped[dt.datetime | None] = mapped_column(index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CheckinCycle(Base):
    """One check-in of one association: open, then answered or missed. ``(organisation, seq)`` and
    ``(organisation, due_at)`` are unique, so a doubled claim of the same due time cannot create it twice."""

    __tablename__ = "checkin_cycles"
    __table_args__ = (
        UniqueConstraint("organisation_id", "seq", name="uq_checkin_cycles_organisation_seq"),
        UniqueConstraint("organisation_id", "due_at", name="uq_checkin_cycles_organisation_due"),
        Index("ix_checkin_cycles_open", "status", "opened_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    template_id: Mapped[str] = mapped_column(String(48))
    due_at: Mapped[dt.datetime]
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[dt.datetime]
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    reminded_at: Mapped[dt.datetime | None]
    closed_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    answered_by: Mapped[int | None] = mapped_column(ForeignKey("participants.id", ondelete="SET NULL"), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    nothing_new: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_at: Mapped[dt.datetime | None]


class CheckinDelivery(Base):
    """A contact person who was sent a cycle; their unfinished answer is sealed with their key."""

    __tablename__ = "checkin_deliveries"
    __table_args__ = (UniqueConstraint("cycle_id", "participant_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("checkin_cycles.id", ondelete="CASCADE"), index=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), index=True)
    progress_enc: Mapped[bytes | None] = mapped_column(LargeBinary)
    sent_at: Mapped[dt.datetime]


class CheckinAnswer(Base):
    """One answer of a cycle: an option id, a number, or free text sealed with the master key
    (the association's, kept when the person who typed it is erased)."""

    __tablename__ = "checkin_answers"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("checkin_cycles.id", ondelete="CASCADE"), index=True)
    question_id: Mapped[str] = mapped_column(String(48))
    option_id: Mapped[str | None] = mapped_column(String(48))
    number_value: Mapped[int | None] = mapped_column(Integer)
    text_enc: Mapped[bytes | None] = mapped_column(LargeBinary)


class CheckinFlag(Base):
    """A flag an answer raised (need, call request, safety); open until staff acknowledge it."""

    __tablename__ = "checkin_flags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    cycle_id: Mapped[int] = mapped_column(ForeignKey("checkin_cycles.id", ondelete="CASCADE"), index=True)
    organisation_id: Mapped[int] = mapped_column(ForeignKey("organisations.id", ondelete="CASCADE"), index=True)
    flag: Mapped[str] = mapped_column(String(16))
    question_id: Mapped[str] = mapped_column(String(48))
    option_id: Mapped[str] = mapped_column(String(48))
    raised_at: Mapped[dt.datetime]
    acked_at: Mapped[dt.datetime | None]
    acked_by: Mapped[str | None] = mapped_column(String(64))


def checkin_answer_context(answer: CheckinAnswer) -> str:
    """Bound to its cycle, question and row: moved to another association's cycle (or relabelled as
    another question's answer), it no longer opens."""
    return f"checkin_answers.text:{answer.cycle_id}:{answer.question_id}:{answer.id}"


def legacy_checkin_answer_context(answer: CheckinAnswer) -> str:
    """How answers were bound before 0005_hardening (the row id only); ``keys rotate`` rebinds them."""
    return f"checkin_answers.text:{answer.id}"


def checkin_progress_context(delivery: CheckinDelivery) -> str:
    """Bound to its owner's delivery row (cycle and person): copied into another row, it no longer opens."""
    return f"checkin_deliveries.progress:{delivery.cycle_id}:{delivery.participant_id}:{delivery.id}"


def legacy_checkin_progress_context(delivery: CheckinDelivery) -> str:
    """How drafts were bound before 0005_hardening (the row id only); they still open."""
    return f"checkin_deliveries.progress:{delivery.id}"


# The association's free text (the master key: kept when the person who typed it is erased);
# a contact person's unfinished answer (their own key).
CHECKIN_ANSWER_TEXT = SealedColumn(CheckinAnswer.text_enc, checkin_answer_context, SealKey.MASTER,
                                   legacy_context=legacy_checkin_answer_context)
CHECKIN_PROGRESS = SealedColumn(CheckinDelivery.progress_enc, checkin_progress_context, SealKey.PARTICIPANT,
                                legacy_context=legacy_checkin_progress_context)
# An association's history goes with its cycles (answers, flags and deliveries cascade).
CHECKIN_HISTORY = RetentionRule("checkin_cycles", CheckinCycle, lambda cutoff: CheckinCycle.due_at < cutoff,
                                "checkin_days")


# -- Bulletins --------------------------------------------------------------------------------
# A bulletin (the id of its file) has versions; a version is what is approved and sent. A send
# goes to an audience, now or at a time; its recipients are fixed when it starts, each with the
# outbox row that carries their copy. Notices are the staff messages that show its progress.


class BulletinRecord(Base):
    __tablename__ = "bulletins"

    id: Mapped[str] = mapped_column(String(48), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class BulletinVersion(Base):
    """The content (titles and bodies, sealed with the master key until it is published) and its approval."""

    __tablename__ = "bulletin_versions"
    __table_args__ = (UniqueConstraint("bulletin_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulletin_id: Mapped[str] = mapped_column(ForeignKey("bulletins.id", ondelete="CASCADE"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    languages: Mapped[str] = mapped_column(String(32))  # "en,ar,ckb,ku": the first is the fallback
    content_enc: Mapped[bytes] = mapped_column(LargeBinary)
    author: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[dt.datetime | None]


def bulletin_content_context(bulletin_id: str, number: int) -> str:
    return f"bulletin_versions.content:{bulletin_id}:{number}"


BULLETIN_CONTENT = SealedColumn(BulletinVersion.content_enc,
                                lambda row: bulletin_content_context(row.bulletin_id, row.number), SealKey.MASTER)


class BulletinSend(Base):
    """One request to send a bulletin to an audience; its state survives restarts."""

    __tablename__ = "bulletin_sends"
    __table_args__ = (Index("ix_bulletin_sends_due", "status", "due_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    bulletin_id: Mapped[str] = mapped_column(ForeignKey("bulletins.id", ondelete="CASCADE"), index=True)
    version_id: Mapped[int | None] = mapped_column(ForeignKey("bulletin_versions.id", ondelete="SET NULL"))
    audience: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16))  # scheduled, sending, done, cancelled
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    due_at: Mapped[dt.datetime]
    timed: Mapped[bool] = mapped_column(Boolean, default=False)  # --at was given
    language: Mapped[str] = mapped_column(String(8))  # of the staff notices
    started_at: Mapped[dt.datetime | None]
    finished_at: Mapped[dt.datetime | None]
    cancelled_by: Mapped[str | None] = mapped_column(String(64))
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[str | None] = mapped_column(Text)  # counts frozen when it ends (JSON, no ids)
    reporter_lease_until: Mapped[dt.datetime | None]


# Finished sends go, with the list of who received them (their recipients cascade).
OLD_BULLETIN_SENDS = RetentionRule(
    "bulletin_sends", BulletinSend, lambda cutoff: BulletinSend.finished_at < cutoff, "bulletin_days")


class BulletinRecipient(Base):
    """Who a started send goes to, in which language, and the outbox row with their copy."""

    __tablename__ = "bulletin_recipients"

    send_id: Mapped[int] = mapped_column(ForeignKey("bulletin_sends.id", ondelete="CASCADE"), primary_key=True)
    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True,
                                                index=True)
    outbox_id: Mapped[int | None] = mapped_column(Integer, index=True)
    platform: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))  # the language of the copy
    fallback: Mapped[bool] = mapped_column(Boolean, default=False)  # not the reader's own language


class BulletinSubscription(Base):
    """A participant's choice about bulletins. No row means the default: subscribed."""

    __tablename__ = "bulletin_subscriptions"

    participant_id: Mapped[int] = mapped_column(ForeignKey("participants.id", ondelete="CASCADE"), primary_key=True)
    subscribed: Mapped[bool] = mapped_column(Boolean)
    changed_on: Mapped[dt.date] = mapped_column(Date, default=lambda: utcnow().date())


class BulletinNotice(Base):
    """A staff chat that follows a send: one progress message edited in place, then a summary."""

    __tablename__ = "bulletin_notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    send_id: Mapped[int] = mapped_column(ForeignKey("bulletin_sends.id", ondelete="CASCADE"), index=True)
    platform: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(32), unique=True)  # binds the sealed address to this row
    address_enc: Mapped[bytes] = mapped_column(LargeBinary)
    language: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[str | None] = mapped_column(String(255))
    shown: Mapped[str | None] = mapped_column(String(64))  # digest of the text last shown: no edit without change
    edited_at: Mapped[dt.datetime | None]
    summary_sent: Mapped[bool] = mapped_column(Boolean, default=False)


def bulletin_notice_context(token: str) -> str:
    return f"bulletin_notices.address:{token}"


# A staff chat's address: belongs to no participant, so the master key.
BULLETIN_NOTICE_ADDRESS = SealedColumn(BulletinNotice.address_enc, lambda row: bulletin_notice_context(row.token),
                                       SealKey.MASTER)


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
# The staff room's thread of a case goes with the case (its thread key is "case:<id>").
CASE_THREADS = RetentionRule(
    "case_threads", OutboxThread,
    lambda cutoff: and_(OutboxThread.thread.like("case:%"),
                        OutboxThread.thread.not_in(select(literal("case:") + cast(Case.id, String)))),
    "cases_days")


# ---------------------------------------------------------------------------------------------
# Hardening: which key file this database belongs to.
# ---------------------------------------------------------------------------------------------


class KeyCheck(Base):
    """One row binding the database to its key file, checked at every start.

    ``hmac_check`` is a keyed digest of a fixed text (proves the pseudonym key), ``master_check`` a
    fixed text sealed with the current master key (proves the master key), ``key_ids`` the master
    keys the database's sealed values need. None of it helps anyone without the key file."""

    __tablename__ = "key_check"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    hmac_check: Mapped[str] = mapped_column(String(64))
    master_check: Mapped[bytes] = mapped_column(LargeBinary)
    key_ids: Mapped[str] = mapped_column(String(255))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ForgetRequest(Base):
    """An erased person's address that a transport must still forget (a Matrix room to leave, its
    keys to drop). Written with the erasure, deleted once done; sealed with the master key, since
    the person's own key is gone by then."""

    __tablename__ = "forget_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    platform: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    address_enc: Mapped[bytes] = mapped_column(LargeBinary)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


def forget_request_context(ref: str) -> str:
    return f"forget_requests.address:{ref}"


FORGET_REQUEST_ADDRESS = SealedColumn(ForgetRequest.address_enc, lambda row: forget_request_context(row.ref),
                                      SealKey.MASTER)
OLD_FORGET_REQUESTS = RetentionRule(
    "forget_requests", ForgetRequest, lambda cutoff: ForgetRequest.created_at < cutoff, "outbox_days")
