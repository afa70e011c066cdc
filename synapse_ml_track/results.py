"""What the API's calls return, each a frozen dataclass with a short repr: the run, the version and
the headline figures; the rest are fields to read. `summary()` is the JSON summary the command line
prints."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame


@dataclass(frozen=True)
class TrainingResult:
    """What a training job did; `summary()` is the JSON summary the command line prints. Its repr
    shows what a notebook cell needs at a glance: the metrics and the fitted model are fields to read."""

    run_id: str
    experiment_id: str
    model_uri: str
    model_version: str | None
    registered_model_name: str | None
    metrics: dict[str, float] = field(repr=False)
    local_result_dir: str = field(repr=False)
    status: str = "registered"  # registered, rejected, tracked or reused
    reason: str | None = None
    promoted: bool | None = None  # whether the registered version took the champion alias
    tracking_uri: str | None = None
    model: PipelineModel | None = field(default=None, repr=False, compare=False)  # in memory; not in the summary

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "registered_model_name": self.registered_model_name,
            "model_version": self.model_version,
            "promoted": self.promoted,
            "metrics": self.metrics,
            "reason": self.reason,
            "tracking_uri": self.tracking_uri,
            "local_result_dir": self.local_result_dir,
        }


@dataclass(frozen=True)
class ScoringResult:
    """What a scoring job did; `summary()` is the JSON summary the command line prints."""

    status: str  # "scored", or "already-written": the run key wrote these scores before, nothing written
    run_id: str
    experiment_id: str
    model_uri: str  # pinned: models:/NAME/VERSION (or the run's model)
    model_version: str
    output: str  # the path, or the catalog table
    output_format: str
    output_version: int | None  # Delta: the table version holding the scores
    rows_scored: int | None  # None when already written
    rows_unscorable: int | None
    # Per categorical feature, the scored rows with a category the model did not see in training (all
    # scored as one unknown category); None when already written
    rows_unseen: dict[str, int] | None
    # level (ok, warn, fail), psi_max and each feature's PSI and null-share change against the training
    # split (synapse_ml_track/drift.py); None when nothing was scored or the model has no training profile
    drift: dict[str, Any] | None
    details: dict[str, Any] = field(repr=False)
    # Reads the output as the job left it (a Delta output at output_version), in the job's session.
    _read_scores: Callable[[], DataFrame] = field(repr=False, compare=False)

    def summary(self) -> dict[str, Any]:
        return dict(self.details)

    def scores(self) -> DataFrame:
        """The output as this job left it (a Delta output at output_version), read by the job's session."""
        return self._read_scores()


@dataclass(frozen=True)
class RunsReport:
    """An experiment's training runs side by side, best first: `table` (a pandas DataFrame, one row
    per run with its params, metrics and model versions) and `figure` (the metric across the runs,
    the best starred; a notebook displays it). `drift` and `drift_figure`: each feature's PSI across
    the experiment's scoring runs, oldest first (None when no scoring run measured drift). `files`:
    what was written, when an output directory was given."""

    experiment: str
    experiment_id: str
    metric: str
    runs: int
    best_run_id: str
    best_value: float
    best_model_version: str | None
    table: pd.DataFrame = field(repr=False, compare=False)
    figure: Figure = field(repr=False, compare=False)
    drift: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    drift_figure: Figure | None = field(default=None, repr=False, compare=False)
    files: dict[str, str] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        return {
            "experiment": self.experiment,
            "experiment_id": self.experiment_id,
            "metric": self.metric,
            "runs": self.runs,
            "best_run_id": self.best_run_id,
            "best_value": self.best_value,
            "best_model_version": self.best_model_version,
            "files": dict(self.files),
        }
