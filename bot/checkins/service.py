"""The check-in cycle, in the database.

A schedule row holds an association's rhythm and its next due time. The scheduled job opens
due cycles by claiming schedule rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one
writer) and advancing their due time in the same transaction that writes the cycle and queues
the messages; ``(organisation, due time)`` is unique, so a doubled claim cannot open a cycle
twice. A cycle is open until a contact person answers it (the first answer wins: an update
guarded by the status) or the next cycle is due (it is then missed). Reminders, missed cycles,
escalations and flags are all decided from these rows, so a missed or doubled trigger, a
restart or a second worker change nothing.
"""

from __future__ import annotations

import datetime as dt
import enum
import json
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.checkins import texts
from bot.checkins.contacts import ContactPersons, Recipient
from bot.checkins.mail import Mail, cycle_ref
from bot.checkins.problems import CheckinProblem
from bot.checkins.rhythm import Clock, Rhythm, aware, rhythm_fields, rhythm_of
from bot.checkins.templates import CheckinTemplate, RaisedFlag
from bot.config import CheckinSettings
from bot.conversation.engine import State, new_prompt_id, read_state, write_state
from bot.core.i18n import N_, I18n, Translator
from bot.core.model import Outbound, Pseudonym
from bot.core.security import DecryptionError, KeyRing
from bot.services.participants import Participants
from bot.storage.db import lock_person
from bot.storage.models import (
    CheckinAnswer,
    CheckinCycle,
    CheckinDelivery,
    CheckinFlag,
    CheckinSchedule,
    Organisation,
    OrganisationContact,
    Participant,
    checkin_answer_context,
    checkin_progress_context,
    legacy_checkin_answer_context,
    legacy_checkin_progress_context,
    organisation_name_context,
)

log = logging.getLogger(__name__)

DIALOG = "checkin"
ASSOCIATION = "association"

UNKNOWN_ORG = N_("There is no organisation with the code %(code)s.")
NOT_ASSOCIATION = N_("%(code)s is not an association (it is registered as %(kind)s); check-ins are for associations.")
DEFAULT_TEMPLATE = "default"
NO_TEMPLATE = N_("Choose a template with --template (available: %(ids)s).")
UNKNOWN_TEMPLATE = N_("There is no check-in template with the id %(id)s.")
NO_SCHEDULE = N_("Association %(code)s has no check-in schedule. Set one with /checkin schedule.")
STILL_OPEN = N_("Check-in %(cycle)s of association %(code)s is still open; a new one can start once it is answered "
                "or missed.")


Compose = Callable[[Translator, str], str]
"""A staff notice for a platform: ``compose(translator, platform)``."""


class CycleStatus(enum.StrEnum):
    OPEN = "open"
    ANSWERED = "answered"
    MISSED = "missed"


class Unavailable(enum.Enum):
    """Why a person cannot answer a cycle (each has its own sentence in the dialog)."""

    NONE_OPEN = "none_open"
    ANSWERED_BY_OTHER = "answered_by_other"
    ANSWERED_BY_YOU = "answered_by_you"
    CLOSED = "closed"
    NOT_YOURS = "not_yours"


class CheckinUnavailable(Exception):
    def __init__(self, reason: Unavailable) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RunReport:
    opened: int = 0
    reminded: int = 0
    skipped_periods: int = 0
    claimed: int = 0  # rows looked at (a full batch means there may be more)


@dataclass(frozen=True, slots=True)
class Submitted:
    cycle: CheckinCycle
    raised: list[RaisedFlag]


@dataclass(frozen=True, slots=True)
class AssociationStatus:
    """One line of the staff overview."""

    organisation: Organisation
    schedule: CheckinSchedule | None
    rhythm: Rhythm | None
    open_cycle: CheckinCycle | None
    last_answered: CheckinCycle | None
    missed_in_a_row: int
    open_flags: list[CheckinFlag]


class Checkins:
    """Domain logic of check-ins. Templates are loaded once at start; ``clock`` is the one time
    source of the feature."""

    def __init__(self, templates: Mapping[str, CheckinTemplate], settings: CheckinSettings, keys: KeyRing,
                 participants: Participants, mail: Mail, i18n: I18n, clock: Clock) -> None:
        self.templates = dict(templates)
        self.settings = settings
        self.contacts = ContactPersons(keys)
        self.clock = clock
        self._keys = keys
        self._participants = participants
        self._mail = mail
        self._i18n = i18n

    def default_template_id(self) -> str:
        """``default`` if there is one, else the only template."""
        if DEFAULT_TEMPLATE in self.templates:
            return DEFAULT_TEMPLATE
        if len(self.templates) == 1:
            return next(iter(self.templates))
        raise CheckinProblem(NO_TEMPLATE, ids=", ".join(sorted(self.templates)) or "-")

    def template(self, template_id: str) -> CheckinTemplate:
        try:
            return self.templates[template_id]
        except KeyError:
            raise CheckinProblem(UNKNOWN_TEMPLATE, id=template_id) from None

    # -- associations and schedules (staff) ---------------------------------------------------

    async def association(self, session: AsyncSession, code: str) -> Organisation:
        organisation = await session.scalar(select(Organisation).where(Organisation.code == code.lower()))
        if organisation is None:
            raise CheckinProblem(UNKNOWN_ORG, code=code)
        if organisation.kind != ASSOCIATION:
            raise CheckinProblem(NOT_ASSOCIATION, code=organisation.code, kind=organisation.kind)
        return organisation

    async def schedule_of(self, session: AsyncSession, organisation: Organisation, *,
                          lock: bool = False) -> CheckinSchedule | None:
        query = select(CheckinSchedule).where(CheckinSchedule.organisation_id == organisation.id)
        if lock:
            query = query.with_for_update()
        return await session.scalar(query)

    async def set_schedule(self, session: AsyncSession, organisation: Organisation, rhythm: Rhythm,
                           template_id: str) -> CheckinSchedule:
        """Create or replace the association's schedule; the next due time follows the new rhythm."""
        self.template(template_id)
        schedule = await self.schedule_of(session, organisation, lock=True)
        if schedule is None:
            schedule = CheckinSchedule(organisation_id=organisation.id)
            session.add(schedule)
        for name, value in rhythm_fields(rhythm).items():
            setattr(schedule, name, value)
        schedule.template_id, schedule.paused = template_id, False
        schedule.next_due_at = rhythm.next_due(self.clock())
        await session.flush()
        return schedule

    async def set_paused(self, session: AsyncSession, organisation: Organisation, paused: bool) -> CheckinSchedule:
        """Pause (no new cycles; an open one can still be answered) or resume from now on:
        the periods of a pause are skipped, not missed."""
        schedule = await self.schedule_of(session, organisation, lock=True)
        if schedule is None:
            raise CheckinProblem(NO_SCHEDULE, code=organisation.code)
        schedule.paused = paused
        schedule.next_due_at = None if paused else self.rhythm(schedule).next_due(self.clock())
        await session.flush()
        return schedule

    @staticmethod
    def rhythm(schedule: CheckinSchedule) -> Rhythm:
        return rhythm_of(schedule.timezone, schedule.every_days, schedule.at_time, schedule.anchor_on, schedule.cron)

    async def start_now(self, session: AsyncSession, organisation: Organisation,
                        template_id: str | None = None) -> CheckinCycle:
        """A cycle outside the rhythm (staff's ``now``); the schedule's next due time is unchanged."""
        await self._lock_members(session, organisation.id)  # people first, then rows: the order of every turn
        schedule = await self.schedule_of(session, organisation, lock=True)
        chosen = template_id or (schedule.template_id if schedule else self.default_template_id())
        self.template(chosen)
        current = await self.open_cycle(session, organisation.id)
        if current is not None:
            raise CheckinProblem(STILL_OPEN, cycle=current.seq, code=organisation.code)
        now = self.clock()
        cycle = await self._open_cycle(session, organisation, chosen, now, now)
        if cycle is None:  # another worker or staff member started one this very moment
            current = await self.open_cycle(session, organisation.id)
            raise CheckinProblem(STILL_OPEN, cycle=current.seq if current else "?", code=organisation.code)
        return cycle

    # -- the scheduled work ---------------------------------------------------------------------

    async def open_due(self, session: AsyncSession, limit: int = 50) -> RunReport:
        """Open the cycles that are due. Claims schedule rows; safe to run from several workers."""
        now = self.clock()
        due = list(await session.execute(
            select(CheckinSchedule.id, CheckinSchedule.organisation_id)
            .where(CheckinSchedule.paused.is_(False), CheckinSchedule.next_due_at <= now)
            .order_by(CheckinSchedule.next_due_at).limit(limit)))
        opened = skipped = taken = 0
        for schedule_id, organisation_id in due:
            await self._lock_members(session, organisation_id)
            claim = select(CheckinSchedule).where(CheckinSchedule.id == schedule_id, CheckinSchedule.paused.is_(False),
                                                  CheckinSchedule.next_due_at <= now)
            if _postgresql(session):
                claim = claim.with_for_update(skip_locked=True)
            schedule = await session.scalar(claim.execution_options(populate_existing=True))
            if schedule is None:  # opened meanwhile by another worker, or changed by staff
                continue
            taken += 1
            rhythm = self.rhythm(schedule)
            assert schedule.next_due_at is not None
            due_at = aware(schedule.next_due_at)
            following = rhythm.next_due(due_at)
            while following <= now:  # the bot was stopped for whole periods: never sent, so never missed
                due_at, following = following, rhythm.next_due(following)
                skipped += 1
            schedule.next_due_at = following
            organisation = await session.get(Organisation, schedule.organisation_id)
            if organisation is None:
                continue
            if schedule.template_id not in self.templates:
                log.error("check-in schedule %d names a template that is not loaded; no cycle opened", schedule.id)
                continue
            if await self._open_cycle(session, organisation, schedule.template_id, due_at, now) is not None:
                opened += 1
        return RunReport(opened=opened, skipped_periods=skipped, claimed=taken)

    async def send_reminders(self, session: AsyncSession, limit: int = 50) -> RunReport:
        """One reminder per open cycle, ``reminder_after_hours`` after it was sent."""
        now = self.clock()
        after = dt.timedelta(hours=self.settings.reminder_after_hours)
        due = list(await session.execute(
            select(CheckinCycle.id, CheckinCycle.organisation_id)
            .where(CheckinCycle.status == CycleStatus.OPEN, CheckinCycle.reminded_at.is_(None),
                   CheckinCycle.opened_at <= now - after)
            .order_by(CheckinCycle.id).limit(limit)))
        sent = taken = 0
        for cycle_id, organisation_id in due:
            await self._lock_members(session, organisation_id)
            claim = select(CheckinCycle).where(CheckinCycle.id == cycle_id, CheckinCycle.status == CycleStatus.OPEN,
                                               CheckinCycle.reminded_at.is_(None))
            if _postgresql(session):
                claim = claim.with_for_update(skip_locked=True)
            cycle = await session.scalar(claim.execution_options(populate_existing=True))
            if cycle is None:  # answered, closed or reminded meanwhile (another worker)
                continue
            taken += 1
            cycle.reminded_at = now
            template = self.templates.get(cycle.template_id)
            if template is None:
                continue
            rows = await session.execute(
                select(Participant.id, Participant.pseudonym, Participant.platform, Participant.language)
                .join(CheckinDelivery, CheckinDelivery.participant_id == Participant.id)
                .where(CheckinDelivery.cycle_id == cycle.id, Participant.organisation_id == cycle.organisation_id)
                .order_by(Participant.id))
            for pid, pseudonym, platform, language in rows:
                await self._offer(session, Recipient(pid, pseudonym, platform, language), cycle, template,
                                  reminder=True)
                sent += 1
        return RunReport(reminded=sent, claimed=taken)

    async def _lock_members(self, session: AsyncSession, organisation_id: int) -> None:
        """Take the per-person locks of the association's members before touching its schedule or
        cycles: a turn holds its person's lock when it answers a cycle, so taking them in the same
        order (people, then rows) cannot deadlock with it; in a fixed order, so two workers cannot
        either. A second worker waits here, then finds the schedule already advanced."""
        if not _postgresql(session):
            return  # SQLite: the transaction already holds the only write lock
        for pseudonym in await session.scalars(select(Participant.pseudonym).where(
                Participant.organisation_id == organisation_id).order_by(Participant.pseudonym)):
            await lock_person(session, pseudonym)

    async def _open_cycle(self, session: AsyncSession, organisation: Organisation, template_id: str,
                          due: dt.datetime, now: dt.datetime) -> CheckinCycle | None:
        """Close the open cycle as missed (escalating a long silence), open the next and send it."""
        await self._close_missed(session, organisation, now)
        last = await session.scalar(select(func.max(CheckinCycle.seq))
                                    .where(CheckinCycle.organisation_id == organisation.id))
        cycle = CheckinCycle(organisation_id=organisation.id, seq=(last or 0) + 1, template_id=template_id, due_at=due,
                             status=CycleStatus.OPEN, opened_at=now, recipients=0, nothing_new=False)
        try:
            async with session.begin_nested():
                session.add(cycle)
                await session.flush()
        except IntegrityError:
            log.info("check-in cycle already opened by another worker")
            return None
        template = self.template(template_id)
        recipients = await self.contacts.recipients(session, organisation.id)
        for recipient in recipients:
            session.add(CheckinDelivery(cycle_id=cycle.id, participant_id=recipient.participant_id, sent_at=now))
            await self._offer(session, recipient, cycle, template, reminder=False)
        cycle.recipients = len(recipients)
        if not recipients:
            await self._tell_staff(session, lambda tr, _platform: texts.unsent_notice(
                tr, code=organisation.code, seq=cycle.seq), cycle_ref(cycle.id))
        await session.flush()
        return cycle

    async def _offer(self, session: AsyncSession, recipient: Recipient, cycle: CheckinCycle,
                     template: CheckinTemplate, *, reminder: bool) -> None:
        """Queue the check-in for one person. If they are not in the middle of something else, the
        message is a live prompt (their dialog state is placed on it), so one tap answers it."""
        tr = self._i18n.translator(recipient.language)
        pseudonym = Pseudonym(recipient.pseudonym)
        await lock_person(session, pseudonym)
        data_key = await self._participants.data_key(session, recipient.participant_id)  # their state is theirs
        state = await read_state(session, self._keys, pseudonym, data_key)
        prompt_id: str | None = None
        if self._free(state):
            prompt_id = new_prompt_id()
            await write_state(session, self._keys, pseudonym,
                              State(DIALOG, "offer", tr.language, {"cycle": cycle.id, "survey": cycle.template_id},
                                    prompt_id), data_key)
        message = texts.offer_message(tr, template, prompt_id, reminder=reminder)
        await self._mail.to_person(session, recipient.participant_id, recipient.platform, message,
                                   reminder=reminder, ref=cycle_ref(cycle.id))

    @staticmethod
    def _free(state: State | None) -> bool:
        """Nothing to interrupt: no conversation, the menu, or a check-in offer. Someone in the middle
        of answering (even a check-in that has just closed) is not interrupted; they are told there."""
        return state is None or state.dialog == "menu" or (state.dialog == DIALOG and state.step == "offer")

    async def _close_missed(self, session: AsyncSession, organisation: Organisation, now: dt.datetime) -> None:
        missed = list(await session.scalars(select(CheckinCycle).where(
            CheckinCycle.organisation_id == organisation.id, CheckinCycle.status == CycleStatus.OPEN)))
        if not missed:
            return
        for cycle in missed:
            cycle.status, cycle.closed_at = CycleStatus.MISSED, now
            await self._drop_drafts(session, cycle.id)
        await session.flush()
        await self._escalate_if_silent(session, organisation, now)

    async def _escalate_if_silent(self, session: AsyncSession, organisation: Organisation, now: dt.datetime) -> None:
        """After ``escalate_after_missed`` missed cycles in a row, one notice per silence."""
        last_answered = await self.last_answered(session, organisation.id)
        since = last_answered.seq if last_answered else 0
        silence = list(await session.scalars(
            select(CheckinCycle).where(CheckinCycle.organisation_id == organisation.id,
                                       CheckinCycle.status == CycleStatus.MISSED, CheckinCycle.seq > since)
            .order_by(CheckinCycle.seq)))
        if len(silence) < self.settings.escalate_after_missed or any(c.escalated_at for c in silence):
            return
        silence[-1].escalated_at = now
        answered_on = last_answered.answered_at.date().isoformat() if last_answered and last_answered.answered_at \
            else None
        await self._tell_staff(session, lambda tr, _platform: texts.silence_notice(
            tr, code=organisation.code, missed=len(silence), last_answer=answered_on), f"checkin-silence:{organisation.id}")

    # -- answering (contact persons) ------------------------------------------------------------

    async def open_cycle(self, session: AsyncSession, organisation_id: int) -> CheckinCycle | None:
        return await session.scalar(select(CheckinCycle).where(
            CheckinCycle.organisation_id == organisation_id, CheckinCycle.status == CycleStatus.OPEN)
            .order_by(CheckinCycle.seq.desc()).limit(1))

    async def last_answered(self, session: AsyncSession, organisation_id: int) -> CheckinCycle | None:
        return await session.scalar(select(CheckinCycle).where(
            CheckinCycle.organisation_id == organisation_id, CheckinCycle.status == CycleStatus.ANSWERED)
            .order_by(CheckinCycle.seq.desc()).limit(1))

    async def pending_for(self, session: AsyncSession, participant: Participant) -> CheckinCycle:
        """The open cycle this person may answer now, or CheckinUnavailable."""
        if participant.organisation_id is None:
            raise CheckinUnavailable(Unavailable.NONE_OPEN)
        cycle = await self.open_cycle(session, participant.organisation_id)
        if cycle is None:
            latest = await session.scalar(select(CheckinCycle).where(
                CheckinCycle.organisation_id == participant.organisation_id).order_by(CheckinCycle.seq.desc()).limit(1))
            if latest is not None and latest.status == CycleStatus.ANSWERED and await self._may_answer(
                    session, latest, participant):
                raise CheckinUnavailable(Unavailable.ANSWERED_BY_YOU if latest.answered_by == participant.id
                                         else Unavailable.ANSWERED_BY_OTHER)
            raise CheckinUnavailable(Unavailable.NONE_OPEN)
        return await self.answerable(session, cycle.id, participant)

    async def answerable(self, session: AsyncSession, cycle_id: int, participant: Participant) -> CheckinCycle:
        """The cycle if this person may answer it now; else CheckinUnavailable saying why."""
        cycle = await session.get(CheckinCycle, cycle_id, populate_existing=True)
        if cycle is None or not await self._may_answer(session, cycle, participant):
            raise CheckinUnavailable(Unavailable.NOT_YOURS)
        if cycle.status == CycleStatus.ANSWERED:
            raise CheckinUnavailable(Unavailable.ANSWERED_BY_YOU if cycle.answered_by == participant.id
                                     else Unavailable.ANSWERED_BY_OTHER)
        if cycle.status != CycleStatus.OPEN or cycle.template_id not in self.templates:
            raise CheckinUnavailable(Unavailable.CLOSED)
        return cycle

    async def _may_answer(self, session: AsyncSession, cycle: CheckinCycle, participant: Participant) -> bool:
        if participant.organisation_id != cycle.organisation_id:
            return False
        sent_to_them = await self._delivery(session, cycle.id, participant.id)
        return sent_to_them is not None or await self.contacts.is_eligible(session, cycle.organisation_id, participant)

    async def _delivery(self, session: AsyncSession, cycle_id: int, participant_id: int) -> CheckinDelivery | None:
        return await session.scalar(select(CheckinDelivery).where(
            CheckinDelivery.cycle_id == cycle_id, CheckinDelivery.participant_id == participant_id))

    async def load_progress(self, session: AsyncSession, cycle: CheckinCycle, participant_id: int) -> dict[str, Any]:
        delivery = await self._delivery(session, cycle.id, participant_id)
        if delivery is None or delivery.progress_enc is None:
            return {}
        key = await self._participants.data_key(session, participant_id)
        token = delivery.progress_enc
        try:
            plaintext = key.open(token, checkin_progress_context(delivery))
        except DecryptionError:  # a draft saved before 0005_hardening
            plaintext = key.open(token, legacy_checkin_progress_context(delivery))
        return dict(json.loads(plaintext))

    async def save_progress(self, session: AsyncSession, cycle: CheckinCycle, participant_id: int,
                            progress: Mapping[str, Any]) -> None:
        """Kept with the delivery, sealed with the person's key: survives /cancel and restarts."""
        delivery = await self._delivery(session, cycle.id, participant_id)
        if delivery is None:  # a contact person named after the check-in was sent
            delivery = CheckinDelivery(cycle_id=cycle.id, participant_id=participant_id, sent_at=self.clock())
            session.add(delivery)
            await session.flush()
        key = await self._participants.data_key(session, participant_id)
        delivery.progress_enc = key.seal(json.dumps(progress, ensure_ascii=False), checkin_progress_context(delivery))

    async def submit(self, session: AsyncSession, cycle_id: int, participant: Participant,
                     answers: Mapping[str, Any], language: str, *, nothing_new: bool = False) -> Submitted:
        """Record the association's answer. The first contact person to submit wins: the update
        only applies to an open cycle, so a second answer (another worker, a second person) fails."""
        cycle = await self.answerable(session, cycle_id, participant)
        template = self.template(cycle.template_id)
        now = self.clock()
        result = await session.execute(
            update(CheckinCycle)
            .where(CheckinCycle.id == cycle.id, CheckinCycle.status == CycleStatus.OPEN)
            .values(status=CycleStatus.ANSWERED, answered_at=now, closed_at=now, answered_by=participant.id,
                    language=template.questionnaire.language_for(language), nothing_new=nothing_new)
            .execution_options(synchronize_session=False))
        if int(getattr(result, "rowcount", 0) or 0) != 1:
            await self.answerable(session, cycle.id, participant)  # raises with the reason
            raise CheckinUnavailable(Unavailable.CLOSED)
        await session.refresh(cycle)
        kept = {} if nothing_new else dict(answers)
        for question in template.questionnaire.questions:
            value = kept.get(question.id)
            if value is not None and value != []:
                for row in self._answer_rows(cycle.id, question.type, question.id, value):
                    session.add(row)
        await self._drop_drafts(session, cycle.id)
        # The other contact persons' offers and reminders still waiting in the outbox are now moot.
        await self._mail.cancel(session, cycle_ref(cycle.id))
        raised = template.raised(kept)
        for flag in raised:
            session.add(CheckinFlag(cycle_id=cycle.id, organisation_id=cycle.organisation_id, flag=flag.flag.value,
                                    question_id=flag.question, option_id=flag.option, raised_at=now))
        await session.flush()
        if raised:
            organisation = await session.get(Organisation, cycle.organisation_id)
            assert organisation is not None
            await self._notify_flags(session, organisation, cycle, template, kept, raised)
        return Submitted(cycle, raised)

    def _answer_rows(self, cycle_id: int, qtype: str, question_id: str, value: Any) -> list[CheckinAnswer]:
        def row(**fields: Any) -> CheckinAnswer:
            return CheckinAnswer(id=uuid.uuid4().hex, cycle_id=cycle_id, question_id=question_id, **fields)

        if qtype == "multiple_choice":
            return [row(option_id=str(v)) for v in value]
        if qtype in ("single_choice", "yes_no", "scale"):
            return [row(option_id=str(value))]
        if qtype == "number":
            return [row(number_value=int(value))]
        answer = row()
        answer.text_enc = self._keys.seal_text(str(value), checkin_answer_context(answer))
        return [answer]

    def _open_text(self, answer: CheckinAnswer) -> str:
        token = answer.text_enc or b""
        try:
            return self._keys.open_text(token, checkin_answer_context(answer))
        except DecryptionError:  # sealed before 0005_hardening and not yet rotated
            return self._keys.open_text(token, legacy_checkin_answer_context(answer))

    async def _drop_drafts(self, session: AsyncSession, cycle_id: int) -> None:
        await session.execute(update(CheckinDelivery).where(CheckinDelivery.cycle_id == cycle_id)
                              .values(progress_enc=None))

    # -- what staff read -----------------------------------------------------------------------

    async def answers_of(self, session: AsyncSession, cycle: CheckinCycle) -> dict[str, Any]:
        """The stored answers as the dialog gave them (free text opened here, for staff only)."""
        template = self.templates.get(cycle.template_id)
        multiple = {q.id for q in template.questionnaire.questions if q.type == "multiple_choice"} if template else set()
        answers: dict[str, Any] = {}
        for row in await session.scalars(select(CheckinAnswer).where(CheckinAnswer.cycle_id == cycle.id)
                                         .order_by(CheckinAnswer.question_id, CheckinAnswer.option_id)):
            if row.option_id is not None:
                value: Any = row.option_id
            elif row.number_value is not None:
                value = row.number_value
            else:
                value = self._open_text(row)
            if row.question_id in multiple:
                answers.setdefault(row.question_id, []).append(value)
            else:
                answers[row.question_id] = value
        return answers

    async def status(self, session: AsyncSession, organisation: Organisation) -> AssociationStatus:
        schedule = await self.schedule_of(session, organisation)
        last = await self.last_answered(session, organisation.id)
        since = last.seq if last else 0
        missed = await session.scalar(select(func.count()).select_from(CheckinCycle).where(
            CheckinCycle.organisation_id == organisation.id, CheckinCycle.status == CycleStatus.MISSED,
            CheckinCycle.seq > since))
        flags = list(await session.scalars(select(CheckinFlag).where(
            CheckinFlag.organisation_id == organisation.id, CheckinFlag.acked_at.is_(None)).order_by(CheckinFlag.id)))
        return AssociationStatus(organisation, schedule, self.rhythm(schedule) if schedule else None,
                                 await self.open_cycle(session, organisation.id), last, int(missed or 0), flags)

    async def overview(self, session: AsyncSession) -> list[AssociationStatus]:
        associations = await session.scalars(select(Organisation).where(Organisation.kind == ASSOCIATION)
                                             .order_by(Organisation.code))
        return [await self.status(session, organisation) for organisation in list(associations)]

    async def recent_cycles(self, session: AsyncSession, organisation: Organisation, count: int) -> list[CheckinCycle]:
        return list(await session.scalars(select(CheckinCycle).where(CheckinCycle.organisation_id == organisation.id)
                                          .order_by(CheckinCycle.seq.desc()).limit(count)))

    async def acknowledge(self, session: AsyncSession, organisation: Organisation, actor: str) -> int:
        """Close the association's open flags; returns how many."""
        result = await session.execute(
            update(CheckinFlag).where(CheckinFlag.organisation_id == organisation.id, CheckinFlag.acked_at.is_(None))
            .values(acked_at=self.clock(), acked_by=actor[:64]).execution_options(synchronize_session=False))
        return int(getattr(result, "rowcount", 0) or 0)

    async def contact_count(self, session: AsyncSession, organisation: Organisation) -> int:
        return int(await session.scalar(
            select(func.count()).select_from(OrganisationContact)
            .join(Participant, Participant.id == OrganisationContact.participant_id)
            .where(OrganisationContact.organisation_id == organisation.id,
                   Participant.organisation_id == organisation.id)) or 0)

    # -- staff notices ---------------------------------------------------------------------------

    def shows_content(self, platform: str) -> bool:
        return platform in self.settings.content_platforms

    async def _notify_flags(self, session: AsyncSession, organisation: Organisation, cycle: CheckinCycle,
                            template: CheckinTemplate, answers: Mapping[str, Any], raised: Sequence[RaisedFlag]) -> None:
        name = None
        if organisation.name_enc:
            name = self._keys.open_text(organisation.name_enc, organisation_name_context(organisation.id))

        def notice(tr: Translator, platform: str) -> str:
            shown = texts.answer_lines(tr, template, answers, nothing_new=False) if self.shows_content(platform) \
                else None
            return texts.flag_notice(tr, code=organisation.code, name=name, seq=cycle.seq, raised=raised, answers=shown)

        await self._tell_staff(session, notice, f"checkin-flag:{cycle.id}")

    async def _tell_staff(self, session: AsyncSession, compose: Compose, ref: str) -> None:
        """A notice to every staff destination, in the default language; ``compose`` may say less
        where the platform can read it (``platform`` is the destination's)."""
        tr = self._i18n.translator(self._i18n.default_language)

        def message_for(platform: str) -> Outbound:
            return Outbound(text=compose(tr, platform), direction=tr.direction, sensitive=True, language=tr.language)

        await self._mail.to_staff(session, message_for, ref)


def _postgresql(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"

