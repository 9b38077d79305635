"""Check-in templates: a questionnaire in YAML whose options may carry a flag for staff.

The questionnaire itself is a survey definition and is validated by the survey code (question
types, texts in every language, jumps and conditions); this module adds what check-ins need on
top (an option's ``flag``) and refuses what makes no sense for them (anonymity, open/close dates).
Every problem is reported as ``file:line: sentence``, like survey definitions.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.surveys.definitions import Survey
from bot.surveys.loading import Problem, SurveyError, parse_survey


class Flag(enum.StrEnum):
    """What an answer can raise to the staff at once."""

    NEED = "need"
    CALL_REQUEST = "call_request"
    SAFETY = "safety"


class TemplateError(SurveyError):
    """A template is invalid; ``problems`` lists every error found, with its line."""


_OPTION_KEYS = {"id", "label", "flag"}
_SURVEY_ONLY = {
    "anonymous": "a check-in is the association's answer, so it cannot be anonymous",
    "opens": "a check-in is sent on its schedule; it has no opening date",
    "closes": "a check-in closes when the next one is due; it has no closing date",
}
_FLAGGABLE = ("single_choice", "multiple_choice")


@dataclass(frozen=True, slots=True)
class RaisedFlag:
    flag: Flag
    question: str
    option: str


@dataclass(frozen=True, slots=True)
class CheckinTemplate:
    """A validated template: its questionnaire and the flags of its options."""

    questionnaire: Survey
    flags: Mapping[tuple[str, str], Flag]  # (question id, option id) -> flag

    @property
    def id(self) -> str:
        return self.questionnaire.id

    @property
    def source(self) -> str:
        return self.questionnaire.source

    def title(self, language: str) -> str:
        return self.questionnaire.text(self.questionnaire.title, language)

    def raised(self, answers: Mapping[str, Any]) -> list[RaisedFlag]:
        """The flags the answers raise, in question order."""
        found = []
        for question in self.questionnaire.questions:
            given = answers.get(question.id)
            chosen = given if isinstance(given, list) else [given] if given is not None else []
            for option in question.options:
                flag = self.flags.get((question.id, option.id))
                if flag is not None and option.id in {str(value) for value in chosen}:
                    found.append(RaisedFlag(flag, question.id, option.id))
        return found


def parse_template(text: str, file: str = "<check-in template>") -> CheckinTemplate:
    """Parse and validate one template; raises :class:`TemplateError` listing every problem."""
    problems: list[Problem] = []
    questionnaire: Survey | None = None
    try:
        questionnaire = parse_survey(text, file)
    except SurveyError as exc:
        problems.extend(exc.problems)
    flags: dict[tuple[str, str], Flag] = {}
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None  # already reported by the survey validation
    if isinstance(root, yaml.MappingNode):
        problems.extend(_check_checkin_keys(root, file, flags))
    if problems or questionnaire is None:
        raise TemplateError(sorted(set(problems), key=lambda p: (p.line, p.message)))
    return CheckinTemplate(questionnaire, flags)


def _scalar(node: yaml.Node) -> str | None:
    return str(node.value) if isinstance(node, yaml.ScalarNode) else None


def _items(node: yaml.MappingNode) -> Iterable[tuple[str | None, yaml.Node, int]]:
    for key, value in node.value:
        yield _scalar(key), value, key.start_mark.line + 1


def _check_checkin_keys(root: yaml.MappingNode, file: str, flags: dict[tuple[str, str], Flag]) -> list[Problem]:
    problems = []
    for key, value, line in _items(root):
        if key in _SURVEY_ONLY:
            problems.append(Problem(file, line, f"'{key}' is not used in check-in templates: {_SURVEY_ONLY[key]}"))
        if key != "questions" or not isinstance(value, yaml.SequenceNode):
            continue
        for question in value.value:
            if isinstance(question, yaml.MappingNode):
                problems.extend(_check_question(question, file, flags))
    return problems


def _check_question(question: yaml.MappingNode, file: str, flags: dict[tuple[str, str], Flag]) -> list[Problem]:
    problems: list[Problem] = []
    fields = {key: value for key, value, _line in _items(question)}
    qid = _scalar(fields["id"]) if "id" in fields else None
    qtype = _scalar(fields["type"]) if "type" in fields else None
    options = fields.get("options")
    if not isinstance(options, yaml.SequenceNode):
        return problems
    for option in options.value:
        if not isinstance(option, yaml.MappingNode):
            continue
        oid = None
        for key, value, line in _items(option):
            if key == "id":
                oid = _scalar(value)
            elif key not in _OPTION_KEYS:
                problems.append(Problem(file, line, f"unknown option key '{key}' in '{qid}' (allowed: id, label, flag)"))
        for key, value, line in _items(option):
            if key != "flag":
                continue
            flag = _scalar(value)
            if flag not in {f.value for f in Flag}:
                problems.append(Problem(file, line, f"flag '{flag}' of option '{oid}' in '{qid}' is not one of "
                                                    f"{', '.join(f.value for f in Flag)}"))
            elif qtype not in _FLAGGABLE:
                problems.append(Problem(file, line, f"only options of single_choice and multiple_choice questions "
                                                    f"can carry a flag ('{qid}' is {qtype})"))
            elif qid and oid:
                flags[(qid, oid)] = Flag(flag)
    return problems


def load_template(path: Path) -> CheckinTemplate:
    return parse_template(path.read_text(encoding="utf-8"), str(path))


def load_directory(directory: Path) -> dict[str, CheckinTemplate]:
    """Every ``*.yaml`` template in ``directory``; any invalid file raises :class:`TemplateError`."""
    templates: dict[str, CheckinTemplate] = {}
    problems: list[Problem] = []
    if not directory.is_dir():
        return templates
    for path in sorted(directory.glob("*.y*ml")):
        try:
            template = load_template(path)
        except SurveyError as exc:
            problems.extend(exc.problems)
            continue
        if template.id in templates:
            problems.append(Problem(str(path), 1, f"template id '{template.id}' is also used by "
                                                  f"{templates[template.id].source}"))
        templates[template.id] = template
    if problems:
        raise TemplateError(problems)
    return templates
