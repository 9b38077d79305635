"""Survey definitions: YAML files in ``config/surveys/``, validated before the bot uses them.

Validation reports every problem with its file, line and a plain sentence, so the person
who wrote the questionnaire (not necessarily a programmer) can fix it.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from bot.core.i18n import LANGUAGES
from bot.core.problems import DefinitionError, Problem
from bot.surveys.definitions import Survey
from bot.surveys.questions import END, Condition, Option, Question, QuestionType

SUPPORTED_LANGUAGES = LANGUAGES
QUESTION_TYPES = tuple(t.value for t in QuestionType)
_ID = re.compile(r"^[a-z][a-z0-9_-]{0,47}$")
_TOP_KEYS = {"id", "title", "languages", "introduction", "closing", "opens", "closes", "anonymous", "questions"}
_QUESTION_KEYS = {"id", "type", "text", "options", "optional", "show_if", "next", "min", "max", "min_label",
                  "max_label", "max_length", "max_choices"}

class SurveyError(DefinitionError):
    """A definition is invalid; ``problems`` lists every error found."""


# -- loading with line numbers ----------------------------------------------------


class _Located:
    """A YAML value with the line it came from (1-based)."""

    __slots__ = ("value", "line")

    def __init__(self, value: Any, line: int) -> None:
        self.value = value
        self.line = line


def _convert(node: yaml.Node, scalars: yaml.constructor.SafeConstructor, check: _Checker) -> _Located:
    """Located values; a key given twice in one mapping is a problem (YAML would keep the last silently)."""
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, _Located] = {}
        first: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = _convert(key_node, scalars, check).value
            key_line = key_node.start_mark.line + 1
            if key in first:
                check.fail(key_line, f"the key '{key}' appears twice (first on line {first[key]})")
                continue
            first[key] = key_line
            mapping[key] = _convert(value_node, scalars, check)
        return _Located(mapping, line)
    if isinstance(node, yaml.SequenceNode):
        return _Located([_convert(v, scalars, check) for v in node.value], line)
    return _Located(scalars.construct_object(node, deep=True), line)


def _unknown_keys(check: _Checker, mapping: Mapping[Any, _Located], allowed: set[str], what: str) -> set[str]:
    """Report keys that are not allowed; returns the allowed keys they look like a misspelling of,
    so that a misspelt key is one problem, not also a missing one."""
    meant: set[str] = set()
    for key, located in mapping.items():
        if key in allowed:
            continue
        close = difflib.get_close_matches(str(key), sorted(allowed - set(mapping)), n=1, cutoff=0.5)
        if close:
            meant.add(close[0])
            check.fail(located.line, f"unknown {what} '{key}' (did you mean '{close[0]}'?)")
        else:
            check.fail(located.line, f"unknown {what} '{key}' (allowed: {', '.join(sorted(allowed))})")
    return meant


class _Checker:
    """Collects problems while turning located YAML into a :class:`Survey`."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []
        self.languages: tuple[str, ...] = ()  # declared and supported
        self.declared: tuple[str, ...] = ()  # as written, unsupported ones included (reported once)
        self.broken: set[str] = set()  # questions with a problem of their own: references to them are not

    def fail(self, line: int, message: str) -> None:
        self.problems.append(Problem(self.file, line, message))

    def texts(self, located: _Located | None, what: str, line: int) -> dict[str, str]:
        """A text in every language the survey declares."""
        if located is None:
            self.fail(line, f"{what} is missing")
            return {}
        value = located.value
        if isinstance(value, str) and len(self.languages) == 1:
            return {self.languages[0]: value}
        if not isinstance(value, dict):
            self.fail(located.line, f"{what} must give a text for each language ({', '.join(self.languages)})")
            return {}
        texts: dict[str, str] = {}
        for language in self.languages:
            entry = value.get(language)
            if entry is None or not isinstance(entry.value, str) or not entry.value.strip():
                self.fail(located.line, f"{what} has no text in the language '{language}'")
            else:
                texts[language] = entry.value.strip()
        for language, entry in value.items():
            if language not in self.declared:
                self.fail(entry.line, f"{what} has a text in '{language}', which the survey does not declare")
        return texts

    def integer(self, located: _Located | None, what: str) -> int | None:
        if located is None:
            return None
        if isinstance(located.value, bool) or not isinstance(located.value, int):
            self.fail(located.line, f"{what} must be a whole number")
            return None
        return int(located.value)

    def date(self, located: _Located | None, what: str) -> dt.date | None:
        if located is None:
            return None
        if isinstance(located.value, dt.date):
            return located.value
        self.fail(located.line, f"{what} must be a date like 2026-12-31")
        return None


def parse_survey(text: str, file: str = "<survey>") -> Survey:
    """Parse and validate one definition; raises :class:`SurveyError` listing every problem."""
    check = _Checker(file)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise SurveyError([Problem(file, (mark.line + 1) if mark else 1,
                                   f"this is not valid YAML ({getattr(exc, 'problem', None) or 'syntax error'})")]) from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise SurveyError([Problem(file, 1, "a survey must be a mapping with id, title, languages and questions")])
    doc = _convert(root, yaml.constructor.SafeConstructor(), check).value
    misspelt = _unknown_keys(check, doc, _TOP_KEYS, "key")

    survey_id = doc.get("id")
    if (survey_id is None and "id" not in misspelt) or (
            survey_id is not None and (not isinstance(survey_id.value, str) or not _ID.match(survey_id.value))):
        check.fail(survey_id.line if survey_id else 1, "id must be lowercase letters, digits, - or _ (like needs-2026)")

    languages_node = doc.get("languages")
    languages: tuple[str, ...] = ()
    if languages_node is None or not isinstance(languages_node.value, list) or not languages_node.value:
        check.fail(languages_node.line if languages_node else 1, "languages must list at least one language")
    else:
        languages = tuple(str(item.value) for item in languages_node.value)
        for item in languages_node.value:
            if item.value not in SUPPORTED_LANGUAGES:
                check.fail(item.line, f"language '{item.value}' is not supported ({', '.join(SUPPORTED_LANGUAGES)})")
        if len(set(languages)) != len(languages):
            check.fail(languages_node.line, "a language is listed twice")
    check.declared = languages
    check.languages = tuple(lang for lang in languages if lang in SUPPORTED_LANGUAGES)

    title = check.texts(doc.get("title"), "title", 1)
    introduction = check.texts(doc.get("introduction"), "introduction", 1)
    closing = check.texts(doc.get("closing"), "closing", 1)
    opens = check.date(doc.get("opens"), "opens")
    closes = check.date(doc.get("closes"), "closes")
    if opens and closes and closes < opens:
        check.fail(doc["closes"].line, "closes is before opens")
    anonymous_node = doc.get("anonymous")
    if anonymous_node is not None and not isinstance(anonymous_node.value, bool):
        check.fail(anonymous_node.line, "anonymous must be true or false")

    questions_node = doc.get("questions")
    questions: list[Question] = []
    lines: dict[str, int] = {}
    if questions_node is None or not isinstance(questions_node.value, list) or not questions_node.value:
        check.fail(questions_node.line if questions_node else 1, "questions must list at least one question")
    else:
        for node in questions_node.value:
            question = _question(check, node, lines)
            if question is not None:
                questions.append(question)
    _check_references(check, questions, lines)
    if check.problems:
        raise SurveyError(sorted(check.problems, key=lambda p: p.line))
    return Survey(
        id=str(survey_id.value), title=title, languages=languages, introduction=introduction, closing=closing,  # type: ignore[union-attr]
        questions=tuple(questions), opens=opens, closes=closes,
        anonymous=bool(anonymous_node.value) if anonymous_node else False, source=file,
    )


def _question(check: _Checker, node: _Located, lines: dict[str, int]) -> Question | None:
    if not isinstance(node.value, dict):
        check.fail(node.line, "each question must be a mapping with id, type and text")
        return None
    q = node.value
    misspelt = _unknown_keys(check, q, _QUESTION_KEYS, "question key")
    qid_node = q.get("id")
    qid = str(qid_node.value) if qid_node is not None else ""
    if not _ID.match(qid) or qid == END:
        if qid_node is not None or "id" not in misspelt:
            check.fail(qid_node.line if qid_node else node.line,
                       "each question needs an id of lowercase letters, digits, - or _")
        check.broken.add(qid)
        qid = qid or f"line-{node.line}"
    if qid in lines:
        check.fail(node.line, f"question id '{qid}' is used twice (first on line {lines[qid]})")
    lines[qid] = node.line
    qtype_node = q.get("type")
    raw_type = qtype_node.value if qtype_node is not None else None
    if raw_type not in QUESTION_TYPES:
        if qtype_node is not None or "type" not in misspelt:
            check.fail(qtype_node.line if qtype_node else node.line,
                       f"question '{qid}' has type '{raw_type}'; use one of {', '.join(QUESTION_TYPES)}")
        check.broken.add(qid)  # whatever refers to it is not checked further: one mistake, one message
        return None
    qtype = QuestionType(raw_type)
    text = check.texts(q.get("text"), f"question '{qid}' text", node.line)
    options: list[Option] = []
    if qtype.has_options:
        opts = q.get("options")
        if opts is None or not isinstance(opts.value, list) or len(opts.value) < 2:
            check.fail(opts.line if opts else node.line, f"question '{qid}' needs at least two options")
        else:
            seen: set[str] = set()
            for opt in opts.value:
                if not isinstance(opt.value, dict) or "id" not in opt.value:
                    check.fail(opt.line, f"each option of '{qid}' needs an id and a label")
                    continue
                oid = str(opt.value["id"].value)
                if not _ID.match(oid) or oid in seen:
                    check.fail(opt.line, f"option id '{oid}' of '{qid}' is invalid or used twice")
                seen.add(oid)
                options.append(Option(oid, check.texts(opt.value.get("label"), f"option '{oid}' of '{qid}'", opt.line)))
    elif "options" in q:
        check.fail(q["options"].line, f"question '{qid}' of type {qtype} takes no options")
    before = len(check.problems)
    minimum, maximum = check.integer(q.get("min"), f"min of '{qid}'"), check.integer(q.get("max"), f"max of '{qid}'")
    bounds_readable = len(check.problems) == before
    min_label = max_label = None
    if qtype is QuestionType.SCALE:
        if bounds_readable and (minimum is None or maximum is None or not 0 <= minimum < maximum or maximum - minimum > 10):
            check.fail(node.line, f"scale '{qid}' needs min and max with min < max and at most 11 steps (like 1 and 5)")
        min_label = check.texts(q["min_label"], f"min_label of '{qid}'", node.line) if "min_label" in q else None
        max_label = check.texts(q["max_label"], f"max_label of '{qid}'", node.line) if "max_label" in q else None
    if qtype is QuestionType.NUMBER and minimum is not None and maximum is not None and minimum > maximum:
        check.fail(node.line, f"number '{qid}' has min greater than max")
    max_length = check.integer(q.get("max_length"), f"max_length of '{qid}'") or 1000
    if qtype is QuestionType.TEXT and not 1 <= max_length <= 4000:
        check.fail(q["max_length"].line, f"max_length of '{qid}' must be between 1 and 4000")
    max_choices = check.integer(q.get("max_choices"), f"max_choices of '{qid}'")
    optional_node = q.get("optional")
    if optional_node is not None and not isinstance(optional_node.value, bool):
        check.fail(optional_node.line, f"optional of '{qid}' must be true or false")
    show_if = None
    if "show_if" in q:
        cond = q["show_if"].value
        if not isinstance(cond, dict) or "question" not in cond or not ({"equals", "in"} & set(cond)):
            check.fail(q["show_if"].line, f"show_if of '{qid}' needs 'question' and 'equals' (or 'in')")
        else:
            values = cond["in"].value if "in" in cond else [cond["equals"]]
            show_if = Condition(str(cond["question"].value),
                                tuple(_answer_text(v.value) for v in values if isinstance(v, _Located)))
    nxt: str | dict[str, str] | None = None
    for key in ("next", "show_if"):
        if key in q:
            lines[f"{qid}.{key}"] = q[key].line
    if "next" in q:
        raw = q["next"].value
        if isinstance(raw, str):
            nxt = raw
        elif isinstance(raw, dict) and qtype.branches:
            nxt = {_answer_text(k): str(v.value) for k, v in raw.items()}
        else:
            check.fail(q["next"].line, f"next of '{qid}' must be a question id, or a mapping from answers "
                                       "(single choice, yes/no, scale) to question ids")
    return Question(qid, qtype, text, tuple(options), bool(optional_node.value) if optional_node else False,
                    show_if, nxt, minimum, maximum, min_label, max_label, max_length, max_choices)


def _answer_text(value: Any) -> str:
    """YAML reads ``yes`` as True: bring answers back to the ids the bot uses."""
    if value is True:
        return "yes"
    if value is False:
        return "no"
    return str(value)


def _check_references(check: _Checker, questions: list[Question], lines: dict[str, int]) -> None:
    ids = [q.id for q in questions]
    position = {qid: i for i, qid in enumerate(ids)}
    for i, q in enumerate(questions):
        line = lines.get(q.id, 1)
        next_line, show_line = lines.get(f"{q.id}.next", line), lines.get(f"{q.id}.show_if", line)
        if q.show_if is not None and q.show_if.question not in check.broken:
            target = q.show_if.question
            if target not in position:
                check.fail(show_line, f"show_if of '{q.id}' refers to an unknown question '{target}'")
            elif position[target] >= i:
                check.fail(show_line, f"show_if of '{q.id}' refers to '{target}', which is not asked before it")
            else:
                valid = questions[position[target]].option_ids()
                for value in q.show_if.values:
                    if valid and value not in valid:
                        check.fail(show_line, f"show_if of '{q.id}' expects '{value}', not an answer of '{target}'")
        targets = list(q.next.values()) if isinstance(q.next, Mapping) else [q.next] if q.next else []
        for target in targets:
            if target != END and target not in position and target not in check.broken:
                check.fail(next_line, f"next of '{q.id}' refers to an unknown question '{target}'")
        if isinstance(q.next, Mapping):
            for answer in q.next:
                if answer not in q.option_ids():
                    check.fail(next_line, f"next of '{q.id}' names '{answer}', which is not one of its answers")
        if q.max_choices is not None and not 1 <= q.max_choices <= len(q.options):
            check.fail(line, f"max_choices of '{q.id}' must be between 1 and the number of options")
    _check_cycles(check, questions, lines, position)


def _successors(q: Question, i: int, ids: list[str]) -> Iterator[str]:
    if q.next is None:
        if i + 1 < len(ids):
            yield ids[i + 1]
        return
    targets = list(q.next.values()) if isinstance(q.next, Mapping) else [q.next]
    for target in targets:
        if target != END:
            yield target
    if isinstance(q.next, Mapping) and set(q.next) != set(q.option_ids()) and i + 1 < len(ids):
        yield ids[i + 1]  # answers without a jump continue in order


def _check_cycles(check: _Checker, questions: list[Question], lines: dict[str, int], position: dict[str, int]) -> None:
    ids = [q.id for q in questions]
    graph = {q.id: [t for t in _successors(q, i, ids) if t in position] for i, q in enumerate(questions)}
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt] if nxt in path else [node, nxt]
                check.fail(lines.get(node, 1), "next makes a loop: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for qid in ids:
        if qid not in state:
            visit(qid, [qid])


def load_survey(path: Path) -> Survey:
    return parse_survey(path.read_text(encoding="utf-8"), str(path))


def load_directory(directory: Path) -> dict[str, Survey]:
    """Every ``*.yaml`` survey in ``directory``; one invalid file stops the bot (SurveyError)."""
    surveys: dict[str, Survey] = {}
    problems: list[Problem] = []
    if not directory.is_dir():
        return surveys
    for path in sorted(directory.glob("*.y*ml")):
        try:
            survey = load_survey(path)
        except SurveyError as exc:
            problems.extend(exc.problems)
            continue
        if survey.id in surveys:
            problems.append(Problem(str(path), 1, f"survey id '{survey.id}' is also used by {surveys[survey.id].source}"))
        surveys[survey.id] = survey
    if problems:
        raise SurveyError(problems)
    return surveys
