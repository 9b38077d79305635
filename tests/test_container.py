"""The container image's settings, read from the Dockerfile as the image would apply them."""

from __future__ import annotations

import os

import pytest

from bot.config import TelegramSettings, load_settings
from tests.dockerfile import image_environment, instructions


@pytest.fixture(autouse=True)
def as_in_the_image(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CIVICBOT_"):
            monkeypatch.delenv(name)
    for name, value in image_environment().items():
        monkeypatch.setenv(name, value)


def test_the_webhook_listens_on_every_interface_inside_the_container_and_its_port_is_exposed() -> None:
    settings = load_settings()  # every CIVICBOT_* variable of the image is a known setting
    assert settings.telegram.webhook_listen == "0.0.0.0"
    exposed = {int(port.split("/")[0]) for instruction, args in instructions() if instruction == "EXPOSE"
               for port in args.split()}
    assert settings.telegram.webhook_port in exposed


def test_bare_metal_keeps_the_webhook_on_loopback() -> None:
    assert TelegramSettings().webhook_listen == "127.0.0.1"  # the default, without the image's environment


def test_the_image_starts_the_bot_with_its_state_in_the_volume() -> None:
    settings = load_settings()
    assert "////data/" in settings.database.url
    assert str(settings.security.key_file).startswith("/keys/"), "the key file lives apart from the data volume"
    assert ("CMD", '["civicbot", "run"]') in instructions()
