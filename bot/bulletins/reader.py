"""``/bulletins``: the titles of the last five bulletins a person received, and one sent again on request."""

from __future__ import annotations

from bot.bulletins.service import Bulletins
from bot.conversation.engine import Dialog, DialogEngine, Prompt, State, menu_state
from bot.conversation.turn import Turn
from bot.core.model import Choice

RECENT = 5


async def offer_bulletins(turn: Turn) -> State | None:
    if turn.participant is None:
        return None
    received = await turn.services.get(Bulletins).received(turn.session, turn.participant.id, RECENT)
    if not received:
        turn.say(turn.tr._("You have not received any bulletin yet."))
        return None
    language = turn.tr.language
    titles = [[send_id, bulletin.text_for(language)[0].title] for send_id, bulletin in received]
    return State(ReaderDialog.name, "pick", language, {"titles": titles})


async def bulletins_command(turn: Turn, args: list[str], engine: DialogEngine) -> None:
    state = await offer_bulletins(turn)
    if state is not None:
        await engine.show(turn, state)


class ReaderDialog(Dialog):
    name = "bulletins"

    def prompt(self, turn: Turn, state: State) -> Prompt:
        choices = [Choice(f"send:{send_id}", title) for send_id, title in state.data["titles"]]
        choices.append(Choice("close", turn.tr._("Back to the menu")))
        return Prompt(turn.tr._("The latest bulletins. Which one would you like to read?"), tuple(choices))

    async def on_choice(self, turn: Turn, state: State, key: str) -> State | None:
        if key == "close" or turn.participant is None:
            return menu_state(turn)
        wanted = int(key.split(":", 1)[1])
        service = turn.services.get(Bulletins)
        # Checked again: only a bulletin this person received (button data is the server's own key).
        for send_id, bulletin in await service.received(turn.session, turn.participant.id, RECENT):
            if send_id == wanted:
                message = service.message(bulletin, turn.tr.language, turn.inbound.platform)
                turn.replies.append(message)
                return state
        turn.say(turn.tr._("This bulletin is no longer available."))
        return menu_state(turn)

