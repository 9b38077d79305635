"""``civicbot checkin validate|schedule|pause|resume|now|list|show|ack|contacts|export``.

Every verb but ``validate`` runs the same staff action as the chat command of the same name
(with the same audit entry, actor ``cli``) and prints its sentence in English. Bad input prints
one line and exits non-zero, with nothing changed.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from bot.checkins.actions import Say, ScheduleRequest, StaffActions
from bot.checkins.export import cycle_table
from bot.checkins.problems import CheckinProblem
from bot.checkins.service import Checkins
from bot.checkins.templates import load_template
from bot.conversation.feature import CliContext, CliGroup, CliVerb
from bot.core.counts import counted
from bot.core.i18n import plain
from bot.storage.models import utcnow
from bot.surveys.cli import default_export_path
from bot.surveys.export import to_csv, to_xlsx

CLI_ACTOR = "cli"

Action = Callable[[StaffActions, AsyncSession, argparse.Namespace], Awaitable[Say]]


async def validate(ctx: CliContext, args: argparse.Namespace) -> int:
    return ctx.check_definitions(args.files, load_template, lambda template: (
        f"{template.id}, {len(template.questionnaire.questions)} questions, {len(template.flags)} flagged options, "
        f"{', '.join(template.questionnaire.languages)}"))


def _verb(action: Action) -> Callable[[CliContext, argparse.Namespace], Awaitable[int]]:
    """Run one staff action in a transaction; print its sentence, or the refusal (nothing changed)."""

    async def run(ctx: CliContext, args: argparse.Namespace) -> int:
        english = ctx.services.i18n.translator("en")
        try:
            async with ctx.database.sessions.begin() as session:
                say = await action(StaffActions.of(ctx.services), session, args)
        except CheckinProblem as problem:
            return ctx.fail(plain(problem.render(english)))
        print(plain(say(english)), file=ctx.out)
        return 0

    return run


def _schedule(actions: StaffActions, session: AsyncSession, args: argparse.Namespace) -> Awaitable[Say]:
    request = ScheduleRequest(every=args.every, at=args.at, cron=args.cron, timezone=args.tz, template=args.template)
    return actions.schedule(session, CLI_ACTOR, args.organisation, request)


def _contacts(actions: StaffActions, session: AsyncSession, args: argparse.Namespace) -> Awaitable[Say]:
    if args.add or args.remove:
        return actions.set_contact(session, CLI_ACTOR, args.organisation, args.add or args.remove, bool(args.add))
    return actions.contacts(session, args.organisation)


async def export(ctx: CliContext, args: argparse.Namespace) -> int:
    checkins = ctx.services.get(Checkins)
    output: Path | None = args.output
    if args.format == "xlsx" and output is None:  # a spreadsheet is never written to a terminal
        output = default_export_path("checkins", utcnow().date())
    try:
        async with ctx.database.sessions.begin() as session:
            organisation = await checkins.association(session, args.organisation) if args.organisation else None
            header, rows = await cycle_table(session, checkins, organisation)
            await ctx.services.audit.append(session, CLI_ACTOR, "checkin.export",
                                            organisation.code if organisation else None,
                                            {"format": args.format, "rows": len(rows)})
    except CheckinProblem as problem:
        return ctx.fail(plain(problem.render(ctx.services.i18n.translator("en"))))
    data = to_csv(header, rows) if args.format == "csv" else to_xlsx(header, rows, "checkins")
    if output is None:
        ctx.out.flush()
        ctx.out.buffer.write(data)  # type: ignore[attr-defined]
    else:
        # Created with mode 0600 before anything is written: the file holds decrypted answers.
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as fh:
            fh.write(data)
        output.chmod(0o600)
        print(f"{counted(len(rows), 'check-in')} written to {output}", file=ctx.out)
    return 0


def _files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="check-in template (YAML)")


def _organisation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("organisation", metavar="ORG", help="the association's code")


def _schedule_arguments(parser: argparse.ArgumentParser) -> None:
    _organisation(parser)
    parser.add_argument("--every", help="days or weeks between check-ins, like 14d or 2w")
    parser.add_argument("--at", help="local time of day, like 10:00")
    parser.add_argument("--cron", help="instead of --every/--at: a crontab line, like '0 10 * * mon'")
    parser.add_argument("--tz", required=True, help="the association's time zone, like Asia/Damascus")
    parser.add_argument("--template", help="template id (default: 'default')")


def _now_arguments(parser: argparse.ArgumentParser) -> None:
    _organisation(parser)
    parser.add_argument("--template", help="template id (default: the schedule's)")


def _contacts_arguments(parser: argparse.ArgumentParser) -> None:
    _organisation(parser)
    change = parser.add_mutually_exclusive_group()
    change.add_argument("--add", metavar="REF", help="make this member a contact person")
    change.add_argument("--remove", metavar="REF", help="this member is no longer a contact person")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--organisation", metavar="ORG", help="only this association")
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv", help="csv (default) or xlsx")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="file to write, mode 0600 (default: csv to standard output, xlsx to "
                             "checkins-YYYY-MM-DD.xlsx here, never overwriting)")


CHECKIN_VERBS = CliGroup("checkin", "check-ins with associations (templates in config/checkins/)", (
    CliVerb("validate", "check template files; exits non-zero on any error", validate, _files, needs_services=False),
    CliVerb("schedule", "set an association's rhythm: --every 14d --at 10:00, or --cron", _verb(_schedule),
            _schedule_arguments),
    CliVerb("pause", "no new check-ins until resumed",
            _verb(lambda a, s, args: a.pause(s, CLI_ACTOR, args.organisation)), _organisation),
    CliVerb("resume", "check-ins again, from now on",
            _verb(lambda a, s, args: a.resume(s, CLI_ACTOR, args.organisation)), _organisation),
    CliVerb("now", "send a check-in now",
            _verb(lambda a, s, args: a.now(s, CLI_ACTOR, args.organisation, args.template)), _now_arguments),
    CliVerb("list", "every association: next due, last answer, missed check-ins, open flags",
            _verb(lambda a, s, args: a.overview(s))),
    CliVerb("show", "recent check-ins and the last answer (with its content)",
            _verb(lambda a, s, args: a.show(s, CLI_ACTOR, args.organisation, with_content=True)), _organisation),
    CliVerb("ack", "close the association's open flags",
            _verb(lambda a, s, args: a.acknowledge(s, CLI_ACTOR, args.organisation)), _organisation),
    CliVerb("contacts", "members and contact persons; --add/--remove REF changes them", _verb(_contacts),
            _contacts_arguments),
    CliVerb("export", "one row per check-in; free text decrypted, no person in it", export, _export_arguments),
))
