"""``civicbot survey validate|list|launch|close|export``: the same service calls (and audit
entries) as the staff chat commands ``/survey`` and ``/results``."""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.conversation.feature import CliContext, CliGroup, CliVerb
from bot.surveys import export as survey_export
from bot.surveys.loading import SurveyError, load_survey
from bot.surveys.service import Surveys, SurveyUnavailable

CLI_ACTOR = "cli"


async def validate(ctx: CliContext, args: argparse.Namespace) -> int:
    failed = False
    for path in args.files:
        try:
            survey = load_survey(path)
        except FileNotFoundError:
            print(f"{path}: file not found", file=ctx.err)
            failed = True
        except SurveyError as exc:
            for problem in exc.problems:
                print(problem, file=ctx.err)
            failed = True
        else:
            print(f"{path}: valid ({survey.id}, {len(survey.questions)} questions, {', '.join(survey.languages)})",
                  file=ctx.out)
    return 1 if failed else 0


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
            launched = await ctx.services.get(Surveys).launch(session, args.survey_id, args.group, actor=CLI_ACTOR)
    except SurveyUnavailable as exc:
        return ctx.fail(f"cannot launch {args.survey_id}: {_reason(exc.reason)}")
    print(f"run {launched.run_id}: {launched.invited} invitations queued (sent by the running bot)", file=ctx.out)
    return 0


async def close(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        async with ctx.database.sessions.begin() as session:
            closed = await ctx.services.get(Surveys).close(session, args.survey_id, actor=CLI_ACTOR)
    except SurveyUnavailable as exc:
        return ctx.fail(f"cannot close {args.survey_id}: {_reason(exc.reason)}")
    print(f"{closed} run(s) closed", file=ctx.out)
    return 0


async def export(ctx: CliContext, args: argparse.Namespace) -> int:
    surveys = ctx.services.get(Surveys)
    try:
        survey = surveys.definition(args.survey_id)
    except SurveyUnavailable:
        return ctx.fail(f"unknown survey {args.survey_id}")
    if args.format == "xlsx" and args.output is None:
        return ctx.fail("--output FILE is required for xlsx", 2)
    async with ctx.database.sessions.begin() as session:
        header, rows = await survey_export.export(session, surveys, survey, args.format, actor=CLI_ACTOR)
    data = survey_export.to_csv(header, rows) if args.format == "csv" else \
        survey_export.to_xlsx(header, rows, survey.id)
    if args.output is None:
        ctx.out.flush()
        ctx.out.buffer.write(data)
    else:
        args.output.write_bytes(data)
        args.output.chmod(0o600)
        print(f"{len(rows)} responses written to {args.output}", file=ctx.out)
    return 0


def _reason(reason: str) -> str:
    return {"unknown": "no such survey", "group": "no such group",
            "dates": "outside its open and close dates"}.get(reason, reason)


def _files(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+")


def _launch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("survey_id")
    parser.add_argument("group")


def _survey_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("survey_id")


def _export_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("survey_id")
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("--output", type=Path, help="file to write (default for csv: standard output)")


SURVEY_VERBS = CliGroup("survey", "survey definitions and runs", (
    CliVerb("validate", "check definition files; exits non-zero on any error", validate, _files,
            needs_services=False),
    CliVerb("list", "defined surveys and their runs", list_surveys),
    CliVerb("launch", "invite a group to answer a survey", launch, _launch_arguments),
    CliVerb("close", "stop accepting answers", close, _survey_id),
    CliVerb("export", "one row per response; free text decrypted, no ids", export, _export_arguments),
))
