"""Chat commands of contact requests, and what happens to text outside any command.

Participants: ``/contact``, ``/case``, ``/withdraw``; while a case is open, what they type
outside a dialog goes to it. Staff: ``/cases``, ``/claim``, ``/reply``, ``/close``, and in
the Matrix staff room a reply in a case's thread is the answer. For anyone who is not
staff, the staff commands do not exist (the command table answers "unknown command").
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases import texts
from bot.cases.dialogs import ContactDialog, WithdrawDialog, contact_entry
from bot.cases.references import normalise
from bot.cases.service import CaseService, Listing, Outcome, StaffResult, aware
from bot.conversation.commands import Command, Usage
from bot.conversation.engine import MENU, DialogEngine, State
from bot.conversation.turn import Turn
from bot.core.i18n import N_, Translator
from bot.core.model import InboundKind
from bot.services.outbox import StaffDestination


def cases_of(turn: Turn) -> CaseService:
    return turn.services.get(CaseService)


_REPLY = re.compile(r"\S+\s+(\S+)\s+(.*)", re.DOTALL)  # /reply C-XXXX the answer, over several lines

# -- the person -----------------------------------------------------------------------------


async def start_request(turn: Turn) -> State | None:
    """``/contact`` and the menu entry: the request dialog, unless one is open already."""
    assert turn.participant is not None
    existing = await cases_of(turn).active_case_of(turn.session, turn.participant.id)
    if existing is not None:
        turn.say(turn.tr._(texts.ALREADY_OPEN, reference=existing.reference))
        return None
    return contact_entry(turn)


async def contact(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    state = await start_request(turn)
    if state is not None:
        await engine.show(turn, state)


async def not_available(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    """``/contact`` while no staff public key is configured: the feature is off."""
    turn.say(turn.tr._(texts.NOT_AVAILABLE))


async def case_status(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    _ = turn.tr._
    assert turn.participant is not None
    case = await cases_of(turn).active_case_of(turn.session, turn.participant.id)
    if case is None:
        turn.say(_(texts.NO_OPEN_CASE))
        return
    now = cases_of(turn).now()
    lines = [
        _(texts.STATUS, reference=case.reference, topic=texts.topic_short(turn.tr, case.topic),
          age=texts.duration(turn.tr, now - aware(case.created_at))),
        _(texts.STATUS_CLAIMED if case.claimed_by else texts.STATUS_OPEN),
        _(texts.STATUS_LAST_STAFF, age=texts.duration(turn.tr, now - aware(case.last_staff_at)))
        if case.last_staff_at else _(texts.STATUS_NO_STAFF),
    ]
    turn.say("\n".join(lines), sensitive=True)


async def withdraw(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    assert turn.participant is not None
    case = await cases_of(turn).active_case_of(turn.session, turn.participant.id)
    if case is None:
        turn.say(turn.tr._(texts.NO_OPEN_CASE))
        return
    await engine.show(turn, State(WithdrawDialog.name, "confirm", turn.tr.language, {"reference": case.reference}))


async def person_text(turn: Turn, state: State | None, engine: DialogEngine) -> bool:
    """Text outside a dialog (or not answering the menu) goes to the person's open case, if any."""
    inbound = turn.inbound
    if inbound.kind is not InboundKind.TEXT or turn.participant is None:
        return False
    if state is not None and (state.dialog != MENU or engine.matches_choice(turn, state)):
        return False
    case = await cases_of(turn).active_case_of(turn.session, turn.participant.id)
    if case is None:
        return False
    if await cases_of(turn).add_person_message(turn.session, case, inbound.text.strip()):
        turn.say(turn.tr._(texts.SENT_TO_STAFF))
    else:
        turn.say(turn.tr._(texts.CASE_FLOOD))
    return True


# -- staff ------------------------------------------------------------------------------------


def origin(turn: Turn) -> StaffDestination | None:
    """The shared staff place a command came from (it sees the answer already), if any."""
    if not turn.inbound.in_staff_room:
        return None
    return StaffDestination.MATRIX_ROOM if turn.inbound.platform == "matrix" else StaffDestination.TELEGRAM_CHAT


async def _reference(turn: Turn, args: list[str]) -> str | None:
    """The case named in the arguments, or else the case whose thread this was said in."""
    if args:
        return normalise(args[0]) or args[0][:16]
    root = turn.inbound.thread_root
    if root and turn.inbound.in_staff_room:
        case = await cases_of(turn).case_for_thread(turn.session, turn.inbound.address.value, root)
        return case.reference if case is not None else None
    return None


async def list_cases(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    listing = await cases_of(turn).listing(turn.session, turn.staff_actor)
    turn.say(render_listing(cases_of(turn), turn.tr, listing, turn.staff_actor))


async def claim(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await _on_case(turn, args, texts.USAGE_CLAIM, cases_of(turn).claim)


async def close(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await _on_case(turn, args, texts.USAGE_CLOSE, cases_of(turn).close)


CaseAction = Callable[[AsyncSession, str, str, StaffDestination | None], Awaitable[StaffResult]]


async def _on_case(turn: Turn, args: list[str], usage: str, action: CaseAction) -> None:
    """/claim and /close: the case named (or the thread's), as this staff member, from where they wrote."""
    reference = await _reference(turn, args)
    if reference is None:
        turn.say(turn.tr._(usage))
        return
    turn.say(render_result(turn.tr, await action(turn.session, turn.staff_actor, reference, origin(turn))))


async def reply(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    # The answer keeps its line breaks: it is read from the message, not from the split arguments.
    parts = _REPLY.match(turn.inbound.text.strip())
    reference = normalise(parts.group(1)) if parts else None
    answer = parts.group(2) if parts else ""
    if reference is None or not answer.strip():
        turn.say(turn.tr._(texts.USAGE_REPLY))
        return
    result = await cases_of(turn).reply(turn.session, turn.staff_actor, reference, answer,
                                             via="command", origin=origin(turn))
    turn.say(render_result(turn.tr, result))


async def staff_room_text(turn: Turn) -> bool:
    """In the staff room, an answer written in a case's thread goes to that case's person."""
    inbound = turn.inbound
    root = inbound.thread_root
    if inbound.kind is not InboundKind.TEXT or not root:
        return False
    case = await cases_of(turn).case_for_thread(turn.session, inbound.address.value, root)
    if case is None:
        return False  # a thread of the staff's own
    if not turn.role.is_staff:
        turn.say(turn.tr._(texts.NOT_STAFF_THREAD))
        return True
    result = await cases_of(turn).reply(turn.session, turn.staff_actor, case.reference, inbound.text,
                                             via="thread", origin=StaffDestination.MATRIX_ROOM)
    turn.say(render_result(turn.tr, result))
    return True


# -- rendering (chat and command line) -------------------------------------------------------


def render_result(tr: Translator, result: StaffResult) -> str:
    reference = result.reference
    match result.outcome:
        case Outcome.UNKNOWN:
            return tr._(texts.UNKNOWN_CASE, reference=reference)
        case Outcome.CLOSED:
            return tr._(texts.CASE_CLOSED, reference=reference)
        case Outcome.WITHDRAWN:
            return tr._(texts.CASE_WITHDRAWN, reference=reference)
        case Outcome.ERASED:
            return tr._(texts.CASE_ERASED, reference=reference)
        case Outcome.TOO_LONG:
            return tr._(texts.REPLY_TOO_LONG, length=result.length, limit=result.limit)
        case Outcome.EMPTY:
            return tr._(texts.REPLY_EMPTY)
        case Outcome.UNAVAILABLE:
            return tr._(texts.NOT_AVAILABLE)
        case Outcome.ALREADY:
            return tr._(texts.CLAIMED_ALREADY, reference=reference)
        case Outcome.TAKEN_OVER:
            return tr._(texts.CLAIMED_TAKEN_OVER, reference=reference, who=result.previous)
    return tr._(result.done, reference=reference)


def render_listing(cases: CaseService, tr: Translator, listing: Listing, actor: str) -> str:
    if not listing.rows:
        return tr._(texts.CASES_NONE)
    claim_hours, answer_hours = format(listing.claim_hours, "g"), format(listing.answer_hours, "g")
    lines = [tr._(texts.CASES_SUMMARY, open=len(listing.rows), unclaimed=listing.unclaimed, claim_hours=claim_hours,
                  claim_late=listing.claim_late, waiting=listing.waiting, answer_hours=answer_hours,
                  answer_late=listing.answer_late)]
    for row in listing.rows:
        if row.claimed_by is None:
            claimed = tr._(texts.NOT_CLAIMED)
        elif row.claimed_by == actor:
            claimed = tr._(texts.CLAIMED_BY_YOU)
        else:
            claimed = tr._(texts.CLAIMED_BY, who=cases.who(row.claimed_by, tr))
        waiting = tr._(texts.WAITING, age=texts.duration(tr, row.waiting)) if row.waiting else tr._(texts.ANSWERED)
        line = tr._(texts.CASES_ROW, case=tr._(texts.CASE_LINE, reference=row.reference,
                                               topic=texts.topic_short(tr, row.topic),
                                               language=texts.language_name(tr, row.language),
                                               platform=texts.platform_name(row.platform)),
                    age=texts.duration(tr, row.age), claim=claimed, waiting=waiting)
        if row.claim_late or row.answer_late:
            line = f"{line} · {tr._(texts.LATE)}"
        lines.append(line)
    return "\n".join(lines)


CONTACT_DESCRIPTION = N_("Ask to talk to staff in confidence")
COMMANDS = (
    Command("contact", contact, CONTACT_DESCRIPTION, needs_participant=True),
    Command("case", case_status, N_("The status of your request to staff"), needs_participant=True),
    Command("withdraw", withdraw, N_("Withdraw your request to staff"), needs_participant=True),
)
STAFF_COMMANDS = (
    Command("cases", list_cases, N_("Open contact requests, with their waiting times"), staff_only=True),
    Command("claim", claim, N_("Take a contact request"), staff_only=True,
            usage=(Usage("C-XXXX", N_("Take a contact request")),)),
    Command("reply", reply, N_("Answer a contact request"), staff_only=True,
            usage=(Usage("C-XXXX <text>", N_("Answer the person (they never see who answered)")),)),
    Command("close", close, N_("Close a contact request"), staff_only=True,
            usage=(Usage("C-XXXX", N_("Close it; the person is told")),)),
)
UNAVAILABLE_COMMANDS = (Command("contact", not_available, CONTACT_DESCRIPTION, listed=False),)
DIALOGS = (ContactDialog(), WithdrawDialog())
