"""Survey definitions: the shipped examples are valid; broken ones are reported by file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.surveys.flow import first_question, next_question, remaining
from bot.surveys.loading import SurveyError, load_directory, parse_survey

SURVEYS = Path(__file__).resolve().parent.parent / "config" / "surveys"

VALID = """\
id: demo
languages: [en, ar]
title: {en: Demo, ar: تجربة}
introduction: {en: Intro, ar: مقدمة}
closing: {en: Thanks, ar: شكرا}
questions:
  - id: q1
    type: yes_no
    text: {en: "Yes or no?", ar: نعم أم لا؟}
    next: {no: q3}
  - id: q2
    type: number
    min: 0
    max: 10
    text: {en: "How many?", ar: كم؟}
  - id: q3
    type: text
    optional: true
    show_if: {question: q1, equals: no}
    text: {en: "Why?", ar: لماذا؟}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SurveyError) as info:
        parse_survey(text, "broken.yaml")
    return [str(p) for p in info.value.problems]


def test_shipped_surveys_are_valid_in_four_languages() -> None:
    surveys = load_directory(SURVEYS)
    assert set(surveys) >= {"families-of-the-missing", "bulletin-feedback"}
    for survey in surveys.values():
        assert survey.languages == ("en", "ar", "ckb", "ku")
    assert surveys["families-of-the-missing"].anonymous
    types = {q.type for s in surveys.values() for q in s.questions}
    assert types == {"single_choice", "multiple_choice", "yes_no", "scale", "number", "text"}


def test_branching() -> None:
    survey = parse_survey(VALID)
    assert first_question(survey, {}) == "q1"
    assert next_question(survey, "q1", {"q1": "yes"}) == "q2"
    assert next_question(survey, "q2", {"q1": "yes", "q2": 3}) is None  # q3 hidden: show_if does not hold
    assert next_question(survey, "q1", {"q1": "no"}) == "q3"
    assert remaining(survey, "q1", {}) == 2


@pytest.mark.parametrize(("mutation", "expected"), [
    (("next: {no: q3}", "next: {no: q9}"), "broken.yaml:10: next of 'q1' refers to an unknown question 'q9'"),
    (("ar: كم؟}", "}"), "broken.yaml:15: question 'q2' text has no text in the language 'ar'"),
    (("equals: no}", "equals: maybe}"), "show_if of 'q3' expects 'maybe', not an answer of 'q1'"),
    (("question: q1, equals", "question: q3, equals"), "show_if of 'q3' refers to 'q3', which is not asked before it"),
    (("type: number", "type: essay"), "question 'q2' has type 'essay'"),
    (("min: 0\n    max: 10", "min: 10\n    max: 0"), "number 'q2' has min greater than max"),
    (("languages: [en, ar]", "languages: [en, ar, fr]"), "language 'fr' is not supported"),
    (("id: q2", "id: q1"), "question id 'q1' is used twice"),
    (("closing:", "closng:"), "unknown key 'closng'"),
    (("title: {en: Demo, ar: تجربة}", "title: {en: Demo, ar: تجربة, ku: Demo}"),
     "title has a text in 'ku', which the survey does not declare"),
])
def test_broken_definitions_are_explained(mutation: tuple[str, str], expected: str) -> None:
    old, new = mutation
    assert old in VALID
    found = problems(VALID.replace(old, new, 1))
    assert any(expected in p for p in found), found
    assert all(p.startswith("broken.yaml:") for p in found)


def test_cycles_in_next_are_found() -> None:
    text = VALID.replace("    max: 10\n", "    max: 10\n    next: q1\n")
    assert any("next makes a loop: q1 -> q2 -> q1" in p or "loop" in p for p in problems(text))


def test_not_yaml_and_not_a_survey() -> None:
    assert "not valid YAML" in problems("id: [unclosed\n")[0]
    assert "must be a mapping" in problems("- just\n- a list\n")[0]
    assert any("questions must list" in p for p in problems("id: x\nlanguages: [en]\ntitle: t\n"
                                                           "introduction: i\nclosing: c\n"))


def test_validate_command(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(VALID.replace("next: {no: q3}", "next: {no: q9}"))
    civicbot = str(Path(sys.executable).parent / "civicbot")
    result = subprocess.run([civicbot, "survey", "validate", str(broken), *map(str, SURVEYS.glob("*.yaml"))],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{broken}:10: next of 'q1' refers to an unknown question 'q9'" in result.stderr
    assert result.stdout.count(": valid (") == 2


def test_the_bot_refuses_an_invalid_survey(tmp_path: Path) -> None:
    directory = tmp_path / "surveys"
    directory.mkdir()
    (directory / "broken.yaml").write_text(VALID.replace("type: number", "type: essay"))
    civicbot = str(Path(sys.executable).parent / "civicbot")
    result = subprocess.run([civicbot, "run", "--console"], cwd=tmp_path, input="/help\n", capture_output=True,
                            text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "CIVICBOT_SURVEYS__DIRECTORY": str(directory)})
    assert result.returncode == 2
    assert "surveys.directory" in result.stderr and "broken.yaml:12" in result.stderr
    assert not (tmp_path / "data").exists()  # refused before creating anything


@pytest.mark.parametrize(("mutation", "expected"), [
    (("closing: {en: Thanks, ar: شكرا}\n", "closing: {en: Thanks, ar: شكرا}\ntitle: {en: Again, ar: مرة}\n"),
     "broken.yaml:6: the key 'title' appears twice (first on line 3)"),
    (("    min: 0\n", "    min: 0\n    min: 1\n"), "broken.yaml:14: the key 'min' appears twice (first on line 13)"),
    (("title: {en: Demo, ar: تجربة}", "title: {en: Demo, ar: تجربة, en: Demo 2}"),
     "broken.yaml:3: the key 'en' appears twice (first on line 3)"),
])
def test_a_duplicate_key_is_an_error(mutation: tuple[str, str], expected: str) -> None:
    assert problems(VALID.replace(*mutation)) == [expected]


@pytest.mark.parametrize(("mutation", "expected"), [
    # q1 is referenced by q3's show_if and has a jump: its wrong type is the only problem.
    (("    type: yes_no\n", "    type: yesno\n"),
     "broken.yaml:8: question 'q1' has type 'yesno'; use one of single_choice, multiple_choice, yes_no, scale, "
     "number, text"),
    # An unsupported language: not also "has a text in 'fr', which the survey does not declare" everywhere.
    (("languages: [en, ar]", "languages: [en, ar, fr]"), "broken.yaml:2: language 'fr' is not supported (ar, ckb, ku, en)"),
    # A min that is not a number: not also "needs min and max" for the same scale.
    (("    type: number\n    min: 0\n", "    type: scale\n    min: one\n"),
     "broken.yaml:13: min of 'q2' must be a whole number"),
    # A question without an id, referenced nowhere else: one line.
    (("  - id: q2\n", "  - ident: q2\n"), "broken.yaml:11: unknown question key 'ident' (did you mean 'id'?)"),
])
def test_one_mistake_gives_one_message(mutation: tuple[str, str], expected: str) -> None:
    text = VALID.replace(*mutation)
    if "fr]" in text:
        text = text.replace("ar: شكرا}", "ar: شكرا, fr: Merci}")
    assert problems(text) == [expected]
