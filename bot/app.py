"""Wiring: builds the services, the router and the transports from the settings, and runs them."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from prometheus_client import CollectorRegistry
from sqlalchemy import text

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
from bot.operations.duties import (
    Duty,
    FailureWatch,
    LeaderTransportDuty,
    SchedulerDuty,
    SenderDuty,
    TransportSlot,
    TurnGate,
)
from bot.operations.health import HealthServer, ListenAddress
from bot.operations.jobs import exclusive
from bot.operations.leader import Leadership, LeaderTimings, PostgresLeader, SoleLeader
from bot.operations.metrics import DatabaseStats, MeasuredTransport, Metrics, TransportCounters
from bot.operations.worker import Worker
from bot.services.audit import AuditLog
from bot.services.organisations import Organisations
from bot.services.outbox import Outbox, OutboxSender
from bot.services.participants import Participants
from bot.services.retention import RetentionJob
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
    definitions = load_surveys(settings) if surveys is None else surveys
    return Services(
        settings=settings,
        database=database,
        keys=keys,
        i18n=i18n,
        staff=StaffDirectory(keys, [*settings.staff.members, *extra_staff], settings.staff.admins),
        participants=participants,
        organisations=Organisations(keys),
        outbox=outbox,
        audit=AuditLog(),
        surveys=Surveys(definitions, keys, participants, outbox, i18n),
    )


def build_commands() -> CommandTable:
    return CommandTable((*BASIC_COMMANDS, *SURVEY_COMMANDS, *STAFF_COMMANDS))


def build_engine(keys: KeyRing) -> DialogEngine:
    dialogs = (OnboardingDialog(), MenuDialog(), LanguageDialog(), DeleteMeDialog(), SurveyDialog())
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
    )
    senders: dict[str, OutboxSender] = {
        str(t.platform): OutboxSender(
            services.database, services.outbox, services.participants, t, settings.outbox, _rate_for(settings, t)
        )
        for t in transports
    }
    return Bot(services, router, by_platform, senders)


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


def _scheduler(services: Services, metrics: Metrics | None = None, *, purge_now: bool = False) -> AsyncIOScheduler:
    """The scheduled jobs; each is safe to run twice, and on PostgreSQL never runs twice at once.
    ``purge_now``: the retention purge also runs at once (a worker that just became the leader)."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    settings, database = services.settings, services.database

    def job(name: str, function: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
        measured = metrics.measure_job(name, function) if metrics is not None else function

        async def run_job() -> object:
            # A coroutine function, as APScheduler's asyncio executor needs to await it (an object
            # with an async __call__ would be run in a thread, and its coroutine never awaited).
            return await measured()

        return exclusive(database, name, run_job)

    retention = RetentionJob(database, settings.retention)
    first_purge = {"next_run_time": dt.datetime.now(dt.UTC)} if purge_now else {}
    scheduler.add_job(job("retention", retention), "interval", hours=settings.retention.purge_interval_hours,
                      id="retention", coalesce=True, max_instances=1, **first_purge)
    reminders = ReminderJob(database, services.surveys, settings.surveys.reminder_after_hours)
    scheduler.add_job(job("survey-reminders", reminders), "interval", minutes=settings.surveys.reminder_check_minutes,
                      id="survey-reminders", coalesce=True, max_instances=1)
    return scheduler


async def run(settings: Settings, *, console: bool, as_staff: bool, stdin: TextIO, stdout: TextIO) -> int:
    """Run until EOF (console) or a signal (platforms). Returns the exit code."""
    surveys = load_surveys(settings)  # first: an invalid definition stops the bot before it touches anything
    keys = load_keys(settings)
    database = await open_database(settings)
    try:
        extra_staff = [f"console:{CONSOLE_USER}"] if as_staff else []
        services = build_services(settings, database, keys, extra_staff, surveys)
        if console or not settings.has_platform:
            return await _run_console(services, ConsoleTransport(stdin, stdout))
        worker = await build_worker(services)
        return await worker.run()
    finally:
        await database.dispose()


async def _run_console(services: Services, console: ConsoleTransport) -> int:
    """One process, one person at the terminal: no leader election, no health server."""
    bot = build_bot(services, [console])
    await RetentionJob(services.database, services.settings.retention)()
    scheduler = _scheduler(services)
    scheduler.start()
    stop = asyncio.Event()
    sender_tasks = [asyncio.create_task(s.run(stop)) for s in bot.senders.values()]
    try:
        await console.start(bot.router.handle)
        await console.run_until_eof()
        # Deliver what the session queued (invitations, reminders) before the chat ends.
        await bot.senders[console.platform].drain_once()
    finally:
        stop.set()
        await console.stop()
        await asyncio.gather(*sender_tasks, return_exceptions=True)
        scheduler.shutdown(wait=False)
    return 0


def build_leadership(settings: Settings, database: Database) -> Leadership:
    """PostgreSQL elects one leader among the workers; SQLite's single process always leads."""
    if database.is_sqlite:
        return SoleLeader()
    runtime = settings.runtime
    return PostgresLeader(settings.database.url, LeaderTimings(
        retry_seconds=runtime.leader_retry_seconds, check_seconds=runtime.leader_check_seconds,
        check_timeout_seconds=runtime.leader_check_timeout_seconds,
        step_down_seconds=runtime.shutdown_grace_seconds,
    ))


async def build_worker(services: Services, metrics: Metrics | None = None,
                       leadership: Leadership | None = None) -> Worker:
    """A ``civicbot run`` worker on the configured platforms.

    Shared by every worker: Telegram in webhook mode (the reverse proxy spreads the updates).
    On the leader only: the Matrix sync, Telegram long polling, the outbox senders (so each
    platform's per-bot rate is paced in one place, whatever the number of workers) and the
    scheduler.
    """
    settings, database = services.settings, services.database
    metrics = metrics if metrics is not None else Metrics(CollectorRegistry(auto_describe=True))
    grace = settings.runtime.shutdown_grace_seconds
    part_grace = max(grace * 0.75 - 0.5, 0.5)  # what each component gets; the rest is for the lock and exit
    gate, failures = TurnGate(), FailureWatch()
    i18n = services.i18n

    shared: list[Transport] = []
    slots: list[TransportSlot] = []
    leader_builds: dict[str, Callable[[], Transport]] = {}
    if settings.telegram.enabled:
        from bot.transports.telegram import from_settings as telegram_from_settings

        def telegram() -> Transport:
            return MeasuredTransport(telegram_from_settings(
                settings, services.keys, i18n, build_commands().menus(i18n), shutdown_grace_seconds=part_grace,
            ), metrics)

        if settings.telegram.mode == "webhook":
            shared.append(telegram())
        else:
            leader_builds["telegram"] = telegram
    if settings.matrix.enabled:
        from bot.transports.matrix import from_settings as matrix_from_settings

        def matrix() -> Transport:
            return MeasuredTransport(matrix_from_settings(
                settings, services.keys, i18n, language_of=participant_language(services, "matrix"),
            ), metrics)

        leader_builds["matrix"] = matrix
    for build in leader_builds.values():
        sample = build()  # nothing connects before start(); only its platform and capabilities are read
        slots.append(TransportSlot(sample.platform, sample.capabilities))

    bot = build_bot(services, [*shared, *slots])
    handler = gate.wrap(metrics.measure_turns(bot.router.handle))
    duties: list[Duty] = [
        LeaderTransportDuty(slot, leader_builds[str(slot.platform)], handler, gate, failures, part_grace,
                            hold_back_turns=str(slot.platform) == "matrix")
        for slot in slots
    ]
    duties += [SenderDuty(f"{platform} outbox sender", sender.run, sender.release_claims, part_grace)
               for platform, sender in bot.senders.items()]
    duties.append(SchedulerDuty(lambda: _scheduler(services, metrics, purge_now=True)))
    leadership = leadership if leadership is not None else build_leadership(settings, database)

    health = None
    if settings.observability.listen:
        stats = DatabaseStats(database, settings.observability.stats_refresh_seconds)
        metrics.registry.register(stats)
        metrics.registry.register(TransportCounters(lambda: [*shared, *(s.current for s in slots if s.current)],
                                                    slots))
        head = migrate.head_revision()

        async def database_answers() -> bool:
            async with database.sessions() as session:
                return (await session.scalar(text("SELECT 1"))) == 1

        async def schema_current() -> bool:
            return await migrate.current_revision(database) == head

        async def transports_connected() -> bool:
            running = [*shared, *(s.current for s in slots if s.current is not None)]
            return all(getattr(t, "ready", True) for t in running)

        health = HealthServer(ListenAddress.parse(settings.observability.listen), metrics,
                              {"database": database_answers, "migrations": schema_current,
                               "transports": transports_connected}, stats)
    return Worker(leadership, handler, shared, duties, failures, grace, health, metrics.set_leader)
