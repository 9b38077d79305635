"""Erasure on request, after an explicit confirmation."""

from __future__ import annotations

from bot.core.context import Turn
from bot.core.model import Choice
from bot.dialogs.engine import Dialog, Prompt, State
from bot.dialogs.menu import menu_state


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
        if turn.participant is not None:  # open contact requests are withdrawn, and staff are told
            await turn.services.cases.erase_participant(turn.session, turn.participant.id)
        await turn.services.participants.erase(turn.session, turn.pseudonym)
        turn.participant = None
        turn.say(_(
            "Everything this bot stored about you has been erased, and the key that protected it has been "
            "destroyed.\n"
            "What the bot cannot erase: the messages in this chat on your device and on the messaging "
            "service's servers (please delete this chat yourself); answers to anonymous surveys, which are "
            "stored with no link to you; and encrypted database backups made before today, until they expire. "
            "Send /start if you want to come back."
        ))
        return None
