"""``civicbot survey validate|list|launch|close|export``: the same service calls (and audit
entries) as the staff chat commands ``/survey`` and ``/results``."""

from __future__ import annotations

import argparse
import datetime as dt
import os
from pathlib import Path

from bot.conversation.feature import CliContext, CliGroup, CliVerb
from bot.core.counts import counted
from bot.storage.models import utcnow
from bot.surveys import export as survey_export
from bot.surveys.loading import load_survey
from bot.surveys.service import Surveys, SurveyUnavailable

CLI_ACTOR = "cli"


async def validate(ctx: CliContext, args: argparse.Namespace) -> int:
    return ctx.check_definitions(args.files, load_survey, lambda survey: (
        f"{survey.id}, {counted(len(survey.questions), 'question')}, {', '.join(survey.languages)}"))


async def list_surveys(ctx: CliContext, args: argparse.Namespace) -> int:
    surveys = ctx.services.get(Surveys)
    async with ctx.database.sessions() as session:
        for survey in sorted(surveys.definitions.values(), key=lambda s: s.id):
            runs = await surveys.runs(session, survey.id)
            state = ", ".join(f"run {r.id} {r.status}" for r in runs) or "never launched"
            print(f"{survey.id}\t{survey.text(survey.title, 'en')}\t{state}", file=ctx.out)
    return 0


async def launch(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        async with ctx.database.sessions.begin() as session:
            launched = await ctx.services.get(Surveys).launch(session, args.survey_id, args.group, actor=CLI_ACTOR,
                                                              again=args.again)
    except SurveyUnavailable as exc:
        return ctx.fail(f"cannot launch {args.survey_id}: {_reason(exc.reason)}")
    print(f"run {launched.run_id}: {counted(launched.invited, 'invitation')} queued (sent by the running bot)",
          file=ctx.out)
    return 0


async def close(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        async with ctx.database.sessions.begin() as session:
            closed = await ctx.services.get(Surveys).close(session, args.survey_id, actor=CLI_ACTOR)
    except SurveyUnavailable as exc:
        return ctx.fail(f"cannot close {args.survey_id}: {_reason(exc.reason)}")
    print(f"{counted(closed, 'run')} closed", file=ctx.out)
    return 0


async def export(ctx: CliContext, args: argparse.Namespace) -> int:
    surveys = ctx.services.get(Surveys)
    try:
        survey = surveys.definition(args.survey_id)
    except SurveyUnavailable:
        return ctx.fail(f"unknown survey {args.survey_id}")
    output: Path | None = args.output
    if args.format == "xlsx" and output is None:  # a spreadsheet is never written to a terminal
        output = default_export_path(survey.id, utcnow().date())
    async with ctx.database.sessions.begin() as session:
        header, rows = await survey_export.export(session, surveys, survey, args.format, actor=CLI_ACTOR)
    data = survey_export.to_csv(header, rows) if args.format == "csv" else \
        survey_export.to_xlsx(header, rows, survey.id)
    if output is None:
        ctx.out.flush()
        ctx.out.buffer.write(data)
    else:
        # Created with mode 0600 before anything is written: the file holds decrypted answers.
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as fh:
            fh.write(data)
        output.chmod(0o600)
        print(f"{counted(len(rows), 'response')} written to {output}", file=ctx.out)
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


def _files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE", help="survey definition (YAML)")


def _launch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("survey_id", metavar="SURVEY", help="the survey's id (see 'civicbot survey list')")
    parser.add_argument("group", metavar="GROUP", help="the group's code")
    parser.add_argument("--again", action="store_true",
                        help="launch even though a run of this survey is open for the group")


def _survey_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("survey_id", metavar="SURVEY", help="the survey's id; all its open runs are closed")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("survey_id", metavar="SURVEY", help="the survey's id")
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv",
                        help="csv (UTF-8 with BOM) or xlsx (default: %(default)s)")
    parser.add_argument("--output", type=Path, metavar="FILE",
                        help="file to write, mode 0600 (default: standard output for csv; "
                             "SURVEY-YYYY-MM-DD.xlsx in the current directory for xlsx)")


SURVEY_VERBS = CliGroup("survey", "survey definitions and runs", (
    CliVerb("validate", "check definition files; exits non-zero on any error", validate, _files,
            needs_services=False),
    CliVerb("list", "defined surveys and their runs", list_surveys),
    CliVerb("launch", "invite a group to answer a survey", launch, _launch_arguments),
    CliVerb("close", "stop accepting answers; invitations not sent yet are cancelled", close, _survey_id),
    CliVerb("export", "one row per response; free text decrypted, no ids", export, _export_arguments),
))
