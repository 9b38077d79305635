"""The container image keeps the key file out of the database's volume: a backup of the data
volume must not carry the key that opens it (the README's own backup advice)."""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

from tests.dockerfile import DOCKERFILE, image_environment, instructions


def _volumes() -> list[PurePosixPath]:
    volumes: list[PurePosixPath] = []
    for instruction, rest in instructions():
        if instruction == "VOLUME":
            values = json.loads(rest) if rest.startswith("[") else rest.split()
            volumes += [PurePosixPath(v) for v in values]
    return volumes


def _volume_of(path: PurePosixPath, volumes: list[PurePosixPath]) -> PurePosixPath | None:
    holding = [v for v in volumes if path == v or v in path.parents]
    return max(holding, key=lambda v: len(v.parts)) if holding else None


def test_the_key_file_is_not_in_the_database_volume() -> None:
    env, volumes = image_environment(), _volumes()
    database = PurePosixPath(re.sub(r"^sqlite\+aiosqlite:///", "", env["CIVICBOT_DATABASE__URL"]))
    key_file = PurePosixPath(env["CIVICBOT_SECURITY__KEY_FILE"])
    data_volume = _volume_of(database, volumes)
    assert data_volume is not None, "the database lives in a volume"
    assert _volume_of(key_file, volumes) != data_volume, "the key file must not be backed up with the database"
    assert data_volume not in key_file.parents
    key_volume = _volume_of(key_file, volumes)
    assert key_volume is not None, "the key file lives in its own volume (or a mounted secret)"
    matrix_store = PurePosixPath(env["CIVICBOT_MATRIX__STORE_PATH"])
    assert _volume_of(matrix_store, volumes) != key_volume


def test_the_image_tells_how_to_create_the_key_file_in_its_own_volume() -> None:
    text = DOCKERFILE.read_text()
    key_dir = str(PurePosixPath(image_environment()["CIVICBOT_SECURITY__KEY_FILE"]).parent)
    assert re.search(rf"-v \S+:{re.escape(key_dir)} .*civicbot keys generate", text)
