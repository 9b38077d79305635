"""Routes each inbound message: limits, then a command, then the active dialog.

The raw platform id is turned into a pseudonym on entry and goes no further. Every
message is handled in one transaction; replies go out after it commits. Whatever
fails, the person gets a localized answer and no exception escapes to the transport.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager

from sqlalchemy import bindparam
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation.commands import CommandTable, parse_command
from bot.conversation.engine import MENU, DialogEngine, State, menu_state
from bot.conversation.turn import Followup, Services, Turn
from bot.core.flood import FloodGuard, Verdict
from bot.core.logsafe import describe
from bot.core.model import Address, Inbound, InboundKind, Outbound, Pseudonym
from bot.core.notices import (
    CONTACT_COMMAND,
    FLOOD,
    INTERNAL_ERROR,
    NOT_REGISTERED,
    SAFE_CHANNEL,
    STAFF_CHAT_ONLY,
    STALE_BUTTON_NO_DIALOG,
    TOO_LONG,
    UNKNOWN_COMMAND,
    UNSUPPORTED_MEDIA,
    not_passed_on,
)
from bot.core.transport import DeliveryError, TransientDeliveryError, Transport
from bot.services.forget import ForgetJob
from bot.services.outbox import OutboxKind, ToParticipant
from bot.storage.db import dialect_insert, erased_in, lock_person
from bot.storage.models import Participant, ProcessedEvent, utcnow

log = logging.getLogger(__name__)

EntryDialog = Callable[[Turn], State]
Interceptor = Callable[[Turn], Awaitable[bool]]
"""Sees a text message before commands and dialogs (a stop word, say); True if it answered it."""
IdleText = Callable[[Turn, State | None, DialogEngine], Awaitable[bool]]
"""Text that is no command and answers no dialog (none is active, or the menu's choices do not
match it): a feature may take it (an open contact request does). True when taken."""
StaffRoomText = Callable[[Turn], Awaitable[bool]]
"""Text in the staff room or staff chat that is no command (a reply in a case's thread)."""


class Router:
    """The one entry point of the dialogue core, shared by every transport.

    It knows no capability: the wiring passes the commands, the dialogs (in ``engine``) and the
    two entry dialogs: ``newcomer`` for someone not registered (onboarding), ``home`` for
    everyone else (the main menu).
    """

    def __init__(self, services: Services, engine: DialogEngine, commands: CommandTable,
                 transports: Mapping[str, Transport], flood: FloodGuard, *,
                 newcomer: EntryDialog, home: EntryDialog = menu_state,
                 interceptors: Sequence[Interceptor] = (), idle_text: Sequence[IdleText] = (),
                 staff_room_text: Sequence[StaffRoomText] = ()) -> None:
        self._services = services
        self._engine = engine
        self._commands = commands
        self._transports = transports
        self._flood = flood
        self._newcomer = newcomer
        self._home = home
        self._interceptors = tuple(interceptors)
        self._idle_text = tuple(idle_text)
        self._staff_room_text = tuple(staff_room_text)
        self.handled = 0  # inbound events handled to the end (replies sent), for operators and tests
        self._progress = asyncio.Event()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # The statements every turn runs, built once (building them cost more than running them).
        self._find_query = services.participants.turn_query(
            also=services.outbox.queued_for(Participant.id))
        self._mark_seen = dialect_insert(services.database.engine.dialect.name)(ProcessedEvent).values(
            digest=bindparam("digest"), seen_at=bindparam("seen_at"), owner=bindparam("owner")
        ).on_conflict_do_nothing()

    async def handle(self, inbound: Inbound) -> None:
        """Handle one inbound event. Never raises."""
        try:
            pseudonym = self._services.keys.pseudonym(inbound.platform, inbound.user_id)
            limited = self._transports[inbound.platform].capabilities.flood_limited
            verdict = self._flood.check(pseudonym) if limited else Verdict.ACCEPT
            if verdict is Verdict.DROP:
                return
            followups: list[Followup] = []
            async with self._serialised(pseudonym):
                replies, participant_id, erased, committed = await self._handle(inbound, pseudonym, verdict,
                                                                                followups)
            if inbound.thread_root is not None:  # answered where it was said: in the same thread
                replies = [dataclasses.replace(reply, thread_root=inbound.thread_root) for reply in replies]
            await self._send(inbound.address, replies, participant_id)
            await self._follow_up(inbound.address, followups, committed)
            if erased:  # after the last reply: the platform may now forget the chat it went to
                await ForgetJob(self._services.database, self._services.keys, self._transports)()
        except Exception as exc:
            log.error("inbound handling failed on %s: %s", inbound.platform, describe(exc))
        finally:
            self.handled += 1
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()

    async def wait_handled(self, count: int) -> None:
        """Until ``count`` inbound events have been handled, their replies sent: a signal that
        nothing more is coming for them (the tests' way to prove a negative without sleeping)."""
        while self.handled < count:
            await self._progress.wait()

    async def _handle(self, inbound: Inbound, pseudonym: Pseudonym, verdict: Verdict,
                      followups: list[Followup]) -> tuple[list[Outbound], int | None, bool, bool]:
        """The replies, the participant they belong to (None before consent or after erasure), whether
        the turn erased someone, and whether it committed. ``followups`` collects the turn's
        follow-ups, kept even when the turn is rolled back."""
        services = self._services
        language = [services.i18n.resolve(inbound.language_hint)]  # the person's, once known
        try:
            async with services.database.turn() as session:
                replies, participant_id = await self._turn(inbound, pseudonym, verdict, session, language,
                                                           followups)
            erased = erased_in(session)
            if erased:  # committed: now the erased rows must leave the files too
                await services.database.scrub()
            return replies, participant_id, erased, True
        except Exception as exc:
            log.error("turn failed and was rolled back: %s", describe(exc))
            if followups:  # they report on the failure themselves
                return [], None, False, False
            tr = services.i18n.translator(language[0])
            return [Outbound(text=tr._(INTERNAL_ERROR), direction=tr.direction, language=tr.language)], None, \
                False, False

    async def _follow_up(self, address: Address, followups: list[Followup], committed: bool) -> None:
        """Each follow-up on its own: one failing does not stop the others."""
        transport = self._transports[address.platform]
        for followup in followups:
            try:
                replies = await followup(transport, address, committed)
            except Exception as exc:
                log.error("a follow-up of a turn failed on %s: %s", address.platform, describe(exc))
                continue
            await self._send(address, replies, None)

    async def _turn(self, inbound: Inbound, pseudonym: Pseudonym, verdict: Verdict, session: AsyncSession,
                    language: list[str], followups: list[Followup]) -> tuple[list[Outbound], int | None]:
        """One turn inside its transaction; ``language`` is updated as soon as the person's is known."""
        services = self._services
        transport = self._transports[inbound.platform]
        # Several workers on one PostgreSQL: one turn per person at a time across all of them
        # (the in-process lock covers one worker; SQLite has a single writer anyway).
        await lock_person(session, pseudonym)
        participant, queued = await services.participants.find_for_turn(
            session, self._find_query, pseudonym, inbound.platform, now=utcnow())
        data_key = await services.participants.data_key(session, participant.id) if participant is not None else None
        state = await self._engine.load(session, pseudonym, data_key)
        if participant is not None:
            language[0] = participant.language
        elif state is not None:
            language[0] = state.language
        turn = Turn(
            inbound=inbound, pseudonym=pseudonym, session=session, services=services,
            tr=services.i18n.translator(language[0]), role=services.staff.role_of(pseudonym),
            capabilities=transport.capabilities, participant=participant, followups=followups,
        )
        if inbound.event_id and await self._seen_before(session, inbound, pseudonym):
            return [], None
        if verdict is Verdict.NOTICE:
            turn.say(turn.tr._(FLOOD))
            return turn.replies, None
        if inbound.kind is InboundKind.GONE:  # nothing to answer: they cannot read it
            if participant is not None:
                await services.participants.mark_unreachable(session, participant.id, inbound.platform, "blocked")
            return [], None
        if participant is not None and not inbound.in_staff_room:  # a shared chat is nobody's address
            await services.participants.remember_address(session, participant, inbound.address)
        await self._dispatch(turn, state)
        if inbound.in_staff_room:  # answered in the shared room, never queued behind a private chat
            return turn.replies, None
        if queued and turn.participant is not None and turn.replies:
            # Messages queued for this person go first: the replies take their place behind them.
            await services.outbox.enqueue_behind(
                session, ToParticipant(turn.participant.id, inbound.platform), turn.replies)
            return [], turn.participant.id
        return turn.replies, turn.participant.id if turn.participant is not None else None

    async def _seen_before(self, session: AsyncSession, inbound: Inbound, pseudonym: Pseudonym) -> bool:
        """Exactly-once on top of at-least-once delivery: the marker commits with the turn."""
        digest = self._services.keys.secret_digest("event", f"{inbound.platform}:{inbound.event_id}")
        owner = self._services.participants.event_owner(pseudonym)
        connection = await session.connection()  # a plain insert: nothing for the ORM to track
        result = await connection.execute(self._mark_seen, {"digest": digest, "seen_at": utcnow(), "owner": owner})
        return not result.rowcount

    async def _dispatch(self, turn: Turn, state: State | None) -> None:
        inbound, tr = turn.inbound, turn.tr
        if inbound.in_staff_room:
            await self._in_staff_room(turn, state)
            return
        limit = self._services.settings.limits.max_message_chars
        if inbound.kind is InboundKind.UNSUPPORTED:
            channel = self._services.settings.branding.safe_channel
            turn.say(tr._(UNSUPPORTED_MEDIA) + (f"\n{tr._(SAFE_CHANNEL, channel=channel)}" if channel else ""))
            return
        if inbound.kind is InboundKind.TEXT and len(inbound.text) > limit:
            turn.say(tr._(TOO_LONG, limit=limit))
            return
        if inbound.kind is InboundKind.TEXT and not inbound.text.strip():
            return
        for interceptor in self._interceptors:
            if await interceptor(turn):
                return
        parsed = parse_command(inbound.text) if inbound.kind is InboundKind.TEXT else None
        if parsed is not None:
            name, args = parsed
            command = self._commands.lookup(name, is_staff=turn.role.is_staff)
            if command is None:
                turn.say(tr._(UNKNOWN_COMMAND))
            elif command.needs_participant and turn.participant is None:
                turn.say(tr._(NOT_REGISTERED))
            else:
                await command.handler(turn, args, self._engine)
            return
        if inbound.kind is InboundKind.TEXT:
            idle = state is None or state.dialog == MENU
            for hook in self._idle_text if idle else ():
                if await hook(turn, state, self._engine):
                    return
        if state is not None:
            await self._engine.handle(turn, state)
        elif inbound.kind is InboundKind.CHOICE:
            turn.say(tr._(STALE_BUTTON_NO_DIALOG))
        elif turn.participant is None:
            await self._engine.show(turn, self._newcomer(turn))
        else:
            # Free text outside any conversation: say plainly that nobody will read it.
            contact = self._commands.lookup(CONTACT_COMMAND, is_staff=False)
            turn.say(not_passed_on(tr, contact=contact is not None and contact.listed))
            await self._engine.show(turn, self._home(turn))

    async def _in_staff_room(self, turn: Turn, state: State | None) -> None:
        """The staff room or staff chat: colleagues talk there, so only staff act there, with their own
        commands, what a feature takes (a reply in a case's thread) and the buttons of their dialogs.
        A participant's command or dialog there would put their conversation where others read along;
        colleagues' chatter and media are not for the bot."""
        inbound, tr = turn.inbound, turn.tr
        staff = turn.role.is_staff
        if inbound.kind is InboundKind.CHOICE:
            if staff and state is not None:
                await self._engine.handle(turn, state)
            return
        if inbound.kind is not InboundKind.TEXT or not inbound.text.strip():
            return
        limit = self._services.settings.limits.max_message_chars
        if len(inbound.text) > limit:
            if staff:
                turn.say(tr._(TOO_LONG, limit=limit))
            return
        parsed = parse_command(inbound.text)
        if parsed is None:
            for staff_hook in self._staff_room_text:  # the feature decides who may (a case's thread: staff)
                if await staff_hook(turn):
                    return
            return
        if not staff:
            return
        name, args = parsed
        command = self._commands.lookup(name, is_staff=True)
        staff_verb = command is not None and bool(command.staff_usage) and bool(args)
        if command is not None and (command.staff_only or staff_verb):  # /checkin now ORG: staff's own verbs
            await command.handler(turn, args, self._engine)
        else:
            turn.say(tr._(STAFF_CHAT_ONLY))

    async def _send(self, address: Address, replies: list[Outbound], participant_id: int | None) -> None:
        """Send replies in order; if the platform is briefly unavailable, the outbox retries the rest."""
        transport = self._transports[address.platform]
        for index, reply in enumerate(replies):
            try:
                await transport.send(address, reply)
            except TransientDeliveryError as exc:
                queued = await self._queue(participant_id, address.platform, replies[index:])
                log.warning("reply not delivered on %s (%s); %d queued for retry", address.platform, exc.reason, queued)
                return
            except DeliveryError as exc:
                log.warning("reply not delivered on %s: %s", address.platform, exc.reason)
                return

    async def _queue(self, participant_id: int | None, platform: str, replies: list[Outbound]) -> int:
        if participant_id is None:  # nobody to address later: nothing about them is stored
            return 0
        async with self._services.database.sessions.begin() as session:
            await self._services.outbox.enqueue_many(
                session, [(ToParticipant(participant_id, platform), reply) for reply in replies], OutboxKind.REPLY
            )
        return len(replies)

    @asynccontextmanager
    async def _serialised(self, pseudonym: str) -> AsyncIterator[None]:
        """One message per person at a time, so two quick taps cannot race on the dialog state."""
        lock, users = self._locks.get(pseudonym, (asyncio.Lock(), 0))
        self._locks[pseudonym] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[pseudonym]
            if users <= 1:
                del self._locks[pseudonym]
            else:
                self._locks[pseudonym] = (lock, users - 1)
