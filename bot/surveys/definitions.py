"""A survey definition as typed data: a questionnaire with a title, introduction, closing,
dates and anonymity. Loading and validating the YAML files is :mod:`bot.surveys.loading`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bot.surveys.questions import Questionnaire, Texts


@dataclass(frozen=True, slots=True, kw_only=True)
class Survey(Questionnaire):
    id: str
    title: Texts
    introduction: Texts
    closing: Texts
    opens: dt.date | None = None
    closes: dt.date | None = None
    anonymous: bool = False
    source: str = ""

    def is_open(self, today: dt.date) -> bool:
        return (self.opens is None or today >= self.opens) and (self.closes is None or today <= self.closes)
