"""``civicbot survey ...``: validate definitions, list, launch, close and export runs."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.config import Settings
from bot.core.context import Services
from bot.core.counts import counted
from bot.services import survey_export
from bot.services.survey_definitions import SurveyError, load_survey
from bot.services.surveys import SurveyUnavailable
from bot.storage.models import utcnow

CLI_ACTOR = "cli"


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.survey_verb == "validate":
        return validate(args.files)
    return asyncio.run(_with_services(settings, lambda services: _ACTIONS[args.survey_verb](services, args)))


def validate(files: list) -> int:  # type: ignore[type-arg]
    failed = False
    for path in files:
        try:
            survey = load_survey(path)
        except FileNotFoundError:
            print(f"{path}: file not found", file=sys.stderr)
            failed = True
        except SurveyError as exc:
            for problem in exc.problems:
                print(problem, file=sys.stderr)
            failed = True
        else:
            print(f"{path}: valid ({survey.id}, {counted(len(survey.questions), 'question')}, "
                  f"{', '.join(survey.languages)})")
    return 1 if failed else 0


async def _with_services(settings: Settings, action: Callable[[Services], Awaitable[int]]) -> int:
    from bot.app import build_services, load_keys, open_database

    keys = load_keys(settings)
    database = await open_database(settings)
    try:
        return await action(build_services(settings, database, keys))
    finally:
        await database.dispose()


async def _list(services: Services, args: argparse.Namespace) -> int:
    async with services.database.sessions() as session:
        for survey in sorted(services.surveys.definitions.values(), key=lambda s: s.id):
            runs = await services.surveys.runs(session, survey.id)
            state = ", ".join(f"run {r.id} {r.status}" for r in runs) or "never launched"
            print(f"{survey.id}\t{survey.text(survey.title, 'en')}\t{state}")
    return 0


async def _launch(services: Services, args: argparse.Namespace) -> int:
    try:
        async with services.database.sessions.begin() as session:
            launch = await services.surveys.launch(session, args.survey_id, args.group, again=args.again)
            await services.audit.append(session, CLI_ACTOR, "survey.launch", args.survey_id,
                                        {"group": args.group, "invited": launch.invited, "again": args.again})
    except SurveyUnavailable as exc:
        print(f"civicbot: cannot launch {args.survey_id}: {_reason(exc.reason)}", file=sys.stderr)
        return 1
    print(f"run {launch.run_id}: {counted(launch.invited, 'invitation')} queued (sent by the running bot)")
    return 0


async def _close(services: Services, args: argparse.Namespace) -> int:
    try:
        async with services.database.sessions.begin() as session:
            closed = await services.surveys.close(session, args.survey_id)
            await services.audit.append(session, CLI_ACTOR, "survey.close", args.survey_id, {"runs": closed})
    except SurveyUnavailable as exc:
        print(f"civicbot: cannot close {args.survey_id}: {_reason(exc.reason)}", file=sys.stderr)
        return 1
    print(f"{counted(closed, 'run')} closed")
    return 0


async def _export(services: Services, args: argparse.Namespace) -> int:
    try:
        survey = services.surveys.definition(args.survey_id)
    except SurveyUnavailable:
        print(f"civicbot: unknown survey {args.survey_id}", file=sys.stderr)
        return 1
    output: Path | None = args.output
    if args.format == "xlsx" and output is None:  # a spreadsheet is never written to a terminal
        output = default_export_path(survey.id, utcnow().date())
    async with services.database.sessions.begin() as session:
        header, rows = await survey_export.response_table(session, services.surveys, survey)
        await services.audit.append(session, CLI_ACTOR, "survey.export", survey.id,
                                    {"format": args.format, "rows": len(rows)})
    data = survey_export.to_csv(header, rows) if args.format == "csv" else \
        survey_export.to_xlsx(header, rows, survey.id)
    if output is None:
        sys.stdout.buffer.write(data)
    else:
        # Created with mode 0600 before anything is written: the file holds decrypted answers.
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as fh:
            fh.write(data)
        output.chmod(0o600)
        print(f"{counted(len(rows), 'response')} written to {output}")
    return 0


def default_export_path(survey_id: str, day: dt.date, directory: Path = Path()) -> Path:
    """``SURVEY-YYYY-MM-DD.xlsx`` in the current directory; ``-2``, ``-3``... rather than overwrite."""
    path = directory / f"{survey_id}-{day.isoformat()}.xlsx"
    number = 2
    while path.exists():
        path = directory / f"{survey_id}-{day.isoformat()}-{number}.xlsx"
        number += 1
    return path


def _reason(reason: str) -> str:
    return {"unknown": "no such survey", "group": "no such group",
            "dates": "outside its open and close dates",
            "already_open": "a run is already open for this group; close it first, or add --again "
                            "to launch a second run"}.get(reason, reason)


_ACTIONS: dict[str, Callable[[Services, argparse.Namespace], Awaitable[int]]] = {
    "list": _list, "launch": _launch, "close": _close, "export": _export,
}
