"""docker-compose.yml, the Caddyfile and the Dockerfile, checked without a Docker engine.

No Docker engine runs where the tests run, so the deployment is checked as data: the YAML
loads, services, volumes, secrets and dependencies are consistent, migrations run once
before the workers, the key file is mounted read-only from outside the database's volume,
and the environment the workers get (with deploy/env.example's values) is a valid
configuration in which every CIVICBOT_ variable names a real setting.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
WORKERS = ("worker1", "worker2")
_VARIABLE = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def example_env() -> dict[str, str]:
    values = {}
    for line in (ROOT / "deploy" / "env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value
    return values


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}`` and ``${VAR:?error}``."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.group(1), match.group(2), match.group(3)
        if env.get(name):
            return env[name]
        if kind == "?":
            raise AssertionError(f"{name} is required: {rest}")
        return rest or ""

    return _VARIABLE.sub(one, value)


def mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume."""
    result = []
    for entry in service.get("volumes", []):
        parts = entry.split(":")
        result.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return result


def test_services_volumes_and_dependencies_are_consistent(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"db", "migrate", *WORKERS, "caddy"} <= set(services)
    declared_volumes = set(compose["volumes"])
    used_volumes = set()
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency in service.get("depends_on", {}):
            assert dependency in services and dependency != name, (name, dependency)
        for source, target, _ in mounts(service):
            assert target.startswith("/"), (name, target)
            if not source.startswith((".", "/")):
                assert source in declared_volumes, (name, source)
                used_volumes.add(source)
            else:
                assert (ROOT / source).exists(), (name, source)
        for secret in service.get("secrets", []):
            assert secret in compose["secrets"], (name, secret)
        for network in service.get("networks", []):
            assert network in compose["networks"], (name, network)
    assert used_volumes == declared_volumes  # nothing declared and forgotten


def test_migrations_run_once_before_the_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    migrate = services["migrate"]
    assert migrate["command"] == ["civicbot", "db", "upgrade"] and migrate["restart"] == "no"
    assert migrate["depends_on"]["db"]["condition"] == "service_healthy"
    for worker in WORKERS:
        service = services[worker]
        assert service["command"] == ["civicbot", "run"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in services["db"]


def test_the_key_file_is_read_only_and_outside_the_database_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    key_source = Path(compose["secrets"]["civicbot-keys.json"]["file"])
    assert not key_source.is_absolute() and "pgdata" not in key_source.parts
    database_mounts = mounts(services["db"])
    assert database_mounts == [("pgdata", "/var/lib/postgresql/data", "rw")]
    for worker in WORKERS:
        service = services[worker]
        key_path = service["environment"]["CIVICBOT_SECURITY__KEY_FILE"]
        assert key_path == "/run/secrets/civicbot-keys.json"  # compose mounts secrets read-only there
        for source, target, _ in mounts(service):
            assert not key_path.startswith(target), "the key file must not live in a volume"
            assert source != "pgdata"
    for name, service in services.items():  # nothing mounts the key file's folder into a volume
        for source, _, _ in mounts(service):
            assert not source.startswith("./secrets"), name


def test_worker_environment_is_a_valid_configuration(compose: dict[str, Any],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    env = example_env()
    env["TELEGRAM_TOKEN"] = "123:abc"
    for worker in WORKERS:
        environment = compose["services"][worker]["environment"]
        for name in [n for n in os.environ if n.startswith("CIVICBOT_")]:
            monkeypatch.delenv(name)
        for name, raw in environment.items():
            assert name.startswith("CIVICBOT_") and "__" in name, name
            section, key = name.removeprefix("CIVICBOT_").lower().split("__", 1)
            assert section in Settings.model_fields, name
            model = Settings.model_fields[section].annotation
            assert key in model.model_fields, name  # type: ignore[union-attr]
            monkeypatch.setenv(name, interpolate(str(raw), env))
        settings = load_settings()
        assert settings.database.url.startswith("postgresql+asyncpg://civicbot:")
        assert settings.database.url.endswith("@db:5432/civicbot")
        assert settings.telegram.enabled and settings.telegram.mode == "webhook"
        assert settings.telegram.webhook_url == f"https://{env['BOT_DOMAIN']}/telegram"
        assert settings.observability.listen == "0.0.0.0:9464" and settings.logging.format == "json"
        assert not settings.matrix.enabled  # enabled by setting MATRIX_HOMESERVER
        stop_grace = compose["services"][worker]["stop_grace_period"]
        assert float(stop_grace.rstrip("s")) > settings.runtime.shutdown_grace_seconds


def test_caddy_proxies_the_webhook_to_ready_workers(compose: dict[str, Any]) -> None:
    caddy = compose["services"]["caddy"]
    assert ("./deploy/Caddyfile", "/etc/caddy/Caddyfile", "ro") in mounts(caddy)
    assert {"80:80", "443:443"} <= set(caddy["ports"])
    caddyfile = (ROOT / "deploy" / "Caddyfile").read_text()
    worker_env = compose["services"]["worker1"]["environment"]
    port = worker_env["CIVICBOT_TELEGRAM__WEBHOOK_PORT"]
    assert f"reverse_proxy worker1:{port} worker2:{port}" in caddyfile
    assert "health_uri /readyz" in caddyfile
    assert f"health_port {worker_env['CIVICBOT_OBSERVABILITY__LISTEN'].rsplit(':', 1)[1]}" in caddyfile
    assert "handle /telegram" in caddyfile and "{$BOT_DOMAIN}" in caddyfile
    for worker in WORKERS:  # only the proxy is published; health and metrics stay inside
        assert "ports" not in compose["services"][worker]


def test_dockerfile_is_in_step() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8443 9464" in dockerfile and "STOPSIGNAL SIGTERM" in dockerfile
    assert "mkdir -p /data/matrix-store" in dockerfile  # the matrix-store volume is the bot user's
    assert 'CMD ["civicbot", "run"]' in dockerfile
