"""Run keys: a re-run of the same pipeline activity finds its earlier run instead of starting another."""

from __future__ import annotations

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from synapse_ml_track.tracking.runs import all_pages
from synapse_ml_track.vocabulary import JOB_TAG, RUN_KEY_TAG, WRITE_TAG


def find_keyed_run(
    client: MlflowClient, experiment_id: str, run_key: str, job: str, *, write: str | None = None
) -> Run | None:
    """The newest run of this job ("train" or "score") tagged with this key: a pipeline passes its one
    run id to every activity, so a training rerun must not resume the scoring run of the same key.
    Sorted here: AML cannot order runs server-side by tags. `write`: a scoring run's write key
    (scoring.write_key), since one pipeline run may score several inputs or models."""
    escaped = run_key.replace("'", "\\'")
    # Dotted tag names unquoted: AML's examples write `tags.mlflow.parentRunId = '...'` and its support
    # matrix lists escaped special characters in filters as unsupported (learn.microsoft.com/azure/
    # machine-learning/how-to-track-experiments-mlflow). MLflow's SearchUtils splits an identifier at
    # its first dot only (mlflow/utils/search_utils.py `_get_identifier`, 2.18 and 3.15), so its
    # stores read the same key. The same form in search.py and tracking.py.
    keyed = f"tags.{RUN_KEY_TAG} = '{escaped}' AND tags.{JOB_TAG} = '{job}'"
    if write is not None:
        keyed += f" AND tags.{WRITE_TAG} = '{write}'"
    runs = all_pages(lambda token: client.search_runs([experiment_id], filter_string=keyed, page_token=token))
    return max(runs, key=lambda run: run.info.start_time or 0) if runs else None
