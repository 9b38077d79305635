"""Check-in templates (validated like surveys, plus flags) and rhythms (due times in the
association's time zone, computed with APScheduler's triggers, across daylight-saving changes)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.checkins.problems import CheckinProblem
from bot.checkins.rhythm import (
    BAD_AT,
    BAD_CRON,
    BAD_EVERY,
    BAD_TIMEZONE,
    NO_RHYTHM,
    ONE_RHYTHM,
    TOO_OFTEN,
    build_rhythm,
)
from bot.checkins.templates import Flag, RaisedFlag, TemplateError, load_directory, parse_template

ROOT = Path(__file__).resolve().parent.parent
BERLIN = ZoneInfo("Europe/Berlin")

GOOD = """\
id: short
languages: [en, ar]
title: {en: Check-in, ar: متابعة}
introduction: {en: "How are you?", ar: "كيف حالكم؟"}
closing: {en: Thanks., ar: شكرًا.}
questions:
  - id: state
    type: single_choice
    text: {en: "How is it going?", ar: "كيف تسير الأمور؟"}
    options:
      - {id: fine, label: {en: Fine, ar: بخير}}
      - {id: danger, flag: safety, label: {en: In danger, ar: في خطر}}
  - id: needs
    type: multiple_choice
    optional: true
    text: {en: "Needs?", ar: "احتياجات؟"}
    options:
      - {id: food, flag: need, label: {en: Food, ar: غذاء}}
      - {id: call, flag: call_request, label: {en: A call, ar: اتصال}}
"""


def test_the_default_template_is_valid_in_four_languages_with_flags_and_one_tap_nothing_new() -> None:
    template = load_directory(ROOT / "config" / "checkins")["default"]
    survey = template.questionnaire
    assert survey.languages == ("en", "ar", "ckb", "ku") and not survey.anonymous
    assert [q.id for q in survey.questions] == ["situation", "needs", "updates", "call"]
    assert set(template.flags.values()) == set(Flag)
    assert template.flags[("call", "yes-call")] is Flag.CALL_REQUEST
    for language in survey.languages:
        for question in survey.questions:
            assert survey.text(question.text, language)
            for option in question.options:
                assert option.label[language]


def test_flags_raised_by_answers_in_question_order() -> None:
    template = parse_template(GOOD, "short.yaml")
    assert template.raised({"state": "fine", "needs": None}) == []
    assert template.raised({"state": "danger", "needs": ["call", "food"]}) == [
        RaisedFlag(Flag.SAFETY, "state", "danger"), RaisedFlag(Flag.NEED, "needs", "food"),
        RaisedFlag(Flag.CALL_REQUEST, "needs", "call")]


@pytest.mark.parametrize(("change", "expected"), [
    (("      - {id: food, flag: need,", "      - {id: food, flag: hunger,"),
     "short.yaml:18: flag 'hunger' of option 'food' in 'needs' is not one of need, call_request, safety"),
    (("      - {id: food, flag: need,", "      - {id: food, colour: red,"),
     "short.yaml:18: unknown option key 'colour' in 'needs' (allowed: id, label, flag)"),
    (("id: short\n", "id: short\nanonymous: true\n"),
     "short.yaml:2: 'anonymous' is not used in check-in templates: a check-in is the association's answer, "
     "so it cannot be anonymous"),
    (("title: {en: Check-in, ar: متابعة}", "title: {en: Check-in}"),
     "short.yaml:3: title has no text in the language 'ar'"),
])
def test_invalid_templates_are_explained_with_their_line(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(TemplateError) as raised:
        parse_template(GOOD.replace(*change), "short.yaml")
    assert expected in [str(p) for p in raised.value.problems]


def test_a_flag_on_a_question_without_options_is_refused_and_survey_problems_are_kept() -> None:
    text = GOOD + """\
  - id: note
    type: text
    next: nowhere
    text: {en: Note, ar: ملاحظة}
"""
    with pytest.raises(TemplateError) as raised:
        parse_template(text, "t.yaml")
    assert "t.yaml:22: next of 'note' refers to an unknown question 'nowhere'" in [str(p) for p in raised.value.problems]
    flagged = GOOD.replace("  - id: needs\n    type: multiple_choice", "  - id: needs\n    type: yes_no")
    with pytest.raises(TemplateError) as raised:
        parse_template(flagged, "t.yaml")
    assert any("takes no options" in str(p) for p in raised.value.problems)


def test_civicbot_checkin_validate(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("flag: safety", "flag: danger"), encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "bot", "checkin", "validate", str(ROOT / "config" / "checkins" /
                                                                                    "default.yaml"), str(bad)],
                            capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 1
    assert "default.yaml: valid (default, 4 questions, 7 flagged options, en, ar, ckb, ku)" in result.stdout
    assert result.stderr.strip() == (f"{bad}:12: flag 'danger' of option 'danger' in 'state' is not one of need, "
                                     "call_request, safety")


# -- rhythms ---------------------------------------------------------------------------------------

def local(value: dt.datetime, zone: ZoneInfo = BERLIN) -> str:
    return value.astimezone(zone).strftime("%a %Y-%m-%d %H:%M %Z")


def test_every_n_days_keeps_the_local_time_across_both_daylight_saving_changes() -> None:
    now = dt.datetime(2026, 3, 20, 7, 0, tzinfo=dt.UTC)  # Friday 08:00 in Berlin
    rhythm = build_rhythm(timezone="Europe/Berlin", every="7d", at="10:00", cron=None, now=now)
    due = rhythm.upcoming(now, 3)
    assert [local(d) for d in due] == ["Fri 2026-03-20 10:00 CET", "Fri 2026-03-27 10:00 CET",
                                       "Fri 2026-04-03 10:00 CEST"]
    assert due[2] - due[1] == dt.timedelta(days=7, hours=-1)  # the clocks went forward on 29 March
    autumn = build_rhythm(timezone="Europe/Berlin", every="2w", at="10:00", cron=None,
                          now=dt.datetime(2026, 10, 16, 12, 0, tzinfo=dt.UTC))
    assert [local(d) for d in autumn.upcoming(dt.datetime(2026, 10, 16, 12, tzinfo=dt.UTC), 2)] == [
        "Sat 2026-10-17 10:00 CEST", "Sat 2026-10-31 10:00 CET"]


def test_the_first_check_in_is_today_if_its_time_has_not_passed_else_tomorrow_and_due_is_strictly_after() -> None:
    morning = dt.datetime(2026, 5, 4, 6, 0, tzinfo=dt.UTC)  # 09:00 in Damascus (UTC+3 all year)
    rhythm = build_rhythm(timezone="Asia/Damascus", every="14d", at="10:00", cron=None, now=morning)
    first = rhythm.next_due(morning)
    assert first == dt.datetime(2026, 5, 4, 7, 0, tzinfo=dt.UTC)
    assert rhythm.next_due(first) == first + dt.timedelta(days=14)
    late = build_rhythm(timezone="Asia/Damascus", every="14d", at="10:00", cron=None, now=morning.replace(hour=8))
    assert late.next_due(morning.replace(hour=8)) == dt.datetime(2026, 5, 5, 7, 0, tzinfo=dt.UTC)


def test_cron_weekdays_count_from_sunday_as_cron_does_and_follow_daylight_saving() -> None:
    now = dt.datetime(2026, 3, 20, 7, 0, tzinfo=dt.UTC)
    monday = build_rhythm(timezone="Europe/Berlin", every=None, at=None, cron="0 10 * * 1", now=now)
    assert [local(d) for d in monday.upcoming(now, 2)] == ["Mon 2026-03-23 10:00 CET", "Mon 2026-03-30 10:00 CEST"]
    sunday = build_rhythm(timezone="Europe/Berlin", every=None, at=None, cron="30 9 * * 0,7", now=now)
    assert local(sunday.next_due(now)) == "Sun 2026-03-22 09:30 CET"
    weekdays = build_rhythm(timezone="Europe/Berlin", every=None, at=None, cron="0 10 1-7 * mon-fri", now=now)
    assert local(weekdays.next_due(now)) == "Wed 2026-04-01 10:00 CEST"


@pytest.mark.parametrize(("values", "message"), [
    ({"timezone": "Mars/Olympus", "every": "7d", "at": "10:00"}, BAD_TIMEZONE),
    ({"timezone": "../../etc/passwd", "every": "7d", "at": "10:00"}, BAD_TIMEZONE),
    ({"timezone": "UTC", "every": "0d", "at": "10:00"}, BAD_EVERY),
    ({"timezone": "UTC", "every": "53w", "at": "10:00"}, BAD_EVERY),
    ({"timezone": "UTC", "every": "fortnightly", "at": "10:00"}, BAD_EVERY),
    ({"timezone": "UTC", "every": "7d", "at": "24:00"}, BAD_AT),
    ({"timezone": "UTC", "every": "7d", "at": "ten"}, BAD_AT),
    ({"timezone": "UTC", "cron": "0 10 * *"}, BAD_CRON),
    ({"timezone": "UTC", "cron": "0 25 * * *"}, BAD_CRON),
    ({"timezone": "UTC", "cron": "0 10 * * 5-2"}, BAD_CRON),
    ({"timezone": "UTC", "cron": "*/30 * * * *"}, TOO_OFTEN),
    ({"timezone": "UTC", "cron": "0 8,20 * * *"}, TOO_OFTEN),
    ({"timezone": "UTC", "cron": "0 10 * * *", "every": "7d"}, ONE_RHYTHM),
    ({"timezone": "UTC", "every": "7d"}, NO_RHYTHM),
])
def test_bad_schedules_are_refused_with_one_clear_sentence(values: dict[str, str], message: str) -> None:
    arguments = {"timezone": None, "every": None, "at": None, "cron": None, **values}
    with pytest.raises(CheckinProblem) as raised:
        build_rhythm(now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC), **arguments)
    assert raised.value.message == message


def test_eastern_arabic_digits_are_read() -> None:
    rhythm = build_rhythm(timezone="Asia/Baghdad", every="١٤d", at="١٠:٣٠", cron=None,
                          now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    assert rhythm.every_days == 14 and rhythm.at == dt.time(10, 30)
