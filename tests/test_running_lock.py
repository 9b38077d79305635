"""``civicbot keys rotate`` refuses to run beside a running bot: the bot would keep sealing with the
old key ring, and ``--retire`` would then make what it sealed unreadable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bot.core.security import KeyRing

CIVICBOT = str(Path(sys.executable).parent / "civicbot")


def _env(db_url: str, key_file: Path, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env.update(CIVICBOT_DATABASE__URL=db_url, CIVICBOT_SECURITY__KEY_FILE=str(key_file),
               CIVICBOT_MATRIX__STORE_PATH=str(tmp_path / "no-matrix"))
    return env


def _rotate(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CIVICBOT, "keys", "rotate", *extra], env=env, capture_output=True, text=True, timeout=120)


def test_keys_rotate_refuses_while_a_bot_runs_on_the_database(db_url: str, tmp_path: Path) -> None:
    key_file = tmp_path / "keys.json"
    KeyRing.generate().save(key_file)
    env = _env(db_url, key_file, tmp_path)
    before = key_file.read_bytes()
    upgraded = subprocess.run([CIVICBOT, "db", "upgrade"], env=env, capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    bot = subprocess.Popen([CIVICBOT, "run", "--console"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        assert bot.stdin is not None and bot.stdout is not None
        bot.stdin.write("/start\n")
        bot.stdin.flush()
        assert bot.stdout.readline(), "the console bot answers: it is running"

        refused = _rotate(env, "--retire")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "running" in refused.stderr and refused.stderr.strip().count("\n") == 0
        assert key_file.read_bytes() == before, "nothing was rotated"

        # Another host would have its own copy of the key file: the database still tells.
        if db_url.startswith("postgresql"):
            copy = tmp_path / "elsewhere" / "keys.json"
            copy.parent.mkdir()
            shutil.copy2(key_file, copy)
            elsewhere = _rotate(_env(db_url, copy, tmp_path), "--retire")
            assert elsewhere.returncode == 2 and "running" in elsewhere.stderr, elsewhere.stderr
            assert copy.read_bytes() == before
    finally:
        if bot.stdin is not None:
            bot.stdin.close()
        bot.wait(timeout=60)
    assert bot.returncode == 0

    done = _rotate(env, "--retire")
    assert done.returncode == 0, done.stderr
    assert key_file.read_bytes() != before
