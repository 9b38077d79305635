"""The real dialogue core behind the Matrix transport: onboarding over encrypted chats.

The first tests run the router in-process; the last starts ``civicbot run`` as a separate
process configured only through ``CIVICBOT_*`` variables, kills it mid-dialog with SIGKILL
and starts it again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from matrix_peer import Peer, eventually
from matrix_support import FAST, MakePeer, bot_settings, open_conversation, unique
from synapse_server import SynapseServer

from bot.app import build_platform_transports, running
from bot.core.security import KeyRing
from bot.transports.matrix_render import RLM


@pytest.fixture
async def routed_bot(synapse: SynapseServer, tmp_path: Path) -> AsyncIterator[str]:
    """The wiring of ``civicbot run`` (router, services, database) behind a Matrix transport;
    yields the bot's user id."""
    user = synapse.register(unique("bot"))
    settings = bot_settings(synapse, user, tmp_path)
    async with running(settings, keys=KeyRing.generate(),
                       transports=lambda services: build_platform_transports(services, matrix=FAST)):
        yield user.user_id


async def test_onboarding_in_english_by_numbers(routed_bot: str, make_peer: MakePeer) -> None:
    chat = await open_conversation(await make_peer(), routed_bot)
    menu = (await chat.say("/start", "Choose your language."))[-1]
    assert menu.body.endswith("4. English"), "choices are a numbered list"
    consent = (await chat.say("4", "Do you agree to your information being handled this way?"))[-1]
    assert "1. I agree" in consent.body and consent.decrypted
    await chat.say("1", "invitation code")
    question = (await chat.say("1", "Would you like to receive it?"))[-1]
    assert question.body.endswith("1. Yes, send it to me\n2. No, thank you")
    done = (await chat.say("1", "You are all set"))[-1]
    assert done.decrypted


async def test_onboarding_in_english_by_labels(routed_bot: str, make_peer: MakePeer) -> None:
    chat = await open_conversation(await make_peer(), routed_bot)
    await chat.say("/start", "Choose your language.")
    await chat.say("English", "Do you agree to your information being handled this way?")
    await chat.say("i agree", "invitation code")
    await chat.say("Skip", "Would you like to receive it?")
    await chat.say("no, thank you", "You will not receive bulletins", "You are all set")


async def test_onboarding_in_arabic_by_labels_and_numbers(routed_bot: str, make_peer: MakePeer) -> None:
    chat = await open_conversation(await make_peer(), routed_bot)
    await chat.say("/start", "Choose your language.")
    consent = (await chat.say("العربية", "أوافق"))[-1]
    assert consent.formatted_body is not None and consent.formatted_body.startswith('<div dir="rtl">')
    assert consent.body.startswith(RLM)
    await chat.say("أوافق", "تخطي")
    await chat.say("1", "هل تودون تلقيها؟")
    await chat.say("نعم", "كل شيء جاهز")


async def test_onboarding_in_arabic_by_numbers(routed_bot: str, make_peer: MakePeer) -> None:
    chat = await open_conversation(await make_peer(), routed_bot)
    await chat.say("/start", "Choose your language.")
    await chat.say("1", "أوافق")
    await chat.say("١", "تخطي")  # Arabic-Indic digit one
    await chat.say("تخطي", "هل تودون تلقيها؟")
    await chat.say("١", "كل شيء جاهز")


# -- the real process ------------------------------------------------------------------------


class BotProcess:
    """``civicbot run`` in its own process, configured only through the environment."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(Path(sys.executable).with_name("civicbot")), "run"]
        if not Path(command[0]).exists():
            command = [sys.executable, "-m", "bot", "run"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(timeout=10)


async def _bot_devices(peer: Peer, bot_user_id: str) -> dict[str, Any]:
    response = await peer.client.send(
        "POST", "/_matrix/client/v3/keys/query", json.dumps({"device_keys": {bot_user_id: []}}),
        {"Authorization": f"Bearer {peer.client.access_token}", "Content-Type": "application/json"},
    )
    devices: dict[str, Any] = (await response.json())["device_keys"].get(bot_user_id, {})
    return devices


async def test_civicbot_run_process_killed_mid_dialog_continues(
    synapse: SynapseServer, make_peer: MakePeer, tmp_path: Path
) -> None:
    user = synapse.register(unique("bot"))
    KeyRing.generate().save(tmp_path / "keys.json")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update({
        "CIVICBOT_MATRIX__HOMESERVER": synapse.url,
        "CIVICBOT_MATRIX__USER_ID": user.user_id,
        "CIVICBOT_MATRIX__PASSWORD": user.password,
        "CIVICBOT_MATRIX__STORE_PATH": str(tmp_path / "matrix-store"),
        "CIVICBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}",
        "CIVICBOT_SECURITY__KEY_FILE": str(tmp_path / "keys.json"),
    })
    bot = BotProcess(env, tmp_path / "civicbot.log")
    bot.start()
    try:
        peer = await make_peer()
        chat = await open_conversation(peer, user.user_id)
        await chat.say("/start", "Choose your language.", timeout=60)
        await chat.say("English", "Do you agree to your information being handled this way?")
        devices_before = await _bot_devices(peer, user.user_id)
        assert len(devices_before) == 1, "the bot publishes keys for exactly one device"

        bot.kill()  # mid-dialog, no chance to clean up
        answered = len(chat.messages)
        bot.start()
        await chat.say("I agree", "invitation code", timeout=60)
        await chat.say("skip", "Would you like to receive it?")
        await chat.say("yes", "You are all set")
        assert await _bot_devices(peer, user.user_id) == devices_before, "same device after the restart"
        # Events are handled in order: anything answered twice would come before this answer.
        await chat.say("/privacy", "How your information is handled")
        bodies = [m.body.split("\n")[0] for m in chat.messages[answered:]]
        assert not any(b.startswith("Choose your language") for b in bodies), "nothing answered twice"
        assert all(m.decrypted for m in chat.messages)
    finally:
        code = bot.terminate()
    log = (tmp_path / "civicbot.log").read_text(errors="replace")
    assert code == 0, log[-2000:]
    for secret in (user.password, user.user_id, chat.room_id, "I agree"):
        assert secret not in log, "the log must not carry ids, secrets or message content"



async def test_notices_use_the_persons_language(routed_bot: str, make_peer: MakePeer) -> None:
    """A notice the transport sends on its own (here: the chat gained another member) is in the
    language the person chose, not the default one."""
    from bot.core.i18n import I18n
    from bot.core.notices import notice

    arabic = I18n().translator("ar")
    peer = await make_peer()
    chat = await open_conversation(peer, routed_bot)
    await chat.say("/start", "Choose your language.")
    await chat.say("1", arabic._("Do you agree to your information being handled this way?"))  # Arabic
    await chat.say("1", arabic._("Skip"))  # agreed: the invitation step
    onlooker = await make_peer()
    await peer.client.room_invite(chat.room_id, onlooker.user_id)
    await eventually(lambda: chat.room_id in onlooker.client.invited_rooms, what="the invitation")
    expected = notice(I18n().translator("ar"), "not_private")
    reply = (await chat.say("مرحبا", expected.split()[0]))[-1]
    assert expected in reply.body and reply.msgtype == "m.notice"
