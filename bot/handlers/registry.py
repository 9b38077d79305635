"""Command table: names, who may use them, and their descriptions for client menus."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from bot.core.context import Turn
from bot.core.i18n import I18n
from bot.dialogs.engine import DialogEngine

Handler = Callable[[Turn, list[str], DialogEngine], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: Handler
    description: str  # an N_() marker, translated when published
    staff_only: bool = False
    needs_participant: bool = False


class CommandTable:
    """Looks up commands; a staff command asked by a non-staff person is simply unknown."""

    __slots__ = ("_commands",)

    def __init__(self, commands: Iterable[Command]) -> None:
        self._commands = {c.name: c for c in commands}

    def lookup(self, name: str, *, is_staff: bool) -> Command | None:
        command = self._commands.get(name)
        if command is None or (command.staff_only and not is_staff):
            return None
        return command

    def menus(self, i18n: I18n) -> dict[str, list[tuple[str, str]]]:
        """Per language, the public commands with localized descriptions (Telegram's setMyCommands)."""
        public = [c for c in self._commands.values() if not c.staff_only]
        return {
            info.code: [(c.name, i18n.translator(info.code)._(c.description)) for c in public]
            for info in i18n.languages
        }


def parse_command(text: str) -> tuple[str, list[str]] | None:
    """``"/invite@civicbot org1 g1"`` -> ``("invite", ["org1", "g1"])``; None if not a command."""
    stripped = text.strip()
    if not stripped.startswith("/") or len(stripped) < 2:
        return None
    head, *args = stripped.split()
    name = head[1:].split("@", 1)[0].lower()
    return (name, args) if name.replace("_", "").isalnum() and name.isascii() else None
