"""Health, readiness and Prometheus metrics over HTTP, JSON logs, and the pieces a worker
stops with: no ids or content in any label or log line."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from bot.core.model import Address, Inbound, Outbound, Platform
from bot.core.transport import RecipientUnreachable, TransientDeliveryError
from bot.operations.duties import TransportSlot, TurnGate
from bot.operations.health import HealthServer, ListenAddress
from bot.operations.jsonlog import JsonFormatter
from bot.operations.metrics import DatabaseStats, MeasuredTransport, Metrics, TransportCounters
from bot.storage import migrate
from bot.storage.db import Database
from tests.support import RecordingTransport, make_settings, open_chat

SECRET_TEXT = "my brother was taken on 3 May"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page, parsed with the Prometheus text parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text) for sample in family.samples
    }


def value(page: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return page[(name, tuple(sorted(labels.items())))]


async def test_metrics_count_turns_sends_and_database_figures(db_url: str, tmp_path: Path, keys) -> None:
    settings = make_settings(db_url, tmp_path)
    transport = RecordingTransport()
    metrics = Metrics(CollectorRegistry())
    async with open_chat(settings, keys, transport) as chat:
        measured = MeasuredTransport(transport, metrics)
        chat.bot.router._transports = {str(transport.platform): measured}  # replies go through the measured one
        handle = metrics.measure_turns(chat.bot.router.handle)
        person = chat.person("4242", "en")
        await handle(Inbound(transport.platform, person.user_id, person.address, text="/start"))
        await handle(Inbound(transport.platform, person.user_id, person.address, text=SECRET_TEXT))
        transport.failures.append(RecipientUnreachable("blocked"))
        with pytest.raises(RecipientUnreachable):
            await measured.send(person.address, Outbound(text="x"))
        transport.failures.append(TransientDeliveryError("rate_limited", retry_after=3))
        with pytest.raises(TransientDeliveryError):
            await measured.send(person.address, Outbound(text="x"))

        stats = DatabaseStats(chat.bot.services.database, min_interval=0)
        metrics.registry.register(stats)
        await stats.refresh()
        text = metrics.render().decode()
    page = samples(text)
    assert value(page, "civicbot_inbound_turns_total", platform="console", kind="text") == 2
    assert value(page, "civicbot_turn_duration_seconds_count", platform="console") == 2
    assert value(page, "civicbot_outbound_sends_total", platform="console", outcome="sent") >= 2
    assert value(page, "civicbot_outbound_sends_total", platform="console", outcome="unreachable") == 1
    assert value(page, "civicbot_outbound_sends_total", platform="console", outcome="rate_limited") == 1
    assert value(page, "civicbot_dialogs_in_progress", dialog="onboarding") == 1
    assert value(page, "civicbot_database_stats_stale") == 0
    for secret in ("4242", SECRET_TEXT, "chat-4242", "brother"):
        assert secret not in text


async def test_outbox_depth_and_oldest_due_row(db_url: str, tmp_path: Path, keys) -> None:
    import datetime as dt

    from sqlalchemy import update

    from bot.services.outbox import OutboxKind, ToParticipant
    from bot.storage.models import OutboxMessage, utcnow

    settings = make_settings(db_url, tmp_path)
    async with open_chat(settings, keys) as chat:
        person = chat.person("77", "en")
        await person.send("/start")
        await person.press("English")
        await person.press("I agree")
        services = chat.bot.services
        async with services.database.sessions.begin() as session:
            participant = await services.participants.find(session, keys.pseudonym("console", "77"))
            assert participant is not None
            to = ToParticipant(participant.id, "console")
            for _ in range(3):
                await services.outbox.enqueue(session, to, OutboxKind.BULLETIN, Outbound(text="hello"))
            row_id = await services.outbox.enqueue(session, to, OutboxKind.REPLY, Outbound(text="hi"))
            await session.execute(update(OutboxMessage).where(OutboxMessage.id == row_id)
                                  .values(next_attempt_at=utcnow() - dt.timedelta(seconds=90)))
        stats = DatabaseStats(services.database, min_interval=0)
        await stats.refresh()
    assert stats.outbox == {("bulletin", "pending"): 3, ("reply", "pending"): 1}
    assert 89 <= stats.oldest_due["console"] < 200


async def test_health_server_answers_ready_only_when_every_check_passes(tmp_path: Path) -> None:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    metrics = Metrics(CollectorRegistry())
    transport_up = {"value": True}

    async def database_answers() -> bool:
        return await migrate.is_current(database)

    async def transports() -> bool:
        return transport_up["value"]

    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    server = HealthServer(ListenAddress("127.0.0.1", 0), metrics,
                          {"migrations": database_answers, "transports": transports}, check_timeout=0.5)
    await server.start()
    base = f"http://127.0.0.1:{server.port}"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{base}/readyz") as response:  # schema not migrated yet
                body = await response.json()
                assert response.status == 503 and body["checks"]["migrations"] is False
            await migrate.upgrade(database)
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 200 and (await response.json())["ready"] is True
            transport_up["value"] = False
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503 and (await response.json())["checks"]["transports"] is False
            transport_up["value"] = True
            server.stopping()
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503 and (await response.json())["checks"]["running"] is False
            async with http.get(f"{base}/metrics") as response:
                assert response.status == 200
                page = samples(await response.text())
                assert value(page, "civicbot_ready") == 0
            async with http.get(f"{base}/nothing") as response:
                assert response.status == 404
        slow = HealthServer(ListenAddress("127.0.0.1", 0), metrics, {"slow": hangs}, check_timeout=0.2)
        assert (await slow.readiness())["slow"] is False  # a hanging check is a "no", quickly
    finally:
        await server.stop()
        await database.dispose()


def test_listen_addresses() -> None:
    assert ListenAddress.parse("127.0.0.1:9464") == ListenAddress("127.0.0.1", 9464)
    assert ListenAddress.parse("[::1]:9464") == ListenAddress("::1", 9464)
    for bad in ("9464", "host:", "host:port", ":9464", "host:70000"):
        with pytest.raises(ValueError):
            ListenAddress.parse(bad)


def test_observability_setting_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    from bot.config import ConfigError, load_settings

    monkeypatch.setenv("CIVICBOT_OBSERVABILITY__LISTEN", "nonsense")
    with pytest.raises(ConfigError, match="observability.listen"):
        load_settings()
    monkeypatch.setenv("CIVICBOT_OBSERVABILITY__LISTEN", "127.0.0.1:9464")
    monkeypatch.setenv("CIVICBOT_LOGGING__FORMAT", "json")
    settings = load_settings()
    assert settings.observability.listen == "127.0.0.1:9464" and settings.logging.format == "json"


def test_json_log_lines_keep_the_privacy_rules() -> None:
    formatter = JsonFormatter()
    record = logging.LogRecord("bot.router", logging.ERROR, __file__, 10, "turn failed on %s", ("telegram",), None)
    try:
        raise ValueError(f"could not parse {SECRET_TEXT}")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    line = formatter.format(record)
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "bot.router"
    assert entry["message"] == "turn failed on telegram"
    assert entry["error"].startswith("ValueError at ") and entry["time"].endswith("+00:00")
    assert SECRET_TEXT not in line and "\n" not in line


async def test_rate_limit_counters_survive_a_new_term() -> None:
    class Limited(RecordingTransport):
        rate_limited = 0

    slot = TransportSlot(Platform("matrix"), RecordingTransport().capabilities, 5.0)
    first = Limited(platform=Platform("matrix"))
    first.rate_limited = 3
    slot.attach(first)
    slot.detach()
    second = Limited(platform=Platform("matrix"))
    second.rate_limited = 2
    slot.attach(second)
    registry = CollectorRegistry()
    registry.register(TransportCounters(lambda: [t for t in (slot.current,) if t is not None], [slot]))
    from prometheus_client.exposition import generate_latest

    page = samples(generate_latest(registry).decode())
    assert value(page, "civicbot_rate_limited_total", platform="matrix") == 5
    slot.detach()
    with pytest.raises(TransientDeliveryError) as info:
        await slot.send(Address(Platform("matrix"), "!room"), Outbound(text="x"))
    assert info.value.reason == "not_leader"  # the caller queues it for the next leader


async def test_turn_gate_lets_turns_in_flight_finish_and_holds_back_new_ones() -> None:
    gate = TurnGate()
    release = asyncio.Event()
    handled: list[str] = []

    async def handler(inbound: Inbound) -> None:
        await release.wait()
        handled.append(inbound.text)

    gated = gate.wrap(handler)
    address = Address(Platform("matrix"), "!room")
    first = asyncio.create_task(gated(Inbound(Platform("matrix"), "@a:hs", address, text="first")))
    await asyncio.sleep(0)
    assert gate.in_flight("matrix") == 1
    closing = asyncio.create_task(gate.close("matrix", timeout=5))
    await asyncio.sleep(0)
    late = asyncio.create_task(gated(Inbound(Platform("matrix"), "@a:hs", address, text="late")))
    release.set()
    assert await closing is True
    await first
    await asyncio.sleep(0.05)
    assert handled == ["first"] and not late.done()  # held back, not handled
    late.cancel()
    assert await gate.close("matrix", timeout=0.1) is True
    gate.reopen("matrix")
    await gated(Inbound(Platform("matrix"), "@a:hs", address, text="next term"))
    assert handled == ["first", "next term"]
