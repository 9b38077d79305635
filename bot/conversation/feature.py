"""A capability, declared once.

A :class:`Feature` lists everything a capability brings: chat commands, ``civicbot`` verbs,
dialogs, main-menu entries, scheduled jobs, sealed columns, retention rules, what
``/delete_me`` must erase and the service it adds to :class:`Services`. The list of features
is kept in one place (``bot/features.py``); the wiring builds the menu, ``/help``, Telegram's
published commands, the command line, the scheduler, key rotation, retention and erasure from
it. Adding a capability means its own package with a ``feature.py`` plus one line in that list.

Like Django's app registry: a feature declares what it brings, the wiring assembles it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.conversation.commands import Command, CommandTable
from bot.conversation.engine import Dialog, Prompt, State
from bot.conversation.router import IdleText, Interceptor, StaffRoomText
from bot.conversation.turn import Services, Turn
from bot.core.problems import DefinitionError
from bot.core.security import KeyRing
from bot.core.transport import Transport
from bot.storage.db import Database
from bot.storage.lifecycle import RetentionRule, SealedColumn, SealKey
from bot.storage.models import Participant

if TYPE_CHECKING:
    from apscheduler.triggers.base import BaseTrigger

__all__ = [
    "Clock", "CliContext", "CliGroup", "CliVerb", "EraseHook", "Feature", "FeatureSet", "IdleText", "Interceptor",
    "Job", "MenuAction", "FeatureStartupError", "MenuEntry", "OnboardingStep", "RetentionRule", "SealKey",
    "SealedColumn", "ServiceFactory", "StaffRoomText", "Worker", "always",
]

T = TypeVar("T")

Clock = Callable[[], dt.datetime]
"""Now, in UTC. Jobs get it injected so tests can move time."""

MenuAction = Callable[[Turn], Awaitable[State | None]]
"""What choosing a menu entry does: the next dialog state, or None to show the menu again."""

EraseHook = Callable[[AsyncSession, Services, Participant], Awaitable[None]]
"""Deletes what a feature keeps about ``participant``, inside the erasure's transaction, before
the participant row (and by cascade their key, addresses and memberships) is deleted."""

ServiceFactory = Callable[[Services], object]
"""Builds a feature's own service from the cross-cutting ones (and services of features listed
earlier, through ``services.get``); the result is found by its type: ``services.get(Surveys)``.
May raise ``bot.conversation.feature.FeatureStartupError`` (e.g. an invalid definition file)."""


class FeatureStartupError(Exception):
    """A feature cannot start with this configuration; one line that names the setting, no secrets."""


def always(settings: Settings) -> bool:
    """The default of :attr:`Feature.enabled`: the feature is always on."""
    return True


@dataclass(frozen=True, slots=True)
class MenuEntry:
    """One choice of the main menu."""

    key: str
    """Stable id of the choice (never shown); unique across features."""
    label: str
    """An ``N_()`` marker, translated when the menu is shown."""
    order: int
    """Position: lower comes first. The basic features use 10, 20, ... so others fit between."""
    action: MenuAction
    """Runs when the person picks it: returns the next dialog state, or None to show the menu again."""


@dataclass(frozen=True, slots=True)
class Job:
    """A scheduled wake-up. It only *wakes* the feature: the state of timed work is in the
    feature's tables and claimed there, so a missed or doubled trigger changes nothing."""

    id: str
    """The scheduler's job id; unique across features."""
    trigger: Callable[[Settings], BaseTrigger]
    """Builds the APScheduler trigger from the settings, e.g.
    ``lambda s: IntervalTrigger(minutes=s.surveys.reminder_check_minutes)``."""
    factory: Callable[[Services, Clock], Callable[[], Awaitable[object]]]
    """Given the services and a clock, the async callable the scheduler calls. It must
    catch and log its own errors (by type only): a failing run must not stop the scheduler."""


@dataclass(frozen=True, slots=True)
class Worker:
    """A loop the running bot keeps beside its outbox senders, with the transports, until the bot
    stops (the bulletin progress reporter edits its staff messages through them). Its state must
    be in the database: it is restarted with the bot, and several workers may run it at once."""

    name: str
    factory: Callable[[Services, Mapping[str, Transport]], Callable[[asyncio.Event], Coroutine[Any, Any, None]]]
    """Given the services and the transports by platform, the loop; it returns once the event is set
    and catches and logs its own errors (by type only)."""


@dataclass(frozen=True, slots=True)
class OnboardingStep:
    """A question onboarding asks once, after the invitation code, to people who have not answered
    it (also people registered before the feature existed, the next time they finish onboarding)."""

    key: str
    """Stable id of the step (unique across features)."""
    pending: Callable[[Turn], Awaitable[bool]]
    """Whether the person (``turn.participant``) still has to answer."""
    prompt: Callable[[Turn], Prompt]
    """The question with its choices, in ``turn.tr``'s language."""
    answer: Callable[[Turn, str], Awaitable[None]]
    """Records the chosen choice's key (and may say something)."""


@dataclass(slots=True)
class CliContext:
    """What a ``civicbot`` verb gets: the settings, where to print, and (for verbs that need them)
    the database, the key ring and the same services the running bot uses."""

    settings: Settings
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    opened: Services | None = None

    @property
    def services(self) -> Services:
        if self.opened is None:
            raise RuntimeError("this verb was declared with needs_services=False")
        return self.opened

    @property
    def database(self) -> Database:
        return self.services.database

    @property
    def keys(self) -> KeyRing:
        return self.services.keys

    def fail(self, message: str, code: int = 1) -> int:
        """Print one clear line to stderr and return the exit code, e.g. ``return ctx.fail("no such group")``."""
        print(f"civicbot: {message}", file=self.err)
        return code

    def check_definitions(self, paths: Sequence[Path], load: Callable[[Path], T], summary: Callable[[T], str]) -> int:
        """The ``validate`` verbs: ``<file>: valid (<summary>)`` for each good file, every problem of a
        bad one as ``file:line: sentence``; exit code 1 if any file failed."""
        failed = False
        for path in paths:
            try:
                loaded = load(path)
            except FileNotFoundError:
                print(f"{path}: file not found", file=self.err)
                failed = True
            except DefinitionError as exc:
                for problem in exc.problems:
                    print(problem, file=self.err)
                failed = True
            else:
                print(f"{path}: valid ({summary(loaded)})", file=self.out)
        return 1 if failed else 0


@dataclass(frozen=True, slots=True)
class CliVerb:
    """``civicbot <group> <name> ...``. Must call the same service function as the staff chat
    command of the same name, so both write the same audit entry, once."""

    name: str
    """The verb, e.g. ``"launch"``."""
    help: str
    """One line for ``--help``."""
    run: Callable[[CliContext, argparse.Namespace], Awaitable[int]]
    """Does the work; returns the exit code (0 ok, 1 refused, 2 bad input)."""
    arguments: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    """Adds the verb's arguments to its parser."""
    needs_services: bool = True
    """False for verbs that touch no database or key file (``survey validate``)."""


@dataclass(frozen=True, slots=True)
class CliGroup:
    """A group of verbs: ``civicbot survey validate|list|launch|close|export``."""

    name: str
    help: str
    verbs: tuple[CliVerb, ...]


@dataclass(frozen=True, slots=True)
class Feature:
    """One capability, declared once. Every field but ``name`` is optional."""

    name: str
    """Unique, lowercase (``"surveys"``)."""
    commands: tuple[Command, ...] = ()
    """Chat commands, participant and staff (``Command.staff_only``). ``/help`` and Telegram's
    published commands are derived from them: the help lines are each command's ``usage`` (or its
    ``description``), so help cannot drift from the command table."""
    cli: tuple[CliGroup, ...] = ()
    """``civicbot`` verb groups."""
    dialogs: tuple[Dialog, ...] = ()
    """Persisted multi-step conversations (unique ``Dialog.name`` across features)."""
    menu: tuple[MenuEntry, ...] = ()
    """Main-menu entries, placed by their ``order``."""
    jobs: tuple[Job, ...] = ()
    """Scheduled wake-ups."""
    sealed: tuple[SealedColumn, ...] = ()
    """Every encrypted column of the feature's tables (declared next to the table). Key rotation
    iterates over these; a test fails when a model has an ``*_enc`` column nobody declares."""
    retention: tuple[RetentionRule, ...] = ()
    """How long the feature's rows live; the scheduled purge iterates over these."""
    erase: EraseHook | None = None
    """Called by ``/delete_me``, and by the retention purge for people inactive too long, before the
    participant row goes: delete what the feature keeps about the person that no foreign-key cascade
    reaches. Data sealed with their key is shredded anyway."""
    service: ServiceFactory | None = None
    """Builds the feature's own service, registered in ``Services`` by its type."""
    idle_text: tuple[IdleText, ...] = ()
    """Takers of text that is no command and answers no dialog (an open contact request takes it);
    tried in feature order, before the main menu is shown."""
    staff_room_text: tuple[StaffRoomText, ...] = ()
    """Takers of text said in the staff room that is no command (a reply in a case's thread);
    what nobody takes is staff talking among themselves, and gets no answer."""
    check: Callable[[Settings], object] | None = None
    """Validates the feature's own configuration (definition files, ...) at start, before any key
    file or database is created; raises :class:`FeatureStartupError` with one line naming the setting."""
    interceptors: tuple[Interceptor, ...] = ()
    """Looks at every text message before commands and dialogs (stop words)."""
    onboarding: tuple[OnboardingStep, ...] = ()
    """Questions onboarding asks once, after the invitation code."""
    workers: tuple[Worker, ...] = ()
    """Loops that run beside the outbox senders while the bot runs, with the transports."""
    enabled: Callable[[Settings], bool] = always
    """Whether the feature is on. An off feature has no commands, menu entries, dialogs, jobs,
    verbs or service; its sealed columns, retention rules and erasure hook still apply, because
    data written while it was on must still be rotated, expire and be erased."""


class FeatureSet:
    """The features of one deployment, with the views the wiring builds from.

    Names, commands, dialogs, menu keys, job ids and verb groups must be unique across
    features: a clash is a programming error and stops the bot at start.
    """

    __slots__ = ("declared", "enabled", "_table")

    def __init__(self, features: Iterable[Feature], settings: Settings) -> None:
        self.declared: tuple[Feature, ...] = tuple(features)
        self.enabled: tuple[Feature, ...] = tuple(f for f in self.declared if f.enabled(settings))
        _unique("feature", (f.name for f in self.declared))
        _unique("command", (c.name for c in self.commands()))
        _unique("dialog", (d.name for d in self.dialogs()))
        _unique("menu entry", (m.key for m in self.menu()))
        _unique("job", (j.id for j in self.jobs()))
        _unique("verb group", (g.name for g in self.cli()))
        _unique("onboarding step", (o.key for o in self.onboarding()))
        _unique("worker", (w.name for w in self.workers()))
        self._table = CommandTable(self.commands())

    def __iter__(self) -> Iterator[Feature]:
        return iter(self.enabled)

    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.enabled)

    def commands(self) -> tuple[Command, ...]:
        return tuple(c for f in self.enabled for c in f.commands)

    def command_table(self) -> CommandTable:
        """The commands of the features that are on: what the router dispatches, ``/help`` lists
        and Telegram publishes."""
        return self._table

    def dialogs(self) -> tuple[Dialog, ...]:
        return tuple(d for f in self.enabled for d in f.dialogs)

    def menu(self) -> tuple[MenuEntry, ...]:
        return tuple(sorted((m for f in self.enabled for m in f.menu), key=lambda m: m.order))

    def jobs(self) -> tuple[Job, ...]:
        return tuple(j for f in self.enabled for j in f.jobs)

    def cli(self) -> tuple[CliGroup, ...]:
        return tuple(g for f in self.enabled for g in f.cli)

    def interceptors(self) -> tuple[Interceptor, ...]:
        return tuple(i for f in self.enabled for i in f.interceptors)

    def onboarding(self) -> tuple[OnboardingStep, ...]:
        return tuple(o for f in self.enabled for o in f.onboarding)

    def workers(self) -> tuple[Worker, ...]:
        return tuple(w for f in self.enabled for w in f.workers)

    def idle_text(self) -> tuple[IdleText, ...]:
        return tuple(t for f in self.enabled for t in f.idle_text)

    def staff_room_text(self) -> tuple[StaffRoomText, ...]:
        return tuple(t for f in self.enabled for t in f.staff_room_text)

    def services(self) -> tuple[ServiceFactory, ...]:
        return tuple(f.service for f in self.enabled if f.service is not None)

    def sealed(self) -> tuple[SealedColumn, ...]:
        """Every declared sealed column, of features on and off."""
        return tuple(s for f in self.declared for s in f.sealed)

    def retention(self) -> tuple[RetentionRule, ...]:
        """Every retention rule, of features on and off."""
        return tuple(r for f in self.declared for r in f.retention)

    async def erase(self, session: AsyncSession, services: Services, participant: Participant) -> None:
        """Run every feature's erasure hook (on and off), in declaration order."""
        for feature in self.declared:
            if feature.erase is not None:
                await feature.erase(session, services, participant)


def _unique(what: str, names: Iterable[Any]) -> None:
    doubled = [name for name, count in Counter(names).items() if count > 1]
    if doubled:
        raise ValueError(f"{what} declared twice: {', '.join(map(str, doubled))}")
