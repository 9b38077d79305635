"""The import contracts in pyproject.toml catch what they are meant to catch.

``make test`` runs ``lint-imports`` on the code as it is; here a copy of the package gets one
wrong import at a time (each like one that once crept in) and ``lint-imports`` must fail on it,
naming the contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (what, file to write in the copy, its content, the contract that must break)
WRONG_IMPORTS = [
    ("core imports a service (core/context.py once did)", "bot/core/context.py",
     "from bot.services.audit import AuditLog\n", "Layers"),
    ("core imports the dialogs (core/router.py once did)", "bot/core/router.py",
     "from bot.dialogs.menu import MenuDialog\n", "Layers"),
    ("core imports the handlers (core/router.py once did)", "bot/core/commands.py",
     "from bot.handlers.basics import START\n", "Layers"),
    ("a service imports a capability", "bot/services/offers.py",
     "from bot.surveys.service import Surveys\n", "Layers"),
    ("the menu and a dialog import each other (dialogs/menu.py and dialogs/survey.py once did)",
     "bot/dialogs/offers.py", "from bot.dialogs.menu import MenuDialog\n", "No import cycles"),
    ("a service imports python-telegram-bot", "bot/services/notify.py", "import telegram\n", "platform libraries"),
    ("a dialog imports matrix-nio", "bot/dialogs/rooms.py", "from nio import AsyncClient\n", "platform libraries"),
]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--config", str(root / "pyproject.toml")], cwd=root,
                          env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    copy = tmp_path_factory.mktemp("pristine")
    shutil.copytree(REPO / "bot", copy / "bot", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    return copy


def test_the_code_keeps_every_contract(pristine: Path) -> None:
    result = lint_imports(pristine)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(("what", "path", "content", "contract"), WRONG_IMPORTS, ids=[w[0] for w in WRONG_IMPORTS])
def test_a_wrong_import_breaks_a_contract(pristine: Path, tmp_path: Path, what: str, path: str, content: str,
                                          contract: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(pristine, copy)
    target = copy / path
    target.write_text(content)
    if "offers.py" in path and "dialogs" in path:  # the other half of the cycle
        menu = copy / "bot/dialogs/menu.py"
        menu.write_text(menu.read_text() + "\nfrom bot.dialogs import offers  # noqa: E402\n")
    result = lint_imports(copy)
    assert result.returncode != 0, f"{what}: not caught\n{result.stdout[-2000:]}"
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, f"{what}: expected the '{contract}' contract to break\n{result.stdout[-2000:]}"
