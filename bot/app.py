"""Wiring: builds the services, the router and the transports from the settings and the list of
features, and runs them.

Building and running are separate steps (:func:`assemble`, then :meth:`Bot.start` /
:meth:`Bot.wait` / :meth:`Bot.stop`), so tests and benchmarks use exactly the wiring of
``civicbot run``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TextIO

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings, missing_directories
from bot.conversation.engine import MENU, DialogEngine
from bot.conversation.feature import Clock, Feature, FeatureSet, FeatureStartupError
from bot.conversation.router import Router
from bot.conversation.turn import Services
from bot.core.flood import FloodGuard
from bot.core.i18n import I18n
from bot.core.logsafe import describe
from bot.core.model import Pseudonym
from bot.core.roles import StaffDirectory
from bot.core.security import KeyFileError, KeyRing
from bot.core.transport import Transport, TransportStartupError
from bot.dialogs.menu import MenuDialog
from bot.dialogs.onboarding import onboarding_state
from bot.features import FEATURES
from bot.operations.duties import (
    Duty,
    FailureWatch,
    JobWrapper,
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
from bot.services import key_check
from bot.services import running as running_lock
from bot.services.audit import AuditLog
from bot.services.delivery import OutboxSender, run_delivery
from bot.services.forget import ForgetJob
from bot.services.organisations import Organisations
from bot.services.outbox import Outbox, StaffAddresses, Wakeup
from bot.services.participants import Participants
from bot.services.retention import RetentionJob
from bot.storage import migrate
from bot.storage.db import Database
from bot.storage.models import Participant, utcnow
from bot.transports.console import CONSOLE_USER, ConsoleTransport, valid_user_name

log = logging.getLogger(__name__)

TransportFactory = Callable[[Services], Sequence[Transport]]
"""Builds the transports once the services exist (Telegram needs the command menus, Matrix the
participants' languages)."""


class StartupError(Exception):
    """The bot cannot start; the message says what to fix, in one line, without secrets."""


async def load_keys(settings: Settings, database: Database) -> KeyRing:
    """The key file, checked against the database it belongs to.

    A new key file is created only for the embedded console default, and only while the database
    is empty: created beside existing data, it would make everyone's data unreadable."""
    path = settings.security.key_file
    if not path.exists():
        empty = await key_check.database_is_empty(database)
        if settings.is_embedded_default and empty:
            keys = KeyRing.generate()
            keys.save(path)
            log.warning("created a new key file at %s; back it up separately from the database", path)
        elif empty:
            raise StartupError(f"security.key_file: key file {path} not found; create it with 'civicbot keys generate'")
        else:
            raise StartupError(f"security.key_file: key file {path} not found, and the database holds data sealed "
                               "with it; restore the key file from its backup (a new one cannot open that data)")
    else:
        try:
            keys = KeyRing.load(path)
        except KeyFileError as exc:
            raise StartupError(f"security.key_file: {exc}") from None
    await check_keys(settings, database, keys)
    return keys


async def check_keys(settings: Settings, database: Database, keys: KeyRing) -> None:
    """Stop with one line unless ``keys`` is the key file this database belongs to (bound at first use)."""
    try:
        try:
            async with database.sessions.begin() as session:
                await key_check.verify(session, keys)
        except IntegrityError:
            # Several workers started on a fresh database at once, and another one bound it first:
            # check against its binding.
            async with database.sessions.begin() as session:
                await key_check.verify(session, keys)
    except key_check.KeyMismatch as exc:
        raise StartupError(f"security.key_file: key file {settings.security.key_file} {exc}; use the key file "
                           "that belongs to database.url") from None


async def open_database(settings: Settings, *, upgrade: bool = False) -> Database:
    """SQLite is migrated automatically; PostgreSQL must have been upgraded explicitly
    (``upgrade=True`` does it, for tests and ``civicbot db upgrade``)."""
    database = Database(settings.database.url, echo=settings.database.echo)
    try:
        if database.is_sqlite or upgrade:
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


def check_directories(settings: Settings) -> None:
    """A definition directory that is missing (a typo, the wrong working directory) would
    otherwise leave the bot running with nothing to offer."""
    problems = missing_directories(settings)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise StartupError(problems[0] + more)


def feature_set(settings: Settings, features: Iterable[Feature] | None = None) -> FeatureSet:
    return FeatureSet(FEATURES if features is None else features, settings)


def check_features(features: FeatureSet, settings: Settings) -> None:
    """Every enabled feature's own configuration check, before anything is created."""
    for feature in features:
        if feature.check is not None:
            try:
                feature.check(settings)
            except FeatureStartupError as exc:
                raise StartupError(str(exc)) from None


def build_services(settings: Settings, database: Database, keys: KeyRing, extra_staff: Sequence[str] = (),
                   features: Iterable[Feature] | FeatureSet | None = None) -> Services:
    """The cross-cutting services, then each enabled feature's own service, in list order."""
    chosen = features if isinstance(features, FeatureSet) else feature_set(settings, features)
    provided: dict[type, object] = {FeatureSet: chosen}
    services = Services(
        settings=settings,
        database=database,
        keys=keys,
        i18n=I18n(settings.i18n.default_language),
        staff=StaffDirectory(keys, [*settings.staff.members, *extra_staff], settings.staff.admins),
        participants=Participants(keys),
        organisations=Organisations(keys),
        outbox=Outbox(keys, StaffAddresses.configured(keys, settings.staff.matrix_room, settings.staff.telegram_chat,
                                                      [*settings.staff.members, *settings.staff.admins]), Wakeup()),
        audit=AuditLog(),
        text_limits=platform_text_limits(settings),
        provided=MappingProxyType(provided),
    )
    for factory in chosen.services():
        try:
            service = factory(services)
        except FeatureStartupError as exc:
            raise StartupError(str(exc)) from None
        provided[type(service)] = service
    return services


def build_engine(features: FeatureSet, keys: KeyRing) -> DialogEngine:
    """Every enabled feature's dialogs, and the main menu built from their entries."""
    dialogs = {MENU: MenuDialog(features.menu()), **{d.name: d for d in features.dialogs()}}
    return DialogEngine(dialogs, keys)


def build_platform_transports(services: Services, *, telegram: Mapping[str, Any] | None = None,
                              matrix: Mapping[str, Any] | None = None) -> list[Transport]:
    """Telegram and Matrix transports for the configured platforms (``telegram``/``matrix``: option
    overrides, for tests and benchmarks that need shorter timeouts)."""
    settings, i18n = services.settings, services.i18n
    transports: list[Transport] = []
    if settings.telegram.enabled:
        from bot.transports.telegram import from_settings as telegram_from_settings

        menus = services.get(FeatureSet).command_table().menus(i18n)
        transports.append(telegram_from_settings(settings, services.keys, i18n, menus, **(telegram or {})))
    if settings.matrix.enabled:
        from bot.transports.matrix import from_settings as matrix_from_settings

        transports.append(matrix_from_settings(settings, services.keys, i18n,
                                               language_of=participant_language(services, "matrix"),
                                               **(matrix or {})))
    return transports


def participant_language(services: Services, platform: str) -> Callable[[str], Awaitable[str | None]]:
    """For a transport that speaks before the core does (Matrix notices): the person's language, if known."""

    async def language_of(user_id: str) -> str | None:
        async with services.database.sessions() as session:
            participant = await services.participants.find(session, services.keys.pseudonym(platform, user_id))
            return participant.language if participant is not None else None

    return language_of


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


def retention_job(services: Services) -> RetentionJob:
    """The purge over every feature's retention rules; expiring people get every erasure hook."""
    features = services.get(FeatureSet)

    async def erase(session: AsyncSession, participant: Participant) -> None:
        await features.erase(session, services, participant)
        await services.participants.prepare_erasure(session, participant.id)

    return RetentionJob(services.database, services.settings.retention, features.retention(), erase=erase)


def build_scheduler(services: Services, clock: Clock = utcnow, *, wrap: JobWrapper | None = None,
                    purge_now: bool = False, transports: Mapping[str, Transport] | None = None) -> AsyncIOScheduler:
    """The retention purge, every enabled feature's jobs, and (with ``transports``) the retry of
    erased people's addresses still to forget, run on the event loop.

    ``wrap`` decorates each job by its id (metrics, the cross-worker job lock); ``purge_now``
    also runs the purge and the forgetting at once (a worker that just became the leader: what an
    earlier term left undone).
    """
    settings = services.settings
    features = services.get(FeatureSet)
    scheduler = AsyncIOScheduler(timezone="UTC")

    def job(name: str, function: Callable[[], Awaitable[object]]) -> Callable[[], Coroutine[Any, Any, None]]:
        return _on_loop(wrap(name, function) if wrap is not None else function)

    first_run = {"next_run_time": dt.datetime.now(dt.UTC)} if purge_now else {}
    scheduler.add_job(job("retention", retention_job(services)),
                      IntervalTrigger(hours=settings.retention.purge_interval_hours),
                      id="retention", coalesce=True, max_instances=1, **first_run)
    for scheduled in features.jobs():
        scheduler.add_job(job(scheduled.id, scheduled.factory(services, clock)), scheduled.trigger(settings),
                          id=scheduled.id, coalesce=True, max_instances=1)
    if transports:
        scheduler.add_job(job("forget-erased", ForgetJob(services.database, services.keys, transports)),
                          IntervalTrigger(minutes=10), id="forget-erased", coalesce=True, max_instances=1,
                          **first_run)
    return scheduler


def _on_loop(job: Callable[[], Awaitable[object]]) -> Callable[[], Coroutine[Any, Any, None]]:
    """APScheduler runs only coroutine *functions* on the loop; a callable object with an async
    ``__call__`` would go to a thread and its coroutine never run."""

    async def run() -> None:
        await job()

    return run


@dataclass
class Bot:
    """One assembled bot: services, router, transports, an outbox sender per transport, the features'
    workers, the scheduler.

    ``start`` connects the transports and starts the senders and the scheduler; ``wait`` returns
    the exit code once a transport ends (end of input, or a fatal failure) or a signal arrives;
    ``stop`` stops everything and closes the database.
    """

    services: Services
    router: Router
    transports: dict[str, Transport]
    senders: dict[str, OutboxSender] = field(default_factory=dict)
    scheduler: AsyncIOScheduler | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _started: list[Transport] = field(default_factory=list)

    @property
    def features(self) -> FeatureSet:
        return self.services.get(FeatureSet)

    async def start(self, *, senders: bool = True, scheduler: bool = True) -> None:
        for transport in self.transports.values():
            await transport.start(self.router.handle)
            self._started.append(transport)
        # What an earlier run could not finish: platforms forgetting people erased meanwhile.
        await ForgetJob(self.services.database, self.services.keys, self.transports)()
        if senders:  # the features' workers (bulletin progress) run with the delivery they follow
            outbox, database = self.services.outbox, self.services.database
            self._tasks = [asyncio.create_task(run_delivery(self.senders, database, outbox.wakeup, self._stop))]
            self._tasks += [asyncio.create_task(worker.factory(self.services, self.transports)(self._stop))
                            for worker in self.features.workers()]
        if scheduler:
            self.scheduler = build_scheduler(self.services, transports=self.transports)
            self.scheduler.start()

    async def wait(self, *, signals: bool = False) -> int:
        """0 at end of input (after delivering what was queued) or on SIGINT/SIGTERM; 1 when a
        transport stopped for good, so a supervisor restarts the bot instead of leaving it half deaf."""
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        if signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stopped.set)
        signal_task: asyncio.Future[object] = asyncio.ensure_future(stopped.wait())
        watched: dict[asyncio.Future[object], Transport] = {
            asyncio.ensure_future(t.wait_stopped()): t for t in self.transports.values()}
        try:
            done, _ = await asyncio.wait({signal_task, *watched}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (signal_task, *watched):
                task.cancel()
            if signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)
        if signal_task in done:
            return 0
        code = 0
        for task in done:
            transport = watched[task]
            if transport.failure is not None:
                log.error("the %s transport stopped: %s", transport.platform, _reason(transport.failure))
                code = 1
            elif (sender := self.senders.get(transport.platform)) is not None:
                await sender.drain_once()  # deliver what the session queued before the chat ends
        return code

    async def stop(self) -> None:
        """Stop transports, senders and scheduler, then close the database. Idempotent."""
        self._stop.set()
        try:
            await asyncio.gather(*self._tasks, return_exceptions=True)  # what the senders claimed goes out first
            self._tasks = []
            for transport in reversed(self._started):
                try:
                    await transport.stop()
                except Exception as exc:
                    log.error("stopping the %s transport failed: %s", transport.platform, describe(exc))
            self._started.clear()
            if self.scheduler is not None and self.scheduler.running:
                self.scheduler.shutdown(wait=False)
        finally:
            await self.services.database.dispose()


def _reason(failure: BaseException) -> str:
    """A transport's startup errors are written to be shown (no secrets); anything else by type."""
    return str(failure) if isinstance(failure, TransportStartupError) else type(failure).__name__


def build_bot(services: Services, transports: Sequence[Transport]) -> Bot:
    """The router and an outbox sender per transport, from the services' features."""
    settings = services.settings
    features = services.get(FeatureSet)
    by_platform: dict[str, Transport] = {str(t.platform): t for t in transports}
    router = Router(
        services, build_engine(features, services.keys), features.command_table(), by_platform,
        FloodGuard(settings.limits.flood_messages, settings.limits.flood_window_seconds),
        newcomer=onboarding_state, interceptors=features.interceptors(), idle_text=features.idle_text(),
        staff_room_text=features.staff_room_text(),
    )
    # The running transports' own limits win over what the configuration implies.
    services.text_limits.update({platform: t.capabilities.max_text_length for platform, t in by_platform.items()})
    senders = {
        platform: OutboxSender(services.database, services.outbox, services.keys, t, settings.outbox,
                               rate_per_second=t.rate_per_second, transport_paces=t.paces_sends,
                               only_for=_console_person(services, t))
        for platform, t in by_platform.items()
    }
    return Bot(services, router, by_platform, senders)


def _console_person(services: Services, transport: Transport) -> Pseudonym | None:
    """A console window delivers only its own person's queued messages."""
    if isinstance(transport, ConsoleTransport):
        return services.keys.pseudonym(transport.platform, transport.user_id)
    return None


async def assemble(settings: Settings, *, keys: KeyRing | None = None, transports: TransportFactory | None = None,
                   features: Iterable[Feature] | None = None, extra_staff: Sequence[str] = (),
                   upgrade: bool = False) -> Bot:
    """Everything ``civicbot run`` builds, not yet started: checks the features' configuration,
    loads the keys (unless given), opens the database, builds services, transports and the bot."""
    chosen = feature_set(settings, features)
    check_features(chosen, settings)  # first: a bad definition stops the bot before it creates anything
    database = await open_database(settings, upgrade=upgrade)
    try:
        if keys is None:
            keys = await load_keys(settings, database)
        else:
            await check_keys(settings, database, keys)
        services = build_services(settings, database, keys, extra_staff, chosen)
        built = (transports or build_platform_transports)(services)
        return build_bot(services, built)
    except BaseException:
        await database.dispose()
        raise


@asynccontextmanager
async def running(settings: Settings, *, keys: KeyRing | None = None, transports: TransportFactory | None = None,
                  features: Iterable[Feature] | None = None, extra_staff: Sequence[str] = (),
                  upgrade: bool = False, senders: bool = True, scheduler: bool = False) -> AsyncIterator[Bot]:
    """An assembled and started bot, stopped on exit: what tests and benchmarks run."""
    bot = await assemble(settings, keys=keys, transports=transports, features=features,
                         extra_staff=extra_staff, upgrade=upgrade)
    try:
        await bot.start(senders=senders, scheduler=scheduler)
        yield bot
    finally:
        await bot.stop()


ROTATION_RUNNING = "security.key_file: a key rotation is running; start the bot once it has finished"

NO_PLATFORM = (
    "no platform is configured (telegram.token, e.g. CIVICBOT_TELEGRAM__TOKEN, or matrix.homeserver, "
    "e.g. CIVICBOT_MATRIX__HOMESERVER) and standard input is not a terminal; "
    "for the console chat use 'civicbot run --console'"
)


async def run(settings: Settings, *, console: bool, as_staff: bool, stdin: TextIO, stdout: TextIO,
              stderr: TextIO | None = None, user: str = CONSOLE_USER) -> int:
    """``civicbot run``: until end of input (console), a signal, or a transport's failure. Returns the exit code.

    With no platform configured the console chat starts only for a person at a terminal
    (or with ``console``): a container that lost its token must stop, not chat with /dev/null.
    With a platform configured, this process is one worker among any number (:func:`run_worker`).
    """
    use_console = console or not settings.has_platform
    if use_console and not console and not stdin.isatty():
        raise StartupError(NO_PLATFORM)
    if not valid_user_name(user):
        raise StartupError("--user: a console user name is one word of at most 64 characters")
    check_directories(settings)
    if not use_console:
        return await run_worker(settings)
    console_transport = ConsoleTransport(stdin, stdout, user)

    def transports(services: Services) -> Sequence[Transport]:
        return [console_transport]

    extra_staff = [f"console:{user}"] if as_staff else []
    bot = await assemble(settings, transports=transports, extra_staff=extra_staff)
    try:
        # Held until exit: ``keys rotate`` refuses to run beside a running bot.
        async with running_lock.as_running_bot(settings.security.key_file, bot.services.database):
            await retention_job(bot.services)()
            if console_transport is not None:
                if stderr is not None and stdin.isatty():
                    print(console_transport.hint(bot.services.i18n.translator(None)), file=stderr, flush=True)
                # What was queued for this person while their window was closed comes first.
                await bot.senders[console_transport.platform].drain_once()
            await bot.start()
            return await bot.wait(signals=False)
    except running_lock.RotationRunning:
        raise StartupError(ROTATION_RUNNING) from None
    finally:
        with suppress(asyncio.CancelledError):
            await bot.stop()


# ---------------------------------------------------------------------- several workers


async def run_worker(settings: Settings) -> int:
    """One worker among any number on one PostgreSQL (or the only one on SQLite), until a signal."""
    bot, worker = await assemble_worker(settings)
    try:
        # Held until exit: ``keys rotate`` refuses to run beside a running worker (flock on the key
        # file on this host; on PostgreSQL a shared advisory lock, for workers on other hosts too).
        async with running_lock.as_running_bot(settings.security.key_file, bot.services.database):
            return await worker.run()
    except running_lock.RotationRunning:
        raise StartupError(ROTATION_RUNNING) from None
    finally:
        with suppress(asyncio.CancelledError):
            await bot.stop()


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


@dataclass
class WorkerTransports:
    """Transports every worker runs, and the slots of those only the leader runs (with their builders)."""

    shared: list[Transport] = field(default_factory=list)
    slots: list[TransportSlot] = field(default_factory=list)
    builds: dict[str, Callable[[], Transport]] = field(default_factory=dict)

    def running(self) -> list[Transport]:
        return [*self.shared, *(s.current for s in self.slots if s.current is not None)]


def worker_transports(services: Services, metrics: Metrics, grace_seconds: float) -> WorkerTransports:
    """Telegram in webhook mode on every worker (the reverse proxy spreads the updates); the Matrix
    sync and Telegram long polling on the leader only, built afresh for each term."""
    settings, i18n = services.settings, services.i18n
    parts = WorkerTransports()
    if settings.telegram.enabled:
        from bot.transports.telegram import from_settings as telegram_from_settings

        menus = services.get(FeatureSet).command_table().menus(i18n)

        # Behind a webhook on PostgreSQL each worker sees a share of every chat (for /panic's count);
        # polling and SQLite keep a chat in one process.
        alone = settings.telegram.mode != "webhook" or services.database.is_sqlite

        def telegram() -> Transport:
            return MeasuredTransport(telegram_from_settings(settings, services.keys, i18n, menus,
                                                            shutdown_grace_seconds=grace_seconds,
                                                            sees_whole_chat=alone), metrics)

        if settings.telegram.mode == "webhook":
            parts.shared.append(telegram())
        else:
            parts.builds["telegram"] = telegram
    if settings.matrix.enabled:
        from bot.transports.matrix import from_settings as matrix_from_settings

        def matrix() -> Transport:
            return MeasuredTransport(matrix_from_settings(settings, services.keys, i18n,
                                                          language_of=participant_language(services, "matrix")),
                                     metrics)

        parts.builds["matrix"] = matrix
    for build in parts.builds.values():
        sample = build()  # nothing connects before start(); only its platform, capabilities and rate are read
        parts.slots.append(TransportSlot(sample.platform, sample.capabilities, sample.rate_per_second,
                                         sample.paces_sends))
    return parts


async def assemble_worker(settings: Settings, *, keys: KeyRing | None = None, metrics: Metrics | None = None,
                          leadership: Leadership | None = None) -> tuple[Bot, Worker]:
    """The bot and the worker that runs it: what ``civicbot run`` runs on the platforms.

    On the leader only: the Matrix sync, Telegram long polling, the outbox senders (so each
    platform's per-bot rate is paced in one place, whatever the number of workers) and the
    scheduler.
    """
    metrics = metrics if metrics is not None else Metrics(CollectorRegistry(auto_describe=True))
    grace = settings.runtime.shutdown_grace_seconds
    part_grace = max(grace * 0.75 - 0.5, 0.5)  # what each component gets; the rest is for the lock and exit
    parts = WorkerTransports()

    def transports(services: Services) -> Sequence[Transport]:
        built = worker_transports(services, metrics, part_grace)
        parts.shared, parts.slots, parts.builds = built.shared, built.slots, built.builds
        return [*built.shared, *built.slots]

    bot = await assemble(settings, keys=keys, transports=transports)
    try:
        return bot, build_worker(bot, parts, metrics, part_grace, leadership)
    except BaseException:
        await bot.stop()
        raise


def build_worker(bot: Bot, parts: WorkerTransports, metrics: Metrics, part_grace: float,
                 leadership: Leadership | None = None) -> Worker:
    services = bot.services
    settings, database = services.settings, services.database
    gate, failures = TurnGate(), FailureWatch()
    handler = gate.wrap(metrics.measure_turns(bot.router.handle))
    duties: list[Duty] = [
        LeaderTransportDuty(slot, parts.builds[str(slot.platform)], handler, gate, failures, part_grace,
                            hold_back_turns=str(slot.platform) == "matrix")
        for slot in parts.slots
    ]
    if bot.senders:
        # Every platform's sender, and on PostgreSQL the LISTEN that wakes them when a follower
        # commits rows. At a stop they finish what they claimed (at most their window).
        duties.append(SenderDuty("outbox senders", lambda stop: run_delivery(
            bot.senders, database, services.outbox.wakeup, stop), None, part_grace))
    # The features' workers (the bulletin progress reporter) follow the senders: on the leader only,
    # where the platform transports run.
    duties.extend(SenderDuty(worker.name, worker.factory(services, bot.transports), None, part_grace)
                  for worker in bot.features.workers())

    def scheduler(track: JobWrapper) -> AsyncIOScheduler:
        def wrap(name: str, job: Callable[[], Awaitable[object]]) -> Callable[[], Awaitable[object]]:
            return track(name, exclusive(database, name, metrics.measure_job(name, job)))

        return build_scheduler(services, wrap=wrap, purge_now=True, transports=bot.transports)

    duties.append(SchedulerDuty(scheduler, part_grace))
    leadership = leadership if leadership is not None else build_leadership(settings, database)

    health = None
    if settings.observability.listen:
        stats = DatabaseStats(database, settings.observability.stats_refresh_seconds)
        metrics.registry.register(stats)
        metrics.registry.register(TransportCounters(parts.running, parts.slots))
        head = migrate.head_revision()

        async def database_answers() -> bool:
            async with database.sessions() as session:
                return (await session.scalar(text("SELECT 1"))) == 1

        async def schema_current() -> bool:
            return await migrate.current_revision(database) == head

        async def transports_connected() -> bool:
            return all(getattr(t, "ready", True) for t in parts.running())

        health = HealthServer(ListenAddress.parse(settings.observability.listen), metrics,
                              {"database": database_answers, "migrations": schema_current,
                               "transports": transports_connected}, stats)
    return Worker(leadership, handler, parts.shared, duties, failures, settings.runtime.shutdown_grace_seconds,
                  health, metrics.set_leader)
