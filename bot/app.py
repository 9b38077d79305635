"""Wiring: builds the services, the router and the transports from the settings, and runs them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.cases.commands import DIALOGS as CASE_DIALOGS
from bot.cases.commands import PARTICIPANT_COMMANDS as CASE_COMMANDS
from bot.cases.commands import STAFF_COMMANDS as CASE_STAFF_COMMANDS
from bot.cases.commands import person_text, staff_room_text
from bot.cases.jobs import CaseUpkeepJob
from bot.cases.service import THREAD_KIND, CaseService
from bot.cases.threads import CaseThreads
from bot.config import Settings
from bot.core.context import Services
from bot.core.flood import FloodGuard
from bot.core.i18n import I18n
from bot.core.roles import StaffDirectory
from bot.core.router import Router
from bot.core.security import KeyFileError, KeyRing
from bot.core.transport import Transport
from bot.dialogs.delete_me import DeleteMeDialog
from bot.dialogs.engine import DialogEngine
from bot.dialogs.language import LanguageDialog
from bot.dialogs.menu import MenuDialog
from bot.dialogs.onboarding import OnboardingDialog
from bot.dialogs.survey import SurveyDialog
from bot.handlers.basics import BASIC_COMMANDS
from bot.handlers.registry import CommandTable
from bot.handlers.staff import STAFF_COMMANDS
from bot.handlers.surveys import SURVEY_COMMANDS
from bot.services.audit import AuditLog
from bot.services.organisations import Organisations
from bot.services.outbox import Outbox, OutboxSender
from bot.services.participants import Participants
from bot.services.retention import RetentionJob
from bot.services.staff_destinations import StaffDestinations
from bot.services.survey_definitions import Survey, SurveyError, load_directory
from bot.services.surveys import ReminderJob, Surveys
from bot.storage import migrate
from bot.storage.db import Database
from bot.transports.console import CONSOLE_USER, ConsoleTransport

log = logging.getLogger(__name__)


class StartupError(Exception):
    """The bot cannot start; the message says what to fix, in one line, without secrets."""


def load_keys(settings: Settings) -> KeyRing:
    """The key file, created only for the embedded console default."""
    path = settings.security.key_file
    if not path.exists() and settings.is_embedded_default:
        keys = KeyRing.generate()
        keys.save(path)
        log.warning("created a new key file at %s; back it up separately from the database", path)
        return keys
    try:
        return KeyRing.load(path)
    except KeyFileError as exc:
        raise StartupError(f"security.key_file: {exc}") from None


async def open_database(settings: Settings) -> Database:
    """SQLite is migrated automatically; PostgreSQL must have been upgraded explicitly."""
    database = Database(settings.database.url, echo=settings.database.echo)
    try:
        if database.is_sqlite:
            await migrate.upgrade(database)
        elif not await migrate.is_current(database):
            raise StartupError("database.url: the schema is not current; run 'civicbot db upgrade' first")
    except StartupError:
        await database.dispose()
        raise
    except Exception as exc:
        await database.dispose()
        raise StartupError(f"database.url: cannot open the database ({type(exc).__name__})") from None
    return database


def load_surveys(settings: Settings) -> dict[str, Survey]:
    """Every survey definition, validated; an invalid one stops the bot with its problems."""
    try:
        return load_directory(settings.surveys.directory)
    except SurveyError as exc:
        raise StartupError(f"surveys.directory: invalid survey definition: {exc.problems[0]}"
                           + (f" (and {len(exc.problems) - 1} more)" if len(exc.problems) > 1 else "")) from None


def build_services(settings: Settings, database: Database, keys: KeyRing, extra_staff: Sequence[str] = (),
                   surveys: Mapping[str, Survey] | None = None) -> Services:
    i18n = I18n(settings.i18n.default_language)
    participants = Participants(keys)
    outbox = Outbox(keys)
    audit = AuditLog()
    definitions = load_surveys(settings) if surveys is None else surveys
    members = [*settings.staff.members, *extra_staff, *settings.staff.admins]
    staff_destinations = StaffDestinations(keys, settings.staff.matrix_room, settings.staff.telegram_chat, members)
    return Services(
        settings=settings,
        database=database,
        keys=keys,
        i18n=i18n,
        staff=StaffDirectory(keys, [*settings.staff.members, *extra_staff], settings.staff.admins),
        participants=participants,
        organisations=Organisations(keys),
        outbox=outbox,
        audit=audit,
        surveys=Surveys(definitions, keys, participants, outbox, i18n),
        staff_destinations=staff_destinations,
        cases=CaseService(settings, keys, i18n, participants, outbox, staff_destinations, audit,
                          {"console": ConsoleTransport.capabilities.max_text_length}),
    )


def build_commands() -> CommandTable:
    return CommandTable((*BASIC_COMMANDS, *SURVEY_COMMANDS, *CASE_COMMANDS, *STAFF_COMMANDS, *CASE_STAFF_COMMANDS))


def build_engine(keys: KeyRing) -> DialogEngine:
    dialogs = (OnboardingDialog(), MenuDialog(), LanguageDialog(), DeleteMeDialog(), SurveyDialog(), *CASE_DIALOGS)
    return DialogEngine({d.name: d for d in dialogs}, keys)


@dataclass
class Bot:
    """A running instance: the router, its transports, their outbox senders and the scheduler."""

    services: Services
    router: Router
    transports: dict[str, Transport]
    senders: dict[str, OutboxSender] = field(default_factory=dict)


def build_bot(services: Services, transports: Sequence[Transport]) -> Bot:
    settings = services.settings
    by_platform: dict[str, Transport] = {str(t.platform): t for t in transports}
    router = Router(
        services, build_engine(services.keys), build_commands(), by_platform,
        FloodGuard(settings.limits.flood_messages, settings.limits.flood_window_seconds),
        idle_text=(person_text,), staff_room_text=(staff_room_text,),
    )
    for transport in transports:
        services.cases.learn_text_limit(str(transport.platform), transport.capabilities.max_text_length)
    hooks = {THREAD_KIND: CaseThreads(services.staff_destinations)}
    senders: dict[str, OutboxSender] = {
        str(t.platform): OutboxSender(
            services.database, services.outbox, services.participants, t, settings.outbox, _rate_for(settings, t),
            staff=services.staff_destinations, hooks=hooks,
        )
        for t in transports
    }
    return Bot(services, router, by_platform, senders)


def platform_text_limits(settings: Settings) -> dict[str, int]:
    """The longest message each configured platform takes, without starting its transport (for the CLI)."""
    limits = {"console": ConsoleTransport.capabilities.max_text_length}
    if settings.telegram.enabled:
        from bot.transports.telegram import TelegramTransport

        limits["telegram"] = TelegramTransport.capabilities.max_text_length
    if settings.matrix.enabled:
        from bot.transports.matrix import MatrixTransport

        limits["matrix"] = MatrixTransport.capabilities.max_text_length
    return limits


def _rate_for(settings: Settings, transport: Transport) -> float:
    return {"telegram": settings.telegram.rate_per_second, "matrix": settings.matrix.rate_per_second}.get(
        transport.platform, 100.0
    )


def participant_language(services: Services, platform: str) -> Callable[[str], Awaitable[str | None]]:
    """For a transport that speaks before the core does (Matrix notices): the person's language, if known."""

    async def language_of(user_id: str) -> str | None:
        async with services.database.sessions() as session:
            participant = await services.participants.find(session, services.keys.pseudonym(platform, user_id))
            return participant.language if participant is not None else None

    return language_of


def build_platform_transports(settings: Settings, services: Services) -> list[Transport]:
    """Telegram and Matrix transports for the configured platforms."""
    transports: list[Transport] = []
    i18n = services.i18n
    if settings.telegram.enabled:
        from bot.transports.telegram import from_settings as telegram_from_settings

        transports.append(telegram_from_settings(settings, services.keys, i18n, build_commands().menus(i18n)))
    if settings.matrix.enabled:
        from bot.transports.matrix import from_settings as matrix_from_settings

        transports.append(matrix_from_settings(settings, services.keys, i18n,
                                               language_of=participant_language(services, "matrix")))
    return transports


def _scheduler(services: Services) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    retention = RetentionJob(services.database, services.settings.retention)
    scheduler.add_job(retention, "interval", hours=services.settings.retention.purge_interval_hours,
                      id="retention", coalesce=True, max_instances=1)
    reminders = ReminderJob(services.database, services.surveys, services.settings.surveys.reminder_after_hours)
    scheduler.add_job(reminders, "interval", minutes=services.settings.surveys.reminder_check_minutes,
                      id="survey-reminders", coalesce=True, max_instances=1)
    cases = CaseUpkeepJob(services.database, services.cases)
    scheduler.add_job(cases, "interval", minutes=services.settings.contacts.check_minutes,
                      id="case-upkeep", coalesce=True, max_instances=1)
    return scheduler


async def run(settings: Settings, *, console: bool, as_staff: bool, stdin: TextIO, stdout: TextIO) -> int:
    """Run until EOF (console) or a signal (platforms). Returns the exit code."""
    surveys = load_surveys(settings)  # first: an invalid definition stops the bot before it touches anything
    keys = load_keys(settings)
    database = await open_database(settings)
    try:
        extra_staff = [f"console:{CONSOLE_USER}"] if as_staff else []
        services = build_services(settings, database, keys, extra_staff, surveys)
        use_console = console or not settings.has_platform
        transports: list[Transport] = (
            [ConsoleTransport(stdin, stdout)] if use_console
            else build_platform_transports(settings, services)
        )
        bot = build_bot(services, transports)
        await RetentionJob(database, settings.retention)()
        await CaseUpkeepJob(database, services.cases)()
        if settings.contacts.enabled and not services.staff_destinations.rooms:
            log.warning("contact requests are on, but neither staff.matrix_room nor staff.telegram_chat is set: "
                        "staff learn of new cases only through /cases")
        scheduler = _scheduler(services)
        scheduler.start()
        stop = asyncio.Event()
        sender_tasks = [asyncio.create_task(s.run(stop)) for s in bot.senders.values()]
        exit_code = 0
        try:
            for transport in transports:
                await transport.start(bot.router.handle)
            if use_console:
                await transports[0].run_until_eof()  # type: ignore[attr-defined]
                # Deliver what the session queued (invitations, reminders) before the chat ends.
                await bot.senders[transports[0].platform].drain_once()
            else:
                exit_code = await _wait_for_signal_or_failure(transports)
        finally:
            stop.set()
            for transport in transports:
                await transport.stop()
            await asyncio.gather(*sender_tasks, return_exceptions=True)
            scheduler.shutdown(wait=False)
    finally:
        await database.dispose()
    return exit_code


async def _wait_for_signal_or_failure(transports: Sequence[Transport]) -> int:
    """Run until SIGINT/SIGTERM (exit 0), or until a transport dies for good (exit 1), so a
    supervisor restarts the bot instead of leaving it half deaf."""
    import signal

    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopped.set)
    signal_task = asyncio.ensure_future(stopped.wait())
    watched = {asyncio.ensure_future(t.wait_stopped()): t for t in transports if hasattr(t, "wait_stopped")}
    done, pending = await asyncio.wait({signal_task, *watched}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    if signal_task in done:
        return 0
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: the transport's own failure attribute says why
        failure = getattr(watched[task], "failure", None)
        log.error("the %s transport stopped: %s", watched[task].platform,
                  type(failure).__name__ if failure else "no reason given")
    return 1
