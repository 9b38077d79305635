"""What a command or dialog step gets: the person, their language, a session, the services.

Replies are collected and sent only after the transaction commits, so a person never
sees a prompt for a state that was not saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from bot.cases.service import CaseService
from bot.config import Settings
from bot.core.i18n import I18n, Translator
from bot.core.model import Capabilities, Choice, Inbound, Outbound, PromptId, Pseudonym
from bot.core.roles import Role, StaffDirectory
from bot.core.security import KeyRing
from bot.services.audit import AuditLog
from bot.services.organisations import Organisations
from bot.services.outbox import Outbox
from bot.services.participants import Participants
from bot.services.staff_destinations import StaffDestinations
from bot.services.surveys import Surveys
from bot.storage.db import Database
from bot.storage.models import Participant


@dataclass(frozen=True, slots=True)
class Services:
    """Everything domain code may use, built once by the application and passed in."""

    settings: Settings
    database: Database
    keys: KeyRing
    i18n: I18n
    staff: StaffDirectory
    participants: Participants
    organisations: Organisations
    outbox: Outbox
    audit: AuditLog
    surveys: Surveys
    staff_destinations: StaffDestinations
    cases: CaseService


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

    def say(self, text: str, *, sensitive: bool = False, image: bytes | None = None) -> None:
        self.replies.append(
            Outbound(text=text, direction=self.tr.direction, sensitive=sensitive, language=self.tr.language, image=image)
        )

    def ask(self, text: str, choices: tuple[Choice, ...], prompt_id: PromptId, *, sensitive: bool = False) -> None:
        self.replies.append(
            Outbound(text=text, choices=choices, prompt_id=prompt_id, direction=self.tr.direction,
                     sensitive=sensitive, language=self.tr.language)
        )

    def use_language(self, language: str) -> None:
        self.tr = self.services.i18n.translator(language)

    @property
    def staff_actor(self) -> str:
        """How the audit log names this staff member: a short pseudonym prefix."""
        return f"staff:{self.pseudonym[:12]}"
