"""The search's candidates plot names each candidate by its parameter values (read from the
matplotlib figure's text, not its pixels); no Spark session is started."""

from __future__ import annotations

import itertools

import pytest

from synapse_ml_track.plots import candidates_figure
from synapse_ml_track.spark.search import Candidate, Outcome


def outcome(combos: list[dict], best: int) -> Outcome:
    found = [Candidate(index, combo) for index, combo in enumerate(combos)]
    scores = {c.index: {"f1": 0.5 + c.index / 100, "f1_std": 0.01} for c in found}
    result = Outcome(found, scores, {})
    result.best = found[best]
    return result


@pytest.fixture
def draw():
    def draw(combos: list[dict], best: int = 0):
        return candidates_figure(outcome(combos, best).table("f1"), "f1", "title").axes[0]

    return draw


def labels(axes) -> list[str]:
    return [text.get_text() for text in axes.get_yticklabels()]


def test_each_candidate_of_a_grid_is_labelled_with_its_values(draw):
    grid = [{"elasticNetParam": e, "regParam": r} for e, r in itertools.product([0.0, 0.5, 1.0], [0.0, 0.01, 0.1, 0.3])]
    axes = draw(grid, best=6)
    assert labels(axes) == [
        f"{i}: elasticNetParam={c['elasticNetParam']}, regParam={c['regParam']}" for i, c in enumerate(grid)
    ]
    assert labels(axes)[6] == "6: elasticNetParam=0.5, regParam=0.1"
    # The label sits on the row where that candidate's metric is drawn.
    (points, *_), ticks = axes.lines, list(axes.get_yticks())
    assert [ticks.index(y) for y in points.get_ydata()] == list(range(12))
    assert list(points.get_xdata()) == pytest.approx([0.5 + i / 100 for i in range(12)])
    assert axes.yaxis_inverted()  # candidate 0 on top, as in candidates.csv


def test_the_best_candidate_is_starred_and_its_label_bold(draw):
    axes = draw([{"regParam": value} for value in (0.0, 0.1, 0.2)], best=1)
    star = next(line for line in axes.lines if line.get_label() == "best")
    assert (list(star.get_xdata()), list(star.get_ydata())) == ([pytest.approx(0.51)], [axes.get_yticks()[1]])
    assert [text.get_fontweight() for text in axes.get_yticklabels()] == ["normal", "bold", "normal"]


def test_drawn_floats_are_rounded_but_kept_apart(draw):
    combos = [
        {"maxIter": 20, "regParam": 0.023478512, "family": "binomial", "fitIntercept": True},
        {"maxIter": 43, "regParam": 0.000113094, "family": "auto", "fitIntercept": False},
        {"maxIter": 7, "regParam": 0.012341, "family": "auto", "fitIntercept": True},
        {"maxIter": 7, "regParam": 0.012349, "family": "auto", "fitIntercept": True},
    ]
    assert labels(draw(combos)) == [
        "0: maxIter=20, regParam=0.02348, family=binomial, fitIntercept=True",
        "1: maxIter=43, regParam=0.0001131, family=auto, fitIntercept=False",
        "2: maxIter=7, regParam=0.01234, family=auto, fitIntercept=True",
        "3: maxIter=7, regParam=0.01235, family=auto, fitIntercept=True",
    ]
    assert labels(draw([{"regParam": 0.023478512}, {"regParam": 1.5e-05}, {"regParam": 1234.5678}])) == [
        "0: regParam=0.0235",
        "1: regParam=1.5e-05",
        "2: regParam=1230.0",
    ]
