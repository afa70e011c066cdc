"""The runs report: an experiment's training runs side by side, with the model versions they produced.

Written as a CSV and a Markdown table (best run first) and a PNG of one metric across runs.
Only searches Azure Machine Learning serves are used: no server-side ordering by metrics, params
or tags and no OR in filters, so runs are fetched page by page and filtered and sorted here.

mlflow, pandas and matplotlib are imported where they are used.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from synapse_ml_track.config import JobConfig
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.plots import new_figure
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.results import RunsReport
from synapse_ml_track.vocabulary import (
    DEFAULT_METRIC,
    DRIFT_TAG,
    HEADLINE_METRICS,
    JOB_TAG,
    MODEL_TYPE_PARAM,
    RUN_KEY_TAG,
    SCORE_JOB,
    TASK_PARAM,
    TRAIN_JOB,
    higher_is_better,
)

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from mlflow.entities import Experiment, Run
    from mlflow.tracking import MlflowClient

PAGE_SIZE = 100


def connect(config: JobConfig, redactor: Redactor) -> tuple[str, MlflowClient, Experiment]:
    """A checked, read-only connection: unlike a job's session, a report creates no experiment."""
    from synapse_ml_track.tracking.session import open_session

    session = open_session(config, redactor, create_experiment=False)
    return session.uri, session.client, session.client.get_experiment(session.experiment_id)


def training_runs(client: MlflowClient, experiment_id: str, max_runs: int) -> list[Run]:
    """Up to max_runs training runs in the server's own order (newest first on MLflow), page by page."""
    from synapse_ml_track.tracking.runs import all_pages

    return all_pages(
        lambda token: client.search_runs([experiment_id], max_results=PAGE_SIZE, page_token=token),
        limit=max_runs,
        keep=lambda run: run.data.tags.get(JOB_TAG, TRAIN_JOB) == TRAIN_JOB,
    )


def versions_by_run(client: MlflowClient, name: str, champion_alias: str) -> dict[str, list[tuple[int, list[str]]]]:
    """Each run's registered versions of the model with their aliases: {"run id": [(2, ["champion"])]}.
    Where the registry has no aliases, the champion is the version with the champion tag (registry.promote)."""
    from synapse_ml_track.tracking.registry import all_versions, champion_version, model_if_exists

    model = model_if_exists(client, name)
    if model is None:
        return {}
    aliases: dict[str, list[str]] = {}
    for alias, version in (model.aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    if not aliases:
        champion = champion_version(client, name, champion_alias)
        aliases = {champion: [champion_alias]} if champion else {}
    found: dict[str, list[tuple[int, list[str]]]] = {}
    for version in all_versions(client, name):
        if version.run_id is None:  # registered from no run: on no run's row
            continue
        names = aliases.get(str(version.version), [])
        found.setdefault(version.run_id, []).append((int(version.version), sorted(names)))
    return {run_id: sorted(versions) for run_id, versions in found.items()}


def default_metric(runs: list[Run], config: JobConfig, experiment: str) -> str:
    """The metric the gate compares for the runs' task (their model.task param): the configured
    gate.champion_metric when the config is for that task, else the task's default."""
    tasks = sorted({run.data.params.get(TASK_PARAM, "classification") for run in runs})
    if len(tasks) > 1:
        raise ConfigError(
            f"the runs of experiment '{experiment}' are of tasks {', '.join(tasks)}: "
            "choose the metric to rank them by with --metric"
        )
    configured = config.gate.champion_metric if tasks[0] == config.model.task else None
    return configured or DEFAULT_METRIC[tasks[0]]


def runs_table(runs: list[Run], metric: str, versions: dict[str, list[tuple[int, list[str]]]]) -> pd.DataFrame:
    """One row per run, the best first: best `metric` (runs without it last); among equals, a run
    with a registered version, then the earliest. The summary's best run and the plot's star are the
    first row. The headline metrics of each task among the runs (classification, regression) beside it."""
    import pandas as pd

    tasks = sorted({run.data.params.get(TASK_PARAM, "classification") for run in runs})
    headline = [m for task in tasks for m in HEADLINE_METRICS.get(task, ())]
    metrics = list(dict.fromkeys([metric, *headline]))
    rows = [
        {
            "run_id": run.info.run_id,
            "run_name": run.info.run_name,
            "start_time": started(run),
            "status": run.info.status,
            "model_type": run.data.params.get(MODEL_TYPE_PARAM),
            **{name: run.data.metrics.get(name, math.nan) for name in metrics},
            "model_version": ", ".join(str(number) for number, _ in versions.get(run.info.run_id, [])),
            "aliases": ", ".join(alias for _, aliases in versions.get(run.info.run_id, []) for alias in aliases),
            "run_key": run.data.tags.get(RUN_KEY_TAG, ""),
        }
        for run in runs
    ]
    table = pd.DataFrame(
        rows,
        columns=[
            "run_id",
            "run_name",
            "start_time",
            "status",
            "model_type",
            *metrics,
            "model_version",
            "aliases",
            "run_key",
        ],
    )
    unregistered = table["model_version"] == ""
    ranked = table.assign(_unregistered=unregistered, _started=[run.info.start_time for run in runs])
    return (
        ranked.sort_values(
            [metric, "_unregistered", "_started"],
            ascending=[not higher_is_better(metric), True, True],
            na_position="last",
            kind="stable",
        )
        .drop(columns=["_unregistered", "_started"])
        .reset_index(drop=True)
    )


def markdown(table: pd.DataFrame) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "" if math.isnan(value) else f"{value:.4f}"
        return "" if value is None else str(value).replace("|", "\\|")

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "|".join("---" for _ in table.columns) + "|"]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def plot(table: pd.DataFrame, metric: str, title: str) -> Figure:
    """The metric per run in start order, the best run (the table's first, see runs_table) marked,
    each run labelled with its model version."""
    best = table.index[0]
    runs = table.dropna(subset=[metric]).sort_values("start_time", kind="stable")
    positions = list(range(len(runs)))
    labels = [
        row.run_name
        + (f"\nv{row.model_version}" if row.model_version else "")
        + (f" ({row.aliases})" if row.aliases else "")
        for row in runs.itertuples()
    ]
    figure, axes = new_figure((max(6.0, 1.1 * len(runs) + 2), 4.5))
    axes.plot(positions, runs[metric], marker="o")
    axes.plot(
        [positions[runs.index.get_loc(best)]],
        [runs[metric][best]],
        marker="*",
        markersize=16,
        color="tab:orange",
        label="best",
    )
    for x, value in zip(positions, runs[metric], strict=True):
        axes.annotate(f"{value:.4f}", (x, value), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
    axes.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)
    axes.margins(x=0.1, y=0.25)
    axes.set_ylabel(metric)
    axes.set_title(title)
    axes.legend(loc="lower right")
    figure.tight_layout()
    return figure


DRIFT_PREFIX, DRIFT_MAX = "drift_psi_", "drift_psi_max"


def started(run: Run) -> str:
    return datetime.fromtimestamp(run.info.start_time / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def drift_table(client: MlflowClient, experiment_id: str, max_runs: int) -> pd.DataFrame | None:
    """Each scoring run that measured drift (synapse_ml_track/drift.py), oldest first: when, which
    model version, its level and each feature's PSI (a column per feature); None when there is none."""
    import pandas as pd

    from synapse_ml_track.tracking.runs import all_pages

    runs = all_pages(
        lambda token: client.search_runs([experiment_id], max_results=PAGE_SIZE, page_token=token),
        limit=max_runs,
        keep=lambda run: run.data.tags.get(JOB_TAG) == SCORE_JOB and DRIFT_MAX in run.data.metrics,
    )
    if not runs:
        return None
    rows = [
        {
            "run_id": run.info.run_id,
            "start_time": started(run),
            "model_version": run.data.params.get("model.version", ""),
            "drift": run.data.tags.get(DRIFT_TAG, ""),
            "psi_max": run.data.metrics[DRIFT_MAX],
            **{
                name.removeprefix(DRIFT_PREFIX): value
                for name, value in sorted(run.data.metrics.items())
                if name.startswith(DRIFT_PREFIX) and name != DRIFT_MAX
            },
        }
        for run in sorted(runs, key=lambda run: run.info.start_time)
    ]
    return pd.DataFrame(rows)


def drift_plot(table: pd.DataFrame, warn: float, fail: float, title: str) -> Figure:
    """Each feature's PSI across the scoring runs, the drift thresholds drawn."""
    features = [c for c in table.columns if c not in ("run_id", "start_time", "model_version", "drift", "psi_max")]
    positions = list(range(len(table)))
    figure, axes = new_figure((max(6.0, 0.9 * len(table) + 3), 4.5))
    for feature in features:
        axes.plot(positions, table[feature], marker="o", label=feature)
    axes.axhline(warn, color="tab:orange", linestyle="--", linewidth=1)
    axes.axhline(fail, color="tab:red", linestyle="--", linewidth=1)
    labels = [f"{row.start_time}\nv{row.model_version}" for row in table.itertuples()]
    axes.set_xticks(positions, labels, rotation=30, ha="right", fontsize=8)
    axes.set_ylabel("population stability index")
    axes.set_title(title)
    axes.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    return figure


def runs_report(
    client: MlflowClient, experiment: Experiment, config: JobConfig, max_runs: int, metric: str | None = None
) -> RunsReport:
    """The report of the experiment's training runs, ranked by `metric` (default: see default_metric)."""
    runs = training_runs(client, experiment.experiment_id, max_runs)
    if not runs:
        raise ConfigError(f"experiment '{experiment.name}' has no training runs to report on")
    metric = metric or default_metric(runs, config, experiment.name)
    logged = sorted({name for run in runs for name in run.data.metrics})
    if metric not in logged:
        raise ConfigError(
            f"no run of experiment '{experiment.name}' logged metric '{metric}' (logged: {', '.join(logged)})"
        )

    model_name, alias = config.tracking.registered_model_name, config.gate.champion_alias
    table = runs_table(runs, metric, versions_by_run(client, model_name, alias))
    best = table.iloc[0]
    drift = drift_table(client, experiment.experiment_id, max_runs)
    title = f"Drift per feature across scoring runs in {experiment.name}"
    drift_figure = drift_plot(drift, config.drift.warn, config.drift.fail, title) if drift is not None else None
    return RunsReport(
        experiment=experiment.name,
        experiment_id=experiment.experiment_id,
        metric=metric,
        runs=len(table),
        best_run_id=best["run_id"],
        best_value=float(best[metric]),
        best_model_version=best["model_version"] or None,
        table=table,
        figure=plot(table, metric, f"{metric} of {len(runs)} runs in {experiment.name}"),
        drift=drift,
        drift_figure=drift_figure,
    )


def write_report(report: RunsReport, output_dir: Path) -> RunsReport:
    """The report written as runs.csv, runs.md and <metric>.png in `output_dir` (with drift.csv and
    drift.png when scoring runs measured drift), and named in its files."""
    output_dir.mkdir(parents=True, exist_ok=True)
    files = {
        "csv": output_dir / "runs.csv", "markdown": output_dir / "runs.md", "plot": output_dir / f"{report.metric}.png",
    }  # fmt: skip
    report.table.to_csv(files["csv"], index=False)
    files["markdown"].write_text(markdown(report.table), encoding="utf-8")
    report.figure.savefig(files["plot"], dpi=100)
    if report.drift is not None and report.drift_figure is not None:
        files.update(drift_csv=output_dir / "drift.csv", drift_plot=output_dir / "drift.png")
        report.drift.to_csv(files["drift_csv"], index=False)
        report.drift_figure.savefig(files["drift_plot"], dpi=100)
    return replace(report, files={kind: str(path) for kind, path in files.items()})
