"""``civicbot run`` as a real process, configured only through the environment, talks to the
local Bot API server; killed with SIGKILL in the middle of a dialog and started again, it
continues the dialog where it was."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

from botapi_server import LocalBotApi, SentMessage, SimUser
from telegram_support import process_environment

REPO = Path(__file__).resolve().parents[2]


def civicbot_command() -> list[str]:
    script = Path(sys.executable).with_name("civicbot")
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot", "run"]


class BotProcess:
    """One ``civicbot run`` process whose stderr goes to a file (never a pipe that could fill)."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env, self.log = env, log
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log.open("ab") as stderr:
            self.process = await asyncio.create_subprocess_exec(
                *civicbot_command(), cwd=REPO, env=self.env, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL, stderr=stderr,
            )

    async def signal(self, sig: signal.Signals) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        return await asyncio.wait_for(self.process.wait(), 20)

    async def ensure_dead(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


async def next_message(api: LocalBotApi, user: SimUser, seen: int, timeout: float = 30.0) -> SentMessage:
    return (await api.next_messages(user.id, seen, 1, timeout))[0]


async def test_civicbot_run_from_environment_survives_sigkill_mid_dialog(
    bot_api: LocalBotApi, tmp_path: Path
) -> None:
    env = process_environment(bot_api, tmp_path)
    log = tmp_path / "civicbot.log"
    bot = BotProcess(env, log)
    user = bot_api.user(language_code="en")
    try:
        await bot.start()
        await bot_api.wait_for(lambda: bool(bot_api.calls_to("getUpdates")), timeout=60)
        user.say("/start")
        languages = await next_message(bot_api, user, 0)
        user.press(languages, label="English")
        consent = await next_message(bot_api, user, 1)
        assert "Do you agree to your information being handled this way?" in consent.text

        assert await bot.signal(signal.SIGKILL) == -signal.SIGKILL
        polls_before = len(bot_api.calls_to("getUpdates"))
        user.press(consent, label="I agree")  # pressed while the bot is down

        await bot.start()
        await bot_api.wait_for(lambda: len(bot_api.calls_to("getUpdates")) > polls_before, timeout=60)
        invite = await next_message(bot_api, user, 2)
        assert "invitation code" in invite.text  # the dialog went on from the stored step
        user.press(invite, label="Skip")
        bulletins = await next_message(bot_api, user, 3)
        user.press(bulletins, label="Yes, send it to me")
        await bot_api.wait_for_messages(user.id, 6, timeout=30)
        assert bot_api.sent_to(user.id)[5].text.startswith("Main menu")
        assert len(bot_api.callback_answers) == 4 and not consent.keyboard

        assert await bot.signal(signal.SIGTERM) == 0
    finally:
        await bot.ensure_dead()
    output = log.read_text(errors="replace")
    assert "telegram transport started" in output
    for secret in (bot_api.token, str(user.id), "Do you agree"):
        assert secret not in output


def _errors(log: Path) -> list[str]:
    return [line for line in log.read_text(errors="replace").splitlines() if " ERROR " in line]


async def test_a_revoked_token_ends_civicbot_run_with_exit_1_and_one_line(bot_api: LocalBotApi, tmp_path: Path) -> None:
    log = tmp_path / "civicbot.log"
    token = bot_api.token
    bot = BotProcess(process_environment(bot_api, tmp_path), log)
    try:
        await bot.start()
        await bot_api.wait_for(lambda: bool(bot_api.calls_to("getUpdates")), timeout=60)
        bot_api.revoke_token()  # the running poll is answered 401, as Telegram does
        assert bot.process is not None
        assert await asyncio.wait_for(bot.process.wait(), 30) == 1
    finally:
        await bot.ensure_dead()
    errors = _errors(log)
    assert len(errors) == 1, log.read_text(errors="replace")[-3000:]
    assert "the telegram transport stopped: telegram.token was refused by the Bot API server" in errors[0]
    output = log.read_text(errors="replace")
    assert "Traceback" not in output and token not in output


async def test_a_bot_api_server_gone_for_good_ends_civicbot_run_with_exit_1_and_one_line(tmp_path: Path) -> None:
    api = LocalBotApi()
    await api.start()
    log = tmp_path / "civicbot.log"
    bot = BotProcess(process_environment(api, tmp_path, CIVICBOT_TELEGRAM__GIVE_UP_AFTER_SECONDS="3"), log)
    try:
        await bot.start()
        await api.wait_for(lambda: bool(api.calls_to("getUpdates")), timeout=60)
        await api.close()  # the server goes away and does not come back
        assert bot.process is not None
        assert await asyncio.wait_for(bot.process.wait(), 60) == 1
    finally:
        await bot.ensure_dead()
    errors = _errors(log)
    assert len(errors) == 1, log.read_text(errors="replace")[-3000:]
    assert "the telegram transport stopped: the Bot API server at telegram.api_base_url could not be reached" \
        in errors[0]
    assert "Traceback" not in log.read_text(errors="replace")


async def test_an_invalid_token_at_start_ends_civicbot_run_with_exit_1_and_one_line(bot_api: LocalBotApi,
                                                                                    tmp_path: Path) -> None:
    log = tmp_path / "civicbot.log"
    env = process_environment(bot_api, tmp_path)
    bot_api.revoke_token()  # the token is refused from the first call on
    bot = BotProcess(env, log)
    try:
        await bot.start()
        assert bot.process is not None
        assert await asyncio.wait_for(bot.process.wait(), 60) == 1
    finally:
        await bot.ensure_dead()
    output = log.read_text(errors="replace")
    lines = [line for line in output.splitlines() if line.strip()]
    assert any("telegram.token" in line for line in lines), output[-3000:]
    assert "Traceback" not in output and env["CIVICBOT_TELEGRAM__TOKEN"] not in output
