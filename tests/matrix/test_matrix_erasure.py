"""Erasure reaches the Matrix side, against the real Synapse: after ``/delete_me`` the bot has left
and forgotten the person's room and dropped their sessions, device keys and tracked-user entries,
so no Matrix user id, device id or room id of theirs remains readable anywhere in the store
(byte scan), and nobody holding the store and the key file can decrypt their old messages. And
``keys rotate --retire`` rotates the pickle key of nio's store too."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from matrix_peer import Peer, eventually
from matrix_support import FAST, Conversation, MakeBot, MakePeer, bot_settings, open_conversation, unique
from synapse_server import SynapseServer

from bot.app import build_platform_transports, running
from bot.config import Settings
from bot.core.security import KeyRing
from bot.transports.matrix import MatrixTransport

CIVICBOT = str(Path(sys.executable).parent / "civicbot")


@asynccontextmanager
async def routed(settings: Settings, keys: KeyRing) -> AsyncIterator[MatrixTransport]:
    """The wiring of ``civicbot run`` (router, services, database) behind a Matrix transport."""
    async with running(settings, keys=keys,
                       transports=lambda services: build_platform_transports(services, matrix=FAST)) as bot:
        transport = bot.transports["matrix"]
        assert isinstance(transport, MatrixTransport)
        yield transport


def store_bytes(store: Path) -> dict[str, bytes]:
    return {str(f.relative_to(store)): f.read_bytes() for f in store.rglob("*") if f.is_file()}


def holding(store: Path, needle: str) -> list[str]:
    return [name for name, data in store_bytes(store).items()
            if needle.encode() in data or needle.encode("utf-16-le") in data]


async def onboard(chat: Conversation) -> None:
    await chat.say("/start", "Choose your language.")
    await chat.say("4", "Do you agree to your information being handled this way?")
    await chat.say("1", "invitation code")
    await chat.say("1", "Would you like to receive it?")  # skipped the code; the bulletin question
    await chat.say("1", "You are all set")


async def test_delete_me_leaves_no_trace_of_the_person_in_the_matrix_store(
        synapse: SynapseServer, make_peer: MakePeer, tmp_path: Path) -> None:
    user = synapse.register(unique("bot"))
    settings = bot_settings(synapse, user, tmp_path)
    keys = KeyRing.generate()
    store = settings.matrix.store_path
    async with routed(settings, keys) as transport:
        leaving, staying = await make_peer(), await make_peer()
        chat = await open_conversation(leaving, user.user_id)
        other = await open_conversation(staying, user.user_id)
        await onboard(chat)
        await onboard(other)
        person = (leaving.user_id, leaving.user.device_id, chat.room_id)
        for needle in person:
            assert holding(store, needle), f"the test must see {needle} in the store before erasure"

        await chat.say("/delete_me", "cannot be undone")
        await chat.say("1", "has been erased")
        await leaving.wait_left(chat.room_id, user.user_id)
        client = transport.client
        olm = client.olm
        assert olm is not None
        await eventually(lambda: chat.room_id not in client.rooms, what="the room to be forgotten")
        assert leaving.user_id not in dict(olm.device_store.items())
        assert leaving.user_id not in olm.tracked_users and leaving.user_id not in olm.users_for_key_query
        assert chat.room_id not in olm.outbound_group_sessions
        assert not any(s.room_id == chat.room_id for s in olm.inbound_group_store)

        # Everyone else is untouched: the other person still talks to the bot.
        await other.say("/menu", "Main menu")
    for needle in person:
        assert not holding(store, needle), f"{needle} is still readable in {holding(store, needle)}"
    assert holding(store, staying.user_id), "the other person's sessions are kept"


async def test_keys_rotate_retire_rotates_the_pickle_key_of_the_matrix_store(
        make_bot: MakeBot, make_peer: MakePeer, synapse: SynapseServer, tmp_path: Path) -> None:
    key_file = tmp_path / "keys.json"
    old = KeyRing.generate()
    old.save(key_file)
    store = tmp_path / "matrix-store"
    bot = await make_bot(store=store, keys=old)
    peer: Peer = await make_peer()
    room_id = await peer.chat_with(bot.user_id, "before the rotation")
    device = bot.transport.device_id
    await bot.transport.stop()

    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update(CIVICBOT_DATABASE__URL=f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}",
               CIVICBOT_SECURITY__KEY_FILE=str(key_file), CIVICBOT_MATRIX__STORE_PATH=str(store))
    result = subprocess.run([CIVICBOT, "keys", "rotate", "--retire"], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Matrix store" in result.stdout
    new = KeyRing.load(key_file)
    assert new.matrix_pickle_key != old.matrix_pickle_key
    assert new.matrix_pickle_keys == (new.matrix_pickle_key,), "the old pickle key is retired"

    from nio.crypto import OlmAccount

    nio_db = next(store.glob("*.db"))
    with sqlite3.connect(nio_db) as conn:
        pickle, shared = conn.execute("select account, shared from accounts").fetchone()
    OlmAccount.from_pickle(pickle, new.matrix_pickle_key, shared)
    try:
        OlmAccount.from_pickle(pickle, old.matrix_pickle_key, shared)
    except Exception:
        pass
    else:
        raise AssertionError("the old pickle key still opens the store")

    restarted = await make_bot(user=bot.user, store=store, keys=new)
    assert restarted.transport.device_id == device, "same device, its keys opened with the new pickle key"
    await peer.send_text(room_id, "after the rotation", to=bot.user_id)
    messages = await peer.wait_from_bot(room_id, bot.user_id, 2)
    assert messages[-1].body.startswith("echo: after the rotation")
