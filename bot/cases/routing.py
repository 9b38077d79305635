"""Which staff members a new case is routed to (``contacts.routes``); nobody matched: all staff."""

from __future__ import annotations

from collections.abc import Sequence

from bot.config import ContactRoute


def routed_members(routes: Sequence[ContactRoute], topic: str, language: str) -> list[str]:
    """Configured members (``platform:user_id``) of every route matching the topic and language, in order."""
    members: list[str] = []
    for route in routes:
        if (not route.topics or topic in route.topics) and (not route.languages or language in route.languages):
            members.extend(route.members)
    return list(dict.fromkeys(members))
