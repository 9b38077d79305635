"""Chat commands: ``/bulletin new|send|status|cancel|list|approve`` for staff; ``/subscribe``,
``/unsubscribe`` and ``/bulletins`` for participants. Staff actions go through
:class:`bot.bulletins.actions.BulletinActions`, exactly as the command line does.
"""

from __future__ import annotations

import datetime as dt
import re

from bot.bulletins import texts
from bot.bulletins.actions import BadTime, parse_time
from bot.bulletins.composer import actions, composer_state, in_staff_room
from bot.bulletins.service import BulletinRefused, NoticeTarget
from bot.conversation.engine import DialogEngine
from bot.conversation.turn import Turn

_AUDIENCE_TERM = re.compile(r"^(all|group:|org:|lang:)", re.IGNORECASE)


def parse_send_args(args: list[str]) -> tuple[str, list[str], str | None, bool]:
    """``<id> <audience...> [--at <time>] [--dry-run]``; the time may be two words (date and time)."""
    bulletin_id, rest = args[0].lower(), args[1:]
    audience: list[str] = []
    at: list[str] = []
    dry_run = False
    taking_time = False
    for word in rest:
        if word == "--dry-run":
            dry_run, taking_time = True, False
        elif word == "--at":
            taking_time = True
        elif taking_time and not _AUDIENCE_TERM.match(word) and len(at) < 2:
            at.append(word)
        else:
            taking_time = False
            audience.append(word)
    return bulletin_id, audience, " ".join(at) if at else ("" if "--at" in rest else None), dry_run


async def bulletin(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    verb = args[0].lower() if args else ""
    if verb == "new" and len(args) == 1:
        if in_staff_room(turn):
            turn.say(turn.tr._("Please write new bulletins in a private chat with me: in the staff room, "
                               "the text would mix with everyone's messages."))
            return
        await engine.show(turn, composer_state(turn))
        return
    if verb == "list" and len(args) == 1:
        turn.say(texts.listing(turn.tr, await actions(turn).list(turn.session)))
        return
    if verb in ("status", "cancel", "approve") and len(args) == 2:
        await _single(turn, verb, args[1].lower())
        return
    if verb == "send" and len(args) >= 3:
        await _send(turn, args[1:])
        return
    turn.say(texts.usage(turn.tr))


async def _single(turn: Turn, verb: str, bulletin_id: str) -> None:
    tr = turn.tr
    try:
        if verb == "status":
            report = await actions(turn).status(turn.session, bulletin_id)
            turn.say(report.text(tr))
        elif verb == "cancel":
            was_sending, withdrawn = await actions(turn).cancel(turn.session, bulletin_id, turn.staff_actor)
            turn.say(texts.cancelled(tr, bulletin_id, was_sending, withdrawn))
        else:
            version, started = await actions(turn).approve(turn.session, bulletin_id, turn.staff_actor)
            turn.say(texts.approved(tr, bulletin_id, version, started))
    except BulletinRefused as exc:
        turn.say(texts.refusal(tr, exc, bulletin_id))


async def _send(turn: Turn, args: list[str]) -> None:
    tr = turn.tr
    bulletin_id, audience, typed_time, dry_run = parse_send_args(args)
    at: dt.datetime | None = None
    if typed_time is not None:
        try:
            at = parse_time(typed_time)
        except BadTime:
            turn.say(texts.bad_time(tr, typed_time))
            return
    try:
        outcome = await actions(turn).send(
            turn.session, bulletin_id, audience, at, turn.staff_actor, tr.language,
            [NoticeTarget(turn.inbound.address, tr.language)], dry_run=dry_run,
        )
    except BulletinRefused as exc:
        turn.say(texts.refusal(tr, exc, bulletin_id))
        return
    if outcome.view is None:
        turn.say(texts.preview(tr, outcome.preview, outcome.first_language))
    else:
        turn.say(texts.send_requested(tr, outcome.view, outcome.preview))
