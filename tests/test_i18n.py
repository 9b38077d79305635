"""Catalogs: complete, same placeholders as the source, correct plurals, compiled and loadable."""

from __future__ import annotations

import gettext
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from bot.core.i18n import ENDONYMS, FSI, LOCALES_DIR, PDI, I18n
from bot.core.model import Direction

LANGUAGES = ["en", "ar", "ckb", "ku"]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")
COMMAND = re.compile(r"(?<![\w/])/[a-z_]+")


def catalog(language: str):  # type: ignore[no-untyped-def]
    with (LOCALES_DIR / language / "LC_MESSAGES" / "bot.po").open("rb") as fh:
        return read_po(fh, locale=language)


def template_ids() -> set[str]:
    with (LOCALES_DIR / "bot.pot").open("rb") as fh:
        return {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(fh) if m.id}


def source_ids_in_code() -> set[str]:
    """Extract afresh from the code, so a string added without updating the catalogs fails here."""
    from babel.messages.extract import extract_from_dir

    root = Path(__file__).resolve().parent.parent
    found = set()
    for _, _, message, _, _ in extract_from_dir(
        str(root / "bot"), keywords={"_": None, "N_": None, "n_": (1, 2)}, method_map=[("**.py", "python")]
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_template_matches_the_code() -> None:
    missing = source_ids_in_code() - template_ids()
    assert not missing, f"run `make i18n-update`; not in locales/bot.pot: {sorted(missing)[:5]}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalog_is_complete(language: str) -> None:
    cat = catalog(language)
    ids = {m.id if isinstance(m.id, str) else m.id[0] for m in cat if m.id}
    assert template_ids() <= ids
    untranslated = [m.id for m in cat if m.id and (m.fuzzy or not (all(m.string) if isinstance(m.string, tuple)
                                                                        else m.string))]
    assert not untranslated, f"{language}: {len(untranslated)} untranslated, e.g. {untranslated[:3]}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_translations_keep_placeholders_and_commands(language: str) -> None:
    for message in catalog(language):
        if not message.id:
            continue
        sources = message.id if isinstance(message.id, tuple) else (message.id,)
        expected = set(PLACEHOLDER.findall(sources[-1]))
        commands = set(COMMAND.findall(sources[0]))
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        for form in forms:
            found = set(PLACEHOLDER.findall(form))
            # A plural form may leave the count implicit ("يوم واحد" for one day), never add or lose others.
            optional = {"n"} if isinstance(message.id, tuple) else set()
            assert expected - optional <= found <= expected, (language, sources[0], form)
            assert commands <= set(COMMAND.findall(form)), (language, sources[0], form)


def test_plural_forms() -> None:
    assert catalog("ar").num_plurals == 6
    for language in ("en", "ckb", "ku"):
        assert catalog(language).num_plurals == 2
    for message in catalog("ar"):
        if isinstance(message.id, tuple):
            assert len(message.string) == 6 and all(message.string)


def test_compiled_catalogs_load(tmp_path: Path) -> None:
    import shutil

    shutil.copytree(LOCALES_DIR, tmp_path / "locales")
    for mo in (tmp_path / "locales").glob("*/LC_MESSAGES/*.mo"):
        mo.unlink()
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "compile", "-D", "bot",
                    "-d", str(tmp_path / "locales")], check=True, capture_output=True)
    for language in LANGUAGES:
        mo = tmp_path / "locales" / language / "LC_MESSAGES" / "bot.mo"
        translations = gettext.translation("bot", str(tmp_path / "locales"), languages=[language])
        assert mo.exists()
        translated = translations.gettext("Choose your language.")
        assert translated and (language == "en" or translated != "Choose your language.")
    compiled = I18n(locales_dir=tmp_path / "locales")
    assert compiled.translator("ar")._("Choose your language.") == I18n().translator("ar")._("Choose your language.")


def test_right_to_left_languages_and_isolates() -> None:
    i18n = I18n()
    assert [info.code for info in i18n.languages] == list(ENDONYMS)
    directions = {info.code: info.direction for info in i18n.languages}
    assert directions == {"ar": Direction.RTL, "ckb": Direction.RTL, "ku": Direction.LTR, "en": Direction.LTR}
    tr = i18n.translator("ar")
    text = tr._("Thank you. You have joined %(organisation)s.", organisation="syr-docs 2")
    assert f"{FSI}syr-docs 2{PDI}" in text
    assert tr.rtl and not i18n.translator("ku").rtl


def test_arabic_plural_categories_are_distinct() -> None:
    tr = I18n().translator("ar")
    singular = "Invitation code: %(code)s\nIt can be used once, within %(n)s day."
    plural = "Invitation code: %(code)s\nIt can be used once, within %(n)s days."
    forms = {n: tr.n_(singular, plural, n, code="X") for n in (0, 1, 2, 3, 11, 100)}
    assert len(set(forms.values())) >= 4, forms  # Arabic distinguishes up to six forms


def test_language_hints_resolve() -> None:
    i18n = I18n()
    assert i18n.resolve("ar-SY") == "ar" and i18n.resolve("ckb") == "ckb" and i18n.resolve("de") == "en"
    assert i18n.resolve(None) == "en" and I18n(default_language="ar").resolve("fr") == "ar"
