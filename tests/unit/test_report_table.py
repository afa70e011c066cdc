"""The runs report's table and Markdown, from runs built in memory (no server)."""

import math

import matplotlib.axes
import pytest
from mlflow.entities import Metric, Param, Run, RunData, RunInfo, RunTag

from synapse_ml_track.tracking.report import markdown, plot, runs_table


def run(run_id: str, started: int, f1: float | None, model_type: str = "logistic_regression", key: str = "") -> Run:
    info = RunInfo(
        run_id, "1", "user", "FINISHED", started * 1000, started * 1000 + 5, "active", run_name=f"n-{run_id}"
    )
    metrics = [Metric("f1", f1, 0, 0), Metric("accuracy", 0.5, 0, 0)] if f1 is not None else []
    tags = [RunTag("smt.run_key", key)] if key else []
    return Run(info, RunData(metrics=metrics, params=[Param("model.type", model_type)], tags=tags))


@pytest.mark.parametrize(
    ("runs", "order"),
    [
        ([run("a", 1, 0.9), run("b", 2, 0.95), run("c", 3, 0.8)], ["b", "a", "c"]),
        ([run("a", 1, 0.9), run("b", 2, 0.9)], ["a", "b"]),  # ties: earliest first
        ([run("a", 1, None), run("b", 2, 0.1)], ["b", "a"]),  # no metric: last
    ],
)
def test_best_first_earliest_first_among_equals(runs, order):
    assert list(runs_table(runs, "f1", {})["run_id"]) == order


def test_among_equals_a_run_with_a_registered_version_comes_first():
    runs = [run("a", 1, 0.9), run("b", 2, 0.9), run("c", 3, 0.9), run("d", 4, 0.5)]
    table = runs_table(runs, "f1", {"c": [(2, [])], "d": [(1, ["champion"])]})
    assert list(table["run_id"]) == ["c", "a", "b", "d"]


@pytest.mark.parametrize("versions", [{}, {"c": [(1, [])]}], ids=["none registered", "a later one registered"])
def test_the_plot_stars_the_run_the_table_ranks_first(versions, monkeypatch):
    """One tie-break for both: the summary's best run is the table's first row; the star must be on it."""
    runs = [run("a", 1, 0.7), run("b", 2, 0.9), run("c", 3, 0.9), run("d", 4, 0.9)]
    table = runs_table(runs, "f1", versions)
    stars = []
    axes_plot = matplotlib.axes.Axes.plot

    def recording(self, *args, **kwargs):
        if kwargs.get("marker") == "*":
            stars.append(args[0][0])
        return axes_plot(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", recording)
    plot(table, "f1", "title")
    in_start_order = ["a", "b", "c", "d"]
    assert len(stars) == 1 and in_start_order[stars[0]] == table.iloc[0]["run_id"]


def test_versions_aliases_and_run_keys_land_on_their_runs():
    table = runs_table([run("a", 1, 0.9, key="pipe-1"), run("b", 2, 0.8)], "f1", {"a": [(1, []), (3, ["champion"])]})
    first = table.iloc[0]
    assert (first["model_version"], first["aliases"], first["run_key"]) == ("1, 3", "champion", "pipe-1")
    assert table.iloc[1]["model_version"] == "" and math.isnan(runs_table([run("c", 1, None)], "f1", {}).iloc[0]["f1"])
    assert list(table.columns[:6]) == ["run_id", "run_name", "start_time", "status", "model_type", "f1"]


def test_markdown_escapes_pipes_and_blanks_missing_values():
    table = runs_table([run("a", 1, None, model_type="x|y")], "f1", {})
    lines = markdown(table).splitlines()
    assert lines[0].startswith("| run_id | run_name |") and lines[1].startswith("|---|")
    assert "x\\|y" in lines[2] and "| nan |" not in lines[2]
