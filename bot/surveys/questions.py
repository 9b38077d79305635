"""The question and answer model: typed data, independent of any file format.

Surveys use it (their YAML files are read by :mod:`bot.surveys.loading`), and so can any
other questionnaire (check-in templates): a :class:`Questionnaire` is an ordered list of
:class:`Question` with texts in its languages; :mod:`bot.surveys.flow` says which question
comes next. Answers are plain JSON values: an option id, a list of option ids, a number, a
text, or None for a skipped question.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

END = "end"
"""A ``next`` target that ends the questionnaire."""

Texts = Mapping[str, str]
"""One text per language code."""

Answers = Mapping[str, Any]
"""Question id -> answer given so far."""


class QuestionType(enum.StrEnum):
    SINGLE_CHOICE = "single_choice"
    MULTIPLE_CHOICE = "multiple_choice"  # tick several, then "Done"
    YES_NO = "yes_no"
    SCALE = "scale"  # min..max, optional end labels
    NUMBER = "number"  # a whole number, optional min/max
    TEXT = "text"  # free text, sealed at rest

    @property
    def is_choice(self) -> bool:
        """Answered by picking options (counted per option in results)."""
        return self in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE, QuestionType.YES_NO,
                        QuestionType.SCALE)

    @property
    def has_options(self) -> bool:
        """Options are declared by the author (not implied like yes/no or a scale)."""
        return self in (QuestionType.SINGLE_CHOICE, QuestionType.MULTIPLE_CHOICE)

    @property
    def branches(self) -> bool:
        """``next`` may depend on the answer (one answer, from a known set)."""
        return self in (QuestionType.SINGLE_CHOICE, QuestionType.YES_NO, QuestionType.SCALE)


@dataclass(frozen=True, slots=True)
class Option:
    id: str
    label: Texts


@dataclass(frozen=True, slots=True)
class Condition:
    """``show_if``: shown only when an earlier answer is one of ``values``."""

    question: str
    values: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Question:
    id: str
    type: QuestionType
    text: Texts
    options: tuple[Option, ...] = ()
    optional: bool = False
    show_if: Condition | None = None
    next: str | Mapping[str, str] | None = None  # a question id, or per option/yes/no
    min: int | None = None
    max: int | None = None
    min_label: Texts | None = None
    max_label: Texts | None = None
    max_length: int = 1000
    max_choices: int | None = None

    def option_ids(self) -> tuple[str, ...]:
        if self.type is QuestionType.YES_NO:
            return ("yes", "no")
        if self.type is QuestionType.SCALE and self.min is not None and self.max is not None:
            return tuple(str(v) for v in range(self.min, self.max + 1))
        return tuple(o.id for o in self.options)


@dataclass(frozen=True, slots=True, kw_only=True)
class Questionnaire:
    """Questions in order, with texts in ``languages`` (the first is the fallback)."""

    languages: tuple[str, ...]
    questions: tuple[Question, ...]
    _index: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._index.update({q.id: i for i, q in enumerate(self.questions)})

    def language_for(self, language: str) -> str:
        """The participant's language if the questionnaire has it, else its first language."""
        return language if language in self.languages else self.languages[0]

    def text(self, texts: Texts, language: str) -> str:
        return texts.get(self.language_for(language)) or texts[self.languages[0]]

    def question(self, question_id: str) -> Question:
        return self.questions[self._index[question_id]]

    def position(self, question_id: str) -> int:
        return self._index[question_id]
