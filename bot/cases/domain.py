"""The vocabulary of contact requests: topics, statuses, how and when to be contacted."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass


class Topic(enum.StrEnum):
    INFORMATION = "information"  # share information or documentation
    MEETING = "meeting"
    SAFETY = "safety"
    OTHER = "other"


class Status(enum.StrEnum):
    OPEN = "open"  # nobody has claimed it yet
    CLAIMED = "claimed"
    CLOSED = "closed"  # by staff; the person was told
    WITHDRAWN = "withdrawn"  # by the person, or by their erasure

    @property
    def active(self) -> bool:
        return self in (Status.OPEN, Status.CLAIMED)


ACTIVE = (Status.OPEN.value, Status.CLAIMED.value)


class Author(enum.StrEnum):
    PERSON = "person"
    STAFF = "staff"


class Way(enum.StrEnum):
    """How the person would like to be contacted; every way is arranged through the bot."""

    MESSAGES = "messages"
    CALL = "call"
    IN_PERSON = "in_person"
    STAFF_CHOOSE = "staff_choose"


class When(enum.StrEnum):
    ANY_TIME = "any_time"
    MORNING = "morning"
    AFTERNOON = "afternoon"
    EVENING = "evening"


class MessageKind(enum.StrEnum):
    REQUEST = "request"  # the opening: description and contact preferences (JSON)
    TEXT = "text"


@dataclass(frozen=True, slots=True)
class Request:
    """What the person chose in the contact dialog. ``when`` is a :class:`When` value or their own words."""

    topic: Topic
    description: str = ""
    way: Way | None = None
    when: str = ""

    def to_json(self) -> str:
        return json.dumps({"description": self.description, "way": self.way.value if self.way else None,
                           "when": self.when}, ensure_ascii=False)

    @classmethod
    def from_json(cls, topic: Topic, text: str) -> Request:
        data = json.loads(text)
        way = data.get("way")
        return cls(topic, str(data.get("description") or ""), Way(way) if way in set(Way) else None,
                   str(data.get("when") or ""))
