"""Changing the language of a registered participant."""

from __future__ import annotations

from bot.conversation.engine import Dialog, Prompt, State, menu_state
from bot.conversation.turn import Turn
from bot.core.model import Choice


def language_choices(turn: Turn) -> tuple[Choice, ...]:
    """Each language in its own name and script, so anyone can find theirs."""
    return tuple(Choice(info.code, info.endonym) for info in turn.services.i18n.languages)


class LanguageDialog(Dialog):
    name = "language"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        return Prompt(turn.tr._("Choose your language."), language_choices(turn))

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        if turn.participant is not None:
            turn.participant.language = key
        turn.use_language(key)
        turn.say(turn.tr._("From now on I will write to you in English."))
        return menu_state(turn)
