"""Survey runs: launch to a group, invitations through the outbox, progress, submission, reminders.

Launching and closing write their audit entry here, once: the staff chat command and the
``civicbot survey`` verbs both call these functions with their actor.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, exists, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from bot.core.i18n import I18n
from bot.core.model import Outbound
from bot.core.security import DecryptionError, KeyRing
from bot.services.audit import AuditLog
from bot.services.outbox import Outbox, OutboxKind, ToParticipant
from bot.services.participants import Participants
from bot.storage.db import Database, dialect_insert
from bot.storage.models import (
    Group,
    Participant,
    ParticipantAddress,
    SurveyAnswer,
    SurveyBallot,
    SurveyInvitation,
    SurveyResponse,
    SurveyRun,
    legacy_survey_answer_context,
    memberships,
    survey_answer_context,
    survey_ballot_context,
    survey_progress_context,
    utcnow,
)
from bot.surveys.definitions import Survey
from bot.surveys.questions import QuestionType

log = logging.getLogger(__name__)

_RANDOM = random.SystemRandom()

INVITED, IN_PROGRESS, COMPLETED = "invited", "in_progress", "completed"
OPEN, CLOSED = "open", "closed"


def run_ref(run_id: int) -> str:
    """The outbox reference of a run's invitations and reminders: closing the run cancels them."""
    return f"run:{run_id}"


class SurveyUnavailable(Exception):
    """The survey is unknown, closed, or outside its dates; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Offer:
    """An open survey a person can answer now."""

    invitation_id: int
    survey: Survey
    started: bool


@dataclass(frozen=True, slots=True)
class Launch:
    run_id: int
    invited: int


class Surveys:
    """Domain logic of surveys. Definitions are loaded once at start and passed in."""

    def __init__(self, definitions: Mapping[str, Survey], keys: KeyRing, participants: Participants,
                 outbox: Outbox, i18n: I18n, audit: AuditLog) -> None:
        self.definitions = dict(definitions)
        self._keys = keys
        self._participants = participants
        self._outbox = outbox
        self._i18n = i18n
        self.audit = audit

    @property
    def i18n(self) -> I18n:
        return self._i18n

    def definition(self, survey_id: str) -> Survey:
        try:
            return self.definitions[survey_id]
        except KeyError:
            raise SurveyUnavailable("unknown") from None

    # -- staff ---------------------------------------------------------------------

    async def launch(self, session: AsyncSession, survey_id: str, group_code: str, *, actor: str,
                     again: bool = False) -> Launch:
        """Create a run and invite every reachable member of the group, in their language; audited.

        A second run to a group whose run of the survey is still open is refused
        (``SurveyUnavailable("already_open")``) unless ``again``: launching twice by mistake
        would send everyone a second invitation. Nobody is invited twice to the same survey
        while an earlier invitation of theirs is still open and unfinished.
        """
        survey = self.definition(survey_id)
        if not survey.is_open(utcnow().date()):
            raise SurveyUnavailable("dates")
        group = await session.scalar(select(Group).where(Group.code == group_code))
        if group is None:
            raise SurveyUnavailable("group")
        if not again and await self.open_run(session, survey.id, group.id) is not None:
            raise SurveyUnavailable("already_open")
        run = SurveyRun(survey_id=survey.id, group_id=group.id, status=OPEN)
        session.add(run)
        await session.flush()
        members = await session.execute(
            select(Participant.id, Participant.language, Participant.platform)
            .join(memberships, memberships.c.participant_id == Participant.id)
            .join(ParticipantAddress, (ParticipantAddress.participant_id == Participant.id)
                  & (ParticipantAddress.platform == Participant.platform))
            .where(memberships.c.group_id == group.id, ParticipantAddress.reachable.is_(True),
                   Participant.id.not_in(self._unfinished(survey.id)))
            .order_by(Participant.id)
        )
        messages: dict[str, Outbound] = {}
        invitations: list[tuple[ToParticipant, Outbound]] = []
        for participant_id, language, platform in members:
            session.add(SurveyInvitation(run_id=run.id, participant_id=participant_id, status=INVITED))
            if language not in messages:
                messages[language] = self._invitation_message(survey, language, reminder=False)
            invitations.append((ToParticipant(participant_id, platform), messages[language]))
        await session.flush()
        await self._outbox.enqueue_many(session, invitations, OutboxKind.SURVEY_INVITATION, ref=run_ref(run.id))
        invited = len(invitations)
        await self.audit.append(session, actor, "survey.launch", survey.id,
                                {"group": group_code, "invited": invited, "again": again})
        return Launch(run.id, invited)

    async def open_run(self, session: AsyncSession, survey_id: str, group_id: int) -> SurveyRun | None:
        return await session.scalar(
            select(SurveyRun).where(SurveyRun.survey_id == survey_id, SurveyRun.group_id == group_id,
                                    SurveyRun.status == OPEN).order_by(SurveyRun.id).limit(1)
        )

    @staticmethod
    def _unfinished(survey_id: str) -> Select[Any]:
        """Participants with an unfinished invitation to an open run of the survey."""
        return (
            select(SurveyInvitation.participant_id)
            .join(SurveyRun, SurveyRun.id == SurveyInvitation.run_id)
            .where(SurveyRun.survey_id == survey_id, SurveyRun.status == OPEN,
                   SurveyInvitation.status != COMPLETED)
        )

    async def _invite(self, session: AsyncSession, run: SurveyRun, survey: Survey, participant_id: int,
                      language: str, platform: str) -> None:
        session.add(SurveyInvitation(run_id=run.id, participant_id=participant_id, status=INVITED))
        await self._outbox.enqueue(session, ToParticipant(participant_id, platform), OutboxKind.SURVEY_INVITATION,
                                   self._invitation_message(survey, language, reminder=False), ref=run_ref(run.id))

    async def invite_late_joiners(self, session: AsyncSession, participant_id: int | None = None) -> int:
        """Invite members who joined a group after its run was launched (or were unreachable then).

        Each person is invited once per run; someone who already has an invitation to an open
        run of the same survey is left alone. Returns how many were invited.
        """
        today = utcnow().date()
        other = aliased(SurveyRun)
        invited_to_this_survey = exists().where(
            SurveyInvitation.participant_id == Participant.id, SurveyInvitation.run_id == other.id,
            other.survey_id == SurveyRun.survey_id, or_(other.status == OPEN, other.id == SurveyRun.id),
        )
        query = (
            select(SurveyRun, Participant.id, Participant.language, Participant.platform)
            .join(memberships, memberships.c.group_id == SurveyRun.group_id)
            .join(Participant, Participant.id == memberships.c.participant_id)
            .join(ParticipantAddress, (ParticipantAddress.participant_id == Participant.id)
                  & (ParticipantAddress.platform == Participant.platform))
            .where(SurveyRun.status == OPEN, ParticipantAddress.reachable.is_(True), ~invited_to_this_survey)
            .order_by(SurveyRun.id, Participant.id)
        )
        if participant_id is not None:
            query = query.where(Participant.id == participant_id)
        done: set[tuple[int, str]] = set()  # one invitation per person and survey, even via two groups
        for run, pid, language, platform in (await session.execute(query)).all():
            survey = self.definitions.get(run.survey_id)
            if survey is None or not survey.is_open(today) or (pid, run.survey_id) in done:
                continue
            done.add((pid, run.survey_id))
            await self._invite(session, run, survey, pid, language, platform)
        await session.flush()
        return len(done)

    async def close(self, session: AsyncSession, survey_id: str, *, actor: str) -> int:
        """Close every open run of the survey; invitations and reminders not sent yet are cancelled;
        audited. Returns how many runs were closed."""
        self.definition(survey_id)
        runs = list(await session.scalars(
            select(SurveyRun).where(SurveyRun.survey_id == survey_id, SurveyRun.status == OPEN)
        ))
        now = utcnow()
        for run in runs:
            run.status, run.closed_at = CLOSED, now
            await self._outbox.cancel(session, run_ref(run.id))
        await session.flush()
        await self.audit.append(session, actor, "survey.close", survey_id, {"runs": len(runs)})
        return len(runs)

    async def runs(self, session: AsyncSession, survey_id: str | None = None) -> list[SurveyRun]:
        query = select(SurveyRun).order_by(SurveyRun.id)
        if survey_id:
            query = query.where(SurveyRun.survey_id == survey_id)
        return list(await session.scalars(query))

    async def send_reminders(self, session: AsyncSession, now: dt.datetime, after: dt.timedelta) -> int:
        """One reminder per unfinished invitation of an open run, ``after`` its invitation."""
        rows = await session.execute(
            select(SurveyInvitation, SurveyRun.survey_id, Participant.language, Participant.platform)
            .join(SurveyRun, SurveyRun.id == SurveyInvitation.run_id)
            .join(Participant, Participant.id == SurveyInvitation.participant_id)
            .where(SurveyRun.status == OPEN, SurveyInvitation.status != COMPLETED,
                   SurveyInvitation.reminded_at.is_(None), SurveyInvitation.invited_at <= now - after)
        )
        sent = 0
        for invitation, survey_id, language, platform in rows:
            survey = self.definitions.get(survey_id)
            if survey is None or not survey.is_open(now.date()):
                continue
            invitation.reminded_at = now
            await self._outbox.enqueue(session, ToParticipant(invitation.participant_id, platform),
                                       OutboxKind.SURVEY_REMINDER,
                                       self._invitation_message(survey, language, reminder=True),
                                       ref=run_ref(invitation.run_id))
            sent += 1
        return sent

    def _invitation_message(self, survey: Survey, language: str, *, reminder: bool) -> Outbound:
        tr = self._i18n.translator(language)
        title = survey.text(survey.title, language)
        if reminder:
            text = tr._("Reminder: you have not finished the survey “%(title)s”. Send /surveys to continue "
                        "where you stopped.", title=title)
        else:
            text = "\n\n".join((tr._("New survey: %(title)s", title=title), survey.text(survey.introduction, language),
                                tr._("Send /surveys to answer.")))
        return Outbound(text=text, direction=tr.direction, language=tr.language)

    # -- participants ---------------------------------------------------------------

    async def offers(self, session: AsyncSession, participant_id: int) -> list[Offer]:
        """The surveys this person can answer now, each once: with several open invitations to one
        survey (two groups, a run launched again), the one already started, else the oldest."""
        await self.invite_late_joiners(session, participant_id)
        today = utcnow().date()
        rows = await session.execute(
            select(SurveyInvitation, SurveyRun.survey_id)
            .join(SurveyRun, SurveyRun.id == SurveyInvitation.run_id)
            .where(SurveyInvitation.participant_id == participant_id, SurveyRun.status == OPEN,
                   SurveyInvitation.status != COMPLETED)
            .order_by(SurveyInvitation.id)
        )
        offers: dict[str, Offer] = {}
        for invitation, survey_id in rows:
            survey = self.definitions.get(survey_id)
            if survey is None or not survey.is_open(today):
                continue
            offer = Offer(invitation.id, survey, invitation.status == IN_PROGRESS)
            if survey_id not in offers or (offer.started and not offers[survey_id].started):
                offers[survey_id] = offer
        return sorted(offers.values(), key=lambda o: o.invitation_id)

    async def invitation(self, session: AsyncSession, invitation_id: int, participant_id: int) -> tuple[SurveyInvitation, Survey]:
        """The invitation if it is this person's and still answerable; else SurveyUnavailable."""
        invitation = await session.get(SurveyInvitation, invitation_id)
        if invitation is None or invitation.participant_id != participant_id:
            raise SurveyUnavailable("unknown")
        run = await session.get(SurveyRun, invitation.run_id)
        survey = self.definitions.get(run.survey_id) if run else None
        if run is None or survey is None:
            raise SurveyUnavailable("unknown")
        if run.status != OPEN or not survey.is_open(utcnow().date()):
            raise SurveyUnavailable("closed")
        if invitation.status == COMPLETED:
            raise SurveyUnavailable("completed")
        return invitation, survey

    async def load_progress(self, session: AsyncSession, invitation: SurveyInvitation) -> dict[str, Any]:
        if invitation.progress_enc is None:
            return {}
        key = await self._participants.data_key(session, invitation.participant_id)
        return dict(json.loads(key.open(invitation.progress_enc, survey_progress_context(invitation.id))))

    async def save_progress(self, session: AsyncSession, invitation: SurveyInvitation, progress: Mapping[str, Any]) -> None:
        """Kept with the invitation, sealed with the person's key: survives /cancel and restarts."""
        key = await self._participants.data_key(session, invitation.participant_id)
        invitation.progress_enc = key.seal(json.dumps(progress, ensure_ascii=False),
                                           survey_progress_context(invitation.id))
        invitation.status = IN_PROGRESS

    async def submit(self, session: AsyncSession, invitation: SurveyInvitation, survey: Survey,
                     answers: Mapping[str, Any], language: str) -> str | None:
        """Mark the invitation completed and store the response; returns the response id.

        Named: the response (participant, date, free text sealed with the person's key) commits
        with the completion. Anonymous: nothing anonymous is written in this transaction, which
        names the person. The answers stay in the invitation, sealed with the person's key as
        the progress was, under a random ballot id; :meth:`hand_off` moves them into the ballot
        box in a later transaction and :meth:`store_ballots` into ``survey_responses`` in
        batches. Returns None for them: there is no response row yet.
        """
        stored_language = survey.language_for(language)
        if survey.anonymous:
            key = await self._participants.data_key(session, invitation.participant_id)
            held = {"ballot": uuid.uuid4().hex, "language": stored_language, "answers": dict(answers)}
            invitation.status = COMPLETED
            invitation.progress_enc = key.seal(json.dumps(held, ensure_ascii=False),
                                               survey_progress_context(invitation.id))
            await session.flush()
            return None
        data_key = await self._participants.data_key(session, invitation.participant_id)
        response_id = await self._store(session, invitation.run_id, survey, stored_language, answers,
                                        participant_id=invitation.participant_id, data_key=data_key)
        invitation.status, invitation.progress_enc = COMPLETED, None
        await session.flush()
        return response_id

    async def _store(self, session: AsyncSession, run_id: int, survey: Survey, language: str,
                     answers: Mapping[str, Any], *, participant_id: int | None, data_key: Any) -> str:
        """One response row and its answers. Anonymous (no participant): no date, a random id,
        free text sealed with the master key."""
        response_id = uuid.uuid4().hex
        session.add(SurveyResponse(
            id=response_id, run_id=run_id, survey_id=survey.id, participant_id=participant_id, language=language,
            submitted_on=None if participant_id is None else utcnow().date(),
        ))
        await session.flush()  # the response row first: answers reference it
        for question in survey.questions:
            value = answers.get(question.id)
            if value is None:
                continue
            for row in self._answer_rows(response_id, question.id, question.type, value, data_key):
                session.add(row)
        return response_id

    # -- anonymous answers: hand-off and batches ------------------------------------

    async def hand_off(self, database: Database) -> int:
        """Move finished anonymous answers out of their invitations into the ballot box.

        Two transactions, neither of which also writes the other side: the first only reads the
        invitations and inserts the ballots (in random order, under the random ballot id chosen
        at completion, so a repeat after a crash inserts nothing twice); the second only clears
        the invitations' copies. Returns how many answers were handed off.
        """
        async with database.sessions.begin() as session:
            held = list(await session.execute(
                select(SurveyInvitation.id, SurveyInvitation.participant_id, SurveyInvitation.run_id,
                       SurveyInvitation.progress_enc, SurveyRun.survey_id)
                .join(SurveyRun, SurveyRun.id == SurveyInvitation.run_id)
                .where(SurveyInvitation.status == COMPLETED, SurveyInvitation.progress_enc.is_not(None))
            ))
            ballots: list[dict[str, Any]] = []
            for invitation_id, participant_id, run_id, sealed, survey_id in held:
                key = await self._participants.data_key(session, participant_id)
                kept = json.loads(key.open(sealed or b"", survey_progress_context(invitation_id)))
                if "ballot" not in kept:
                    continue
                ballot_id = str(kept["ballot"])
                payload = json.dumps({"answers": kept["answers"]}, ensure_ascii=False)
                ballots.append({"id": ballot_id, "run_id": run_id, "survey_id": survey_id,
                                "language": str(kept["language"]),
                                "payload_enc": self._keys.seal_text(payload, survey_ballot_context(ballot_id))})
            _RANDOM.shuffle(ballots)
            insert = dialect_insert(database.engine.dialect.name)
            for ballot in ballots:
                await session.execute(insert(SurveyBallot).values(**ballot).on_conflict_do_nothing())
        if held:
            async with database.sessions.begin() as session:
                await session.execute(
                    update(SurveyInvitation)
                    .where(SurveyInvitation.id.in_([row[0] for row in held]), SurveyInvitation.status == COMPLETED)
                    .values(progress_enc=None)
                )
        return len(ballots)

    async def store_ballots(self, database: Database, min_batch: int) -> int:
        """Move the ballot box into ``survey_responses``, in one transaction, in random order with
        new random ids. A survey's ballots wait until there are ``min_batch`` of them, unless the
        survey has no open run left. Returns how many responses were stored."""
        stored = 0
        async with database.sessions.begin() as session:
            ballots = list(await session.scalars(select(SurveyBallot)))
            open_surveys = set(await session.scalars(select(SurveyRun.survey_id).where(SurveyRun.status == OPEN)))
            by_survey: dict[str, list[SurveyBallot]] = {}
            for ballot in ballots:
                by_survey.setdefault(ballot.survey_id, []).append(ballot)
            for survey_id, box in by_survey.items():
                survey = self.definitions.get(survey_id)
                if survey is None or (len(box) < min_batch and survey_id in open_surveys):
                    continue
                _RANDOM.shuffle(box)
                for ballot in box:
                    kept = json.loads(self._keys.open_text(ballot.payload_enc, survey_ballot_context(ballot.id)))
                    await self._store(session, ballot.run_id, survey, ballot.language, kept["answers"],
                                      participant_id=None, data_key=None)
                    await session.delete(ballot)
                    stored += 1
            await session.flush()
        return stored

    def _answer_rows(self, response_id: str, question_id: str, qtype: QuestionType, value: Any, data_key: Any) -> list[SurveyAnswer]:
        def row(**fields: Any) -> SurveyAnswer:
            return SurveyAnswer(id=uuid.uuid4().hex, response_id=response_id, question_id=question_id, **fields)

        if qtype is QuestionType.MULTIPLE_CHOICE:
            return [row(option_id=str(v)) for v in value]
        if qtype.is_choice:
            return [row(option_id=str(value))]
        if qtype is QuestionType.NUMBER:
            return [row(number_value=int(value))]
        answer = row()
        context = survey_answer_context(answer)
        answer.text_enc = data_key.seal(str(value), context) if data_key else self._keys.seal_text(str(value), context)
        return [answer]

    async def read_text(self, session: AsyncSession, answer: SurveyAnswer, participant_id: int | None) -> str:
        """Free text, decrypted for the export only."""
        token = answer.text_enc or b""
        if participant_id is None:
            return open_bound(lambda context: self._keys.open_text(token, context), answer)
        key = await self._participants.data_key(session, participant_id)
        return open_bound(lambda context: key.open(token, context), answer)


def open_bound(opener: Callable[[str], str], answer: SurveyAnswer) -> str:
    """Open with the answer's binding, or the one answers had before 0005_hardening."""
    try:
        return opener(survey_answer_context(answer))
    except DecryptionError:
        return opener(legacy_survey_answer_context(answer))


class ReminderJob:
    """Scheduled survey upkeep: one reminder per unfinished invitation, and invitations for people
    who joined a group after its run was launched. Both are marked in the database (reminded_at,
    one invitation per run and person), so reruns are harmless."""

    def __init__(self, database: Database, surveys: Surveys, after_hours: float,
                 clock: Any = utcnow) -> None:
        self._db = database
        self._surveys = surveys
        self._after = dt.timedelta(hours=after_hours)
        self._clock = clock

    async def __call__(self) -> int:
        try:
            async with self._db.sessions.begin() as session:
                sent = await self._surveys.send_reminders(session, self._clock(), self._after)
            async with self._db.sessions.begin() as session:
                joined = await self._surveys.invite_late_joiners(session)
        except Exception as exc:
            log.error("survey reminders failed: %s", type(exc).__name__)
            return 0
        if sent:
            log.info("survey reminders queued: %d", sent)
        if joined:
            log.info("survey invitations for late joiners queued: %d", joined)
        return sent


class BallotJob:
    """Scheduled: hand finished anonymous answers off into the ballot box at every wake-up, and
    store the box as responses at random times (a delay drawn anew after each store, kept in
    memory only: after a restart a new one is drawn, nothing in the database says when)."""

    def __init__(self, database: Database, surveys: Surveys, batch_hours: float, min_batch: int,
                 clock: Any = utcnow, rng: random.Random = _RANDOM) -> None:
        self._db = database
        self._surveys = surveys
        self._batch = dt.timedelta(hours=batch_hours)
        self._min_batch = min_batch
        self._clock = clock
        self._rng = rng
        self._due: dt.datetime | None = None

    def _delay(self) -> dt.timedelta:
        return self._batch * self._rng.uniform(0.5, 1.5)

    async def _forget_old_pages(self) -> None:
        """SQLite: copy the WAL into the database and empty it, so the ballot box's old pages
        (and the invitations' held copies) do not stay readable in the WAL file (secure_delete
        already overwrites them in the database file). PostgreSQL keeps dead row versions until
        VACUUM: see SECURITY.md."""
        if not self._db.is_sqlite:
            return
        async with self._db.engine.connect() as connection:
            raw = await connection.get_raw_connection()
            await raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # type: ignore[union-attr]

    async def __call__(self) -> int:
        try:
            await self._surveys.hand_off(self._db)
            now = self._clock()
            if self._due is None:
                self._due = now + self._delay()
            if now < self._due:
                return 0
            stored = await self._surveys.store_ballots(self._db, self._min_batch)
            self._due = now + self._delay()
            if stored:
                await self._forget_old_pages()
        except Exception as exc:
            log.error("anonymous answers not stored this time: %s", type(exc).__name__)
            return 0
        if stored:
            log.info("anonymous survey answers stored: %d", stored)
        return stored
