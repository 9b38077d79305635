"""How staff name each other in case notices and ``/cases``: the configured account of a member.

The audit log names a staff actor by a prefix of their pseudonym (``staff:1a2b3c``); staff see
the account it stands for (``@amal:example.org``), found again among ``[staff]`` members and
admins. Participants never see any of it.
"""

from __future__ import annotations

from collections.abc import Iterable

from bot.config import Settings
from bot.core.security import KeyRing


class StaffNames:
    """Pseudonym -> configured staff account (``platform:user_id``)."""

    __slots__ = ("_members",)

    def __init__(self, keys: KeyRing, members: Iterable[str]) -> None:
        self._members: dict[str, tuple[str, str]] = {}
        for entry in members:
            platform, _, user_id = entry.partition(":")
            self._members[keys.pseudonym(platform, user_id)] = (platform, user_id)

    @classmethod
    def from_settings(cls, settings: Settings, keys: KeyRing) -> StaffNames:
        return cls(keys, [*settings.staff.members, *settings.staff.admins])

    def display_name(self, actor: str) -> str | None:
        """``staff:<pseudonym prefix>`` as the configured account, e.g. ``@amal:example.org``; None if
        no configured member matches."""
        prefix = actor.removeprefix("staff:")
        if not prefix or prefix == actor:
            return None
        for pseudonym, (platform, user_id) in self._members.items():
            if pseudonym.startswith(prefix):
                return user_id if platform == "matrix" else f"{platform}:{user_id}"
        return None
