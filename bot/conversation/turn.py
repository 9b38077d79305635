"""What a command or dialog step gets: the person, their language, a session, the services.

Replies are collected and sent only after the transaction commits, so a person never
sees a prompt for a state that was not saved.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.core.i18n import I18n, Translator
from bot.core.model import Address, Capabilities, Choice, Inbound, Outbound, PromptId, Pseudonym
from bot.core.roles import Role, StaffDirectory
from bot.core.security import KeyRing
from bot.core.transport import Transport
from bot.services.audit import AuditLog
from bot.services.organisations import Organisations
from bot.services.outbox import Outbox
from bot.services.participants import Participants
from bot.storage.db import Database
from bot.storage.models import Participant

T = TypeVar("T")

Followup = Callable[[Transport, Address, bool], Awaitable[list[Outbound]]]
"""``followup(transport, address, committed)``: work on the platform once the turn's transaction is
over (``committed`` says whether it was committed); returns what to say about it."""


class MissingService(LookupError):
    """``services.get(X)`` for a service no enabled feature provides."""


@dataclass(frozen=True, slots=True)
class Services:
    """Everything domain code may use, built once by the wiring and passed in.

    The fields are the cross-cutting services every capability may rely on. A capability's
    own service (surveys, bulletins, ...) is contributed by its feature's ``service`` factory
    and found by its type: ``services.get(Surveys)``. The wiring fills ``provided`` once, at
    start; nothing registers a service later.
    """

    settings: Settings
    database: Database
    keys: KeyRing
    i18n: I18n
    staff: StaffDirectory
    participants: Participants
    organisations: Organisations
    outbox: Outbox
    audit: AuditLog
    text_limits: dict[str, int] = field(default_factory=dict)
    """The longest message each platform takes (its transport's ``max_text_length``), e.g. to refuse
    an answer that a person's platform would cut."""
    provided: Mapping[type, object] = field(default_factory=dict)

    def get(self, kind: type[T]) -> T:
        """The service of type ``kind`` that a feature provides; MissingService if none does."""
        try:
            found = self.provided[kind]
        except KeyError:
            raise MissingService(f"no enabled feature provides {kind.__name__}") from None
        assert isinstance(found, kind)
        return found

    def has(self, kind: type) -> bool:
        """Whether a feature provides ``kind`` (a capability that is off provides nothing)."""
        return kind in self.provided


@dataclass(slots=True)
class Turn:
    """One inbound message being handled."""

    inbound: Inbound
    pseudonym: Pseudonym
    session: AsyncSession
    services: Services
    tr: Translator
    role: Role
    capabilities: Capabilities
    participant: Participant | None = None
    replies: list[Outbound] = field(default_factory=list)
    followups: list[Followup] = field(default_factory=list)
    """Run by the router after the turn's transaction ended, committed or not, and after the replies
    went out; each returns more replies (``/panic`` clears the chat, then says what it could not)."""
    ended: bool = False
    """The conversation ends here: no dialog state is kept and nothing is shown after the replies."""

    def say(self, text: str, *, sensitive: bool = False, image: bytes | None = None) -> None:
        self.replies.append(
            Outbound(text=text, direction=self.tr.direction, sensitive=sensitive, language=self.tr.language, image=image)
        )

    def ask(self, text: str, choices: tuple[Choice, ...], prompt_id: PromptId, *, sensitive: bool = False,
            numbered: bool = True) -> None:
        self.replies.append(
            Outbound(text=text, choices=choices, prompt_id=prompt_id, direction=self.tr.direction,
                     sensitive=sensitive, language=self.tr.language, numbered=numbered)
        )

    def use_language(self, language: str) -> None:
        self.tr = self.services.i18n.translator(language)

    @property
    def staff_actor(self) -> str:
        """How the audit log names this staff member: a short pseudonym prefix."""
        return f"staff:{self.pseudonym[:12]}"
