"""Where staff are reached: the staff Matrix room, the staff Telegram chat, one staff member.

An outbox row names a destination, never an address: addresses come from the configuration
when the row is sent, so no staff account id is stored in the database (a member is named
by their pseudonym and found again among the configured ``staff.members``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from bot.core.model import Address, Platform, Pseudonym
from bot.core.security import KeyRing

ROOM = "staff:room"  # the staff Matrix room (end-to-end encrypted)
CHAT = "staff:chat"  # the staff Telegram group
_MEMBER = "staff:member:"

# A private chat with a member is possible only where the chat id is the user id (Telegram).
_PRIVATE_CHAT_PLATFORMS = frozenset({"telegram", "console"})


@dataclass(frozen=True, slots=True)
class StaffTarget:
    """A resolved destination: its platform and address."""

    destination: str
    address: Address

    @property
    def platform(self) -> str:
        return str(self.address.platform)


class StaffDestinations:
    """Resolves destinations from ``[staff]``; unknown or unconfigured ones resolve to None."""

    __slots__ = ("_room", "_chat", "_members")

    def __init__(self, keys: KeyRing, matrix_room: str | None, telegram_chat: int | None,
                 members: Iterable[str]) -> None:
        self._room = matrix_room
        self._chat = telegram_chat
        self._members: dict[str, tuple[str, str]] = {}
        for entry in members:
            platform, _, user_id = entry.partition(":")
            self._members[keys.pseudonym(platform, user_id)] = (platform, user_id)

    @staticmethod
    def member(pseudonym: Pseudonym | str) -> str:
        return f"{_MEMBER}{pseudonym}"

    @property
    def rooms(self) -> list[StaffTarget]:
        """The shared staff places that are configured: the Matrix room, the Telegram chat."""
        return [target for target in (self.resolve(ROOM), self.resolve(CHAT)) if target is not None]

    def resolve(self, destination: str) -> StaffTarget | None:
        if destination == ROOM and self._room:
            return StaffTarget(destination, Address(Platform("matrix"), self._room))
        if destination == CHAT and self._chat is not None:
            return StaffTarget(destination, Address(Platform("telegram"), str(self._chat)))
        if destination.startswith(_MEMBER):
            found = self._members.get(destination[len(_MEMBER):])
            if found is not None and found[0] in _PRIVATE_CHAT_PLATFORMS:
                return StaffTarget(destination, Address(Platform(found[0]), found[1]))
        return None

    def display_name(self, actor: str) -> str | None:
        """How staff name each other: ``staff:<pseudonym prefix>`` (the audit log's actor) as the
        configured account, e.g. ``@alice:example.org``; None if no configured member matches."""
        prefix = actor.removeprefix("staff:")
        if not prefix or prefix == actor:
            return None
        for pseudonym, (platform, user_id) in self._members.items():
            if pseudonym.startswith(prefix):
                return user_id if platform == "matrix" else f"{platform}:{user_id}"
        return None
