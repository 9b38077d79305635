"""The person's side: asking to talk to staff (``/contact``) and withdrawing a request."""

from __future__ import annotations

from bot.cases import texts
from bot.cases.domain import Request, Topic, Way, When
from bot.cases.service import CaseService
from bot.conversation.engine import Dialog, Prompt, State, menu_state
from bot.conversation.turn import Turn
from bot.core.model import Choice

MAX_WHEN_CHARS = 100


def contact_entry(turn: Turn) -> State:
    """Where a request starts: on a platform that can read the chat, with a plain warning."""
    return State(ContactDialog.name, "warning" if turn.capabilities.platform_reads_messages else "topic",
                 turn.tr.language)


class ContactDialog(Dialog):
    """Topic, an optional description, how and when to be contacted, then a confirmation.

    Where the platform can read the chat (Telegram), the first step says so and offers Matrix
    before anything is asked.
    """

    name = "contact"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        data = state.data
        if state.step == "warning":
            text = _(texts.TELEGRAM_WARNING)
            choices = [Choice("continue", _(texts.CONTINUE_HERE))]
            address = turn.services.settings.branding.matrix_address
            if address:
                text = f"{text}\n\n{_(texts.TELEGRAM_MATRIX, address=address)}"
                choices.append(Choice("matrix", _(texts.USE_MATRIX)))
            choices.append(Choice("stop", _(texts.STOP)))
            return Prompt(text, tuple(choices))
        if state.step == "topic":
            return Prompt(_(texts.ASK_TOPIC), tuple(Choice(t.value, _(texts.TOPIC_CHOICES[t])) for t in Topic))
        if state.step == "description":
            text = _(texts.ASK_DESCRIPTION, limit=turn.services.settings.contacts.max_description_chars)
            if turn.capabilities.platform_reads_messages:
                text = f"{text}\n{_(texts.TELEGRAM_REMINDER)}"
            return Prompt(text, (Choice("skip", _(texts.SKIP)),), accepts_text=True, exact_labels=True)
        if state.step == "way":
            return Prompt(_(texts.ASK_WAY), tuple(Choice(w.value, _(texts.WAYS[w])) for w in Way))
        if state.step == "when":
            return Prompt(_(texts.ASK_WHEN), tuple(Choice(w.value, _(texts.WHENS[w])) for w in When),
                          accepts_text=True)
        summary = _(texts.CONFIRM, topic=_(texts.TOPIC_CHOICES[Topic(data["topic"])]),
                    description=_(texts.DESCRIPTION_GIVEN) if data.get("description") else _(texts.DESCRIPTION_NONE),
                    way=_(texts.WAYS[Way(data["way"])]), when=texts.when_label(turn.tr, data["when"]))
        return Prompt(summary, (Choice("send", _(texts.SEND)), Choice("cancel", _(texts.CANCEL))))

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        step, data = state.step, dict(state.data)
        if step == "warning":
            if key == "continue":
                return State(self.name, "topic", turn.tr.language)
            address = turn.services.settings.branding.matrix_address
            turn.say(_(texts.GO_TO_MATRIX, address=address) if key == "matrix" and address else _(texts.STOPPED))
            return menu_state(turn)
        if step == "topic":
            return State(self.name, "description", turn.tr.language, {"topic": key})
        if step == "description":  # "Skip"
            return State(self.name, "way", turn.tr.language, {**data, "description": ""})
        if step == "way":
            return State(self.name, "when", turn.tr.language, {**data, "way": key})
        if step == "when":
            return State(self.name, "confirm", turn.tr.language, {**data, "when": key})
        if key == "cancel":
            turn.say(_(texts.CANCELLED))
            return menu_state(turn)
        return await self._send(turn, data)

    async def on_text(self, turn: Turn, state: State, text: str) -> State | None:
        _ = turn.tr._
        text = text.strip()
        if state.step == "description":
            limit = turn.services.settings.contacts.max_description_chars
            if len(text) > limit:
                turn.say(_(texts.DESCRIPTION_TOO_LONG, limit=limit))
                return state
            return State(self.name, "way", turn.tr.language, {**state.data, "description": text})
        if state.step == "when":
            if len(text) > MAX_WHEN_CHARS:
                turn.say(_(texts.WHEN_TOO_LONG, limit=MAX_WHEN_CHARS))
                return state
            return State(self.name, "confirm", turn.tr.language, {**state.data, "when": text})
        return state

    async def _send(self, turn: Turn, data: dict[str, str]) -> State | None:
        _ = turn.tr._
        cases = turn.services.get(CaseService)
        if turn.participant is None:
            return None
        existing = await cases.active_case_of(turn.session, turn.participant.id)
        if existing is not None:  # e.g. a second request finished in another chat meanwhile
            turn.say(_(texts.ALREADY_OPEN, reference=existing.reference))
            return None
        request = Request(Topic(data["topic"]), data.get("description", ""), Way(data["way"]), data["when"])
        case = await cases.open(turn.session, turn.participant, request)
        turn.say(_(texts.RECEIPT, reference=case.reference), sensitive=True)
        return None  # no menu: what the person writes next goes to their case


class WithdrawDialog(Dialog):
    """A confirmation first: one tap must not end a conversation someone may depend on."""

    name = "withdraw"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        _ = turn.tr._
        return Prompt(_(texts.ASK_WITHDRAW, reference=state.data.get("reference", "")),
                      (Choice("withdraw", _(texts.WITHDRAW_YES)), Choice("keep", _(texts.WITHDRAW_NO))))

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        _ = turn.tr._
        reference = str(state.data.get("reference", ""))
        if key == "keep":
            turn.say(_(texts.KEPT, reference=reference))
            return None
        case = None
        if turn.participant is not None:
            case = await turn.services.get(CaseService).active_case_of(turn.session, turn.participant.id)
        if case is None or case.reference != reference:
            turn.say(_(texts.NO_OPEN_CASE))
            return None
        await turn.services.get(CaseService).withdraw(turn.session, case)
        turn.say(_(texts.WITHDRAWN, reference=reference))
        return None
