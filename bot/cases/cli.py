"""``civicbot cases ...``: the staff key, and the staff commands from a terminal.

``keygen`` and ``show`` belong on a staff machine: the private key is written there and
read there, never by the running bot. ``list``, ``claim``, ``reply`` and ``close`` are the
chat commands of the same name (same function, same audit entry, actor ``cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.cases import texts
from bot.cases.commands import render_listing, render_result
from bot.cases.crypto import StaffKeyError, StaffPrivateKey
from bot.cases.domain import MessageKind, Request, Topic
from bot.cases.references import normalise
from bot.cases.service import CLI_ACTOR, Outcome, StaffResult, Transcript
from bot.config import Settings
from bot.core.context import Services
from bot.core.i18n import Translator

SUCCESS = (Outcome.DONE, Outcome.ALREADY, Outcome.TAKEN_OVER)


def add_parser(verbs: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:  # type: ignore[type-arg]
    cases = verbs.add_parser("cases", help="confidential contact requests", parents=parents)
    case_verbs = cases.add_subparsers(dest="cases_verb", required=True)
    keygen = case_verbs.add_parser("keygen", help="make the staff key pair (on a staff machine, not the server)")
    keygen.add_argument("--output", type=Path, required=True, help="where to write the private key (mode 0600)")
    case_verbs.add_parser("list", help="open cases with their waiting times (metadata only)")
    show = case_verbs.add_parser("show", help="decrypt one case with the staff private key (on a staff machine)")
    show.add_argument("reference")
    show.add_argument("--key", type=Path, required=True, help="the private key file from 'cases keygen'")
    claim = case_verbs.add_parser("claim", help="take a case")
    claim.add_argument("reference")
    reply = case_verbs.add_parser("reply", help="answer the person (they never see who answered)")
    reply.add_argument("reference")
    reply.add_argument("text", nargs="+")
    close = case_verbs.add_parser("close", help="close a case; the person is told")
    close.add_argument("reference")


def main(args: argparse.Namespace, settings: Settings) -> int:
    if args.cases_verb == "keygen":
        return keygen(args.output)
    private = None
    if args.cases_verb == "show":
        try:
            private = StaffPrivateKey.load(args.key)
        except StaffKeyError as exc:
            print(f"civicbot: {exc}", file=sys.stderr)
            return 2
    if args.cases_verb != "list" and normalise(args.reference) is None:
        print(f"civicbot: {args.reference!r} is not a case reference (they look like C-7K3Q)", file=sys.stderr)
        return 2
    action = _ACTIONS[args.cases_verb]
    return asyncio.run(_with_services(settings, lambda services: action(services, args, private)))


def keygen(output: Path) -> int:
    private = StaffPrivateKey.generate()
    try:
        private.save(output)
    except (StaffKeyError, OSError) as exc:
        print(f"civicbot: {exc}", file=sys.stderr)
        return 2
    print(f"staff private key written to {output} (mode 0600): keep it on staff machines, never on the server")
    print("put the public key into the bot's configuration:")
    print("[contacts]")
    print(f'staff_public_key = "{private.public.text}"')
    return 0


async def _with_services(settings: Settings, action: Callable[[Services], Awaitable[int]]) -> int:
    from bot.app import build_services, load_keys, open_database, platform_text_limits

    keys = load_keys(settings)
    database = await open_database(settings)
    try:
        services = build_services(settings, database, keys)
        for platform, limit in platform_text_limits(settings).items():
            services.cases.learn_text_limit(platform, limit)
        return await action(services)
    finally:
        await database.dispose()


def _english(services: Services) -> Translator:
    return services.i18n.translator("en")


async def _list(services: Services, args: argparse.Namespace, private: StaffPrivateKey | None) -> int:
    async with services.database.sessions.begin() as session:
        listing = await services.cases.listing(session, CLI_ACTOR)
    print(_plain(render_listing(services.cases, _english(services), listing, CLI_ACTOR)))
    return 0


async def _operation(services: Services, args: argparse.Namespace, private: StaffPrivateKey | None) -> int:
    reference = normalise(args.reference) or args.reference
    cases = services.cases
    async with services.database.sessions.begin() as session:
        if args.cases_verb == "claim":
            result = await cases.claim(session, CLI_ACTOR, reference)
        elif args.cases_verb == "close":
            result = await cases.close(session, CLI_ACTOR, reference)
        else:
            result = await cases.reply(session, CLI_ACTOR, reference, " ".join(args.text), via="cli")
    line = _plain(render_result(_english(services), result))
    if result.outcome in SUCCESS:
        print(line)
        return 0
    print(f"civicbot: {line}", file=sys.stderr)
    return 1


async def _show(services: Services, args: argparse.Namespace, private: StaffPrivateKey | None) -> int:
    assert private is not None
    reference = normalise(args.reference) or args.reference
    async with services.database.sessions.begin() as session:
        transcript = await services.cases.transcript(session, CLI_ACTOR, reference, private)
    if transcript is None:
        print(f"civicbot: {_plain(render_result(_english(services), StaffResult(Outcome.UNKNOWN, reference)))}",
              file=sys.stderr)
        return 1
    print(render_transcript(services, _english(services), transcript))
    return 0


def _plain(text: str) -> str:
    """Without the Unicode isolates that keep values in place in right-to-left chat messages."""
    return text.replace("\u2068", "").replace("\u2069", "")


def render_transcript(services: Services, tr: Translator, transcript: Transcript) -> str:
    case = transcript.case
    lines = [services.cases.case_line(tr, case),
             f"status: {case.status}"
             + (f" (claimed by {services.cases.who(case.claimed_by, tr)})" if case.claimed_by else "")
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
    return _plain("\n".join(lines))


_ACTIONS: dict[str, Callable[[Services, argparse.Namespace, StaffPrivateKey | None], Awaitable[int]]] = {
    "list": _list, "show": _show, "claim": _operation, "reply": _operation, "close": _operation,
}
