"""``civicbot bulletin validate|create|send|status|cancel|list``: the staff chat actions, from a shell.

Every verb prints one clear line (English, the same sentences as the chat) and exits non-zero
on bad input; ``send`` queues the bulletin and a running bot delivers it. ``status --follow``
shows a live progress bar until the send ends.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from bot.bulletins import texts
from bot.bulletins.actions import BadTime, BulletinActions, parse_time
from bot.bulletins.loader import BulletinError, load_bulletin
from bot.bulletins.progress import count
from bot.bulletins.service import BulletinRefused, NoticeTarget, SendStatus
from bot.config import Settings
from bot.core.context import Services
from bot.core.i18n import I18n, Translator
from bot.core.model import Address, Platform

CLI_ACTOR = "cli"


@dataclass(slots=True)
class CliContext:
    """What a verb gets: the settings, where to print, and the services of the running bot."""

    settings: Settings
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    services: Services | None = None
    tr: Translator = field(default_factory=lambda: I18n("en").translator("en"))  # the command line speaks English

    def fail(self, message: str, code: int = 1) -> int:
        print(f"civicbot: {message}", file=self.err)
        return code

    @property
    def actions(self) -> BulletinActions:
        assert self.services is not None
        return BulletinActions(self.services.bulletins, self.services.audit)


def add_arguments(verbs: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    validate = verbs.add_parser("validate", help="check bulletin files; prints file:line: problem, exits 1 on any")
    validate.add_argument("files", type=Path, nargs="+")
    create = verbs.add_parser("create", help="store a bulletin file (a changed file is a new version); prints its id")
    create.add_argument("file", type=Path)
    send = verbs.add_parser("send", help="send a stored bulletin now or at a time; a running bot delivers it")
    send.add_argument("bulletin_id")
    send.add_argument("--to", dest="audience", nargs="+", action="extend", required=True, metavar="AUDIENCE",
                      help="all, group:CODE, org:CODE or lang:CODE; several allowed")
    send.add_argument("--at", help="ISO 8601 time, e.g. 2026-06-05T09:00+03:00 (without an offset: UTC)")
    send.add_argument("--dry-run", action="store_true",
                      help="print the recipients per language and platform and the fallbacks; send nothing")
    status = verbs.add_parser("status", help="the bulletin's send: progress, failures, unreachable, per platform "
                                             "and language")
    status.add_argument("bulletin_id")
    status.add_argument("--follow", action="store_true", help="a live progress bar until the send ends")
    cancel = verbs.add_parser("cancel", help="stop a scheduled or running send; what is not sent yet is withdrawn")
    cancel.add_argument("bulletin_id")
    verbs.add_parser("list", help="stored bulletins, their versions, approval and sends")


def main(args: argparse.Namespace, settings: Settings) -> int:
    ctx = CliContext(settings)
    if args.bulletin_verb == "validate":
        return validate(ctx, args)
    return asyncio.run(_with_services(ctx, lambda: _VERBS[args.bulletin_verb](ctx, args)))


async def _with_services(ctx: CliContext, action: Callable[[], Awaitable[int]]) -> int:
    from bot.app import build_services, load_keys, open_database

    keys = load_keys(ctx.settings)
    database = await open_database(ctx.settings)
    try:
        ctx.services = build_services(ctx.settings, database, keys)
        return await action()
    finally:
        await database.dispose()


def validate(ctx: CliContext, args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            bulletin = load_bulletin(path)
        except FileNotFoundError:
            print(f"{path}: file not found", file=ctx.err)
            failed = True
        except BulletinError as exc:
            for problem in exc.problems:
                print(problem, file=ctx.err)
            failed = True
        else:
            print(f"{path}: valid ({bulletin.id}, {', '.join(bulletin.languages)})", file=ctx.out)
    return 1 if failed else 0


async def create(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        bulletin = load_bulletin(args.file)
    except FileNotFoundError:
        return ctx.fail(f"{args.file}: file not found", 2)
    except BulletinError as exc:
        for problem in exc.problems:
            print(problem, file=ctx.err)
        return 1
    assert ctx.services is not None
    async with ctx.services.database.sessions.begin() as session:
        result = await ctx.actions.create(session, bulletin, CLI_ACTOR)
    print(texts.created(ctx.tr, result, ctx.settings.bulletins.require_approval).replace("\u2068", "")
          .replace("\u2069", ""), file=ctx.err)
    print(result.bulletin_id, file=ctx.out)
    return 0


def _staff_rooms(ctx: CliContext) -> list[NoticeTarget]:
    """Where a send from the shell is followed: the configured staff rooms."""
    staff, language = ctx.settings.staff, ctx.settings.i18n.default_language
    targets = []
    if staff.matrix_room and ctx.settings.matrix.enabled:
        targets.append(NoticeTarget(Address(Platform("matrix"), staff.matrix_room), language))
    if staff.telegram_chat is not None and ctx.settings.telegram.enabled:
        targets.append(NoticeTarget(Address(Platform("telegram"), str(staff.telegram_chat)), language))
    return targets


def _plain(text: str) -> str:
    return text.replace("\u2068", "").replace("\u2069", "")


async def send(ctx: CliContext, args: argparse.Namespace) -> int:
    at = None
    if args.at is not None:
        try:
            at = parse_time(args.at)
        except BadTime:
            return ctx.fail(_plain(texts.bad_time(ctx.tr, args.at)), 2)
    assert ctx.services is not None
    try:
        async with ctx.services.database.sessions.begin() as session:
            outcome = await ctx.actions.send(session, args.bulletin_id, args.audience, at, CLI_ACTOR,
                                             ctx.settings.i18n.default_language, _staff_rooms(ctx),
                                             dry_run=args.dry_run)
    except BulletinRefused as exc:
        return ctx.fail(_plain(texts.refusal(ctx.tr, exc, args.bulletin_id)))
    if outcome.view is None:
        print(_plain(texts.preview(ctx.tr, outcome.preview, outcome.first_language)), file=ctx.out)
    else:
        print(_plain(texts.send_requested(ctx.tr, outcome.view, outcome.preview)), file=ctx.out)
    return 0


async def status(ctx: CliContext, args: argparse.Namespace) -> int:
    assert ctx.services is not None
    try:
        async with ctx.services.database.sessions.begin() as session:
            report = await ctx.actions.status(session, args.bulletin_id)
    except BulletinRefused as exc:
        return ctx.fail(_plain(texts.refusal(ctx.tr, exc, args.bulletin_id)))
    if args.follow and report.view is not None and report.view.finished_at is None \
            and report.view.status in (SendStatus.SCHEDULED, SendStatus.SENDING, SendStatus.CANCELLED):
        await _follow(ctx, args.bulletin_id)
        async with ctx.services.database.sessions.begin() as session:
            report = await ctx.actions.status(session, args.bulletin_id)
    print(_plain(report.text(ctx.tr)), file=ctx.out)
    return 0


async def _follow(ctx: CliContext, bulletin_id: str, poll_seconds: float = 1.0) -> None:
    """A live bar (``rich``) over the send's recipients until nothing is left in flight."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    assert ctx.services is not None
    bulletins = ctx.services.bulletins
    console = Console(file=ctx.err)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as bar:
        task = bar.add_task(f"{bulletin_id}: waiting", total=None)
        while True:
            async with ctx.services.database.sessions() as session:
                send = await bulletins.latest_send(session, bulletin_id)
                if send is None:
                    return
                if send.started_at is None:
                    if send.status != SendStatus.SCHEDULED:
                        return  # cancelled before it started
                    bar.update(task, description=f"{bulletin_id}: scheduled for {texts.when(send.due_at)}")
                else:
                    progress = await count(session, send.id)
                    bar.update(task, description=f"{bulletin_id}: sending", total=progress.total,
                               completed=progress.handled)
                    if progress.finished:
                        bar.update(task, description=f"{bulletin_id}: done")
                        return
            await asyncio.sleep(poll_seconds)


async def cancel(ctx: CliContext, args: argparse.Namespace) -> int:
    assert ctx.services is not None
    try:
        async with ctx.services.database.sessions.begin() as session:
            was_sending, withdrawn = await ctx.actions.cancel(session, args.bulletin_id, CLI_ACTOR)
    except BulletinRefused as exc:
        return ctx.fail(_plain(texts.refusal(ctx.tr, exc, args.bulletin_id)))
    print(_plain(texts.cancelled(ctx.tr, args.bulletin_id, was_sending, withdrawn)), file=ctx.out)
    return 0


async def list_(ctx: CliContext, args: argparse.Namespace) -> int:
    assert ctx.services is not None
    async with ctx.services.database.sessions() as session:
        rows = await ctx.actions.list(session)
    print(_plain(texts.listing(ctx.tr, rows)), file=ctx.out)
    return 0


_VERBS: dict[str, Callable[[CliContext, argparse.Namespace], Awaitable[int]]] = {
    "create": create, "send": send, "status": status, "cancel": cancel, "list": list_,
}
