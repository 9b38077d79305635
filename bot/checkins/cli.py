"""``civicbot checkin validate|schedule|pause|resume|now|list|show|ack|contacts|export``.

Every verb but ``validate`` runs the same staff action as the chat command of the same name
(with the same audit entry, actor ``cli``) and prints its sentence in English. Bad input prints
one line and exits non-zero, with nothing changed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.checkins.actions import Say, ScheduleRequest
from bot.checkins.export import cycle_table
from bot.checkins.problems import CheckinProblem
from bot.checkins.templates import load_template
from bot.config import Settings
from bot.core.context import Services
from bot.core.i18n import FSI, PDI
from bot.services import survey_export
from bot.services.survey_definitions import SurveyError

CLI_ACTOR = "cli"


def add_parser(verbs: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    checkin = verbs.add_parser("checkin", help="check-ins with associations", parents=parents)
    sub = checkin.add_subparsers(dest="checkin_verb", required=True)
    validate = sub.add_parser("validate", help="check template files; exits non-zero on any error")
    validate.add_argument("files", type=Path, nargs="+")
    schedule = sub.add_parser("schedule", help="set an association's rhythm: --every 14d --at 10:00, or --cron")
    schedule.add_argument("organisation")
    schedule.add_argument("--every", help="days or weeks between check-ins, like 14d or 2w")
    schedule.add_argument("--at", help="local time of day, like 10:00")
    schedule.add_argument("--cron", help="instead of --every/--at: a crontab line, like '0 10 * * mon'")
    schedule.add_argument("--tz", required=True, help="the association's time zone, like Asia/Damascus")
    schedule.add_argument("--template", help="template id (default: 'default')")
    for name, text in (("pause", "no new check-ins until resumed"), ("resume", "check-ins again, from now on"),
                       ("show", "recent check-ins and the last answer"), ("ack", "close the open flags")):
        sub.add_parser(name, help=text).add_argument("organisation")
    now = sub.add_parser("now", help="send a check-in now")
    now.add_argument("organisation")
    now.add_argument("--template", help="template id (default: the schedule's)")
    sub.add_parser("list", help="every association: next due, last answer, missed check-ins, open flags")
    contacts = sub.add_parser("contacts", help="members and contact persons; --add/--remove REF changes them")
    contacts.add_argument("organisation")
    change = contacts.add_mutually_exclusive_group()
    change.add_argument("--add", metavar="REF")
    change.add_argument("--remove", metavar="REF")
    export = sub.add_parser("export", help="one row per check-in; free text decrypted, no person in it")
    export.add_argument("--organisation", help="only this association")
    export.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    export.add_argument("--output", type=Path, help="file to write (default for csv: standard output)")


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.checkin_verb == "validate":
        return validate(args.files)
    return asyncio.run(_with_services(settings, lambda services: _run(services, args)))


def validate(files: list[Path]) -> int:
    failed = False
    for path in files:
        try:
            template = load_template(path)
        except FileNotFoundError:
            print(f"{path}: file not found", file=sys.stderr)
            failed = True
        except SurveyError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            failed = True
        else:
            survey = template.questionnaire
            print(f"{path}: valid ({template.id}, {len(survey.questions)} questions, {len(template.flags)} flagged "
                  f"options, {', '.join(survey.languages)})")
    return 1 if failed else 0


async def _with_services(settings: Settings, action: Callable[[Services], Awaitable[int]]) -> int:
    from bot.app import build_services, load_keys, open_database

    keys = load_keys(settings)
    database = await open_database(settings)
    try:
        return await action(build_services(settings, database, keys))
    finally:
        await database.dispose()


def _plain(text: str) -> str:
    """A terminal needs no bidirectional isolates around values."""
    return text.replace(FSI, "").replace(PDI, "")


async def _run(services: Services, args: argparse.Namespace) -> int:
    if args.checkin_verb == "export":
        return await _export(services, args)
    actions = services.checkin_actions
    verb = args.checkin_verb
    try:
        async with services.database.sessions.begin() as session:
            say: Say
            if verb == "schedule":
                say = await actions.schedule(session, CLI_ACTOR, args.organisation, ScheduleRequest(
                    every=args.every, at=args.at, cron=args.cron, timezone=args.tz, template=args.template))
            elif verb == "pause":
                say = await actions.pause(session, CLI_ACTOR, args.organisation)
            elif verb == "resume":
                say = await actions.resume(session, CLI_ACTOR, args.organisation)
            elif verb == "now":
                say = await actions.now(session, CLI_ACTOR, args.organisation, args.template)
            elif verb == "ack":
                say = await actions.acknowledge(session, CLI_ACTOR, args.organisation)
            elif verb == "show":
                say = await actions.show(session, CLI_ACTOR, args.organisation, with_content=True)
            elif verb == "contacts" and (args.add or args.remove):
                say = await actions.set_contact(session, CLI_ACTOR, args.organisation, args.add or args.remove,
                                                bool(args.add))
            elif verb == "contacts":
                say = await actions.contacts(session, args.organisation)
            else:
                say = await actions.overview(session)
    except CheckinProblem as problem:
        print(f"civicbot: {_plain(problem.render(services.i18n.translator('en')))}", file=sys.stderr)
        return 1
    print(_plain(say(services.i18n.translator("en"))))
    return 0


async def _export(services: Services, args: argparse.Namespace) -> int:
    if args.format == "xlsx" and args.output is None:
        print("civicbot: --output FILE is required for xlsx", file=sys.stderr)
        return 2
    try:
        async with services.database.sessions.begin() as session:
            organisation = None
            if args.organisation:
                organisation = await services.checkins.association(session, args.organisation)
            header, rows = await cycle_table(session, services.checkins, organisation)
            await services.audit.append(session, CLI_ACTOR, "checkin.export",
                                        organisation.code if organisation else None,
                                        {"format": args.format, "rows": len(rows)})
    except CheckinProblem as problem:
        print(f"civicbot: {_plain(problem.render(services.i18n.translator('en')))}", file=sys.stderr)
        return 1
    data = survey_export.to_csv(header, rows) if args.format == "csv" else \
        survey_export.to_xlsx(header, rows, "checkins")
    if args.output is None:
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
        args.output.chmod(0o600)
        print(f"{len(rows)} check-ins written to {args.output}")
    return 0
