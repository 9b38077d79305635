"""``civicbot cases ...`` as staff run it: the real command on the embedded SQLite default."""

from __future__ import annotations

import json
import re
import sqlite3
import stat
from pathlib import Path

from tests.test_cli import civicbot

REFERENCE = re.compile(r"C-[2-9A-Z]{4}")
DESCRIPTION = "The documents are with my aunt in Qamishli"


def keygen(tmp_path: Path, name: str = "staff.key") -> tuple[Path, str]:
    key_file = tmp_path / "staff-machine" / name
    result = civicbot("cases", "keygen", "--output", str(key_file), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    public = re.search(r'staff_public_key = "([^"]+)"', result.stdout)
    assert public is not None, result.stdout
    return key_file, public.group(1)


def test_keygen_writes_a_private_key_readable_by_its_owner_only(tmp_path: Path) -> None:
    key_file, public = keygen(tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    data = json.loads(key_file.read_text())
    assert data["public_key"] == public and data["private_key"] != public
    again = civicbot("cases", "keygen", "--output", str(key_file), cwd=tmp_path)
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr
    assert json.loads(key_file.read_text()) == data


def test_a_bad_public_key_stops_the_bot_with_one_line(tmp_path: Path) -> None:
    result = civicbot("run", "--console", cwd=tmp_path, stdin="",
                      env={"CIVICBOT_CONTACTS__STAFF_PUBLIC_KEY": "not-a-key"})
    assert result.returncode == 2
    assert result.stderr.strip() == ("civicbot: configuration error: contacts.staff_public_key: Value error, "
                                     "must be the public key printed by 'civicbot cases keygen'")


def test_staff_commands_from_the_terminal_and_show_with_the_private_key(tmp_path: Path) -> None:
    key_file, public = keygen(tmp_path)
    env = {"CIVICBOT_CONTACTS__STAFF_PUBLIC_KEY": public}
    person = civicbot("run", "--console", cwd=tmp_path, env=env,
                      stdin=f"/start\n4\n1\n1\n/contact\n3\n{DESCRIPTION}\n2\nevenings only\n1\nanother thing\n")
    assert person.returncode == 0, person.stderr
    match = REFERENCE.search(person.stdout.split("Your reference is", 1)[1])
    assert match is not None, person.stdout
    reference = match.group(0)
    assert "Sent to staff ✓" in person.stdout

    listed = civicbot("cases", "list", cwd=tmp_path, env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"{reference} · safety · English · console" in listed.stdout and "not claimed" in listed.stdout
    assert DESCRIPTION not in listed.stdout

    shown = civicbot("cases", "show", reference.lower(), "--key", str(key_file), cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr
    assert f"Description: {DESCRIPTION}" in shown.stdout
    assert "Preferred contact: A phone or video call, arranged here, evenings only" in shown.stdout
    assert "another thing" in shown.stdout

    other_key, _ = keygen(tmp_path, "another.key")
    wrong = civicbot("cases", "show", reference, "--key", str(other_key), cwd=tmp_path, env=env)
    assert wrong.returncode == 0 and DESCRIPTION not in wrong.stdout and "sealed to another staff key" in wrong.stdout

    assert civicbot("cases", "claim", reference, cwd=tmp_path, env=env).stdout.strip() == f"{reference} is yours now."
    replied = civicbot("cases", "reply", reference, "We", "will", "write", "on", "Monday", cwd=tmp_path, env=env)
    assert replied.returncode == 0 and replied.stdout.strip() == f"Sent to the person in {reference} ✓"
    closed = civicbot("cases", "close", reference, cwd=tmp_path, env=env)
    assert closed.returncode == 0 and closed.stdout.strip() == f"{reference} is closed; the person was told."
    late = civicbot("cases", "reply", reference, "too late", cwd=tmp_path, env=env)
    assert late.returncode == 1 and "is closed" in late.stderr
    unknown = civicbot("cases", "claim", "C-2345", cwd=tmp_path, env=env)
    assert unknown.returncode == 1 and "There is no case C-2345." in unknown.stderr
    malformed = civicbot("cases", "close", "12", cwd=tmp_path, env=env)
    assert malformed.returncode == 2 and "not a case reference" in malformed.stderr

    # The person's next session delivers what staff queued: the answer, then the close.
    later = civicbot("run", "--console", cwd=tmp_path, env=env, stdin="/case\n")
    assert f"Message from staff about {reference}:\nWe will write on Monday" in later.stdout.replace("\u2068", "").replace("\u2069", "")
    assert "Staff have closed your request" in later.stdout

    with sqlite3.connect(tmp_path / "data" / "civicbot.db") as db:
        actions = [row[0] for row in db.execute("select action from audit_log order by id")]
        details = " ".join(row[0] for row in db.execute("select details from audit_log"))
    assert actions == ["case.list", "case.show", "case.show", "case.claim", "case.reply", "case.close"]
    assert "Monday" not in details and DESCRIPTION not in details
    assert civicbot("audit", "verify", cwd=tmp_path).returncode == 0

    erased = civicbot("run", "--console", cwd=tmp_path, env=env, stdin="/delete_me\n1\n")
    assert "has been erased" in erased.stdout
    after = civicbot("cases", "show", reference, "--key", str(key_file), cwd=tmp_path, env=env)
    assert after.returncode == 0 and DESCRIPTION not in after.stdout and "Monday" not in after.stdout
    assert "no messages" in after.stdout
