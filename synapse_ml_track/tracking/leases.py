"""A job's lease on its run, so that a rerun by run key never writes into a run another job still writes.

A pipeline's retry, or a user's second run, can start while the first attempt still runs: Synapse
ends an activity at its timeout, not the Spark job behind it. MLflow has no locks and no conditional
writes, so the lease is a tag, `smt.lease` = "<holder> <until> <written>" (Unix seconds), set when
the run is created or taken over and renewed every third of `tracking.lease_seconds` until the run
ends. A run is live, another job's to write, while its lease has not expired and either the run is
RUNNING or the lease was written after the run ended (a rerun taking over a FAILED run). A RUNNING
run whose lease expired (its job was killed, or lost the server for a whole lease), or that has none
(made before leases), was interrupted, and a rerun takes it over.

The holder writes its times by its clock and a rerun reads them by its own: Synapse nodes keep NTP
time, seconds apart at worst, against a lease of a minute. Two reruns may find one run free at the
same moment; each writes its own lease, waits CLAIM_SETTLE seconds and reads it back, and only the
one whose lease is there goes on. That narrows the race to a rerun whose write lags its read by more
than CLAIM_SETTLE; without a conditional write it cannot close it. Nor does a job learn that its
lease lapsed under it (it could not reach the server for two thirds of a lease): a rerun may then
resume the run beside it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Collection

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from synapse_ml_track.errors import first_line
from synapse_ml_track.tracking import http
from synapse_ml_track.tracking.retries import settle
from synapse_ml_track.vocabulary import LEASE_TAG

log = logging.getLogger(__name__)

CLAIM_SETTLE = 2.0  # seconds between writing a lease on a taken-over run and reading it back
RETRY_RENEWAL = 1.0  # seconds after a failed renewal before the next


def _fields(run: Run) -> tuple[str, float, float | None] | None:
    """The run's lease: its holder, when it expires and when it was written, or None when it has
    none that can be read (a lease of two fields has no time of writing)."""
    parts = run.data.tags.get(LEASE_TAG, "").split()
    try:
        return parts[0], float(parts[1]), float(parts[2]) if len(parts) > 2 else None
    except (IndexError, ValueError):
        return None


def expires_at(run: Run) -> float | None:
    """When the run's lease expires (Unix seconds), or None when it has none that can be read."""
    lease = _fields(run)
    return lease[1] if lease else None


def holder_of(run: Run) -> str | None:
    lease = _fields(run)
    return lease[0] if lease else None


def is_live(run: Run, now: float | None = None, ignore: Collection[str] = ()) -> bool:
    """Another job holds the run (see the module's docstring). A lease whose holder is in `ignore`
    (this job's own, from a claim that failed half-way) is nobody else's."""
    lease = _fields(run)
    if lease is None or lease[0] in ignore or lease[1] <= (time.time() if now is None else now):
        return False
    if run.info.status == "RUNNING":
        return True
    written, ended = lease[2], (run.info.end_time or 0) / 1000
    return run.info.status != "FINISHED" and written is not None and written > ended


class Lease:
    """This job's lease, on the run it is given at `start`: renewed from a daemon thread until `end`.
    The thread touches nothing but its own requests."""

    def __init__(self, client: MlflowClient, seconds: float) -> None:
        self.client, self.seconds = client, seconds
        self.holder = uuid.uuid4().hex[:12]
        self._ended = threading.Event()
        self._sent_at = time.monotonic()  # when the last value was made, to be sent

    def value(self) -> str:
        now, self._sent_at = time.time(), time.monotonic()
        return f"{self.holder} {now + self.seconds:.0f} {now:.0f}"

    def renew(self, run_id: str) -> None:
        """Asked again while the server is busy, slow or drops the connection, for up to a third of
        the lease, each attempt with a fresh expiry; its waits are not the job's (RetryPolicy.job_budget)."""
        with http.policy(job_budget=False):
            settle(lambda: self.client.set_tag(run_id, LEASE_TAG, self.value()), self.seconds / 3)

    def start(self, run_id: str) -> Lease:
        threading.Thread(target=self._keep, args=(run_id,), name=f"smt-lease-{run_id[:8]}", daemon=True).start()
        return self

    def end(self) -> None:
        """Stop renewing: the run is ending. A renewal already sent may still land; on a FAILED run
        it makes a rerun wait until it expires."""
        self._ended.set()

    def _keep(self, run_id: str) -> None:
        # Each renewal is due a third of the lease after the last value sent (not after its answer), and
        # one that failed is sent again a second later: an outage shorter than two thirds of the lease
        # cannot lapse it. A lease made long before its run was created is renewed at once.
        failing = False
        while not self._ended.wait(
            RETRY_RENEWAL if failing else max(0.0, self._sent_at + self.seconds / 3 - time.monotonic())
        ):
            try:
                self.renew(run_id)
            except Exception as exc:  # noqa: BLE001 - the job goes on; the next renewal tries again
                if not failing:
                    log.warning("could not renew the lease on run %s: %s", run_id, first_line(exc)[:200])
                failing = True
            else:
                failing = False


def claim(lease: Lease, run: Run) -> bool:
    """Take over a run nobody holds (an expired lease, or a FAILED run) with `lease`, renewed from
    then on; False when another rerun's lease is on it CLAIM_SETTLE seconds after this one was written.
    The first write is the job's own request, under the job's policy: a renewal's third of a lease
    (renew) refused a Retry-After longer than what was left of it, and failed the job (the short soak)."""
    run_id = run.info.run_id
    lease.client.set_tag(run_id, LEASE_TAG, lease.value())
    time.sleep(CLAIM_SETTLE)
    if holder_of(lease.client.get_run(run_id)) != lease.holder:
        log.info("run %s was taken over by another job at the same moment", run_id)
        return False
    lease.start(run_id)
    return True
