"""The database records which key file it belongs to: a missing or wrong key file stops the bot with
one clear line instead of silently "forgetting" everyone, and new keys are created only for an
empty database."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from bot.core.security import KeyRing

CIVICBOT = str(Path(sys.executable).parent / "civicbot")


def civicbot(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    return subprocess.run([CIVICBOT, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})})


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert result.stderr.strip().count("\n") == 0, result.stderr
    return result.stderr


def participants(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return int(conn.execute("select count(*) from participants").fetchone()[0])


def test_embedded_default_creates_keys_only_for_an_empty_database(tmp_path: Path) -> None:
    first = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n4\n1\n1\n")
    assert first.returncode == 0, first.stderr
    key_file, db = tmp_path / "data" / "keys.json", tmp_path / "data" / "civicbot.db"
    assert participants(db) == 1

    key_file.unlink()  # lost, or left out of a restore
    again = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n")
    line = one_line(again)
    assert "security.key_file" in line and "restore" in line
    assert not key_file.exists(), "no new key file may be created beside existing data"
    assert "Main menu" not in again.stdout and participants(db) == 1


def test_a_wrong_key_file_stops_a_platform_bot_before_it_connects(tmp_path: Path) -> None:
    first = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n4\n1\n1\n")
    assert first.returncode == 0, first.stderr
    key_file = tmp_path / "data" / "keys.json"
    key_file.unlink()
    KeyRing.generate().save(key_file)  # a key file, but another one
    env = {"CIVICBOT_TELEGRAM__TOKEN": "123:abc",
           "CIVICBOT_TELEGRAM__API_BASE_URL": "http://127.0.0.1:9/bot"}  # never reached
    line = one_line(civicbot("run", cwd=tmp_path, env=env))
    assert "security.key_file" in line and "does not belong to this database" in line
    assert "123:abc" not in line


def test_a_database_that_needs_a_retired_key_is_refused_with_its_key_id(tmp_path: Path) -> None:
    first = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n4\n1\n1\n")
    assert first.returncode == 0
    key_file = tmp_path / "data" / "keys.json"
    backup = tmp_path / "backup.db"
    with sqlite3.connect(tmp_path / "data" / "civicbot.db") as source, sqlite3.connect(backup) as target:
        source.backup(target)
    backup.chmod(0o600)
    old_id = KeyRing.load(key_file).current_key_id
    rotated = civicbot("keys", "rotate", "--retire", cwd=tmp_path)
    assert rotated.returncode == 0, rotated.stderr
    again = civicbot("run", "--console", cwd=tmp_path, stdin="/menu\n")
    assert again.returncode == 0 and "Main menu" in again.stdout, again.stderr

    env = {"CIVICBOT_DATABASE__URL": f"sqlite+aiosqlite:///{backup}"}  # a backup made before the retirement
    line = one_line(civicbot("run", "--console", cwd=tmp_path, env=env, stdin="/menu\n"))
    assert "security.key_file" in line and old_id in line


def test_keys_rotate_refuses_a_key_file_that_is_not_the_databases(tmp_path: Path) -> None:
    first = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n4\n1\n1\n")
    assert first.returncode == 0
    key_file = tmp_path / "data" / "keys.json"
    key_file.unlink()
    other = KeyRing.generate()
    other.save(key_file)
    line = one_line(civicbot("keys", "rotate", cwd=tmp_path))
    assert "does not belong to this database" in line
    assert KeyRing.load(key_file).current_key_id == other.current_key_id  # untouched


def test_a_database_from_before_the_check_is_bound_to_the_key_file_that_opens_it(tmp_path: Path) -> None:
    first = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n4\n1\n1\n")
    assert first.returncode == 0
    db = tmp_path / "data" / "civicbot.db"
    with sqlite3.connect(db) as conn:
        conn.execute("delete from key_check")  # as after upgrading a database made before the check existed
    ok = civicbot("run", "--console", cwd=tmp_path, stdin="/menu\n")
    assert ok.returncode == 0 and "Main menu" in ok.stdout, ok.stderr
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from key_check").fetchone() == (1,)

    with sqlite3.connect(db) as conn:
        conn.execute("delete from key_check")
    key_file = tmp_path / "data" / "keys.json"
    key_file.unlink()
    KeyRing.generate().save(key_file)
    assert "does not belong to this database" in one_line(civicbot("run", "--console", cwd=tmp_path))
