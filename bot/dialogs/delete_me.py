"""Erasure on request, after an explicit confirmation."""

from __future__ import annotations

from bot.conversation.engine import Dialog, Prompt, State, menu_state
from bot.conversation.feature import FeatureSet
from bot.conversation.turn import Turn
from bot.core.model import Choice


async def erase_participant(turn: Turn) -> None:
    """Every feature's erasure hook, then the person (their key, addresses, memberships and every
    row that cascades from them) and their conversation state."""
    services = turn.services
    if turn.participant is not None:
        await services.get(FeatureSet).erase(turn.session, services, turn.participant)
    await services.participants.erase(turn.session, turn.pseudonym)
    turn.participant = None


class DeleteMeDialog(Dialog):
    name = "delete_me"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        return Prompt(
            _("This erases everything this bot stores about you: your language, your memberships and all your "
              "answers. It cannot be undone. Do you want to continue?"),
            (Choice("erase", _("Yes, erase everything")), Choice("keep", _("No, keep my data"))),
        )

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        if key == "keep":
            turn.say(_("Nothing was erased."))
            return menu_state(turn)
        await erase_participant(turn)
        turn.say(_(
            "Everything this bot stored about you has been erased, and the key that protected it has been "
            "destroyed.\n"
            "What the bot cannot erase: the messages in this chat on your device and on the messaging "
            "service's servers (please delete this chat yourself); answers to anonymous surveys, which are "
            "stored with no link to you; and encrypted database backups made before today, until they expire. "
            "Send /start if you want to come back."
        ))
        return None
