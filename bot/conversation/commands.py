"""Command table: names, who may use them, their descriptions for client menus and /help."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bot.core.i18n import N_, I18n, Translator

if TYPE_CHECKING:
    from bot.conversation.engine import DialogEngine
    from bot.conversation.turn import Turn

Handler = Callable[["Turn", list[str], "DialogEngine"], Awaitable[None]]
"""``async def handler(turn, args, engine)``: ``args`` are the words after the command."""

PARTICIPANT_HELP = N_("What you can do:")
STAFF_HELP = N_("Staff commands:")


@dataclass(frozen=True, slots=True)
class Usage:
    """One line of ``/help`` for a command: ``/<name> <args> – <description>``."""

    args: str
    """The arguments as typed, e.g. ``"add <code> <kind> <name>"`` (not translated: commands are Latin)."""
    description: str
    """An ``N_()`` marker."""


@dataclass(frozen=True, slots=True)
class Command:
    name: str
    handler: Handler
    description: str
    """An ``N_()`` marker: Telegram's command menu, and the help line unless ``usage`` is given."""
    staff_only: bool = False
    needs_participant: bool = False
    usage: tuple[Usage, ...] = ()
    """Help lines for commands with arguments or sub-verbs; default: one line with the description."""
    staff_usage: tuple[Usage, ...] = ()
    """Help lines only staff see, for a command everyone may use whose verbs only staff have
    (``/checkin``: a contact person answers their association's check-in; staff schedule them)."""
    listed: bool = True
    """False for a command that only answers that something is not available: not in /help nor in
    Telegram's command menu."""

    def help_lines(self, tr: Translator) -> list[str]:
        """Laid out by the translator: in Arabic and Sorani the command reads left to right and
        the line right to left, though it starts with the command."""
        if not self.usage:
            return [tr.layout(f"/{self.name} – {tr._(self.description)}")]
        return self._lines(tr, self.usage)

    def staff_help_lines(self, tr: Translator) -> list[str]:
        return self._lines(tr, self.staff_usage)

    def _lines(self, tr: Translator, usage: tuple[Usage, ...]) -> list[str]:
        return [tr.layout(f"/{self.name} {u.args} – {tr._(u.description)}".replace("  ", " ")) for u in usage]


class CommandTable:
    """Looks up commands; a staff command asked by a non-staff person is simply unknown."""

    __slots__ = ("_commands",)

    def __init__(self, commands: Iterable[Command]) -> None:
        self._commands = {c.name: c for c in commands}

    def __iter__(self) -> Iterator[Command]:
        return iter(self._commands.values())

    def lookup(self, name: str, *, is_staff: bool) -> Command | None:
        command = self._commands.get(name)
        if command is None or (command.staff_only and not is_staff):
            return None
        return command

    def help_text(self, tr: Translator, *, staff: bool) -> str:
        """``/help``: every participant command; for staff also every staff command."""
        public = [line for c in self if not c.staff_only and c.listed for line in c.help_lines(tr)]
        text = "\n".join((tr._(PARTICIPANT_HELP), *public))
        if staff:
            lines = [line for c in self if c.listed
                     for line in (c.help_lines(tr) if c.staff_only else c.staff_help_lines(tr))]
            text += "\n\n" + "\n".join((tr._(STAFF_HELP), *lines))
        return text

    def menus(self, i18n: I18n) -> dict[str, list[tuple[str, str]]]:
        """Per language, the public commands with localized descriptions (Telegram's setMyCommands)."""
        public = [c for c in self if not c.staff_only and c.listed]
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
