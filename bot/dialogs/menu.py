"""The main menu: the place every finished conversation returns to, built from the features' entries."""

from __future__ import annotations

from collections.abc import Sequence

from bot.conversation.engine import MENU, Dialog, Prompt, State
from bot.conversation.feature import MenuEntry
from bot.conversation.turn import Turn
from bot.core.i18n import N_
from bot.core.model import Choice
from bot.core.notices import CONTACT_COMMAND, not_passed_on

MENU_TITLE = N_("Main menu. What would you like to do?")


class MenuDialog(Dialog):
    """Shows the entries of the features that are on, in their declared order."""

    name = MENU

    def __init__(self, entries: Sequence[MenuEntry]) -> None:
        self._entries = tuple(sorted(entries, key=lambda e: e.order))
        self._by_key = {e.key: e for e in self._entries}

    @property
    def entries(self) -> tuple[MenuEntry, ...]:
        return self._entries

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        # The menu asks nothing: typed text is a message to nobody (an open case took it already).
        contact = any(e.key == CONTACT_COMMAND for e in self._entries)
        return Prompt(_(MENU_TITLE), tuple(Choice(e.key, _(e.label)) for e in self._entries),
                      invalid=not_passed_on(turn.tr, contact=contact))

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        entry = self._by_key.get(key)
        if entry is None:  # an entry of a feature turned off since the menu was shown
            return state
        return await entry.action(turn) or state
