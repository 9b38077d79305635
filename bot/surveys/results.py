"""Survey results for staff: response rate, counts per option, a bar chart.

Small numbers single people out, so any question answered by fewer than
``min_group_size`` people is not shown, and option counts below it show as "fewer than N".
"""

from __future__ import annotations

import io
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.core.i18n import Translator, plain
from bot.storage.models import SurveyAnswer, SurveyInvitation, SurveyResponse, SurveyRun
from bot.surveys.definitions import Survey
from bot.surveys.questions import QuestionType

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True, slots=True)
class OptionCount:
    option_id: str
    label: str
    count: int | None  # None: suppressed (fewer than the minimum group size)


@dataclass(frozen=True, slots=True)
class QuestionResult:
    question_id: str
    text: str
    type: str
    respondents: int
    suppressed: bool
    options: tuple[OptionCount, ...] = ()
    average: float | None = None


@dataclass(frozen=True, slots=True)
class SurveyResults:
    survey: Survey
    invited: int
    responses: int
    min_group_size: int
    questions: tuple[QuestionResult, ...]

    @property
    def rate(self) -> float:
        return self.responses / self.invited if self.invited else 0.0


async def compute(session: AsyncSession, survey: Survey, tr: Translator, min_group_size: int) -> SurveyResults:
    invited = await session.scalar(
        select(func.count()).select_from(SurveyInvitation).join(SurveyRun, SurveyRun.id == SurveyInvitation.run_id)
        .where(SurveyRun.survey_id == survey.id)
    ) or 0
    responses = await session.scalar(
        select(func.count()).select_from(SurveyResponse).where(SurveyResponse.survey_id == survey.id)
    ) or 0
    rows = await session.execute(
        select(SurveyAnswer.question_id, SurveyAnswer.response_id, SurveyAnswer.option_id, SurveyAnswer.number_value)
        .join(SurveyResponse, SurveyResponse.id == SurveyAnswer.response_id)
        .where(SurveyResponse.survey_id == survey.id)
    )
    respondents: dict[str, set[str]] = defaultdict(set)
    options: dict[str, Counter[str]] = defaultdict(Counter)
    numbers: dict[str, list[int]] = defaultdict(list)
    for question_id, response_id, option_id, number in rows:
        respondents[question_id].add(response_id)
        if option_id is not None:
            options[question_id][option_id] += 1
        if number is not None:
            numbers[question_id].append(number)
    language = tr.language
    results = []
    for question in survey.questions:
        count = len(respondents[question.id])
        suppressed = count < min_group_size
        option_counts: tuple[OptionCount, ...] = ()
        if question.type.is_choice and not suppressed:
            option_counts = tuple(
                OptionCount(oid, _option_label(survey, question.id, oid, tr),
                            n if (n := options[question.id][oid]) == 0 or n >= min_group_size else None)
                for oid in question.option_ids()
            )
        average = None
        if question.type is QuestionType.NUMBER and not suppressed and numbers[question.id]:
            average = sum(numbers[question.id]) / len(numbers[question.id])
        elif question.type is QuestionType.SCALE and not suppressed and options[question.id]:
            total = sum(options[question.id].values())
            average = sum(int(k) * v for k, v in options[question.id].items()) / total
        results.append(QuestionResult(question.id, survey.text(question.text, language), question.type, count,
                                      suppressed, option_counts, average))
    return SurveyResults(survey, invited, responses, min_group_size, tuple(results))


def _option_label(survey: Survey, question_id: str, option_id: str, tr: Translator) -> str:
    question = survey.question(question_id)
    if question.type is QuestionType.YES_NO:
        return tr._("Yes") if option_id == "yes" else tr._("No")
    for option in question.options:
        if option.id == option_id:
            return survey.text(option.label, tr.language)
    return option_id


def render_text(results: SurveyResults, tr: Translator) -> str:
    """The summary staff read in the chat."""
    survey = results.survey
    lines = [survey.text(survey.title, tr.language),
             tr._("Responses: %(responses)s of %(invited)s invited (%(rate)s%%)", responses=results.responses,
                  invited=results.invited, rate=round(results.rate * 100))]
    fewer = tr._("fewer than %(n)s", n=results.min_group_size)
    for question in results.questions:
        lines.append("")
        lines.append(question.text)
        if question.respondents == 0:
            lines.append("  " + tr._("No answers yet."))
            continue
        if question.suppressed:
            lines.append("  " + tr.n_("Not shown: fewer than %(n)s person answered.",
                                      "Not shown: fewer than %(n)s people answered.", results.min_group_size))
            continue
        for option in question.options:
            lines.append(f"  • {option.label}: {fewer if option.count is None else option.count}")
        if question.average is not None:
            average = round(question.average, 1)
            lines.append("  " + tr._("Average: %(value)s", value=average))
        if question.type is QuestionType.TEXT:
            lines.append("  " + tr.n_("%(n)s written answer (see the export).",
                                      "%(n)s written answers (see the export).", question.respondents))
    return "\n".join(lines)


def render_chart(results: SurveyResults, tr: Translator) -> bytes | None:
    """A PNG with one horizontal bar chart per choice question that may be shown; None if none may."""
    figure = chart_figure(results, tr)
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def chart_figure(results: SurveyResults, tr: Translator) -> Figure | None:
    """The chart's figure. Counts of people are whole numbers, and so are the axis ticks.

    Matplotlib (3.11+) shapes and orders Arabic and Sorani itself, so labels go in as they are.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    charted = [q for q in results.questions if q.options and not q.suppressed]
    if not charted:
        return None
    figure = Figure(figsize=(8, 2.2 * len(charted) + 0.8), dpi=100)
    FigureCanvasAgg(figure)
    figure.suptitle(results.survey.text(results.survey.title, tr.language), fontsize=13)
    for index, question in enumerate(charted, start=1):
        axes = figure.add_subplot(len(charted), 1, index)
        labels = [_short(o.label) for o in question.options]
        values = [o.count or 0 for o in question.options]
        bars = axes.barh(range(len(values)), values, color="#3b6ea5")
        axes.set_yticks(range(len(values)), labels, fontsize=9)
        axes.invert_yaxis()
        axes.set_title(_short(question.text, 90), fontsize=10, loc="right" if tr.rtl else "left")
        axes.spines[["top", "right"]].set_visible(False)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # no "0.5 people"
        for bar, option in zip(bars, question.options, strict=True):
            mark = f"<{results.min_group_size}" if option.count is None else str(option.count)
            axes.annotate(mark, (bar.get_width(), bar.get_y() + bar.get_height() / 2), xytext=(4, 0),
                          textcoords="offset points", va="center", fontsize=9)
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    return figure


def _short(text: str, limit: int = 40) -> str:
    text = plain(text)  # a chart is not a chat message: no directional marks
    return text if len(text) <= limit else text[: limit - 1] + "…"
