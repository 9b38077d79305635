"""Chat commands: ``/checkin`` for contact persons (answer the association's check-in) and, with a
verb, for staff (``/checkin schedule|pause|resume|now|ack|show|contacts|contact|invite ORG``);
``/checkins`` is the staff overview. To anyone but staff, the verbs do not exist."""

from __future__ import annotations

from bot.checkins.actions import Say, ScheduleRequest
from bot.checkins.dialog import offer_checkin
from bot.checkins.problems import CheckinProblem
from bot.core.context import Turn
from bot.core.i18n import N_
from bot.core.notices import NOT_REGISTERED
from bot.dialogs.engine import DialogEngine
from bot.handlers.registry import Command

USAGE = N_(
    "Check-ins with associations:\n"
    "/checkins – overview: next due, last answer, missed check-ins, open flags\n"
    "/checkin schedule <association> --every 14d --at 10:00 --tz Asia/Damascus [--template default]\n"
    "/checkin schedule <association> --cron 0 10 * * mon --tz Europe/Berlin\n"
    "/checkin pause|resume <association>\n"
    "/checkin now <association> – send a check-in now\n"
    "/checkin show <association> – recent check-ins and the last answer\n"
    "/checkin ack <association> – close its open flags\n"
    "/checkin contacts <association> – its members and contact persons\n"
    "/checkin contact <association> add|remove <reference>\n"
    "/checkin invite <association> [group ...] – a code that makes a contact person"
)
BAD_OPTIONS = N_("I could not read the options. Write them like: --every 14d --at 10:00 --tz Asia/Damascus")
_OPTIONS = {"every", "at", "tz", "cron", "template"}
_DASHES = ("--", "—", "–")  # phones often turn "--" into a dash


def parse_options(tokens: list[str]) -> ScheduleRequest:
    """``--every 14d --at 10:00 --tz X`` or ``--cron 0 10 * * mon --tz X`` (a cron takes five words)."""
    values: dict[str, list[str]] = {}
    current: list[str] | None = None
    for token in tokens:
        dash = next((d for d in _DASHES if token.startswith(d)), None)
        if dash is not None and token[len(dash):].lower() in _OPTIONS:
            name = token[len(dash):].lower()
            if name in values:
                raise CheckinProblem(BAD_OPTIONS)
            current = values[name] = []
        elif current is None:
            raise CheckinProblem(BAD_OPTIONS)
        else:
            current.append(token)
    if any(not words for words in values.values()):
        raise CheckinProblem(BAD_OPTIONS)
    joined = {name: " ".join(words) for name, words in values.items()}
    return ScheduleRequest(every=joined.get("every"), at=joined.get("at"), cron=joined.get("cron"),
                           timezone=joined.get("tz"), template=joined.get("template"))


async def checkin(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    if turn.role.is_staff and args:
        await _staff(turn, args)
        return
    if turn.participant is None:
        turn.say(turn.tr._(USAGE) if turn.role.is_staff else turn.tr._(NOT_REGISTERED))
        return
    state = await offer_checkin(turn)
    if state is not None:
        await engine.show(turn, state)
    elif turn.role.is_staff:
        turn.say(turn.tr._(USAGE))


async def checkins_overview(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    """``/checkins``: the overview; ``/checkins show ORG`` (and every other verb) as ``/checkin``."""
    if args:
        await _staff(turn, args)
        return
    say = await turn.services.checkin_actions.overview(turn.session)
    turn.say(say(turn.tr), sensitive=True)


async def _staff(turn: Turn, args: list[str]) -> None:
    actions = turn.services.checkin_actions
    verb, rest = args[0].lower(), args[1:]
    session, actor = turn.session, turn.staff_actor
    say: Say | None = None
    try:
        if verb == "schedule" and rest:
            say = await actions.schedule(session, actor, rest[0], parse_options(rest[1:]))
        elif verb in ("pause", "resume", "ack", "show", "contacts") and len(rest) == 1:
            if verb == "pause":
                say = await actions.pause(session, actor, rest[0])
            elif verb == "resume":
                say = await actions.resume(session, actor, rest[0])
            elif verb == "ack":
                say = await actions.acknowledge(session, actor, rest[0])
            elif verb == "contacts":
                say = await actions.contacts(session, rest[0])
            else:
                content = turn.services.checkins.shows_content(turn.inbound.platform)
                say = await actions.show(session, actor, rest[0], with_content=content)
        elif verb == "now" and rest:
            options = parse_options(rest[1:])
            if options.every or options.at or options.cron or options.timezone:
                raise CheckinProblem(BAD_OPTIONS)
            say = await actions.now(session, actor, rest[0], options.template)
        elif verb == "contact" and len(rest) == 3 and rest[1].lower() in ("add", "remove"):
            say = await actions.set_contact(session, actor, rest[0], rest[2], rest[1].lower() == "add")
        elif verb == "invite" and rest:
            say = await actions.invite(session, actor, rest[0], rest[1:])
    except CheckinProblem as problem:
        turn.say(problem.render(turn.tr))
        return
    if say is None:
        turn.say(turn.tr._(USAGE))
        return
    turn.say(say(turn.tr), sensitive=True)


CHECKIN_COMMANDS = (
    Command("checkin", checkin, N_("Answer your association's check-in")),
    Command("checkins", checkins_overview, N_("Check-ins with associations"), staff_only=True),
)
