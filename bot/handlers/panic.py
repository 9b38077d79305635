"""``/panic``: for someone who must leave no trace now. Everything about the person is erased at
once, with no question asked, and the chat's messages are removed where the platform allows it
(Telegram: the bot's and the person's, younger than 48 hours; Matrix: redactions). Each step
stands alone: the chat is cleared even if the erasure failed. One last, neutral message says what
could not be removed, so the person knows what to delete themselves."""

from __future__ import annotations

from functools import partial

from bot.conversation.commands import Command
from bot.conversation.engine import DialogEngine, State
from bot.conversation.turn import Turn
from bot.core.i18n import N_, Translator
from bot.core.model import Address, Outbound
from bot.core.transport import ChatErasure, ErasesChats, Transport
from bot.dialogs.delete_me import erase_participant

PANIC_HELP = N_("Erase everything at once and remove this chat's messages")
PANIC_MENU = N_("Erase everything now")


async def panic(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    await erase_now(turn)


PANIC = Command("panic", panic, PANIC_HELP)


async def panic_from_menu(turn: Turn) -> State | None:
    await erase_now(turn)
    return None


async def erase_now(turn: Turn) -> None:
    """Erase in this turn's transaction; clear the chat after it, committed or not."""
    turn.ended = True  # nothing is shown or kept after this
    turn.followups.append(partial(clear_chat, turn.tr))  # first: it runs even if the erasure fails
    await erase_participant(turn)  # registered or not: their conversation state and event records too


async def clear_chat(tr: Translator, transport: Transport, address: Address, committed: bool) -> list[Outbound]:
    """Remove what the platform lets the bot remove, then say what happened, in the person's language."""
    result: ChatErasure | None = None
    if isinstance(transport, ErasesChats):
        try:
            result = await transport.erase_chat(address)
        except Exception:  # the last message still goes out and says so
            result = ChatErasure(complete=False)
    _ = tr._
    lines = [_("Everything this bot stored about you has been erased.") if committed else
             _("Your data could not be erased just now. Please send /panic again in a moment.")]
    if result is None:
        lines.append(_("The bot could not remove the messages of this chat: please delete this chat yourself."))
    else:
        if result.removed:
            lines.append(tr.n_("%(n)s message was removed from this chat.",
                               "%(n)s messages were removed from this chat.", result.removed))
        if result.failed:
            lines.append(tr.n_("%(n)s message could not be removed.", "%(n)s messages could not be removed.",
                               result.failed))
        if result.failed or not result.complete:
            lines.append(_("Older messages cannot be removed by the bot: please delete this chat yourself."))
    return [Outbound(text="\n".join(lines), direction=tr.direction, language=tr.language)]
