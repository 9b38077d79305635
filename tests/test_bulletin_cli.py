"""``civicbot bulletin ...``: the same actions and audit entries as the chat, one clear line on bad input."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.cli import main
from bot.core.security import KeyRing
from bot.storage.models import AuditEntry, BulletinSend, OutboxMessage
from tests.support import make_settings, open_chat

EXAMPLES = Path(__file__).resolve().parent.parent / "config" / "bulletins"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CIVICBOT_DATABASE__URL", f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}")
    monkeypatch.setenv("CIVICBOT_SECURITY__KEY_FILE", str(tmp_path / "keys.json"))
    monkeypatch.delenv("CIVICBOT_CONFIG", raising=False)
    KeyRing.generate().save(tmp_path / "keys.json")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["bulletin", *args])
    out, err = capsys.readouterr()
    return code, out, err.replace("\u2068", "").replace("\u2069", "")


async def people(tmp_path: Path, count: int, drain: bool = False) -> None:
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path)
    keys = KeyRing.load(tmp_path / "keys.json")
    async with open_chat(settings, keys) as chat:
        for n in range(count):
            person = chat.person(f"p{n}")
            for step in ("/start", ("4", "1", "3", "2")[n % 4], "1", "1", "1"):
                await person.send(step)
        if drain:
            await chat.bot.senders["console"].drain_once()


async def query(tmp_path: Path, statement):  # type: ignore[no-untyped-def]
    settings = make_settings(f"sqlite+aiosqlite:///{tmp_path / 'civicbot.db'}", tmp_path)
    async with open_chat(settings, KeyRing.load(tmp_path / "keys.json")) as chat:
        async with chat.bot.services.database.sessions() as session:
            return list(await session.scalars(statement))


def test_validate_reports_every_problem_with_its_line(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = sorted(str(p) for p in EXAMPLES.glob("*.yaml"))
    code, out, _ = run(capsys, "validate", *good)
    assert code == 0 and out.count(": valid (") == 2 and "en, ar, ckb, ku" in out
    bad = env / "bad.yaml"
    bad.write_text("id: x1\nen:\n  title: T\n  body: |\n    fine\n\n    see [the site](https://e.org\nfr:\n"
                   "  title: T\n  body: B\n", encoding="utf-8")
    code, out, err = run(capsys, "validate", str(bad), str(env / "missing.yaml"))
    assert code == 1 and out == ""
    assert err.splitlines() == [
        f"{bad}:7: A link is not closed: put ) right after its address, with no space inside the address.",
        f"{bad}:8: 'fr' is not a language bulletins use (ar, ckb, ku, en).",
        f"{env / 'missing.yaml'}: file not found",
    ]


def test_create_send_status_cancel_list(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(people(env, 4))
    code, out, err = run(capsys, "create", str(EXAMPLES / "digital-safety.yaml"))
    assert (code, out) == (0, "digital-safety\n") and "saved as version 1" in err
    code, out, err = run(capsys, "create", str(EXAMPLES / "digital-safety.yaml"))
    assert (code, out) == (0, "digital-safety\n") and "unchanged" in err

    code, out, _ = run(capsys, "send", "digital-safety", "--to", "lang:en", "lang:ar", "--dry-run")
    assert code == 0 and out.startswith("2 people would receive it.") and "By platform: console 2" in out
    code, _, err = run(capsys, "send", "digital-safety", "--to", "group:nobody")
    assert code == 1 and err == "civicbot: There is no group with the code nobody.\n"
    code, _, err = run(capsys, "send", "digital-safety", "--to", "all", "--at", "2001-01-01T00:00")
    assert code == 1 and "That time is in the past" in err
    code, _, err = run(capsys, "send", "digital-safety", "--to", "all", "--at", "soon")
    assert code == 2 and "I do not understand the time soon" in err
    code, _, err = run(capsys, "send", "nothing-here", "--to", "all")
    assert code == 1 and "There is no bulletin with the id nothing-here" in err
    assert asyncio.run(query(env, select(BulletinSend))) == []

    later = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(microsecond=0)
    code, out, _ = run(capsys, "send", "digital-safety", "--to", "all", "--at", later.isoformat())
    assert code == 0 and f"will be sent at {later:%Y-%m-%d %H:%M} UTC" in out and "(4 people now)" in out
    code, _, err = run(capsys, "send", "digital-safety", "--to", "all")
    assert code == 1 and "already scheduled" in err
    code, out, _ = run(capsys, "list")
    assert out.startswith("digital-safety – version 1, en, ar, ckb, ku, not approved, scheduled for")
    code, out, _ = run(capsys, "cancel", "digital-safety")
    assert code == 0 and "nothing was sent" in out

    code, out, _ = run(capsys, "send", "digital-safety", "--to", "all")
    assert code == 0 and out == "Sending digital-safety to 4 people.\n"
    assert len(asyncio.run(query(env, select(OutboxMessage)))) == 4
    asyncio.run(people(env, 0, drain=True))  # a running bot delivers them
    code, out, _ = run(capsys, "status", "digital-safety", "--follow")
    assert code == 0 and "Sent: 4 of 4" in out and "console: 4 sent, 0 failed, 0 unreachable" in out
    assert "Finished at" in out and "English: 1 sent" in out and "العربية: 1 sent" in out
    assert "first language instead" not in out  # the example is in all four languages

    actions = asyncio.run(query(env, select(AuditEntry.action).order_by(AuditEntry.id)))
    actors = set(asyncio.run(query(env, select(AuditEntry.actor))))
    assert actions == ["bulletin.create", "bulletin.send", "bulletin.cancel", "bulletin.send"] and actors == {"cli"}
    assert main(["audit", "verify"]) == 0
