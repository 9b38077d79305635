"""``civicbot cases ...``: the staff key, and the staff commands from a terminal.

``keygen`` and ``show`` belong on a staff machine: the private key is written there and read
there, never by the running bot. ``list``, ``claim``, ``reply`` and ``close`` call the same
service functions as the chat commands of the same name (same audit entries, actor ``cli``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bot.cases import texts
from bot.cases.commands import render_listing, render_result
from bot.cases.crypto import StaffKeyError, StaffPrivateKey
from bot.cases.domain import MessageKind, Request, Topic
from bot.cases.references import normalise
from bot.cases.service import CLI_ACTOR, CaseService, Outcome, StaffResult, Transcript
from bot.conversation.feature import CliContext, CliGroup, CliVerb
from bot.core.i18n import Translator, plain

SUCCESS = (Outcome.DONE, Outcome.ALREADY, Outcome.TAKEN_OVER)


def _english(ctx: CliContext) -> Translator:
    return ctx.services.i18n.translator("en")


def _reference(ctx: CliContext, typed: str) -> str | None:
    reference = normalise(typed)
    if reference is None:
        ctx.fail(f"{typed!r} is not a case reference (they look like C-7K3Q)", 2)
    return reference


async def keygen(ctx: CliContext, args: argparse.Namespace) -> int:
    private = StaffPrivateKey.generate()
    try:
        private.save(args.output)
    except (StaffKeyError, OSError) as exc:
        return ctx.fail(str(exc), 2)
    print(f"staff private key written to {args.output} (mode 0600): keep it on staff machines, never on the server",
          file=ctx.out)
    print("put the public key into the bot's configuration:", file=ctx.out)
    print("[contacts]", file=ctx.out)
    print(f'staff_public_key = "{private.public.text}"', file=ctx.out)
    return 0


async def list_cases(ctx: CliContext, args: argparse.Namespace) -> int:
    cases = CaseService.from_services(ctx.services)
    async with ctx.database.sessions.begin() as session:
        listing = await cases.listing(session, CLI_ACTOR)
    print(plain(render_listing(cases, _english(ctx), listing, CLI_ACTOR)), file=ctx.out)
    return 0


async def _operation(ctx: CliContext, args: argparse.Namespace) -> int:
    reference = _reference(ctx, args.reference)
    if reference is None:
        return 2
    cases = CaseService.from_services(ctx.services)
    async with ctx.database.sessions.begin() as session:
        if args.group_verb == "claim":
            result = await cases.claim(session, CLI_ACTOR, reference)
        elif args.group_verb == "close":
            result = await cases.close(session, CLI_ACTOR, reference)
        else:
            result = await cases.reply(session, CLI_ACTOR, reference, " ".join(args.text), via="cli")
    line = plain(render_result(_english(ctx), result))
    if result.outcome in SUCCESS:
        print(line, file=ctx.out)
        return 0
    return ctx.fail(line)


async def show(ctx: CliContext, args: argparse.Namespace) -> int:
    try:
        private = StaffPrivateKey.load(args.key)
    except StaffKeyError as exc:
        return ctx.fail(str(exc), 2)
    reference = _reference(ctx, args.reference)
    if reference is None:
        return 2
    cases = CaseService.from_services(ctx.services)
    async with ctx.database.sessions.begin() as session:
        transcript = await cases.transcript(session, CLI_ACTOR, reference, private)
    if transcript is None:
        return ctx.fail(plain(render_result(_english(ctx), StaffResult(Outcome.UNKNOWN, reference))))
    print(render_transcript(cases, _english(ctx), transcript), file=ctx.out)
    return 0


def render_transcript(cases: CaseService, tr: Translator, transcript: Transcript) -> str:
    case = transcript.case
    lines = [cases.case_line(tr, case),
             f"status: {case.status}"
             + (f" (claimed by {cases.who(case.claimed_by, tr)})" if case.claimed_by else "")
             + f" · opened {case.created_at:%Y-%m-%d %H:%M} UTC"
             + (f" · ended {case.closed_at:%Y-%m-%d %H:%M} UTC" if case.closed_at else ""), ""]
    if not transcript.entries:
        lines.append("no messages (erased at the person's request, or purged)")
    for entry in transcript.entries:
        lines.append(f"{entry.at:%Y-%m-%d %H:%M} UTC · {entry.author}")
        if entry.body is None:
            lines.append(f"  [{entry.problem}]")
        elif entry.kind == MessageKind.REQUEST.value:
            request = Request.from_json(Topic(case.topic) if case.topic in set(Topic) else Topic.OTHER, entry.body)
            lines.append("  " + (tr._(texts.DESCRIPTION, text=request.description) if request.description
                                 else tr._(texts.NO_DESCRIPTION)))
            way = tr._(texts.WAYS[request.way]) if request.way else tr._(texts.NO_PREFERENCE)
            when = texts.when_label(tr, request.when) if request.when else tr._(texts.NO_PREFERENCE)
            lines.append("  " + tr._(texts.PREFERENCE, way=way, when=when))
        else:
            lines.extend("  " + line for line in entry.body.split("\n"))
    return plain("\n".join(lines))


def _keygen_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, required=True, help="where to write the private key (mode 0600)")


def _reference_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("reference", help="the case reference, e.g. C-7K3Q")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    _reference_argument(parser)
    parser.add_argument("--key", type=Path, required=True, help="the private key file from 'cases keygen'")


def _reply_arguments(parser: argparse.ArgumentParser) -> None:
    _reference_argument(parser)
    parser.add_argument("text", nargs="+", help="the answer")


CASE_VERBS = CliGroup("cases", "confidential contact requests", (
    CliVerb("keygen", "make the staff key pair (on a staff machine, not the server)", keygen, _keygen_arguments,
            needs_services=False),
    CliVerb("list", "open cases with their waiting times (metadata only)", list_cases),
    CliVerb("show", "decrypt one case with the staff private key (on a staff machine)", show, _show_arguments),
    CliVerb("claim", "take a case", _operation, _reference_argument),
    CliVerb("reply", "answer the person (they never see who answered)", _operation, _reply_arguments),
    CliVerb("close", "close a case; the person is told", _operation, _reference_argument),
))
