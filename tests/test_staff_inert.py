"""What a participant typed is shown to staff inert (issue 13, "adversarial tests").

Markup is not interpreted (Telegram: no parse mode for such text; Matrix: escaped in
``formatted_body``), and bidi controls cannot reorder what staff read around it (overrides,
embeddings and isolates are taken out of the person's text, which is then isolated as a whole).
Checked on the renderers the staff-facing messages go through, and on the exports.
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from bot.core.model import Direction, Outbound
from bot.core.security import KeyRing
from bot.surveys import export as survey_export
from bot.surveys.service import Surveys
from bot.transports.matrix_render import render_message
from bot.transports.telegram_mapping import render
from tests.support import MovedClock, store_anonymous_answers
from tests.test_checkins import START, association, running, settings_for
from tests.test_survey_anonymity import answer, settings
from tests.test_surveys import launch, setup_group

HOSTILE = ("<b>urgent</b> <a href=\"http://evil.example\">open</a> *bold* [link](http://evil.example) "
           "\u202eevil\u202c \u2069\u202e\u2066tail\u202d")
OVERRIDES = re.compile("[\u202a-\u202e]")
ISOLATE = re.compile("\u2068([^\u2066-\u2069]*)\u2069")


def assert_inert_for_staff(message: Outbound) -> None:
    """The message as Matrix and Telegram would show it: no markup of the person's, no override."""
    assert "urgent" in message.text and "evil" in message.text
    assert not OVERRIDES.search(message.text), "an override or embedding from the person reaches staff"
    held = [m for m in ISOLATE.findall(message.text) if "urgent" in m]
    assert held, "the person's text is not isolated from the sentence around it"
    content = render_message(message)
    assert "<b>urgent</b>" not in content["formatted_body"] and "<a href" not in content["formatted_body"]
    assert "&lt;b&gt;urgent&lt;/b&gt;" in content["formatted_body"]
    assert not OVERRIDES.search(content["body"]) and not OVERRIDES.search(content["formatted_body"])
    for part in render(message):
        assert not part.html, "Telegram would parse the person's text as HTML"
        assert not OVERRIDES.search(part.text)


async def test_a_check_in_answer_relayed_to_the_staff_room_is_inert(sqlite_url: str, tmp_path: Path,
                                                                     keys: KeyRing) -> None:
    async with running(settings_for(sqlite_url, tmp_path), keys, MovedClock(START)) as bot:
        amal, _noor = await association(bot, languages=("4", "4"))  # onboarded to the end (bulletins: yes)
        staff = bot.chat.person("boss")
        await staff.send("/checkin now fam")
        await bot.drain()
        await amal.press("Answer now")
        await amal.press("Our members or our work are in danger")
        await amal.press("Done")
        await amal.send(HOSTILE)
        await amal.press("Yes, please call us")
        await bot.drain()
        (flag_notice,) = bot.staff_room()
        assert_inert_for_staff(flag_notice)
        (shown,) = await staff.send("/checkin show fam")  # the staff room's view of the last answer
        assert_inert_for_staff(shown)
        arabic = bot.bot.services.i18n.translator("ar")
        from bot.checkins import texts
        from bot.checkins.service import Checkins

        template = bot.bot.services.get(Checkins).templates.get("default")
        lines = texts.answer_lines(arabic, template, {"updates": HOSTILE}, nothing_new=False)
        rtl = Outbound(text="\n".join(lines), direction=Direction.RTL, language="ar")
        assert_inert_for_staff(rtl)


async def test_free_text_in_survey_exports_carries_no_bidi_override(sqlite_url: str, tmp_path: Path,
                                                                    keys: KeyRing) -> None:
    from tests.support import open_chat

    async with open_chat(settings(sqlite_url, tmp_path), keys) as chat:
        await setup_group(chat, {"8501": "en"})
        await launch(chat, "voices")
        await answer(chat, "8501", "1", HOSTILE)
        await store_anonymous_answers(chat.bot.services)
        surveys = chat.bot.services.get(Surveys)
        async with chat.bot.services.database.sessions() as session:
            header, rows = await survey_export.response_table(session, surveys, surveys.definition("voices"))
    (row,) = list(csv.DictReader(io.StringIO(survey_export.to_csv(header, rows).decode("utf-8-sig"))))
    assert "<b>urgent</b>" in row["story"], "kept as written: a file is not rendered"
    assert not OVERRIDES.search(row["story"]) and not re.search("[\u2066-\u2069]", row["story"])
