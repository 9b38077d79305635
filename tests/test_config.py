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


def test_a_list_without_json_names_the_variable_and_shows_the_json_form(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICBOT_STAFF__MEMBERS", "telegram:1")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "staff.members" in message and "CIVICBOT_STAFF__MEMBERS" in message
    assert """CIVICBOT_STAFF__MEMBERS='["telegram:123456", "matrix:@alice:example.org"]'""" in message
    assert "\n" not in message and "telegram:1'" not in message
    monkeypatch.setenv("CIVICBOT_STAFF__MEMBERS", '"telegram:1"')  # JSON, but not a list
    with pytest.raises(ConfigError, match=r"a list is written as JSON"):
        load_settings()
    monkeypatch.setenv("CIVICBOT_STAFF__MEMBERS", '["telegram:1"]')
    assert load_settings().staff.members == ["telegram:1"]


@pytest.mark.parametrize(
    ("text", "where", "problem"),
    [
        ('[telegram]\ntoken = "s3cret\n', ":2:16:", "Illegal character"),
        ('[telegram]\ntoken = "s3cret"\n[staff\n', ":3:7:", "Expected ']'"),
        ('[telegram]\ntoken = "a"\nmode = ', ":3:", "Invalid value"),
    ],
)
def test_malformed_toml_names_file_line_and_column(tmp_path: Path, text: str, where: str, problem: str) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_settings(broken)
    message = str(info.value)
    assert f"{broken}{where}" in message and problem in message
    assert "s3cret" not in message and "\n" not in message


@pytest.mark.parametrize(
    ("variable", "key"),
    [
        ("CIVICBOT_TELGRAM__TOKEN", "telgram.token"),
        ("CIVICBOT_TELEGRAM", "telegram"),  # a whole section must be a JSON object
        ("CIVICBOT_TELEGRAM__TOKEN__X", "telegram.token.x"),
        ("civicbot_staf__members", "staf.members"),
    ],
)
def test_an_unknown_variable_is_reported_like_an_unknown_key(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                              key: str) -> None:
    monkeypatch.setenv(variable, "s3cret-value")
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert key in message and variable in message and "s3cret" not in message and "\n" not in message


def test_variables_that_are_not_settings_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CIVICBOT_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    monkeypatch.setenv("CIVICBOT_MATRIX", '{"homeserver": "http://127.0.0.1:8008"}')
    assert load_settings().matrix.enabled


def test_unknown_key_in_the_file_and_in_the_environment_read_alike(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "civicbot.toml"
    config.write_text('[telgram]\ntoken = "x"\n')
    with pytest.raises(ConfigError) as from_file:
        load_settings(config)
    monkeypatch.setenv("CIVICBOT_TELGRAM__TOKEN", "x")
    with pytest.raises(ConfigError) as from_env:
        load_settings()
    assert "unknown setting" in str(from_file.value) and "unknown setting" in str(from_env.value)


def test_missing_directories_are_named(tmp_path: Path) -> None:
    from bot.config import Settings, SurveySettings, missing_directories

    assert missing_directories(Settings(surveys=SurveySettings(directory=tmp_path))) == []
    assert missing_directories(Settings()) == []  # a default is relative to where the bot runs
    absent = tmp_path / "surveys-typo"
    assert missing_directories(Settings(surveys=SurveySettings(directory=absent))) == [
        f"surveys.directory: {absent} does not exist"]
    a_file = tmp_path / "file.yaml"
    a_file.write_text("")
    assert missing_directories(Settings(surveys=SurveySettings(directory=a_file))) == [
        f"surveys.directory: {a_file} is not a directory"]
