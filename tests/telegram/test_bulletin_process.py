"""Bulletins through real processes: ``civicbot bulletin create|send`` queue a bulletin to 2,000
people; ``civicbot run`` is SIGKILLed at a random point of the send and started again. Everyone
gets it, and only the copies that were on their way at the kill may arrive twice (Telegram has
no idempotent send). A bulletin scheduled while the bot is down goes out when it is back, with
a note in the summary; the staff progress message is the same message, edited, across the
restart."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import signal
import sys
from collections import Counter
from pathlib import Path

from botapi_server import LocalBotApi, SimUser
from telegram_support import process_environment
from test_telegram_process import BotProcess

from tests.support import register_for_process

REPO = Path(__file__).resolve().parents[2]
GROUP = -1_001_234_567_890
WINDOW = 32  # outbox.window: rows claimed and not yet recorded, what a crash can repeat on Telegram
BULLETIN = """id: {id}
en:
  title: "{title}"
  body: |
    Consultations resume on **Monday**.
ar:
  title: "{title}"
  body: |
    تُستأنف المشاورات **يوم الإثنين**.
ckb:
  title: "{title}"
  body: |
    ڕاوێژەکان **دووشەممە** دەست پێدەکەنەوە.
ku:
  title: "{title}"
  body: |
    Şêwirdarî roja **duşemê** dest pê dikin.
"""


async def civicbot(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    script = Path(sys.executable).with_name("civicbot")
    command = [str(script), *args] if script.exists() else [sys.executable, "-m", "bot", *args]
    process = await asyncio.create_subprocess_exec(*command, cwd=REPO, env=env, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


def copies_of(api: LocalBotApi, title: str) -> Counter[int]:
    return Counter(m.chat_id for m in api.sent if m.chat_id > 0 and m.parse_mode == "HTML" and title in m.text)


async def test_sigkill_mid_send_and_a_bulletin_due_while_down(bot_api: LocalBotApi, tmp_path: Path) -> None:
    staff = bot_api.user(first_name="Staff")
    bot_api.group(GROUP)
    env = process_environment(bot_api, tmp_path, **{
        "CIVICBOT_TELEGRAM__RATE_PER_SECOND": "1000",
        "CIVICBOT_TELEGRAM__PER_CHAT_INTERVAL_SECONDS": "0",
        "CIVICBOT_STAFF__MEMBERS": f'["telegram:{staff.id}"]',
        "CIVICBOT_STAFF__TELEGRAM_CHAT": str(GROUP),
        "CIVICBOT_OUTBOX__LEASE_SECONDS": "3",
        "CIVICBOT_OUTBOX__POLL_SECONDS": "0.2",
        "CIVICBOT_OUTBOX__WINDOW": str(WINDOW),
        "CIVICBOT_BULLETINS__PROGRESS_INTERVAL_SECONDS": "1",
        "CIVICBOT_BULLETINS__CHECK_SECONDS": "1",
        "CIVICBOT_BULLETINS__LATE_AFTER_MINUTES": "0",
    })
    languages = ("en", "ar", "ckb", "ku")
    users: list[tuple[SimUser, str]] = [(bot_api.user(language_code=languages[n % 4]), languages[n % 4])
                                        for n in range(2000)]
    await register_for_process(env, [("telegram", str(user.id), str(user.id), language)
                                               for user, language in users])
    for bulletin_id, title in (("first", "Bulletin one"), ("second", "Bulletin two")):
        path = tmp_path / f"{bulletin_id}.yaml"
        path.write_text(BULLETIN.format(id=bulletin_id, title=title), encoding="utf-8")
        code, out, err = await civicbot(env, "bulletin", "create", str(path))
        assert (code, out) == (0, f"{bulletin_id}\n"), err
    code, out, err = await civicbot(env, "bulletin", "send", "first", "--to", "all")
    assert (code, out) == (0, "Sending first to 2,000 people.\n"), err

    bot = BotProcess(env, tmp_path / "civicbot.log")
    kill_after = random.Random().randint(100, 1500)
    try:
        await bot.start()
        await bot_api.wait_for(lambda: sum(copies_of(bot_api, "Bulletin one").values()) >= kill_after, timeout=300)
        assert await bot.signal(signal.SIGKILL) == -signal.SIGKILL
        at_kill = sum(copies_of(bot_api, "Bulletin one").values())
        due = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=25)  # the command itself takes seconds, more on a busy machine
        code, out, err = await civicbot(env, "bulletin", "send", "second", "--to", "lang:ar", "--at", due.isoformat())
        assert code == 0 and "will be sent at" in out, err
        while dt.datetime.now(dt.UTC) < due + dt.timedelta(seconds=1):
            await asyncio.sleep(0.2)  # the bot is down when the second bulletin is due

        await bot.start()
        everyone = {user.id for user, _ in users}
        arabic = {user.id for user, language in users if language == "ar"}
        await bot_api.wait_for(lambda: everyone <= set(copies_of(bot_api, "Bulletin one")), timeout=300)
        await bot_api.wait_for(lambda: arabic == set(copies_of(bot_api, "Bulletin two")), timeout=120)
        await bot_api.wait_for(lambda: sum("Summary" in m.text for m in bot_api.sent_to(GROUP)) >= 2, timeout=60)
        assert await bot.signal(signal.SIGTERM) == 0
    finally:
        await bot.ensure_dead()

    first = copies_of(bot_api, "Bulletin one")
    twice = [chat for chat, n in first.items() if n > 1]
    assert max(first.values()) <= 2 and len(twice) <= WINDOW, (len(twice), at_kill)
    assert all(n == 1 for n in copies_of(bot_api, "Bulletin two").values())
    by_chat = {user.id: language for user, language in users}
    for message in bot_api.sent:
        if message.parse_mode == "HTML" and message.chat_id > 0:
            rtl = by_chat[message.chat_id] in ("ar", "ckb")
            assert message.text.startswith("\u200f") == rtl

    staff_room = bot_api.sent_to(GROUP)
    progress = [m for m in staff_room if "sending…" in m.text]
    assert len(progress) == 2 and all(m.edits for m in progress)  # one message per send, edited across the restart
    assert progress[0].text.replace("\u2068", "").replace("\u2069", "").endswith("2,000 / 2,000 (100 %)")
    summaries = [m.text.replace("\u2068", "").replace("\u2069", "") for m in staff_room if "Summary" in m.text]
    first_summary = next(s for s in summaries if "first" in s.split("\n")[0])
    second_summary = next(s for s in summaries if "second" in s.split("\n")[0])
    assert "Sent: 2,000 of 2,000" in first_summary and "Sent: 500 of 500" in second_summary
    assert "because the bot was not running at that time" in second_summary
    assert "because the bot was not running" not in first_summary
    log = (tmp_path / "civicbot.log").read_text(errors="replace")
    for secret in (bot_api.token, str(staff.id), str(users[0][0].id), "Consultations"):
        assert secret not in log
