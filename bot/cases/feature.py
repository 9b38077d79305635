"""Confidential contact requests, declared once.

Three declarations, because the staff public key decides what people are offered while staff
keep their tools either way:

- ``CASES`` (always on): the staff side (commands, the staff-room thread answers, reminders,
  ``civicbot cases``), the tables' sealed column and retention rules, and the erasure hook. Cases stored before a key was removed can still be
  listed, closed and read with the private key.
- ``CASE_REQUESTS`` (on when ``contacts.staff_public_key`` is set): ``/contact``, ``/case``,
  ``/withdraw``, their dialogs, the menu entry, and the person's text going to their open case.
- ``CASE_REQUESTS_OFF`` (on otherwise): ``/contact`` says that contact requests are not
  available yet; it is listed nowhere.
"""

from __future__ import annotations

import logging

from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.cli import CASE_VERBS
from bot.cases.commands import (
    COMMANDS,
    DIALOGS,
    STAFF_COMMANDS,
    UNAVAILABLE_COMMANDS,
    person_text,
    staff_room_text,
    start_request,
)
from bot.cases.jobs import CaseUpkeepJob
from bot.cases.service import CaseService
from bot.config import Settings
from bot.conversation.feature import Clock, Feature, Job, MenuEntry
from bot.conversation.turn import Services
from bot.core.i18n import N_
from bot.core.notices import CONTACT_COMMAND
from bot.storage.models import CASE_MESSAGE_BODY, CASE_THREADS, ENDED_CASES, Participant

log = logging.getLogger(__name__)


def requests_on(settings: Settings) -> bool:
    return settings.contacts.enabled


def case_service(services: Services) -> CaseService:
    if services.settings.contacts.enabled and not services.outbox.staff_recipients():
        log.warning("contact requests are on, but neither staff.matrix_room nor staff.telegram_chat is set: "
                    "staff learn of new cases only through /cases")
    return CaseService.from_services(services)


def upkeep_job(services: Services, clock: Clock) -> CaseUpkeepJob:
    return CaseUpkeepJob(services.database, CaseService.from_services(services), clock=clock)


async def erase(session: AsyncSession, services: Services, participant: Participant) -> None:
    """Open requests are withdrawn (staff are told) and every message of the person's cases goes."""
    await CaseService.from_services(services).erase_participant(session, participant.id)


CASES = Feature(
    name="cases",
    commands=STAFF_COMMANDS,
    cli=(CASE_VERBS,),
    jobs=(Job("case-upkeep", lambda s: IntervalTrigger(minutes=s.contacts.check_minutes), upkeep_job),),
    sealed=(CASE_MESSAGE_BODY,),
    retention=(ENDED_CASES, CASE_THREADS),
    erase=erase,
    service=case_service,
    staff_room_text=(staff_room_text,),
)

CASE_REQUESTS = Feature(
    name="case-requests",
    commands=COMMANDS,
    dialogs=DIALOGS,
    menu=(MenuEntry(CONTACT_COMMAND, N_("Talk to staff in confidence"), 15, start_request),),
    idle_text=(person_text,),
    enabled=requests_on,
)

CASE_REQUESTS_OFF = Feature(
    name="case-requests-off",
    commands=UNAVAILABLE_COMMANDS,
    enabled=lambda settings: not requests_on(settings),
)

FEATURES = (CASES, CASE_REQUESTS, CASE_REQUESTS_OFF)
