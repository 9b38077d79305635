"""``civicbot survey ...``: validate definitions, list, launch, close and export runs."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable

from bot.config import Settings
from bot.core.context import Services
from bot.services import survey_export
from bot.services.survey_definitions import SurveyError, load_survey
from bot.services.surveys import SurveyUnavailable

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
            print(f"{path}: valid ({survey.id}, {len(survey.questions)} questions, {', '.join(survey.languages)})")
    return 1 if failed else 0


async def _with_services(settings: Settings, action: Callable[[Services], Awaitable[int]]) -> int:
    from bot.app import build_services, load_keys, open_database

    database = await open_database(settings)
    try:
        keys = await load_keys(settings, database)
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
            launch = await services.surveys.launch(session, args.survey_id, args.group)
            await services.audit.append(session, CLI_ACTOR, "survey.launch", args.survey_id,
                                        {"group": args.group, "invited": launch.invited})
    except SurveyUnavailable as exc:
        print(f"civicbot: cannot launch {args.survey_id}: {_reason(exc.reason)}", file=sys.stderr)
        return 1
    print(f"run {launch.run_id}: {launch.invited} invitations queued (sent by the running bot)")
    return 0


async def _close(services: Services, args: argparse.Namespace) -> int:
    try:
        async with services.database.sessions.begin() as session:
            closed = await services.surveys.close(session, args.survey_id)
            await services.audit.append(session, CLI_ACTOR, "survey.close", args.survey_id, {"runs": closed})
    except SurveyUnavailable as exc:
        print(f"civicbot: cannot close {args.survey_id}: {_reason(exc.reason)}", file=sys.stderr)
        return 1
    print(f"{closed} run(s) closed")
    return 0


async def _export(services: Services, args: argparse.Namespace) -> int:
    try:
        survey = services.surveys.definition(args.survey_id)
    except SurveyUnavailable:
        print(f"civicbot: unknown survey {args.survey_id}", file=sys.stderr)
        return 1
    if args.format == "xlsx" and args.output is None:
        print("civicbot: --output FILE is required for xlsx", file=sys.stderr)
        return 2
    async with services.database.sessions.begin() as session:
        header, rows = await survey_export.response_table(session, services.surveys, survey)
        await services.audit.append(session, CLI_ACTOR, "survey.export", survey.id,
                                    {"format": args.format, "rows": len(rows)})
    data = survey_export.to_csv(header, rows) if args.format == "csv" else \
        survey_export.to_xlsx(header, rows, survey.id)
    if args.output is None:
        sys.stdout.buffer.write(data)
    else:
        args.output.write_bytes(data)
        args.output.chmod(0o600)
        print(f"{len(rows)} responses written to {args.output}")
    return 0


def _reason(reason: str) -> str:
    return {"unknown": "no such survey", "group": "no such group",
            "dates": "outside its open and close dates"}.get(reason, reason)


_ACTIONS: dict[str, Callable[[Services, argparse.Namespace], Awaitable[int]]] = {
    "list": _list, "launch": _launch, "close": _close, "export": _export,
}
