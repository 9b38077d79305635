"""Multi-step conversations whose state lives in the database.

A dialog says what to ask at each step (:class:`Prompt`) and what an answer leads to.
The engine renders prompts, matches answers (a pressed button, a number, a label or an
unambiguous prefix of one), stores the step, and rejects stale or forged buttons.
Because state is stored on every step, a restart or another worker continues exactly
where the person was.
"""

from __future__ import annotations

import functools
import json
import secrets
import unicodedata
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

from sqlalchemy import Table, bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.conversation.turn import Turn
from bot.core.i18n import N_, decimal_value, plain, western_digits
from bot.core.model import Choice, InboundKind, PromptId, Pseudonym
from bot.core.security import DataKey, KeyRing
from bot.storage.db import dialect_insert
from bot.storage.models import DialogState, dialog_state_context, utcnow

MENU = "menu"
"""The main menu's dialog name: where every finished conversation returns."""

STALE_BUTTON = N_("This button is no longer valid. Here is the current question again.")
PICK_ONE = N_("Please answer with one of the options: a number from 1 to %(count)s, or the option's text.")




@dataclass(frozen=True, slots=True)
class Prompt:
    """What to ask. ``accepts_text`` means free text is a valid answer besides the choices."""

    text: str
    choices: tuple[Choice, ...] = ()
    accepts_text: bool = False
    sensitive: bool = False
    exact_labels: bool = False  # only a whole label counts as a choice: "6" is a number, not option 6
    invalid: str = ""  # what to say when a typed answer matches no choice (default: PICK_ONE)


@dataclass(slots=True)
class State:
    """A person's position in a dialog; ``data`` is sealed at rest."""

    dialog: str
    step: str
    language: str
    data: dict[str, Any] = field(default_factory=dict)
    prompt_id: str = ""


class Dialog(ABC):
    """One conversation. Subclasses are stateless: everything is in :class:`State`."""

    name: ClassVar[str]

    @abstractmethod
    def prompt(self, turn: Turn, state: State) -> Prompt:
        """What to ask at ``state.step``, in ``turn.tr``'s language."""

    @abstractmethod
    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        """The person picked ``key``. Return the next state, or None when done."""

    async def on_text(self, turn: Turn, state: State, text: str) -> State | None:
        """Free text where the prompt accepts it. Only called if ``accepts_text``."""
        return state

    def stored(self, state: State) -> dict[str, Any]:
        """What of ``state.data`` is kept in ``dialog_states``. A dialog whose data repeats what the
        person said (answers kept elsewhere, sealed with their key) keeps references only, and
        rebuilds the rest in :meth:`restore`."""
        return state.data

    async def restore(self, turn: Turn, state: State) -> State:
        """The full state from what :meth:`stored` kept; may return another state (e.g. the menu,
        with a word why) when what it refers to is gone."""
        return state


def menu_state(turn: Turn) -> State:
    """The main menu, the place a dialog returns to when it is done. The menu itself (built from
    the features' entries) is registered by the wiring under :data:`MENU`."""
    return State(MENU, "main", turn.tr.language)


TICK = "✓"


def _fold(text: str) -> str:
    """Compare as a person would: case, width, directional marks and a tick mark on selected
    options do not count."""
    return plain(unicodedata.normalize("NFKC", text)).replace(TICK, "").casefold().strip()


def match_choice(text: str, choices: tuple[Choice, ...], *, exact_only: bool = False) -> Choice | None:
    """The label (or key), a number (Western or Eastern Arabic digits), or an unambiguous prefix.

    Labels come first, so a scale labelled 0..4 takes "1" as the label "1", not the first option.
    """
    answer = _fold(western_digits(text)).rstrip(".)")
    if not answer:
        return None
    for choice in choices:
        if answer in (_fold(western_digits(choice.label)), choice.key.casefold()):
            return choice
    if exact_only:
        return None
    number = decimal_value(answer, max_digits=4)
    if number is not None:
        return choices[number - 1] if 1 <= number <= len(choices) else None
    if answer.isdigit():  # digits of another kind (❶, ፩): no option starts with them
        return None
    prefixed = [c for c in choices if _fold(c.label).startswith(answer)]
    return prefixed[0] if len(prefixed) == 1 else None


class DialogEngine:
    """Runs dialogs and keeps their state sealed in ``dialog_states``."""

    def __init__(self, dialogs: Mapping[str, Dialog], keys: KeyRing) -> None:
        self._dialogs = dict(dialogs)
        self._keys = keys

    def __contains__(self, name: str) -> bool:
        return name in self._dialogs

    async def load(self, session: AsyncSession, pseudonym: Pseudonym, data_key: DataKey | None = None) -> State | None:
        """The stored state of one of this engine's dialogs (see :func:`read_state`)."""
        state = await read_state(session, self._keys, pseudonym, data_key)
        return state if state is not None and state.dialog in self._dialogs else None

    def matches_choice(self, turn: Turn, state: State) -> bool:
        """Whether the inbound text answers the state's prompt by one of its choices."""
        dialog = self._dialogs.get(state.dialog)
        if dialog is None:
            return False
        prompt = dialog.prompt(turn, state)
        return bool(prompt.choices) and match_choice(turn.inbound.text, prompt.choices,
                                                     exact_only=prompt.exact_labels) is not None

    async def clear(self, session: AsyncSession, pseudonym: Pseudonym) -> None:
        await session.execute(delete(DialogState).where(DialogState.pseudonym == pseudonym))

    async def start(self, turn: Turn, name: str, step: str, data: dict[str, Any] | None = None) -> None:
        await self.show(turn, State(name, step, turn.tr.language, data or {}))

    async def show(self, turn: Turn, state: State) -> None:
        """Render the state's prompt with a fresh prompt id and store the state."""
        state.prompt_id = new_prompt_id()
        state.language = turn.tr.language
        prompt = self._dialogs[state.dialog].prompt(turn, state)
        # Where only whole labels count (a number or a text is the answer), numbering the choices
        # would invite typing "2" for "Back" and get the answer 2: they are shown as words.
        turn.ask(prompt.text, prompt.choices, PromptId(state.prompt_id), sensitive=prompt.sensitive,
                 numbered=not prompt.exact_labels)
        await self._save(turn, state)

    async def handle(self, turn: Turn, state: State) -> None:
        """Apply the inbound message to the active dialog."""
        dialog = self._dialogs[state.dialog]
        restored = await dialog.restore(turn, state)
        if restored is not state:
            await self.show(turn, restored)  # what the state referred to is gone: somewhere else now
            return
        prompt = dialog.prompt(turn, state)
        inbound = turn.inbound
        if inbound.kind is InboundKind.CHOICE:
            ref = inbound.choice
            if ref is None or ref.prompt_id != state.prompt_id or not 0 <= ref.index < len(prompt.choices):
                turn.say(turn.tr._(STALE_BUTTON))
                await self.show(turn, state)
                return
            await self._advance(turn, await dialog.on_choice(turn, state, prompt.choices[ref.index].key))
            return
        choice = match_choice(inbound.text, prompt.choices, exact_only=prompt.exact_labels) if prompt.choices else None
        if choice is not None:
            await self._advance(turn, await dialog.on_choice(turn, state, choice.key))
        elif prompt.accepts_text:
            await self._advance(turn, await dialog.on_text(turn, state, inbound.text))
        else:
            turn.say(prompt.invalid or turn.tr._(PICK_ONE, count=len(prompt.choices)))
            await self.show(turn, state)

    async def _advance(self, turn: Turn, new: State | None) -> None:
        """Show the next state (possibly of another dialog), or end the conversation."""
        if new is None or turn.ended:
            await self.clear(turn.session, turn.pseudonym)
        else:
            await self.show(turn, new)

    async def _save(self, turn: Turn, state: State) -> None:
        """Kept sealed with the person's own key once they have one (so erasing them shreds it),
        and only what the dialog says is worth keeping (:meth:`Dialog.stored`)."""
        data_key = None
        if turn.participant is not None:
            data_key = await turn.services.participants.data_key(turn.session, turn.participant.id)
        stored = State(state.dialog, state.step, state.language, self._dialogs[state.dialog].stored(state),
                       state.prompt_id)
        await write_state(turn.session, self._keys, turn.pseudonym, stored, data_key)


def new_prompt_id() -> str:
    return secrets.token_urlsafe(6)


_STATES = cast(Table, DialogState.__table__)
_READ_STATE = select(_STATES.c.dialog, _STATES.c.step, _STATES.c.language, _STATES.c.data_enc,
                     _STATES.c.prompt_id).where(_STATES.c.pseudonym == bindparam("pseudonym"))
"""Built once: every turn reads the state, and building the statement cost more than running it."""


@functools.cache
def _write_state(dialect: str) -> Any:
    """Insert or replace one state in one statement (same form on SQLite and PostgreSQL)."""
    values: dict[str, Any] = {name: bindparam(name) for name in ("pseudonym", "dialog", "step", "prompt_id", "language",
                                                 "data_enc", "updated_at")}
    statement = dialect_insert(dialect)(_STATES).values(values)
    return statement.on_conflict_do_update(
        index_elements=[_STATES.c.pseudonym],
        set_={name: statement.excluded[name] for name in values if name != "pseudonym"})


async def read_state(session: AsyncSession, keys: KeyRing, pseudonym: Pseudonym,
                     data_key: DataKey | None = None) -> State | None:
    """A person's stored state, whatever dialog it belongs to: sealed with their own key
    (``data_key``) once they are registered, with the master key before (someone who has not
    consented has no key of their own yet)."""
    connection = await session.connection()  # plain rows: nothing for the ORM to track
    row = (await connection.execute(_READ_STATE, {"pseudonym": pseudonym})).first()
    if row is None:
        return None
    context = dialog_state_context(pseudonym)
    if KeyRing.is_master_token(row.data_enc):
        plaintext = keys.open_text(row.data_enc, context)
    elif data_key is not None:
        plaintext = data_key.open(row.data_enc, context)
    else:  # sealed with a key that is gone (erased), or not given: nothing to resume
        return None
    return State(row.dialog, row.step, row.language, json.loads(plaintext), row.prompt_id)


async def write_state(session: AsyncSession, keys: KeyRing, pseudonym: Pseudonym, state: State,
                      data_key: DataKey | None = None) -> None:
    """Store a state, sealed with the person's key when given (the master key only before
    consent). Also used outside a turn (a check-in that arrives as a prompt), under the same
    per-person lock a turn holds."""
    plaintext = json.dumps(state.data, ensure_ascii=False)
    context = dialog_state_context(pseudonym)
    sealed = data_key.seal(plaintext, context) if data_key is not None else keys.seal_text(plaintext, context)
    connection = await session.connection()
    await connection.execute(_write_state(connection.dialect.name), {
        "pseudonym": pseudonym, "dialog": state.dialog, "step": state.step, "prompt_id": state.prompt_id,
        "language": state.language, "data_enc": sealed, "updated_at": utcnow()})
