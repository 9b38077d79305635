"""``civicbot bulletin validate|create|send|status|cancel|list``: the staff chat actions, from a shell.

Every verb prints one clear line (English, the same sentences as the chat) and exits non-zero
on bad input; ``send`` queues the bulletin and a running bot delivers it. ``status --follow``
shows a live progress bar until the send ends.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from bot.bulletins import texts
from bot.bulletins.actions import BadTime, BulletinActions, parse_time
from bot.bulletins.loader import BulletinError, load_bulletin
from bot.bulletins.progress import count
from bot.bulletins.service import BulletinRefused, Bulletins, NoticeTarget, SendStatus
from bot.conversation.feature import CliContext, CliGroup, CliVerb
from bot.core.i18n import I18n, Translator, plain
from bot.core.model import Address, Platform

CLI_ACTOR = "cli"
_ENGLISH: list[Translator] = []


def english() -> Translator:
    """The command line speaks English (loaded once)."""
    if not _ENGLISH:
        _ENGLISH.append(I18n("en").translator("en"))
    return _ENGLISH[0]


def _actions(ctx: CliContext) -> BulletinActions:
    return BulletinActions(ctx.services.get(Bulletins), ctx.services.audit)


async def validate(ctx: CliContext, args: argparse.Namespace) -> int:
    return ctx.check_definitions(args.files, load_bulletin,
                                 lambda bulletin: f"{bulletin.id}, {', '.join(bulletin.languages)}")


async def create(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        bulletin = load_bulletin(args.file)
    except FileNotFoundError:
        return ctx.fail(f"{args.file}: file not found", 2)
    except BulletinError as exc:
        for problem in exc.problems:
            print(problem, file=ctx.err)
        return 1
    async with ctx.database.sessions.begin() as session:
        result = await _actions(ctx).create(session, bulletin, CLI_ACTOR)
    print(plain(texts.created(english(), result, ctx.settings.bulletins.require_approval)), file=ctx.err)
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


async def send(ctx: CliContext, args: argparse.Namespace) -> int:
    at = None
    if args.at is not None:
        try:
            at = parse_time(args.at)
        except BadTime:
            return ctx.fail(plain(texts.bad_time(english(), args.at)), 2)
    try:
        async with ctx.database.sessions.begin() as session:
            outcome = await _actions(ctx).send(session, args.bulletin_id, args.audience, at, CLI_ACTOR,
                                               ctx.settings.i18n.default_language, _staff_rooms(ctx),
                                               dry_run=args.dry_run)
    except BulletinRefused as exc:
        return ctx.fail(plain(texts.refusal(english(), exc, args.bulletin_id)))
    if outcome.view is None:
        print(plain(texts.preview(english(), outcome.preview, outcome.first_language)), file=ctx.out)
    else:
        print(plain(texts.send_requested(english(), outcome.view, outcome.preview)), file=ctx.out)
    return 0


async def status(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        async with ctx.database.sessions.begin() as session:
            report = await _actions(ctx).status(session, args.bulletin_id)
    except BulletinRefused as exc:
        return ctx.fail(plain(texts.refusal(english(), exc, args.bulletin_id)))
    if args.follow and report.view is not None and report.view.finished_at is None \
            and report.view.status in (SendStatus.SCHEDULED, SendStatus.SENDING, SendStatus.CANCELLED):
        await _follow(ctx, args.bulletin_id)
        async with ctx.database.sessions.begin() as session:
            report = await _actions(ctx).status(session, args.bulletin_id)
    print(plain(report.text(english())), file=ctx.out)
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

    bulletins = ctx.services.get(Bulletins)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                  TimeElapsedColumn(), console=Console(file=ctx.err), transient=False) as bar:
        task = bar.add_task(f"{bulletin_id}: waiting", total=None)
        while True:
            async with ctx.database.sessions() as session:
                latest = await bulletins.latest_send(session, bulletin_id)
                if latest is None:
                    return
                if latest.started_at is None:
                    if latest.status != SendStatus.SCHEDULED:
                        return  # cancelled before it started
                    bar.update(task, description=f"{bulletin_id}: scheduled for {texts.when(latest.due_at)}")
                else:
                    progress = await count(session, latest.id)
                    bar.update(task, description=f"{bulletin_id}: sending", total=progress.total,
                               completed=progress.handled)
                    if progress.finished:
                        bar.update(task, description=f"{bulletin_id}: done")
                        return
            await asyncio.sleep(poll_seconds)


async def cancel(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        async with ctx.database.sessions.begin() as session:
            was_sending, withdrawn = await _actions(ctx).cancel(session, args.bulletin_id, CLI_ACTOR)
    except BulletinRefused as exc:
        return ctx.fail(plain(texts.refusal(english(), exc, args.bulletin_id)))
    print(plain(texts.cancelled(english(), args.bulletin_id, was_sending, withdrawn)), file=ctx.out)
    return 0


async def list_(ctx: CliContext, args: argparse.Namespace) -> int:
    async with ctx.database.sessions() as session:
        rows = await _actions(ctx).list(session)
    print(plain(texts.listing(english(), rows)), file=ctx.out)
    return 0


def _files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", help="bulletin files (YAML)")


def _file(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="a bulletin file (YAML)")


def _send_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bulletin_id", help="the id of a stored bulletin")
    parser.add_argument("--to", dest="audience", nargs="+", action="extend", required=True, metavar="AUDIENCE",
                        help="all, group:CODE, org:CODE or lang:CODE; several allowed")
    parser.add_argument("--at", help="ISO 8601 time, e.g. 2026-06-05T09:00+03:00 (without an offset: UTC)")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the recipients per language and platform and the fallbacks; send nothing")


def _status_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bulletin_id", help="the id of a stored bulletin")
    parser.add_argument("--follow", action="store_true", help="a live progress bar until the send ends")


def _bulletin_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bulletin_id", help="the id of a stored bulletin")


BULLETIN_VERBS = CliGroup("bulletin", "bulletins (YAML in config/bulletins/)", (
    CliVerb("validate", "check bulletin files; prints file:line: problem and exits 1 on any", validate, _files,
            needs_services=False),
    CliVerb("create", "store a bulletin file (a changed file is a new version); prints its id", create, _file),
    CliVerb("send", "send a stored bulletin now or at a time; a running bot delivers it", send, _send_arguments),
    CliVerb("status", "the send: sent, failed, unreachable, per platform and language", status, _status_arguments),
    CliVerb("cancel", "stop a scheduled or running send; what is not sent yet is withdrawn", cancel, _bulletin_id),
    CliVerb("list", "stored bulletins, their versions, approval and sends", list_),
))
