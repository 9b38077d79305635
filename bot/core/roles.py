"""Who is staff: configured members, matched by pseudonym so no raw id is kept in memory."""

from __future__ import annotations

import enum
from collections.abc import Iterable

from bot.core.model import Pseudonym
from bot.core.security import KeyRing


class Role(enum.Enum):
    PARTICIPANT = "participant"
    STAFF = "staff"
    ADMIN = "admin"

    @property
    def is_staff(self) -> bool:
        return self is not Role.PARTICIPANT


class StaffDirectory:
    """Maps pseudonyms to roles from ``[staff] members`` / ``admins`` (``platform:user_id``)."""

    __slots__ = ("_roles",)

    def __init__(self, keys: KeyRing, members: Iterable[str], admins: Iterable[str] = ()) -> None:
        self._roles: dict[str, Role] = {}
        for entry in members:
            self._roles[self._pseudonym(keys, entry)] = Role.STAFF
        for entry in admins:
            self._roles[self._pseudonym(keys, entry)] = Role.ADMIN

    @staticmethod
    def _pseudonym(keys: KeyRing, entry: str) -> str:
        platform, _, user_id = entry.partition(":")
        return keys.pseudonym(platform, user_id)

    def role_of(self, pseudonym: Pseudonym) -> Role:
        return self._roles.get(pseudonym, Role.PARTICIPANT)
