"""Chat commands: ``/checkin`` for contact persons (answer the association's check-in) and, with a
verb, for staff (``/checkin schedule|pause|resume|now|ack|show|contacts|contact|invite ORG``);
``/checkins`` is the staff overview (and takes the same verbs). To anyone but staff, the verbs do
not exist: ``/checkin`` with words after it is still the person's own check-in."""

from __future__ import annotations

from bot.checkins.actions import Say, ScheduleRequest, StaffActions
from bot.checkins.dialog import offer_checkin
from bot.checkins.problems import CheckinProblem
from bot.conversation.commands import Command, Usage
from bot.conversation.engine import DialogEngine
from bot.conversation.turn import Turn
from bot.core.i18n import N_
from bot.core.notices import NOT_REGISTERED

BAD_OPTIONS = N_("I could not read the options. Write them like: --every 14d --at 10:00 --tz Asia/Damascus")
USAGE_HEAD = N_("Check-ins with associations:")
_OPTIONS = {"every", "at", "tz", "cron", "template"}
_DASHES = ("--", "—", "–")  # phones often turn "--" into a dash

STAFF_VERBS = (
    Usage("schedule <association> --every 14d --at 10:00 --tz Asia/Damascus [--template default]",
          N_("check-ins every N days or weeks at the association's local time")),
    Usage("schedule <association> --cron 0 10 * * mon --tz Europe/Berlin", N_("or on a cron rhythm")),
    Usage("pause|resume <association>", N_("stop its check-ins, or start them again")),
    Usage("now <association>", N_("send a check-in now")),
    Usage("show <association>", N_("recent check-ins and the last answer")),
    Usage("ack <association>", N_("close its open flags")),
    Usage("contacts <association>", N_("its members and contact persons")),
    Usage("contact <association> add|remove <reference>", N_("change its contact persons")),
    Usage("invite <association> [group ...]", N_("a code that makes a contact person")),
)


def usage_text(turn: Turn) -> str:
    """The staff verbs, from the same lines as ``/help``."""
    return "\n".join((turn.tr._(USAGE_HEAD), *CHECKIN.staff_help_lines(turn.tr), *CHECKINS.help_lines(turn.tr)))


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
        turn.say(usage_text(turn) if turn.role.is_staff else turn.tr._(NOT_REGISTERED))
        return
    state = await offer_checkin(turn)
    if state is not None:
        await engine.show(turn, state)
    elif turn.role.is_staff:
        turn.say(usage_text(turn))


async def checkins_overview(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    """``/checkins``: the overview; ``/checkins show ORG`` (and every other verb) as ``/checkin``."""
    if args:
        await _staff(turn, args)
        return
    say = await StaffActions.of(turn.services).overview(turn.session)
    turn.say(say(turn.tr), sensitive=True)


async def _staff(turn: Turn, args: list[str]) -> None:
    actions = StaffActions.of(turn.services)
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
                say = await actions.show(session, actor, rest[0],
                                         with_content=actions.shows_content(turn.inbound.platform))
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
        turn.say(usage_text(turn))
        return
    turn.say(say(turn.tr), sensitive=True)


CHECKIN = Command("checkin", checkin, N_("Answer your association's check-in"), staff_usage=STAFF_VERBS)
CHECKINS = Command("checkins", checkins_overview, N_("Check-ins with associations"), staff_only=True,
                   usage=(Usage("", N_("overview: next due, last answer, missed check-ins, open flags")),))
CHECKIN_COMMANDS = (CHECKIN, CHECKINS)
