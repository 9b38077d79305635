"""Staff actions on check-ins, written once for the chat commands and the command line.

Each action validates everything before it changes anything (raising
:class:`~bot.checkins.problems.CheckinProblem`), writes its audit entry in the caller's
transaction, and returns what to say as a function of a translator: chat says it in the staff
member's language, the command line in English.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from bot.checkins import texts
from bot.checkins.problems import CheckinProblem
from bot.checkins.rhythm import aware, build_rhythm, local_time
from bot.checkins.service import AssociationStatus, Checkins, CycleStatus
from bot.conversation.turn import Services
from bot.core.i18n import N_, Translator
from bot.services.audit import AuditLog
from bot.services.organisations import Organisations
from bot.storage.models import CheckinCycle, Group

Say = Callable[[Translator], str]

UNKNOWN_GROUP = N_("There is no group with the code %(code)s.")
SHOWN_CYCLES = 5


@dataclass(frozen=True, slots=True)
class ScheduleRequest:
    """What staff typed after ``schedule ORG`` (chat and command line parse to this)."""

    every: str | None = None
    at: str | None = None
    cron: str | None = None
    timezone: str | None = None
    template: str | None = None


class StaffActions:
    """The check-in staff actions and their audit entries."""

    def __init__(self, checkins: Checkins, organisations: Organisations, audit: AuditLog,
                 invite_valid_days: int) -> None:
        self._checkins = checkins
        self._organisations = organisations
        self._audit = audit
        self._invite_days = invite_valid_days

    @classmethod
    def of(cls, services: Services) -> StaffActions:
        return cls(services.get(Checkins), services.organisations, services.audit,
                   services.settings.limits.invite_valid_days)

    def shows_content(self, platform: str) -> bool:
        """Whether staff on ``platform`` may read what associations answered."""
        return self._checkins.shows_content(platform)

    async def schedule(self, session: AsyncSession, actor: str, code: str, request: ScheduleRequest) -> Say:
        checkins = self._checkins
        organisation = await checkins.association(session, code)
        rhythm = build_rhythm(timezone=request.timezone, every=request.every, at=request.at, cron=request.cron,
                              now=checkins.clock())
        template_id = request.template or checkins.default_template_id()
        schedule = await checkins.set_schedule(session, organisation, rhythm, template_id)
        await self._audit.append(session, actor, "checkin.schedule", organisation.code,
                                 {"template": template_id, "rhythm": "cron" if rhythm.cron else "every",
                                  "timezone": rhythm.timezone})
        assert schedule.next_due_at is not None
        due = schedule.next_due_at
        return lambda tr: tr._("Check-ins with %(code)s: %(rhythm)s, template %(template)s. The next one is due "
                               "%(due)s.", code=organisation.code, rhythm=rhythm.describe(tr), template=template_id,
                               due=local_time(due, rhythm.timezone))

    async def pause(self, session: AsyncSession, actor: str, code: str) -> Say:
        organisation = await self._checkins.association(session, code)
        await self._checkins.set_paused(session, organisation, True)
        await self._audit.append(session, actor, "checkin.pause", organisation.code)
        return lambda tr: tr._("Check-ins with %(code)s are paused. An open check-in can still be answered; "
                               "/checkin resume %(code)s starts them again.", code=organisation.code)

    async def resume(self, session: AsyncSession, actor: str, code: str) -> Say:
        organisation = await self._checkins.association(session, code)
        schedule = await self._checkins.set_paused(session, organisation, False)
        await self._audit.append(session, actor, "checkin.resume", organisation.code)
        assert schedule.next_due_at is not None
        due = local_time(schedule.next_due_at, schedule.timezone)
        return lambda tr: tr._("Check-ins with %(code)s resumed. The next one is due %(due)s.",
                               code=organisation.code, due=due)

    async def now(self, session: AsyncSession, actor: str, code: str, template: str | None = None) -> Say:
        organisation = await self._checkins.association(session, code)
        cycle = await self._checkins.start_now(session, organisation, template)
        await self._audit.append(session, actor, "checkin.now", organisation.code,
                                 {"cycle": cycle.seq, "recipients": cycle.recipients})
        if cycle.recipients == 0:
            return lambda tr: texts.unsent_notice(tr, code=organisation.code, seq=cycle.seq)
        return lambda tr: tr.n_("Check-in %(cycle)s sent to %(code)s: %(n)s person will receive it.",
                                "Check-in %(cycle)s sent to %(code)s: %(n)s people will receive it.",
                                cycle.recipients, cycle=cycle.seq, code=organisation.code)

    async def acknowledge(self, session: AsyncSession, actor: str, code: str) -> Say:
        organisation = await self._checkins.association(session, code)
        closed = await self._checkins.acknowledge(session, organisation, actor)
        if closed:
            await self._audit.append(session, actor, "checkin.ack", organisation.code, {"flags": closed})
            return lambda tr: tr.n_("%(n)s flag of %(code)s closed.", "%(n)s flags of %(code)s closed.", closed,
                                    code=organisation.code)
        return lambda tr: tr._("Association %(code)s has no open flags.", code=organisation.code)

    async def overview(self, session: AsyncSession) -> Say:
        statuses = await self._checkins.overview(session)
        return lambda tr: overview_text(tr, statuses) if statuses else \
            tr._("No associations yet. Register one with /org add <code> association <name>.")

    async def show(self, session: AsyncSession, actor: str, code: str, *, with_content: bool) -> Say:
        checkins = self._checkins
        organisation = await checkins.association(session, code)
        status = await checkins.status(session, organisation)
        cycles = await checkins.recent_cycles(session, organisation, SHOWN_CYCLES)
        contacts = await checkins.contact_count(session, organisation)
        answers = None
        if with_content and status.last_answered is not None:
            answers = await checkins.answers_of(session, status.last_answered)
        await self._audit.append(session, actor, "checkin.show", organisation.code, {"content": int(with_content)})
        template = checkins.templates.get(status.last_answered.template_id) if status.last_answered else None

        def say(tr: Translator) -> str:
            parts = [overview_text(tr, [status]),
                     tr.n_("%(n)s contact person.", "%(n)s contact persons.", contacts) if contacts
                     else tr._("No contact person: every member receives the check-ins.")]
            parts.append("\n".join(cycle_line(tr, c) for c in cycles) if cycles else tr._("No check-in sent yet."))
            last = status.last_answered
            if last is not None and answers is not None and template is not None:
                parts.append(tr._("Answer to check-in %(cycle)s:", cycle=last.seq) + "\n" + "\n".join(
                    texts.answer_lines(tr, template, answers, nothing_new=last.nothing_new)))
            elif last is not None:
                parts.append(tr._("The answers are shown only where content may be shown (by default the Matrix "
                                  "staff room)."))
            return "\n\n".join(parts)

        return say

    async def contacts(self, session: AsyncSession, code: str) -> Say:
        checkins = self._checkins
        organisation = await checkins.association(session, code)
        members = await checkins.contacts.members(session, organisation)

        def say(tr: Translator) -> str:
            if not members:
                return tr._("Association %(code)s has no members yet. Make a contact-person code with "
                            "/checkin invite %(code)s.", code=organisation.code)
            lines = []
            for member in members:
                role = tr._("contact person since %(date)s", date=member.contact_since.isoformat()) \
                    if member.contact_since else tr._("member")
                reach = "" if member.reachable else " " + tr._("(unreachable)")
                lines.append(f"• {member.ref}: {role} ({member.platform}, {member.language}){reach}")
            head = tr._("Members of %(code)s. Contact persons answer the check-ins; when none is marked, every "
                        "member does.", code=organisation.code)
            usage = tr._("Change: /checkin contact %(code)s add|remove <reference>", code=organisation.code)
            return "\n".join((head, *lines, usage))

        return say

    async def set_contact(self, session: AsyncSession, actor: str, code: str, ref: str, contact: bool) -> Say:
        checkins = self._checkins
        organisation = await checkins.association(session, code)
        member = await checkins.contacts.member(session, organisation, ref)
        changed = await checkins.contacts.set_contact(session, organisation, member, contact)
        if changed:
            await self._audit.append(session, actor, "checkin.contact." + ("add" if contact else "remove"),
                                     organisation.code, {"member": member.ref})
        if contact:
            return lambda tr: tr._("%(ref)s is a contact person of %(code)s.", ref=member.ref, code=organisation.code)
        return lambda tr: tr._("%(ref)s is no longer a contact person of %(code)s.", ref=member.ref,
                               code=organisation.code)

    async def invite(self, session: AsyncSession, actor: str, code: str, group_codes: list[str]) -> Say:
        organisation = await self._checkins.association(session, code)
        groups: list[Group] = []
        for group_code in group_codes:
            group = await self._organisations.group(session, group_code.lower())
            if group is None:
                raise CheckinProblem(UNKNOWN_GROUP, code=group_code)
            groups.append(group)
        new = await self._organisations.create_invite(session, organisation, groups, self._invite_days,
                                                      contact_person=True)
        await self._audit.append(session, actor, "invite.create", organisation.code,
                                 {"groups": len(groups), "days": self._invite_days, "contact_person": 1})
        days = self._invite_days
        return lambda tr: tr.n_(
            "Contact-person code for %(code)s: %(invite)s\nWhoever uses it answers the check-ins for the association. "
            "It can be used once, within %(n)s day.",
            "Contact-person code for %(code)s: %(invite)s\nWhoever uses it answers the check-ins for the association. "
            "It can be used once, within %(n)s days.", days, code=organisation.code, invite=new.code)


def overview_text(tr: Translator, statuses: list[AssociationStatus]) -> str:
    blocks = []
    for status in statuses:
        head = status.organisation.code
        if status.rhythm is None or status.schedule is None:
            head += " — " + tr._("no schedule")
        else:
            head += " — " + status.rhythm.describe(tr)
            if status.schedule.paused:
                head += " — " + tr._("paused")
        facts = []
        if status.schedule is not None and status.schedule.next_due_at is not None and not status.schedule.paused:
            facts.append(tr._("next: %(when)s", when=local_time(status.schedule.next_due_at, status.schedule.timezone)))
        if status.open_cycle is not None:
            facts.append(tr._("check-in %(cycle)s open since %(date)s", cycle=status.open_cycle.seq,
                              date=_date(status.open_cycle.opened_at)))
        last = status.last_answered
        if last is not None and last.answered_at is not None:
            answer = tr._("last answer: %(date)s", date=_date(last.answered_at))
            if last.nothing_new:
                answer += " (" + tr._("nothing new") + ")"
            facts.append(answer)
        else:
            facts.append(tr._("never answered"))
        if status.missed_in_a_row:
            facts.append(tr._("missed in a row: %(count)s", count=status.missed_in_a_row))
        if status.open_flags:
            facts.append(tr.n_("%(n)s open flag: %(flags)s", "%(n)s open flags: %(flags)s", len(status.open_flags),
                               flags=texts.flag_list(tr, (f.flag for f in status.open_flags))))
        blocks.append(head + "\n  " + " · ".join(facts))
    return "\n".join(blocks)


def cycle_line(tr: Translator, cycle: CheckinCycle) -> str:
    due = _date(cycle.due_at)
    if cycle.status == CycleStatus.ANSWERED and cycle.answered_at is not None:
        outcome = tr._("answered %(date)s", date=_date(cycle.answered_at))
        if cycle.nothing_new:
            outcome += " (" + tr._("nothing new") + ")"
    elif cycle.status == CycleStatus.MISSED:
        outcome = tr._("missed")
    else:
        outcome = tr._("open")
    return tr._("Check-in %(cycle)s, due %(date)s: %(outcome)s", cycle=cycle.seq, date=due, outcome=outcome)


def _date(value: dt.datetime) -> str:
    return aware(value).astimezone(dt.UTC).date().isoformat()
