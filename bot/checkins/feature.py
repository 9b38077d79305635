"""Check-ins with associations, declared once: commands, verbs, the answering dialog, the job that
wakes the feature, sealed columns, retention, and the service (with the feature's one clock)."""

from __future__ import annotations

from apscheduler.triggers.interval import IntervalTrigger

from bot.checkins.cli import CHECKIN_VERBS
from bot.checkins.commands import CHECKIN_COMMANDS
from bot.checkins.dialog import CheckinDialog
from bot.checkins.job import CheckinJob
from bot.checkins.mail import Mail
from bot.checkins.service import Checkins
from bot.checkins.templates import CheckinTemplate, TemplateError, load_directory
from bot.config import Settings
from bot.conversation.feature import Clock, Feature, FeatureStartupError, Job, ServiceFactory
from bot.conversation.turn import Services
from bot.storage.models import CHECKIN_ANSWER_TEXT, CHECKIN_HISTORY, CHECKIN_PROGRESS, utcnow


def load_templates(settings: Settings) -> dict[str, CheckinTemplate]:
    """Every check-in template, validated; an invalid one stops the bot with its problems."""
    try:
        return load_directory(settings.checkins.directory)
    except TemplateError as exc:
        more = f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else ""
        raise FeatureStartupError(f"checkins.directory: invalid check-in template: {exc.problems[0]}{more}") from None


def checkins_service(clock: Clock) -> ServiceFactory:
    def build(services: Services) -> Checkins:
        return Checkins(load_templates(services.settings), services.settings.checkins, services.keys,
                        services.participants, Mail(services.outbox), services.i18n, clock)

    return build


def checkin_job(services: Services, _scheduler_clock: Clock) -> CheckinJob:
    """The feature keeps one clock: its service's (so a test that moves it moves everything)."""
    return CheckinJob(services.database, services.get(Checkins))


def checkins_feature(clock: Clock = utcnow) -> Feature:
    """The declaration; tests pass a clock they move. Erasure needs no hook: a contact person's
    deliveries and contact-person mark go with them (cascade), and the check-ins they answered
    stay the association's, without the link to them (``answered_by`` is set to NULL)."""
    return Feature(
        name="checkins",
        commands=CHECKIN_COMMANDS,
        cli=(CHECKIN_VERBS,),
        dialogs=(CheckinDialog(),),
        jobs=(Job("checkins", lambda s: IntervalTrigger(minutes=s.checkins.check_minutes), checkin_job),),
        sealed=(CHECKIN_ANSWER_TEXT, CHECKIN_PROGRESS),
        retention=(CHECKIN_HISTORY,),
        service=checkins_service(clock),
        check=load_templates,
    )


CHECKINS = checkins_feature()
