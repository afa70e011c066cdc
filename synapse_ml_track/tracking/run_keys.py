"""Run keys: a re-run of the same pipeline activity finds its earlier run instead of starting another."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from synapse_ml_track.errors import WriteConflict, first_line
from synapse_ml_track.tracking import leases
from synapse_ml_track.tracking.leases import Lease
from synapse_ml_track.tracking.retries import worth_asking_again
from synapse_ml_track.tracking.runs import all_pages
from synapse_ml_track.vocabulary import JOB_TAG, RUN_KEY_TAG, SCORE_JOB, TRAIN_JOB, TRAINING_TAG, WRITE_TAG

log = logging.getLogger(__name__)

POLL_SECONDS = 5.0  # between looks at a run another job holds: one search request each
UNFINISHED = ("RUNNING", "SCHEDULED", "FAILED", "KILLED")  # what a training rerun resumes
WHAT_TAGS = {TRAIN_JOB: TRAINING_TAG, SCORE_JOB: WRITE_TAG}  # each job's digest of what it was asked to do


def find_keyed_run(
    client: MlflowClient, experiment_id: str, run_key: str, job: str, *, what: str | None = None
) -> Run | None:
    """The newest run of this job ("train" or "score") tagged with this key: a pipeline passes its one
    run id to every activity, so a training rerun must not resume the scoring run of the same key.
    Sorted here: AML cannot order runs server-side by tags. `what`: the digest of what the job was
    asked to do (scoring.write_key, train_job.training_key), since one pipeline run may score several
    inputs or train several models; a run without one was made before jobs recorded it, and is kept."""
    escaped = run_key.replace("'", "\\'")
    # Dotted tag names unquoted: AML's examples write `tags.mlflow.parentRunId = '...'` and its support
    # matrix lists escaped special characters in filters as unsupported (learn.microsoft.com/azure/
    # machine-learning/how-to-track-experiments-mlflow). MLflow's SearchUtils splits an identifier at
    # its first dot only (mlflow/utils/search_utils.py `_get_identifier`, 2.18 and 3.15), so its
    # stores read the same key. The same form in search.py and tracking.py.
    keyed = f"tags.{RUN_KEY_TAG} = '{escaped}' AND tags.{JOB_TAG} = '{job}'"
    runs = all_pages(lambda token: client.search_runs([experiment_id], filter_string=keyed, page_token=token))
    if what is not None:
        runs = [run for run in runs if run.data.tags.get(WHAT_TAGS[job], what) == what]
    return max(runs, key=lambda run: run.info.start_time or 0) if runs else None


@dataclass
class KeyedRun:
    run: Run
    lease: Lease | None  # this job's, on a run it took over; None on a run it leaves as it is


def take_keyed_run(
    client: MlflowClient,
    experiment_id: str,
    run_key: str,
    job: str,
    *,
    lease_seconds: float,
    wait_seconds: float,
    take_over: Collection[str],
    what: str | None = None,
) -> KeyedRun | None:
    """The newest run of this key (find_keyed_run) once no live job holds it (tracking/leases.py).
    A run another job still writes is waited for, up to `wait_seconds`; a run whose status is in
    `take_over` then comes with this job's lease on it, any other (FINISHED) as it is."""
    deadline = time.monotonic() + wait_seconds
    announced = None
    own: set[str] = set()  # the holders of this job's claims: a claim that failed half-way holds nothing
    while True:
        try:
            run = find_keyed_run(client, experiment_id, run_key, job, what=what)
            if run is None:
                return None
            if not leases.is_live(run, ignore=own):
                if run.info.status not in take_over:
                    return KeyedRun(run, None)
                lease = Lease(client, lease_seconds)
                own.add(lease.holder)
                if leases.claim(lease, run):
                    return KeyedRun(run, lease)
                continue  # another rerun's lease is on it: looked at again, and waited for while it holds
        except Exception as exc:
            # While waiting, the job's looks may be all its traffic, and meet every fault of a busy
            # spell: one that failed with all its retries is taken again at the next, within the wait.
            if announced is None or not worth_asking_again(exc) or time.monotonic() + POLL_SECONDS > deadline:
                raise
            failure = first_line(exc)[:200]
            log.info("run key %s: could not look at run %s: %s; looking again", run_key, announced, failure)
            time.sleep(POLL_SECONDS)
            continue
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WriteConflict(
                f"run key {run_key}: run {run.info.run_id} is still running in another job after {wait_seconds:.0f} s "
                f"of waiting (tracking.live_run_wait); let that job end, then run this again"
            )
        if announced != run.info.run_id:
            log.info(
                "run key %s: run %s is running in another job; waiting up to %.0f s for it to end",
                run_key, run.info.run_id, remaining,
            )  # fmt: skip
            announced = run.info.run_id
        until = leases.expires_at(run) or 0.0
        time.sleep(max(0.5, min(POLL_SECONDS, remaining, until - time.time() + 0.5)))
