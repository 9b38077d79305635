"""Configuration: a TOML file plus ``CIVICBOT_SECTION__KEY`` environment overrides.

A wrong or missing setting stops the bot at start with one line naming the key;
values are never echoed, because many of them are secrets.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///data/civicbot.db"
DEFAULT_KEY_FILE = Path("data/keys.json")


class ConfigError(Exception):
    """A setting is wrong or missing; the message names the key and never the value."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DatabaseSettings(_Section):
    url: str = DEFAULT_DATABASE_URL
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError("must start with sqlite+aiosqlite:// or postgresql+asyncpg://")
        return value

    @property
    def is_embedded_default(self) -> bool:
        return self.url == DEFAULT_DATABASE_URL


class TelegramSettings(_Section):
    token: SecretStr | None = None
    api_base_url: str = "https://api.telegram.org/bot"
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str | None = None
    webhook_listen: str = "127.0.0.1"
    webhook_port: int = Field(default=8443, ge=1, le=65535)
    webhook_secret: SecretStr | None = None
    rate_per_second: float = Field(default=30.0, gt=0)
    per_chat_interval_seconds: float = Field(default=1.0, ge=0)
    give_up_after_seconds: float = Field(default=600.0, gt=0)  # polling failing this long: exit 1

    @property
    def enabled(self) -> bool:
        return self.token is not None and bool(self.token.get_secret_value())


class MatrixSettings(_Section):
    homeserver: str | None = None
    user_id: str | None = None
    password: SecretStr | None = None
    access_token: SecretStr | None = None
    store_path: Path = Path("data/matrix-store")
    device_name: str = "civicbot"
    require_encryption: bool = True
    allowed_homeservers: list[str] = Field(default_factory=list, examples=[["example.org"]])
    rate_per_second: float = Field(default=5.0, gt=0)
    undecryptable_grace_seconds: float = Field(default=120.0, gt=0)  # then ask the sender to resend

    @property
    def enabled(self) -> bool:
        return bool(self.homeserver)


class StaffSettings(_Section):
    members: list[str] = Field(default_factory=list, examples=[["telegram:123456", "matrix:@alice:example.org"]])
    admins: list[str] = Field(default_factory=list, examples=[["telegram:123456"]])
    matrix_room: str | None = None
    telegram_chat: int | None = None

    @field_validator("members", "admins")
    @classmethod
    def _qualified(cls, values: list[str]) -> list[str]:
        return _staff_entries(values)


def _staff_entries(values: list[str]) -> list[str]:
    for value in values:
        platform, _, user = value.partition(":")
        if platform not in {"telegram", "matrix", "console"} or not user:
            raise ValueError("each entry must look like 'telegram:123456' or 'matrix:@name:server'")
    return values


class SecuritySettings(_Section):
    key_file: Path = DEFAULT_KEY_FILE


class LimitsSettings(_Section):
    flood_messages: int = Field(default=20, ge=1)
    flood_window_seconds: float = Field(default=10.0, gt=0)
    max_message_chars: int = Field(default=2000, ge=1, le=20000)
    invite_valid_days: int = Field(default=14, ge=1, le=365)


class RetentionSettings(_Section):
    """How long each kind of record is kept, in days."""

    dialog_state_days: int = Field(default=14, ge=1)
    outbox_days: int = Field(default=30, ge=1)
    audit_days: int = Field(default=730, ge=1)
    inactive_participant_days: int = Field(default=730, ge=1)
    expired_invite_days: int = Field(default=30, ge=1)
    processed_event_days: int = Field(default=7, ge=1)  # dedupe memory for redelivered events
    checkin_days: int = Field(default=730, ge=1)  # associations' check-in history (cycles, answers, flags)
    bulletin_days: int = Field(default=365, ge=1)  # finished bulletin sends, with who received them
    cases_days: int = Field(default=90, ge=1)  # closed or withdrawn contact requests
    purge_interval_hours: float = Field(default=24.0, gt=0)


class OutboxSettings(_Section):
    max_attempts: int = Field(default=8, ge=1)
    base_backoff_seconds: float = Field(default=5.0, gt=0)
    max_backoff_seconds: float = Field(default=3600.0, gt=0)
    lease_seconds: float = Field(default=120.0, gt=0)
    poll_seconds: float = Field(default=2.0, gt=0)  # fallback: commits wake the senders at once
    batch_size: int = Field(default=256, ge=1)  # rows per claim and per outcome write, at most
    concurrency: int = Field(default=64, ge=1)  # recipients served at once (each in order)
    # Rows claimed and not yet recorded. Default: one second of sending at the platform's rate
    # (16 to 512), so a reply queued behind a bulletin waits about a second at most; it is also
    # how many rows a crash can leave sent but unrecorded (sent again after the lease).
    window: int | None = Field(default=None, ge=1)
    per_recipient_batch: int = Field(default=10, ge=1)  # one recipient's rows claimed together
    record_interval_seconds: float = Field(default=0.02, ge=0)  # outcomes gathered before a write

    def window_for(self, rate_per_second: float) -> int:
        if self.window is not None:
            return self.window
        return int(min(max(rate_per_second, 16), 512))


class I18nSettings(_Section):
    default_language: Literal["en", "ar", "ckb", "ku"] = "en"


class SurveySettings(_Section):
    directory: Path = Path("config/surveys")  # YAML definitions; an invalid one stops the bot at start
    reminder_after_hours: float = Field(default=48.0, gt=0)  # one reminder for unfinished surveys
    reminder_check_minutes: float = Field(default=15.0, gt=0)
    min_group_size: int = Field(default=5, ge=1)  # results with fewer respondents are not shown
    # Anonymous answers: taken out of the person's invitation every few minutes into an unlinked
    # ballot box, then stored in batches at random times (on average every ``anonymous_batch_hours``),
    # a survey's batch only once it holds ``anonymous_min_batch`` answers or the survey is closed.
    anonymous_handoff_minutes: float = Field(default=5.0, gt=0)
    anonymous_batch_hours: float = Field(default=6.0, gt=0)
    anonymous_min_batch: int = Field(default=3, ge=1)


class BulletinSettings(_Section):
    require_approval: bool = False  # four eyes: a second staff member approves before anything is sent
    progress_interval_seconds: float = Field(default=5.0, ge=1)  # at most one edit of the progress message per interval
    check_seconds: float = Field(default=15.0, gt=0)  # how often scheduled bulletins are checked for being due
    late_after_minutes: float = Field(default=5.0, ge=0)  # a send starting later than this gets a note in its summary


ContentPlatform = Literal["matrix", "telegram", "console"]


def _matrix_only() -> list[ContentPlatform]:
    return ["matrix"]


class CheckinSettings(_Section):
    """Check-ins with associations (templates in ``directory``; schedules are set by staff)."""

    directory: Path = Path("config/checkins")  # YAML templates; an invalid one stops the bot at start
    reminder_after_hours: float = Field(default=48.0, gt=0)  # one reminder for an unanswered check-in
    escalate_after_missed: int = Field(default=2, ge=1)  # missed in a row -> one notice to staff
    check_minutes: float = Field(default=1.0, gt=0)  # how often the scheduler wakes the feature
    # Where staff see what associations answered (notices and /checkin show): end-to-end encrypted
    # platforms only, by default. Elsewhere staff get notices without the answers.
    content_platforms: list[ContentPlatform] = Field(default_factory=_matrix_only)


class BrandingSettings(_Section):
    """The deploying organisation's texts: configuration, never code, so the bot stays neutral."""

    organisation: str | None = None
    matrix_address: str | None = None  # offered to Telegram users for confidential matters
    safe_channel: str | None = None  # where documents and media can be sent safely (the bot refuses them)


class ContactRoute(_Section):
    """Staff members who are told about new cases of these topics and languages (empty: any)."""

    topics: list[Literal["information", "meeting", "safety", "other"]] = Field(default_factory=list)
    languages: list[Literal["en", "ar", "ckb", "ku"]] = Field(default_factory=list)
    members: list[str] = Field(min_length=1)

    @field_validator("members")
    @classmethod
    def _qualified(cls, values: list[str]) -> list[str]:
        return _staff_entries(values)


class ContactsSettings(_Section):
    """Confidential contact requests. Without ``staff_public_key`` they are not offered."""

    staff_public_key: str | None = None  # printed by `civicbot cases keygen`; the private half stays off the server
    content_on_telegram: bool = False  # Telegram staff chats get content-free notices unless this is true
    routes: list[ContactRoute] = Field(default_factory=list)
    claim_within_hours: float = Field(default=24.0, gt=0)  # then one reminder in the staff room
    answer_within_hours: float = Field(default=48.0, gt=0)  # a person waiting longer: one reminder
    check_minutes: float = Field(default=15.0, gt=0)
    max_description_chars: int = Field(default=1000, ge=50, le=4000)
    max_messages_per_hour: int = Field(default=30, ge=1)  # per case, from the person

    @field_validator("staff_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        try:
            raw = base64.b64decode(value.strip().encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raw = b""
        if len(raw) != 32:
            raise ValueError("must be the public key printed by 'civicbot cases keygen'")
        return value.strip()

    @property
    def enabled(self) -> bool:
        return self.staff_public_key is not None


class LoggingSettings(_Section):
    format: Literal["text", "json"] = "text"  # json: one object per line for log collectors


class ObservabilitySettings(_Section):
    """Health, readiness and Prometheus metrics over HTTP; off unless ``listen`` is set."""

    listen: str | None = None  # e.g. "127.0.0.1:9464"; "0.0.0.0:9464" inside a container
    stats_refresh_seconds: float = Field(default=10.0, ge=0)  # database figures are read at most this often

    @field_validator("listen")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("must look like HOST:PORT, e.g. 127.0.0.1:9464")
        return value


class RuntimeSettings(_Section):
    """Several workers on one PostgreSQL: the leader's lock and a graceful stop."""

    shutdown_grace_seconds: float = Field(default=20.0, gt=0)  # SIGTERM: finish work in flight, then exit 0
    leader_retry_seconds: float = Field(default=1.0, gt=0)  # how often a follower tries to become the leader
    leader_check_seconds: float = Field(default=2.0, gt=0)  # how often the leader proves it still is
    leader_check_timeout_seconds: float = Field(default=3.0, gt=0)  # a leader that cannot prove it steps down


class Settings(BaseSettings):
    """The whole configuration. Sections mirror the TOML tables."""

    model_config = SettingsConfigDict(
        env_prefix="CIVICBOT_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    matrix: MatrixSettings = Field(default_factory=MatrixSettings)
    staff: StaffSettings = Field(default_factory=StaffSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    retention: RetentionSettings = Field(default_factory=RetentionSettings)
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    i18n: I18nSettings = Field(default_factory=I18nSettings)
    branding: BrandingSettings = Field(default_factory=BrandingSettings)
    surveys: SurveySettings = Field(default_factory=SurveySettings)
    checkins: CheckinSettings = Field(default_factory=CheckinSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    observability: ObservabilitySettings = Field(default_factory=ObservabilitySettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    bulletins: BulletinSettings = Field(default_factory=BulletinSettings)
    contacts: ContactsSettings = Field(default_factory=ContactsSettings)

    @property
    def has_platform(self) -> bool:
        return self.telegram.enabled or self.matrix.enabled

    @property
    def is_embedded_default(self) -> bool:
        """No platform, default SQLite: the console chat that may create its own keys."""
        return not self.has_platform and self.database.is_embedded_default


ENV_PREFIX = "CIVICBOT_"
# Variables with the prefix that are not settings: the file to read, and the test suite's own.
NOT_SETTINGS = ("CIVICBOT_CONFIG",)
NOT_SETTINGS_PREFIXES = ("CIVICBOT_TEST_",)
UNKNOWN_SETTING = "unknown setting (check the spelling against config/example.toml)"


def load_settings(config_file: Path | None = None) -> Settings:
    """Read the TOML file (``--config`` or ``CIVICBOT_CONFIG``) and the environment.

    The environment wins over the file. Raises :class:`ConfigError` with one line
    naming the offending key (and the variable or file it came from).
    """
    env = os.environ
    env_path = env.get("CIVICBOT_CONFIG")
    path = config_file or (Path(env_path) if env_path else None)
    if path is not None:
        _check_toml(path)
    _check_environment(env)

    class _FileSettings(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
            if path is not None:
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path, deep_merge=True))
            return tuple(sources)

    try:
        return _FileSettings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None
    except ValueError as exc:  # anything the checks above did not foresee
        raise ConfigError(f"configuration error: {_first_line(exc)}") from None


def missing_directories(settings: Settings) -> list[str]:
    """One line per configured directory (``<section>.directory``) that is not a directory.

    Only directories set in the file or the environment: the defaults are relative to the
    working directory and may be absent on purpose. Checked when the bot starts, not when
    the settings are read, so that a command such as ``keys generate`` works from anywhere.
    """
    problems = []
    for section_name in Settings.model_fields:
        section = getattr(settings, section_name)
        directory = getattr(section, "directory", None)
        if not isinstance(directory, Path) or "directory" not in section.model_fields_set:
            continue
        if not directory.exists():
            problems.append(f"{section_name}.directory: {directory} does not exist"
                            f"{_relative_hint(directory)}")
        elif not directory.is_dir():
            problems.append(f"{section_name}.directory: {directory} is not a directory")
    return problems


def _relative_hint(path: Path) -> str:
    return "" if path.is_absolute() else f" (relative to {Path.cwd()})"


def _check_toml(path: Path) -> None:
    """The file exists and is valid TOML; a syntax error is reported as ``file:line:column``."""
    if not path.is_file():
        raise ConfigError(f"configuration file {path} does not exist")
    try:
        with path.open("rb") as fh:
            tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
        if found is None:
            found = re.search(r"\s*\(at end of document\)$", message)
            where = f"{path}:{_line_count(path)}" if found else str(path)
        else:
            where = f"{path}:{found.group(1)}:{found.group(2)}"
        problem = message[: found.start()] if found else message
        raise ConfigError(f"configuration error: {where}: invalid TOML: {problem}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"configuration file {path} cannot be read ({type(exc).__name__})") from None


def _line_count(path: Path) -> int:
    return max(1, len(path.read_bytes().splitlines()))


def _check_environment(env: Mapping[str, str]) -> None:
    """Every ``CIVICBOT_*`` variable names a known setting, and list values are JSON.

    pydantic-settings silently ignores a variable whose section is misspelt
    (``CIVICBOT_TELGRAM__TOKEN``): the bot would start without the setting.
    """
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in NOT_SETTINGS or upper.startswith(NOT_SETTINGS_PREFIXES):
            continue
        parts = upper[len(ENV_PREFIX):].lower().split("__")
        key = ".".join(parts)
        section_field = Settings.model_fields.get(parts[0])
        if section_field is None or len(parts) > 2 or not all(parts):
            raise ConfigError(f"configuration error: {key} (from {name}): {UNKNOWN_SETTING}")
        if len(parts) == 1:  # a whole section as a JSON object
            if not _is_json(env[name], dict):
                raise ConfigError(f"configuration error: {name} must be a JSON object of the [{key}] settings, "
                                  f"e.g. {name}='{{\"key\": \"value\"}}'; or set one key with {name}__KEY")
            continue
        section_model = section_field.annotation
        field = section_model.model_fields.get(parts[1]) if section_model is not None else None  # type: ignore[union-attr]
        if field is None:
            raise ConfigError(f"configuration error: {key} (from {name}): {UNKNOWN_SETTING}")
        if get_origin(field.annotation) is list and not _is_json(env[name], list):
            example = json.dumps(field.examples[0] if field.examples else ["..."])
            raise ConfigError(f"configuration error: {key} (from {name}): a list is written as JSON, "
                              f"e.g. {name}='{example}'")


def _is_json(value: str, kind: type) -> bool:
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        return False
    return isinstance(parsed, kind)


def _describe(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    key = ".".join(str(part) for part in error["loc"])
    message = error["msg"]
    if error["type"] == "extra_forbidden":
        message = UNKNOWN_SETTING
    elif error["type"] == "missing":
        message = "required setting is missing"
    more = len(exc.errors()) - 1
    suffix = f" (and {more} more)" if more > 0 else ""
    return f"configuration error: {key}: {message}{suffix}"


def _first_line(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
