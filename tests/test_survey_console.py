"""The same survey answered on the console, through the real command, with a restart in the middle."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import subprocess
import sys
from pathlib import Path

from openpyxl import load_workbook

from bot.app import running
from bot.core.security import KeyRing
from tests.support import make_settings, store_anonymous_answers

SURVEYS = Path(__file__).resolve().parent.parent / "config" / "surveys"
CIVICBOT = str(Path(sys.executable).parent / "civicbot")


def civicbot(cwd: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    env["CIVICBOT_SURVEYS__DIRECTORY"] = str(SURVEYS)
    return subprocess.run([CIVICBOT, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120,
                          env=env)


async def store_ballots(workdir: Path) -> None:
    """What a running bot's ``survey-ballots`` job does over time, at once, on the console's database."""
    data = workdir / "data"
    settings = make_settings(f"sqlite+aiosqlite:///{data / 'civicbot.db'}", workdir)
    settings = settings.model_copy(update={"security": settings.security.model_copy(
        update={"key_file": data / "keys.json"})})
    async with running(settings, keys=KeyRing.load(data / "keys.json"), transports=lambda services: [],
                       senders=False) as bot:
        await store_anonymous_answers(bot.services)


def test_survey_on_the_console_with_export(tmp_path: Path) -> None:
    setup = civicbot(tmp_path, "run", "--console", "--as-staff",
                     stdin="/org add families association\n/group add fg-missing focus_group families\n"
                           "/invite families fg-missing\n")
    code = re.search(r"[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}", setup.stdout)
    assert setup.returncode == 0 and code, setup.stdout + setup.stderr
    joined = civicbot(tmp_path, "run", "--console", stdin=f"/start\n4\n1\n{code.group(0)}\n")
    assert "You have joined" in joined.stdout
    launched = civicbot(tmp_path, "survey", "launch", "families-of-the-missing", "fg-missing")
    assert launched.returncode == 0 and "1 invitation queued" in launched.stdout

    first = civicbot(tmp_path, "run", "--console", stdin="\n".join([
        "/surveys", "start",
        "parent",          # by label
        "3",               # 2017-2020? no: "From 2013" is option 2; 3 is "From 2017", by number
        "no",              # not reported: jumps over "to whom" straight to needs
        "1", "Legal", "done",  # multiple choice: a number and a label prefix, then done
        "back",            # back to needs
        "done",
    ]) + "\n")
    assert first.returncode == 0, first.stderr
    out = first.stdout
    assert "New survey: \u2068Needs of families of the missing\u2069" in out  # the invitation, sent by the outbox
    assert "To whom" not in out and "Question \u20685\u2069 of" in out
    assert "✓ Information about the missing person" in out and "✓ Legal help" in out

    second = civicbot(tmp_path, "run", "--console", stdin="\n".join([
        "hello",           # the next message continues where the person stopped, after a restart
        "9",               # not on the 1-5 scale
        "5",
        "skip",            # household: optional
        "through this bot",
        "My sister has been missing since 2017.",
    ]) + "\n")
    out = second.stdout
    assert "That is not a valid answer. Please answer with a number from \u20681\u2069 to \u20685\u2069." in out, out
    assert "Thank you. Your answers will help" in out, out

    exported = civicbot(tmp_path, "survey", "export", "families-of-the-missing", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout.lstrip("\ufeff"))))
    assert rows == []  # anonymous: apart from its completion until the ballot box is stored in a batch
    asyncio.run(store_ballots(tmp_path))
    exported = civicbot(tmp_path, "survey", "export", "families-of-the-missing", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(exported.stdout.lstrip("\ufeff"))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["relation"], row["missing-since"], row["reported"], row["reported-to"]) == \
        ("parent", "from-2017", "no", "")
    assert row["needs"] == "information;legal" and row["trust"] == "5" and row["household"] == ""
    assert row["updates"] == "this-bot" and row["comment"] == "My sister has been missing since 2017."

    xlsx = tmp_path / "export.xlsx"
    assert civicbot(tmp_path, "survey", "export", "families-of-the-missing", "--format", "xlsx",
                    "--output", str(xlsx)).returncode == 0
    sheet = load_workbook(xlsx).active
    values = [[cell.value for cell in row] for row in sheet.iter_rows()]
    assert values[0][:4] == ["response", "language", "submitted_on", "relation"]
    assert values[1][3] == "parent" and "My sister has been missing since 2017." in values[1]
    assert (xlsx.stat().st_mode & 0o777) == 0o600
