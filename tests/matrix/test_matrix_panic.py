"""``/panic`` on Matrix, against the real Synapse: the person's data is erased at once, the bot's
messages in the chat are redacted, what it may not redact (the person's own, in a chat they
created) is counted and said, and then the bot leaves and forgets the room."""

from __future__ import annotations

from pathlib import Path

from matrix_peer import eventually
from matrix_support import FAST, MakePeer, bot_settings, open_conversation, unique
from synapse_server import SynapseServer

from bot.app import build_platform_transports, running
from bot.core.security import KeyRing


async def test_panic_redacts_the_bots_messages_and_says_what_it_could_not(
        synapse: SynapseServer, make_peer: MakePeer, tmp_path: Path) -> None:
    user = synapse.register(unique("bot"))
    keys = KeyRing.generate()
    settings = bot_settings(synapse, user, tmp_path)
    async with running(settings, keys=keys,
                       transports=lambda services: build_platform_transports(services, matrix=FAST)) as bot:
        peer = await make_peer()
        chat = await open_conversation(peer, user.user_id)
        await chat.say("/start", "Choose your language.")
        await chat.say("4", "Do you agree")
        await chat.say("1", "invitation code")
        await chat.say("1", "Would you like to receive it?")  # skipped the code; the bulletin question
        await chat.say("1", "You are all set")
        summary = (await chat.say("/panic", "erased"))[-1]
        assert "could not be removed" in summary.body  # the person's own messages: not the bot's to redact
        await peer.wait_left(chat.room_id, user.user_id)

        async with bot.services.database.sessions() as session:
            found = await bot.services.participants.find(session, keys.pseudonym("matrix", peer.user_id))
        assert found is None

        history = await peer.client.room_messages(chat.room_id, start=peer.client.next_batch, limit=200)
        from_bot = [e.source for e in history.chunk
                    if e.sender == user.user_id and e.source.get("type") in ("m.room.message", "m.room.encrypted")]
        said = [e for e in from_bot if not (e.get("unsigned") or {}).get("redacted_because")]
        assert len(from_bot) >= 5 and len(said) == 1, "only the last word is left unredacted"
        await eventually(lambda: len(peer.from_bot(chat.room_id, user.user_id)) > 0, what="messages")
