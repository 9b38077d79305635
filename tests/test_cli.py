"""The real command, as a person or a container starts it: console chat, keys, db, errors."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path

import pytest

CIVICBOT = str(Path(sys.executable).parent / "civicbot")


def civicbot(*args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None,
             module: bool = False) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CIVICBOT_")}
    command = [sys.executable, "-m", "bot", *args] if module else [CIVICBOT, *args]
    return subprocess.run(command, cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120,
                          env={**clean, **(env or {})})


def test_console_onboarding_in_english_then_erasure(tmp_path: Path) -> None:
    result = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n4\n1\n1\n1\n")
    assert result.returncode == 0, result.stderr
    assert "  4. English" in result.stdout and "Main menu" in result.stdout
    keys = tmp_path / "data" / "keys.json"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    with sqlite3.connect(tmp_path / "data" / "civicbot.db") as db:
        assert db.execute("select count(*) from participants").fetchone() == (1,)

    result = civicbot("run", "--console", cwd=tmp_path, stdin="/delete_me\n1\n", module=True)
    assert result.returncode == 0, result.stderr
    assert "has been erased" in result.stdout
    with sqlite3.connect(tmp_path / "data" / "civicbot.db") as db:
        for table in ("participants", "participant_keys", "participant_addresses", "dialog_states", "outbox",
                      "memberships", "bulletin_subscriptions"):
            assert db.execute(f"select count(*) from {table}").fetchone() == (0,), table


def test_console_onboarding_in_arabic(tmp_path: Path) -> None:
    result = civicbot("run", "--console", cwd=tmp_path, stdin="/start\n1\n1\n1\n")
    assert result.returncode == 0, result.stderr
    after_choice = result.stdout.split("  4. English", 1)[1]
    assert "Main menu" not in after_choice and "Do you agree" not in after_choice
    assert any("\u0600" <= ch <= "\u06ff" for ch in after_choice)
    assert result.stderr.count("\n") <= 1  # only the note that a key file was created


def test_staff_console_makes_an_invite_that_a_person_can_redeem(tmp_path: Path) -> None:
    staff = civicbot("run", "--console", "--as-staff", cwd=tmp_path,
                     stdin="/org add ngo1 cso\n/group add fg1 focus_group ngo1\n/invite ngo1 fg1\n/whoami\n")
    assert staff.returncode == 0, staff.stderr
    code_line = next(line for line in staff.stdout.splitlines() if line.startswith("Invitation code:"))
    code = code_line.split(":", 1)[1].strip().strip("\u2068\u2069")
    assert "staff member" in staff.stdout
    person = civicbot("run", "--console", cwd=tmp_path, stdin=f"/start\n4\n1\n{code}\n")
    assert "You have joined" in person.stdout, person.stdout


def test_non_staff_console_cannot_use_staff_commands(tmp_path: Path) -> None:
    result = civicbot("run", "--console", cwd=tmp_path, stdin="/invite ngo1\n")
    assert "I do not know that command" in result.stdout and "Invitation" not in result.stdout


def test_keys_generate_and_refuse_to_overwrite(tmp_path: Path) -> None:
    first = civicbot("keys", "generate", cwd=tmp_path)
    assert first.returncode == 0 and stat.S_IMODE((tmp_path / "data" / "keys.json").stat().st_mode) == 0o600
    second = civicbot("keys", "generate", cwd=tmp_path)
    assert second.returncode == 2 and "refusing to overwrite" in second.stderr


def test_db_upgrade(tmp_path: Path) -> None:
    env = {"CIVICBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'other.db'}"}
    result = civicbot("db", "upgrade", cwd=tmp_path, env=env)
    from bot.storage.migrate import head_revision

    assert result.returncode == 0 and f"revision {head_revision()}" in result.stdout


def test_a_configured_bot_refuses_to_start_without_its_key_file(tmp_path: Path) -> None:
    env = {"CIVICBOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path / 'prod.db'}",
           "CIVICBOT_SECURITY__KEY_FILE": str(tmp_path / "missing-keys.json")}
    result = civicbot("run", "--console", cwd=tmp_path, env=env)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "security.key_file" in result.stderr
    assert not (tmp_path / "missing-keys.json").exists()


@pytest.mark.parametrize(("variable", "value", "key"), [
    ("CIVICBOT_TELEGRAM__TOKEN", "", None),
    ("CIVICBOT_LIMITS__MAX_MESSAGE_CHARS", "lots-s3cret", "limits.max_message_chars"),
    ("CIVICBOT_MATRIX__HOMESRVER", "s3cret", "matrix.homesrver"),
    ("CIVICBOT_TELGRAM__TOKEN", "s3cret", "telgram.token"),
    ("CIVICBOT_STAFF__ADMINS", "telegram:s3cret", "staff.admins"),
])
def test_configuration_errors_stop_with_one_line(tmp_path: Path, variable: str, value: str, key: str | None) -> None:
    result = civicbot("run", "--console", cwd=tmp_path, env={variable: value}, stdin="")
    if key is None:  # an empty token simply means Telegram is off: the console runs
        assert result.returncode == 0
        return
    assert result.returncode == 2
    assert key in result.stderr and "s3cret" not in result.stderr
    assert result.stderr.strip().count("\n") == 0


def test_a_configured_directory_that_does_not_exist_stops_the_bot(tmp_path: Path) -> None:
    missing = tmp_path / "surveys-typo"
    result = civicbot("run", "--console", cwd=tmp_path, env={"CIVICBOT_SURVEYS__DIRECTORY": str(missing)},
                      stdin="/start\n")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == f"civicbot: surveys.directory: {missing} does not exist\n"
    assert not (tmp_path / "data").exists()  # stopped before creating keys or a database


def test_audit_verify(tmp_path: Path) -> None:
    staff = civicbot("run", "--console", "--as-staff", cwd=tmp_path, stdin="/org add ngo1 cso\n/invite ngo1\n")
    assert staff.returncode == 0
    intact = civicbot("audit", "verify", cwd=tmp_path)
    assert intact.returncode == 0 and "intact: 2 entries" in intact.stdout
    with sqlite3.connect(tmp_path / "data" / "civicbot.db") as db:
        db.execute("update audit_log set subject = 'other' where action = 'organisation.add'")
    broken = civicbot("audit", "verify", cwd=tmp_path)
    assert broken.returncode == 1 and "broken at entry 1" in broken.stderr


def test_every_verb_prints_only_its_own_output(tmp_path: Path) -> None:
    surveys = Path(__file__).resolve().parent.parent / "config" / "surveys"
    env = {"CIVICBOT_SURVEYS__DIRECTORY": str(surveys)}
    runs = {
        "keys generate": civicbot("keys", "generate", cwd=tmp_path, env=env),
        "db upgrade": civicbot("db", "upgrade", cwd=tmp_path, env=env),
        "survey validate": civicbot("survey", "validate", str(surveys / "bulletin-feedback.yaml"), cwd=tmp_path,
                                    env=env),
        "survey list": civicbot("survey", "list", cwd=tmp_path, env=env),
        "survey close": civicbot("survey", "close", "bulletin-feedback", cwd=tmp_path, env=env),
        "audit verify": civicbot("audit", "verify", cwd=tmp_path, env=env),
    }
    for verb, result in runs.items():
        assert result.returncode == 0, (verb, result.stderr)
        assert result.stderr == "", (verb, result.stderr)  # no alembic INFO lines, no logging at all
        assert result.stdout.strip(), verb
    assert runs["survey close"].stdout == "0 runs closed\n"
    assert "(bulletin-feedback, 7 questions, en, ar, ckb, ku)" in runs["survey validate"].stdout
    assert runs["audit verify"].stdout == "audit log intact: 1 entry\n"  # the close above


@pytest.mark.parametrize("where", ["before", "between", "after"])
def test_config_is_accepted_before_or_after_the_verb(tmp_path: Path, where: str) -> None:
    config = tmp_path / "civicbot.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path / "configured.db"}"\n'
                      f'[security]\nkey_file = "{tmp_path / "configured-keys.json"}"\n')
    option = ["--config", str(config)]
    assert civicbot("keys", "generate", *option, cwd=tmp_path).returncode == 0
    args = {"before": [*option, "db", "upgrade"], "between": ["db", *option, "upgrade"],
            "after": ["db", "upgrade", *option]}[where]
    result = civicbot(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "configured.db").exists() and not (tmp_path / "data").exists()
    listed = civicbot("survey", "list", "--config", str(config), cwd=tmp_path,
                      env={"CIVICBOT_SURVEYS__DIRECTORY": str(Path(__file__).parent.parent / "config" / "surveys")})
    assert listed.returncode == 0 and "never launched" in listed.stdout and not (tmp_path / "data").exists()


def test_help_describes_every_argument() -> None:
    import argparse

    from bot.cli import _parser
    from bot.features import FEATURES

    def walk(parser: argparse.ArgumentParser, path: str) -> list[str]:
        undocumented = []
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helps = {choice.dest: choice.help for choice in action._choices_actions}
                for name, sub in action.choices.items():
                    if not helps.get(name) or not sub.description:
                        undocumented.append(f"{path} {name}")
                    undocumented += walk(sub, f"{path} {name}")
            if not action.help or action.help == argparse.SUPPRESS:
                undocumented.append(f"{path}: {'/'.join(action.option_strings) or action.dest}")
        return undocumented

    assert walk(_parser(FEATURES), "civicbot") == []
    for args in (["run", "--help"], ["survey", "launch", "--help"], ["db", "upgrade", "--help"]):
        result = civicbot(*args, cwd=Path(__file__).parent)
        assert result.returncode == 0 and "--config FILE" in result.stdout


def test_xlsx_export_without_output_writes_a_default_file(tmp_path: Path) -> None:
    surveys = Path(__file__).resolve().parent.parent / "config" / "surveys"
    env = {"CIVICBOT_SURVEYS__DIRECTORY": str(surveys)}
    first = civicbot("survey", "export", "bulletin-feedback", "--format", "xlsx", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    import datetime as dt

    today = dt.datetime.now(dt.UTC).date().isoformat()
    written = tmp_path / f"bulletin-feedback-{today}.xlsx"
    assert first.stdout == f"0 responses written to {written.name}\n"
    assert written.exists() and stat.S_IMODE(written.stat().st_mode) == 0o600
    second = civicbot("survey", "export", "bulletin-feedback", "--format", "xlsx", cwd=tmp_path, env=env)
    assert second.stdout == f"0 responses written to bulletin-feedback-{today}-2.xlsx\n"  # never overwritten


def test_checkin_verbs_do_what_the_staff_commands_do(tmp_path: Path) -> None:
    env = {"CIVICBOT_CHECKINS__DIRECTORY": str(Path(__file__).resolve().parent.parent / "config" / "checkins")}
    staff = civicbot("run", "--console", "--as-staff", cwd=tmp_path, env=env,
                     stdin="/org add fam association Families of Sinjar\n/org add ngo cso\n/checkin invite fam\n")
    code = next(line for line in staff.stdout.splitlines() if line.startswith("Contact-person code"))
    code = code.split(":", 1)[1].strip().strip("\u2068\u2069")
    person = civicbot("run", "--console", cwd=tmp_path, env=env, stdin=f"/start\n4\n1\n{code}\n1\n")  # yes to bulletins
    assert "You have joined" in person.stdout

    refused = [
        (("schedule", "fam", "--every", "14d", "--at", "10:00", "--tz", "Mars/Base"),
         "civicbot: There is no time zone called Mars/Base. Use a name like Asia/Damascus or Europe/Berlin."),
        (("schedule", "ngo", "--every", "14d", "--at", "10:00", "--tz", "UTC"),
         "civicbot: ngo is not an association (it is registered as cso); check-ins are for associations."),
        (("schedule", "nowhere", "--cron", "0 10 * * mon", "--tz", "UTC"),
         "civicbot: There is no organisation with the code nowhere."),
        (("schedule", "fam", "--cron", "0 10 * *", "--tz", "UTC"),
         "civicbot: 0 10 * * is not a valid cron expression. Give five fields: minute, hour, day of the month, "
         "month and day of the week, like “0 10 * * mon”."),
        (("pause", "fam"), "civicbot: Association fam has no check-in schedule. Set one with /checkin schedule."),
    ]
    for args, line in refused:
        result = civicbot("checkin", *args, cwd=tmp_path, env=env)
        assert (result.returncode, result.stderr.strip()) == (1, line), args
    scheduled = civicbot("checkin", "schedule", "fam", "--every", "2w", "--at", "10:00", "--tz", "Asia/Damascus",
                         cwd=tmp_path, env=env)
    assert scheduled.returncode == 0, scheduled.stderr
    assert scheduled.stdout.startswith("Check-ins with fam: every 2 weeks at 10:00, Asia/Damascus, template default. "
                                       "The next one is due ")
    now = civicbot("checkin", "now", "fam", cwd=tmp_path, env=env)
    assert now.stdout.strip() == "Check-in 1 sent to fam: 1 person will receive it."

    answered = civicbot("run", "--console", cwd=tmp_path, env=env, stdin="nothing new\n")
    assert "Thank you. We have noted that there is nothing new." in answered.stdout

    listing = civicbot("checkin", "list", cwd=tmp_path, env=env)
    assert listing.stdout.startswith("fam — every 2 weeks at 10:00, Asia/Damascus\n")
    assert "(nothing new)" in listing.stdout and "never answered" not in listing.stdout
    export = civicbot("checkin", "export", "--format", "csv", cwd=tmp_path, env=env)
    rows = export.stdout.lstrip("\ufeff").splitlines()
    assert rows[0].startswith("association,checkin,template,due_at,status,answered_on,language,nothing_new,flags,"
                              "situation,needs,updates,call")
    assert rows[1].startswith("fam,1,default,") and ",answered," in rows[1] and ",en,yes,," in rows[1]
    with sqlite3.connect(tmp_path / "data" / "civicbot.db") as db:
        pseudonym = db.execute("select pseudonym from participants").fetchone()[0]
        actions = [row[0] for row in db.execute("select action from audit_log where actor = 'cli' order by id")]
    assert pseudonym not in export.stdout
    assert actions == ["checkin.schedule", "checkin.now", "checkin.export"]
    assert civicbot("audit", "verify", cwd=tmp_path).returncode == 0
