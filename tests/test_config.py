"""Configuration: TOML file, environment overrides, one-line errors that never show values."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CIVICBOT_"):
            monkeypatch.delenv(name)


def test_defaults_are_the_embedded_console() -> None:
    settings = load_settings()
    assert settings.is_embedded_default and not settings.has_platform
    assert settings.database.url == "sqlite+aiosqlite:///data/civicbot.db"


def test_toml_file_and_environment_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "civicbot.toml"
    config.write_text(
        '[database]\nurl = "sqlite+aiosqlite:///x.db"\n'
        '[telegram]\ntoken = "from-file"\napi_base_url = "http://127.0.0.1:1/bot"\n'
        '[staff]\nmembers = ["telegram:1", "matrix:@alice:example.org"]\ntelegram_chat = -100123\n'
    )
    settings = load_settings(config)
    assert settings.telegram.token is not None and settings.telegram.token.get_secret_value() == "from-file"
    assert settings.staff.members == ["telegram:1", "matrix:@alice:example.org"]
    monkeypatch.setenv("CIVICBOT_TELEGRAM__TOKEN", "from-env")
    monkeypatch.setenv("CIVICBOT_STAFF__MEMBERS", '["telegram:2"]')
    settings = load_settings(config)
    assert settings.telegram.token is not None and settings.telegram.token.get_secret_value() == "from-env"
    assert settings.telegram.api_base_url == "http://127.0.0.1:1/bot"  # the rest of the section is kept
    assert settings.staff.members == ["telegram:2"] and settings.staff.telegram_chat == -100123
    monkeypatch.setenv("CIVICBOT_CONFIG", str(config))
    assert load_settings().database.url == "sqlite+aiosqlite:///x.db"


def test_environment_alone_is_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICBOT_TELEGRAM__TOKEN", "123:abc")
    monkeypatch.setenv("CIVICBOT_TELEGRAM__API_BASE_URL", "http://127.0.0.1:8081/bot")
    monkeypatch.setenv("CIVICBOT_MATRIX__HOMESERVER", "http://127.0.0.1:8008")
    monkeypatch.setenv("CIVICBOT_LIMITS__MAX_MESSAGE_CHARS", "500")
    settings = load_settings()
    assert settings.telegram.enabled and settings.matrix.enabled and settings.limits.max_message_chars == 500
    assert not settings.is_embedded_default


@pytest.mark.parametrize(
    ("variable", "value", "key"),
    [
        ("CIVICBOT_TELEGRAM__TOKN", "s3cret-value", "telegram.tokn"),
        ("CIVICBOT_DATABASE__URL", "mysql://user:s3cret-value@host/db", "database.url"),
        ("CIVICBOT_STAFF__MEMBERS", '["s3cret-value"]', "staff.members"),
        ("CIVICBOT_LIMITS__FLOOD_MESSAGES", "s3cret-value", "limits.flood_messages"),
        ("CIVICBOT_TELEGRAM__WEBHOOK_PORT", "99999", "telegram.webhook_port"),
    ],
)
def test_errors_name_the_key_and_hide_the_value(monkeypatch: pytest.MonkeyPatch, variable: str, value: str,
                                                key: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert key in message and "s3cret" not in message and "\n" not in message


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text('[telegram]\ntoken = "s3cret\n')
    with pytest.raises(ConfigError) as info:
        load_settings(broken)
    assert "s3cret" not in str(info.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")


def test_example_config_is_valid_and_documents_every_key() -> None:
    from bot.config import Settings

    example = Path(__file__).resolve().parent.parent / "config" / "example.toml"
    settings = load_settings(example)
    text = example.read_text()
    for section_name, section in Settings.model_fields.items():
        assert f"[{section_name}]" in text, section_name
        model = section.annotation
        for key in model.model_fields:  # type: ignore[union-attr]
            assert f"\n{key} =" in text or f"\n# {key} =" in text, f"{section_name}.{key}"
    assert settings.database.url
