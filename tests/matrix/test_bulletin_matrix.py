"""A bulletin on both platforms from one real ``civicbot run``: 10 people in end-to-end encrypted
Matrix chats (on the suite's Synapse) and 200 on Telegram (the local Bot API server), in four
languages. The process is SIGKILLed at a random point of the send and started again: on Matrix
every copy arrives exactly once (its transaction ids are reused), on Telegram only copies that
were on their way may repeat. The staff room's progress message is replaced in place (m.replace)."""

from __future__ import annotations

import asyncio
import random
import signal
import sys
from collections import Counter
from pathlib import Path

from matrix_peer import ENCRYPTION_STATE, Peer, eventually
from matrix_support import MakePeer, unique
from synapse_server import SynapseServer

from tests.support import register_for_process

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "telegram"))
from botapi_server import LocalBotApi  # noqa: E402
from telegram_support import process_environment  # noqa: E402
from test_telegram_process import BotProcess  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
RLM = "\u200f"
WINDOW = 32  # outbox.window: what a crash can repeat on Telegram
TITLE = {"en": "Update", "ar": "تحديث", "ckb": "نوێکاری", "ku": "Nûçe"}
BULLETIN = f"""id: both-platforms
en:
  title: {TITLE['en']}
  body: |
    Consultations resume on **Monday**.
ar:
  title: {TITLE['ar']}
  body: |
    تُستأنف المشاورات **يوم الإثنين**.

    - استبيان مفتوح
ckb:
  title: {TITLE['ckb']}
  body: |
    ڕاوێژەکان **دووشەممە** دەست پێدەکەنەوە.
ku:
  title: {TITLE['ku']}
  body: |
    Şêwirdarî roja **duşemê** dest pê dikin.
"""


def bulletin_events(peer: Peer, room_id: str, bot_user_id: str) -> list[str]:
    return [m.body for m in peer.from_bot(room_id, bot_user_id) if m.replaces is None
            and any(title in m.body for title in TITLE.values())]


async def civicbot(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    script = Path(sys.executable).with_name("civicbot")
    command = [str(script), *args] if script.exists() else [sys.executable, "-m", "bot", *args]
    process = await asyncio.create_subprocess_exec(*command, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    return process.returncode or 0, out.decode(), err.decode()


async def test_both_platforms_sigkill_exactly_once_on_matrix(synapse: SynapseServer, make_peer: MakePeer,
                                                           tmp_path: Path) -> None:
    bot_user = synapse.register(unique("bot"))
    staff = await make_peer()
    created = await staff.client.room_create(invite=[bot_user.user_id], initial_state=[ENCRYPTION_STATE],
                                             alias=unique("staff"))
    staff_room = created.room_id
    api = LocalBotApi()
    await api.start()
    env = process_environment(api, tmp_path, **{
        "CIVICBOT_MATRIX__HOMESERVER": synapse.url,
        "CIVICBOT_MATRIX__USER_ID": bot_user.user_id,
        "CIVICBOT_MATRIX__PASSWORD": bot_user.password,
        "CIVICBOT_MATRIX__STORE_PATH": str(tmp_path / "matrix-store"),
        "CIVICBOT_MATRIX__RATE_PER_SECOND": "2",  # slow enough to be killed in the middle
        "CIVICBOT_TELEGRAM__RATE_PER_SECOND": "40",
        "CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS": "0",
        "CIVICBOT_STAFF__MATRIX_ROOM": staff_room,
        "CIVICBOT_STAFF__MEMBERS": f'["matrix:{staff.user_id}"]',
        "CIVICBOT_OUTBOX__LEASE_SECONDS": "3",
        "CIVICBOT_OUTBOX__POLL_SECONDS": "0.2",
        "CIVICBOT_OUTBOX__WINDOW": str(WINDOW),
        "CIVICBOT_BULLETINS__PROGRESS_INTERVAL_SECONDS": "1",
        "CIVICBOT_BULLETINS__CHECK_SECONDS": "1",
    })
    languages = ("en", "ar", "ckb", "ku")
    bot = BotProcess(env, tmp_path / "civicbot.log")
    try:
        await bot.start()
        await staff.wait_joined(staff_room, bot_user.user_id, timeout=60)
        peers = [await make_peer() for _ in range(10)]
        rooms = [await peer.create_dm(bot_user.user_id) for peer in peers]
        for peer, room in zip(peers, rooms, strict=True):
            await peer.wait_joined(room, bot_user.user_id, timeout=60)
        telegram = [(api.user(language_code=languages[n % 4]), languages[n % 4]) for n in range(200)]
        await register_for_process(env, [
            *(("matrix", peer.user_id, room, languages[n % 4]) for n, (peer, room) in enumerate(zip(peers, rooms,
                                                                                                    strict=True))),
            *(("telegram", str(user.id), str(user.id), language) for user, language in telegram),
        ])
        path = tmp_path / "bulletin.yaml"
        path.write_text(BULLETIN, encoding="utf-8")
        assert (await civicbot(env, "bulletin", "create", str(path)))[0] == 0
        code, out, err = await civicbot(env, "bulletin", "send", "both-platforms", "--to", "all")
        assert (code, out) == (0, "Sending both-platforms to 210 people.\n"), err

        def matrix_delivered() -> int:
            return sum(bool(bulletin_events(p, r, bot_user.user_id)) for p, r in zip(peers, rooms, strict=True))

        kill_after = random.Random().randint(1, 8)
        await eventually(lambda: matrix_delivered() >= kill_after, timeout=120, what="some Matrix copies")
        assert await bot.signal(signal.SIGKILL) == -signal.SIGKILL
        await asyncio.sleep(1.0)
        await bot.start()
        await eventually(lambda: matrix_delivered() == 10, timeout=180, what="every Matrix copy")

        def telegram_copies() -> Counter[int]:
            return Counter(m.chat_id for m in api.sent if m.parse_mode == "HTML")

        await api.wait_for(lambda: len(telegram_copies()) == 200, timeout=180)
        await eventually(lambda: any("Summary" in m.body for m in staff.from_bot(staff_room, bot_user.user_id)),
                         timeout=60, what="the summary in the staff room")
        await asyncio.sleep(3)  # a duplicate, if there were one, would have arrived by now
        assert await bot.signal(signal.SIGTERM) == 0
    finally:
        await bot.ensure_dead()
        await api.close()

    for n, (peer, room) in enumerate(zip(peers, rooms, strict=True)):
        events = [m for m in peer.from_bot(room, bot_user.user_id) if m.replaces is None]
        assert len(events) == 1, (n, [e.body[:30] for e in events])  # exactly once
        language = languages[n % 4]
        (copy,) = events
        assert copy.decrypted and TITLE[language] in copy.body and copy.formatted_body
        if language in ("ar", "ckb"):
            assert copy.formatted_body.startswith(f"<p><strong>{TITLE[language]}</strong></p><div dir=\"rtl\">")
            assert all(line.startswith(RLM) for line in copy.body.split("\n") if line)
        if language == "ar":
            assert "<ul><li>استبيان مفتوح</li></ul>" in copy.formatted_body
    duplicates = [chat for chat, n in Counter(m.chat_id for m in api.sent if m.parse_mode == "HTML").items() if n > 1]
    assert len(duplicates) <= WINDOW

    staff_messages = staff.from_bot(staff_room, bot_user.user_id)
    progress = [m for m in staff_messages if m.replaces is None and "sending…" in m.body]
    assert len(progress) == 1, [m.body for m in progress]  # one message, edited across the restart
    edits = [m for m in staff_messages if m.replaces == progress[0].event_id]
    assert edits and edits[-1].body.replace("\u2068", "").replace("\u2069", "").endswith("210 / 210 (100 %)")
    summary = next(m.body for m in staff_messages if "Summary" in m.body).replace("\u2068", "").replace("\u2069", "")
    assert "Sent: 210 of 210" in summary and "Matrix: 10 sent" in summary and "Telegram: 200 sent" in summary
    log = (tmp_path / "civicbot.log").read_text(errors="replace")
    for secret in (bot_user.password, staff.user_id, rooms[0], "Consultations"):
        assert secret not in log
