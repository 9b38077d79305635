"""The console chat as a newcomer meets it: the hint, two people in two windows, piped input,
and a bot with no platform and no terminal."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path

from tests.test_cli import civicbot

CIVICBOT = str(Path(sys.executable).parent / "civicbot")
SURVEYS = Path(__file__).resolve().parent.parent / "config" / "surveys"


def at_a_terminal(*args: str, cwd: Path, lines: list[str]) -> subprocess.CompletedProcess[str]:
    """Runs the command with a terminal on standard input (stdout and stderr stay pipes), types
    the lines and then Ctrl-D."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    master, slave = pty.openpty()
    try:
        process = subprocess.Popen([CIVICBOT, *args], cwd=cwd, stdin=slave, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, env=env)
        os.close(slave)
        for line in lines:
            os.write(master, line.encode() + b"\n")
        os.write(master, b"\x04")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(master)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def test_at_a_terminal_one_line_on_stderr_says_how_to_use_it(tmp_path: Path) -> None:
    result = at_a_terminal("run", cwd=tmp_path, lines=["/help"])
    assert result.returncode == 0, result.stderr
    hints = [line for line in result.stderr.splitlines() if "Ctrl-D" in line]
    assert len(hints) == 1 and "/start" in hints[0] and "\u2068local\u2069" in hints[0]
    assert "Ctrl-D" not in result.stdout and "What you can do" in result.stdout


def test_scripted_use_stays_clean(tmp_path: Path) -> None:
    result = civicbot("run", "--console", cwd=tmp_path, stdin="/help\n")
    assert result.returncode == 0
    assert "Ctrl-D" not in result.stdout + result.stderr
    assert result.stdout.startswith("What you can do")


def test_no_platform_and_no_terminal_stops_with_one_line(tmp_path: Path) -> None:
    for stdin in ("", "/start\n"):  # a container's closed input, or a pipe without --console
        result = civicbot("run", cwd=tmp_path, stdin=stdin)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("civicbot: no platform is configured")
        assert "telegram.token" in result.stderr and "matrix.homeserver" in result.stderr
        assert "CIVICBOT_TELEGRAM__TOKEN" in result.stderr and "--console" in result.stderr
    assert not (tmp_path / "data").exists()  # no key file, no database


def test_piped_input_is_not_flood_limited(tmp_path: Path) -> None:
    lines = 60  # three times the per-person limit of 20 in 10 s
    result = civicbot("run", "--console", cwd=tmp_path, stdin="/privacy\n" * lines)
    assert result.returncode == 0
    assert result.stdout.count("How your information is handled") == lines
    assert "very quickly" not in result.stdout


def test_two_console_users_are_two_people(tmp_path: Path) -> None:
    env = {"CIVICBOT_SURVEYS__DIRECTORY": str(SURVEYS)}
    staff = civicbot("run", "--console", "--user", "nadia", "--as-staff", cwd=tmp_path, env=env,
                     stdin="/org add ngo1 cso\n/group add fg1 focus_group ngo1\n/invite ngo1 fg1\n")
    assert staff.returncode == 0, staff.stderr
    code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", staff.stdout)
    assert code is not None

    # Amal chooses Arabic and joins; nadia stays an English-speaking staff member.
    amal = civicbot("run", "--console", "--user", "amal", cwd=tmp_path, env=env,
                    stdin=f"/start\n1\n1\n{code.group(0)}\n/invite ngo1\n")
    assert amal.returncode == 0, amal.stderr
    assert "You have joined" not in amal.stdout and any("\u0600" <= ch <= "\u06ff" for ch in amal.stdout)
    assert "Invitation code" not in amal.stdout  # a participant: staff commands do not exist for her
    again = civicbot("run", "--console", "--user", "nadia", "--as-staff", cwd=tmp_path, env=env, stdin="/whoami\n")
    assert "staff member" in again.stdout and not any("\u0600" <= ch <= "\u06ff" for ch in again.stdout)

    # A survey launched to the group: the invitation waits for Amal's window, not nadia's.
    launched = civicbot("survey", "launch", "bulletin-feedback", "fg1", cwd=tmp_path, env=env)
    assert launched.returncode == 0, launched.stderr
    staff_window = civicbot("run", "--console", "--user", "nadia", "--as-staff", cwd=tmp_path, env=env,
                            stdin="/whoami\n")
    new_survey = "\u0627\u0633\u062a\u0628\u064a\u0627\u0646 \u062c\u062f\u064a\u062f"  # "New survey" in Arabic
    assert "staff member" in staff_window.stdout and new_survey not in staff_window.stdout
    assert "/surveys" not in staff_window.stdout
    amal_window = civicbot("run", "--console", "--user", "amal", cwd=tmp_path, env=env, stdin="/menu\n")
    assert amal_window.stdout.count(new_survey) == 1 and amal_window.stdout.count("/surveys") == 1
    assert amal_window.stdout.lstrip("\u200f").startswith(new_survey)  # what waited for her window comes first


def test_a_console_user_name_is_one_word(tmp_path: Path) -> None:
    result = civicbot("run", "--console", "--user", "two words", cwd=tmp_path, stdin="/start\n")
    assert result.returncode == 2 and "--user" in result.stderr and result.stderr.count("\n") == 1
