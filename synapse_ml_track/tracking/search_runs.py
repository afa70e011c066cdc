"""A hyperparameter search's candidates as child runs of the training run: one recorded per candidate
once it is validated, and those an interrupted attempt finished read back, so a resumed search does
not fit them again (the validation itself is synapse_ml_track/spark/search.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking.runs import all_pages
from synapse_ml_track.tracking.session import TrackingSession, failure_reason
from synapse_ml_track.vocabulary import CANDIDATE_TAG, JOB_TAG, SEARCH_CANDIDATE_JOB

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI and AML studio nest child runs by it


def finished_candidates(session: TrackingSession, parent_id: str) -> dict[str, tuple[str, dict[str, float]]]:
    """The parent's finished candidates: candidate key -> (child run id, validation metrics). Children
    an interrupted attempt left RUNNING are ended FAILED (their candidates run again)."""
    client = session.client
    with session.tracking_errors():
        children = all_pages(
            lambda token: client.search_runs(
                [session.experiment_id], filter_string=f"tags.{PARENT_TAG} = '{parent_id}'", page_token=token
            )
        )
        for run in children:
            if run.info.status == "RUNNING":
                client.set_terminated(run.info.run_id, "FAILED")
    return {
        run.data.tags[CANDIDATE_TAG]: (run.info.run_id, dict(run.data.metrics))
        for run in children
        if run.info.status == "FINISHED" and CANDIDATE_TAG in run.data.tags
    }


def record_candidate(
    session: TrackingSession,
    parent_id: str,
    redactor: Redactor,
    *,
    index: int,
    key: str,
    params: Mapping[str, Any],
    metrics: Mapping[str, float],
    error: BaseException | None = None,
) -> str:
    """One candidate's child run, made now that it is validated: its values and metrics, FINISHED; or,
    when its validation raised `error`, its values, FAILED with the reason. Returns the run's id."""
    tags = {PARENT_TAG: parent_id, JOB_TAG: SEARCH_CANDIDATE_JOB, CANDIDATE_TAG: key}
    with session.tracking_errors():
        child = session.start_run(f"candidate-{index}", tags, redactor, leased=False)
    with session.failing_run(child):
        child.log_params({"candidate.index": index, **{f"estimator.{name}": value for name, value in params.items()}})
        if error is None:
            child.log_metrics(metrics)
            child.finish()
    if error is not None:
        child.fail(failure_reason(error))
    return child.run_id
