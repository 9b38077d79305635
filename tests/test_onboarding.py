"""Onboarding, menu, language, erasure: the first dialogs, end to end on a real database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from bot.core.model import Direction
from bot.core.security import KeyRing
from bot.storage.models import Base, DialogState, Participant
from tests.support import make_settings, open_chat


async def table_counts(chat) -> dict[str, int]:  # type: ignore[no-untyped-def]
    counts = {}
    async with chat.bot.services.database.sessions() as session:
        for table in Base.metadata.sorted_tables:
            counts[table.name] = await session.scalar(select(func.count()).select_from(table))
    return counts


async def test_onboarding_in_english_by_buttons_and_numbers(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        amira = chat.person("1001")
        replies = await amira.send("/start")
        assert [c.label for c in replies[-1].choices] == ["العربية", "کوردی (سۆرانی)", "Kurdî (Kurmancî)", "English"]
        await amira.press("English")
        assert "Do you agree to your information being handled this way?" in amira.last.text
        assert "Never your name" in amira.last.text
        await amira.send("1")  # "I agree", by number
        assert "invitation code" in amira.last.text
        await amira.send("skip")  # by label, any case
        assert "bulletin" in amira.last.text and amira.last.choices[0].label == "Yes, send it to me"
        await amira.send("yes")  # the default answer comes first
        assert amira.inbox[-2].text.startswith("You are all set")
        assert amira.last.text.startswith("Main menu")
        async with chat.bot.services.database.sessions() as session:
            participant = await session.scalar(select(Participant))
            assert participant is not None and participant.language == "en"


async def test_onboarding_in_arabic_is_right_to_left(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        noor = chat.person("1002", language_hint="ar")
        await noor.send("/start")
        await noor.press("العربية")
        consent = noor.last
        assert consent.direction is Direction.RTL and consent.language == "ar"
        await noor.press(0)  # I agree
        await noor.press(0)  # Skip
        await noor.press(0)  # Yes, send me the bulletins
        menu = noor.last
        assert menu.direction is Direction.RTL
        assert menu.text != "Main menu. What would you like to do?"
        assert all(label.isascii() is False for label in (c.label for c in menu.choices))


async def test_decline_stores_nothing(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        karim = chat.person("1003")
        await karim.send("/start")
        await karim.press("English")
        await karim.press("I do not agree")
        assert "Nothing about you has been stored" in karim.last.text
        # The schema's version and the key check (which key file opens this database) say nothing of anyone.
        assert all(count == 0 for name, count in (await table_counts(chat)).items()
                   if name not in ("alembic_version", "key_check"))


async def test_free_text_where_a_choice_is_expected_repeats_the_question(db_url: str, tmp_path: Path,
                                                                        keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        p = chat.person("1004")
        await p.send("/start")
        replies = await p.send("banana")
        assert "number from 1 to \u20684\u2069" in replies[0].text
        assert replies[1].choices and replies[1].prompt_id != replies[0].prompt_id
        await p.send("٤")  # Eastern Arabic digit four: English
        assert "Do you agree" in p.last.text
        await p.send("i a")  # unambiguous prefix of "I agree"
        assert "invitation code" in p.last.text


async def test_dialog_survives_a_restart(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    settings = make_settings(db_url, tmp_path)
    async with open_chat(settings, keys) as chat:
        p = chat.person("1005")
        await p.send("/start")
        await p.press("Kurdî (Kurmancî)")
        prompt_before = p.last_prompt
    async with open_chat(settings, keys) as restarted:
        p2 = restarted.person("1005")
        await p2.send("1")  # continues at the consent step of the first instance
        assert p2.last.language == "ku"
        assert len(p2.last.choices) == 1  # the invitation step: only "Skip"
        assert p2.last.prompt_id != prompt_before.prompt_id


async def test_change_language_from_the_menu(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        p = chat.person("1006")
        for step in ("/start", "4", "1", "1"):
            await p.send(step)
        await p.send("/language")
        await p.press("کوردی (سۆرانی)")
        assert p.inbox[-2].language == "ckb" and p.inbox[-2].direction is Direction.RTL
        async with chat.bot.services.database.sessions() as session:
            assert (await session.scalar(select(Participant.language))) == "ckb"


async def test_delete_me_leaves_no_row_tied_to_the_person(db_url: str, tmp_path: Path, keys: KeyRing) -> None:
    async with open_chat(make_settings(db_url, tmp_path), keys) as chat:
        p = chat.person("1007")
        other = chat.person("2007")
        for person in (p, other):
            for step in ("/start", "4", "1", "1"):
                await person.send(step)
        before = await table_counts(chat)
        await p.send("/delete_me")
        await p.press("No, keep my data")
        assert (await table_counts(chat))["participants"] == 2
        await p.send("/delete_me")
        await p.press("Yes, erase everything")
        assert "has been erased" in p.last.text and "cannot erase" in p.last.text
        after = await table_counts(chat)
        assert after["participants"] == before["participants"] - 1
        assert after["participant_keys"] == before["participant_keys"] - 1
        assert after["participant_addresses"] == before["participant_addresses"] - 1
        pseudonym = keys.pseudonym("console", "1007")
        async with chat.bot.services.database.sessions() as session:
            assert await session.scalar(select(Participant).where(Participant.pseudonym == pseudonym)) is None
            assert await session.get(DialogState, pseudonym) is None
        await p.send("/menu")
        assert p.last.text == "Please send /start first."


def test_choices_accept_the_digits_of_arabic_and_sorani_keyboards() -> None:
    from bot.conversation.engine import match_choice
    from bot.core.model import Choice

    choices = (Choice("ar", "العربية"), Choice("ckb", "کوردی (سۆرانی)"), Choice("en", "English"))
    assert match_choice("٢", choices) == choices[1]  # Arabic-Indic two
    assert match_choice("۳", choices) == choices[2]  # Extended (Persian/Sorani) three
    assert match_choice("کوردی", choices) == choices[1]  # a prefix in Arabic script
    assert match_choice("٤", choices) is None
