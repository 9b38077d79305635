"""Surveys, declared once: commands, verbs, dialog, menu entry, reminders, sealed columns."""

from __future__ import annotations

from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Settings
from bot.conversation.feature import Clock, Feature, FeatureStartupError, Job, MenuEntry
from bot.conversation.turn import Services
from bot.core.i18n import N_
from bot.storage.models import SURVEY_ANSWER_TEXT, SURVEY_BALLOT, SURVEY_PROGRESS
from bot.surveys.cli import SURVEY_VERBS
from bot.surveys.commands import SURVEY_COMMANDS
from bot.surveys.definitions import Survey
from bot.surveys.dialog import SurveyDialog, offer_surveys
from bot.surveys.loading import SurveyError, load_directory
from bot.surveys.service import BallotJob, ReminderJob, Surveys


def load_definitions(settings: Settings) -> dict[str, Survey]:
    """Every survey definition, validated; an invalid one stops the bot with its problems."""
    try:
        return load_directory(settings.surveys.directory)
    except SurveyError as exc:
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        raise FeatureStartupError(f"surveys.directory: invalid survey definition: {exc.problems[0]}{more}") from None


def surveys_service(services: Services) -> Surveys:
    return Surveys(load_definitions(services.settings), services.keys, services.participants, services.outbox,
                   services.i18n, services.audit)


def reminder_job(services: Services, clock: Clock) -> ReminderJob:
    return ReminderJob(services.database, services.get(Surveys), services.settings.surveys.reminder_after_hours,
                       clock=clock)


def ballot_job(services: Services, clock: Clock) -> BallotJob:
    surveys = services.settings.surveys
    return BallotJob(services.database, services.get(Surveys), surveys.anonymous_batch_hours,
                     surveys.anonymous_min_batch, clock=clock)


SURVEYS = Feature(
    name="surveys",
    commands=SURVEY_COMMANDS,
    cli=(SURVEY_VERBS,),
    dialogs=(SurveyDialog(),),
    menu=(MenuEntry("surveys", N_("Surveys"), 10, offer_surveys),),
    jobs=(Job("survey-reminders", lambda s: IntervalTrigger(minutes=s.surveys.reminder_check_minutes), reminder_job),
          Job("survey-ballots", lambda s: IntervalTrigger(minutes=s.surveys.anonymous_handoff_minutes), ballot_job)),
    sealed=(SURVEY_PROGRESS, SURVEY_ANSWER_TEXT, SURVEY_BALLOT),
    service=surveys_service,
    check=load_definitions,
)
