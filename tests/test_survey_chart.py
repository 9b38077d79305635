"""Result charts count people: their axes show whole numbers only."""

from __future__ import annotations

from pathlib import Path

from bot.core.security import KeyRing
from bot.surveys import results as survey_results
from bot.surveys.service import Surveys
from tests.test_surveys import launch, open_chat, settings_for, setup_group


async def test_chart_axes_of_counts_have_whole_numbers(sqlite_url: str, tmp_path: Path) -> None:
    async with open_chat(settings_for(sqlite_url, tmp_path), KeyRing.generate()) as chat:
        people = await setup_group(chat, {"7601": "en", "7602": "en", "7603": "en"})
        await launch(chat, "bulletin-feedback")
        for index, person in enumerate(people.values()):  # counts of 1 and 2: where fractional ticks appeared
            for step in ("/surveys", "start", "yes", "4" if index else "5", "skip", "2", "yes", "skip"):
                await person.send(step)
        services = chat.bot.services
        tr = services.i18n.translator("en")
        async with services.database.sessions() as session:
            results = await survey_results.compute(session, services.get(Surveys).definition("bulletin-feedback"), tr,
                                                   min_group_size=1)
        figure = survey_results.chart_figure(results, tr)
        assert figure is not None and len(figure.axes) >= 3
        for axes in figure.axes:
            low, high = axes.get_xlim()
            ticks = [t for t in axes.get_xticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks), ticks
        assert survey_results.render_chart(results, tr).startswith(b"\x89PNG")  # type: ignore[union-attr]
        text = survey_results.render_text(results, tr)
        assert "What kept you from reading it?\n  No answers yet." in text  # not "fewer than 1 people"
