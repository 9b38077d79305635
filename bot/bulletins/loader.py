"""Bulletin files: YAML in ``config/bulletins/``, checked before anything is stored or sent.

```yaml
id: 2026-06-update
en:
  title: Update from the mechanism
  body: |
    A paragraph with **bold**, *italic* and a [link](https://example.org).

    - a list item
ar:
  title: ...
  body: |
    ...
```

Every problem is reported as ``file:line: sentence``, all of them at once, so whoever wrote
the file (not necessarily a programmer) can fix it in one pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.bulletins.definition import ID_PATTERN, LANGUAGES, Bulletin, BulletinText, make_text
from bot.core.problems import DefinitionError, Problem

_TEXT_KEYS = ("title", "body")


class BulletinError(DefinitionError):
    """A bulletin file is invalid; ``problems`` lists every error found, in line order."""


@dataclass(slots=True)
class _Node:
    """A YAML value with the 1-based line it starts on, and for text the line its content starts on."""

    value: Any
    line: int
    content_line: int
    duplicates: list[tuple[str, int, int]]  # (key, line, first line) of keys given twice


def _convert(node: yaml.Node, constructor: yaml.constructor.SafeConstructor) -> _Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        mapping: dict[Any, _Node] = {}
        duplicates: list[tuple[str, int, int]] = []
        for key_node, value_node in node.value:
            key = constructor.construct_object(key_node, deep=True)
            key = str(key) if not isinstance(key, (str, int, float, bool)) or isinstance(key, bool) else key
            if key in mapping:  # the first one counts; the second is reported
                duplicates.append((str(key), key_node.start_mark.line + 1, mapping[key].line))
                continue
            mapping[key] = _convert(value_node, constructor)
            mapping[key].line = key_node.start_mark.line + 1
        return _Node(mapping, line, line, duplicates)
    if isinstance(node, yaml.SequenceNode):
        return _Node([_convert(v, constructor) for v in node.value], line, line, [])
    # A block scalar (| or >) starts on the line after its indicator.
    content_line = line + 1 if isinstance(node, yaml.ScalarNode) and node.style in ("|", ">") else line
    return _Node(constructor.construct_object(node, deep=True), line, content_line, [])


def parse_bulletin(text: str, file: str = "<bulletin>") -> Bulletin:
    """Parse and check one bulletin file; raises :class:`BulletinError` listing every problem."""
    problems: list[Problem] = []

    def fail(line: int, message: str) -> None:
        problems.append(Problem(file, line, message))

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        reason = getattr(exc, "problem", None) or "syntax error"
        raise BulletinError([Problem(file, mark.line + 1 if mark else 1, f"This is not valid YAML ({reason}).")]) from None
    if root is None or not isinstance(root, yaml.MappingNode):
        raise BulletinError([Problem(file, 1, "A bulletin must be a mapping: an id, then a title and a body "
                                              f"for each language ({', '.join(LANGUAGES)}).")])
    try:
        doc = _convert(root, yaml.constructor.SafeConstructor())
    except yaml.YAMLError as exc:  # e.g. an unknown tag
        mark = getattr(exc, "problem_mark", None)
        raise BulletinError([Problem(file, mark.line + 1 if mark else 1, "This is not valid YAML.")]) from None
    for key, line, first in doc.duplicates:
        fail(line, f"'{key}' is given twice (first on line {first}).")

    id_node = doc.value.get("id")
    bulletin_id = ""
    if id_node is None:
        fail(1, "The bulletin has no id: add a line like 'id: 2026-06-update'.")
    elif not isinstance(id_node.value, str) or not ID_PATTERN.match(id_node.value):
        fail(id_node.line, "The id must be lowercase letters, digits, - or _ (at most 48), like 2026-06-update.")
    else:
        bulletin_id = id_node.value

    texts: list[BulletinText] = []
    for key, node in doc.value.items():
        if key == "id":
            continue
        if key not in LANGUAGES:
            if isinstance(key, str) and 2 <= len(key) <= 3 and key.isalpha() and key.islower():
                fail(node.line, f"'{key}' is not a language bulletins use ({', '.join(LANGUAGES)}).")
            else:
                fail(node.line, f"Unknown key '{key}': a bulletin has an id and one section per language "
                                f"({', '.join(LANGUAGES)}).")
            continue
        section = _language_section(str(key), node, fail)
        if section is not None:
            texts.append(section)
    if not any(key in LANGUAGES for key in doc.value):
        fail(1, f"The bulletin has no language section: add at least one of {', '.join(LANGUAGES)} "
                "with a title and a body.")
    if problems:
        raise BulletinError(sorted(problems, key=lambda p: p.line))
    return Bulletin(bulletin_id, tuple(texts), source=file)


def _language_section(language: str, node: _Node, fail: Any) -> BulletinText | None:
    if not isinstance(node.value, dict):
        fail(node.line, f"The section '{language}' must have a title and a body.")
        return None
    for key, line, first in node.duplicates:
        fail(line, f"'{key}' is given twice in '{language}' (first on line {first}).")
    section: dict[Any, _Node] = node.value
    for key, child in section.items():
        if key not in _TEXT_KEYS:
            fail(child.line, f"Unknown key '{key}' in '{language}': a language section has a title and a body.")
    title_node, body_node = section.get("title"), section.get("body")
    ok = True
    for name, field_node in (("title", title_node), ("body", body_node)):
        if field_node is None:
            fail(node.line, f"The section '{language}' has no {name}.")
            ok = False
        elif field_node.value is not None and not isinstance(field_node.value, str):
            fail(field_node.line, f"The {name} in '{language}' must be text.")
            ok = False
    if not ok:
        return None
    assert title_node is not None and body_node is not None
    text, problems = make_text(language, title_node.value or "", body_node.value or "")
    for problem in problems:
        if problem.line is None:
            fail(title_node.line if problem.field == "title" else body_node.line, problem.message)
        else:
            fail(body_node.content_line + _leading_blank_lines(body_node.value or "") + problem.line, problem.message)
    return text if not problems else None


def _leading_blank_lines(body: str) -> int:
    """make_text strips leading blank lines; line numbers must still count them."""
    return len(body) - len(body.lstrip("\n"))


def load_bulletin(path: Path) -> Bulletin:
    return parse_bulletin(path.read_text(encoding="utf-8"), str(path))
