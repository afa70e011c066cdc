"""A job's lease on its run, so that a rerun by run key never writes into a run another job still writes.

A pipeline's retry, or a user's second run, can start while the first attempt still runs: Synapse
ends an activity at its timeout, not the Spark job behind it. MLflow has no locks and no conditional
writes, so the lease is a tag, `smt.lease` = "<holder> <until>" (`until` in Unix seconds), set when
the run is created or taken over and renewed every third of `tracking.lease_seconds` until the run
ends. A RUNNING run whose lease has not expired is live: a rerun waits for it to end. A RUNNING run
whose lease expired (its job was killed, or lost the server for a whole lease), or that has none
(made before leases), was interrupted, and a rerun takes it over.

The holder writes `until` by its clock and a rerun reads it by its own: Synapse nodes keep NTP time,
seconds apart at worst, against a lease of a minute. Two reruns may find one expired lease at the
same moment; each writes its own, waits CLAIM_SETTLE seconds and reads it back, and only the one
whose lease is there goes on. That narrows the race to a rerun whose write lags its read by more than
CLAIM_SETTLE; without a conditional write it cannot close it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from mlflow.entities import Run
from mlflow.tracking import MlflowClient

from synapse_ml_track.errors import first_line
from synapse_ml_track.tracking import http
from synapse_ml_track.vocabulary import LEASE_TAG

log = logging.getLogger(__name__)

CLAIM_SETTLE = 2.0  # seconds between writing a lease on a taken-over run and reading it back
RETRY_RENEWAL = 1.0  # seconds after a failed renewal before the next


def expires_at(run: Run) -> float | None:
    """When the run's lease expires (Unix seconds), or None when it has none that can be read."""
    value = run.data.tags.get(LEASE_TAG, "")
    try:
        return float(value.split()[1])
    except (IndexError, ValueError):
        return None


def is_live(run: Run, now: float | None = None) -> bool:
    """RUNNING with a lease that has not expired: another job is writing the run."""
    until = expires_at(run)
    return run.info.status == "RUNNING" and until is not None and until > (time.time() if now is None else now)


class Lease:
    """This job's lease, on the run it is given at `start`: renewed from a daemon thread until `end`.
    A renewal that fails is logged and tried again at the next; the thread touches nothing but its
    own requests."""

    def __init__(self, client: MlflowClient, seconds: float) -> None:
        self.client, self.seconds = client, seconds
        self.holder = uuid.uuid4().hex[:12]
        self._ended = threading.Event()

    def value(self) -> str:
        return f"{self.holder} {time.time() + self.seconds:.0f}"

    def renew(self, run_id: str) -> None:
        # A renewal may wait out a busy server for up to one renewal interval, then gives way to the next.
        with http.policy(max_wait=self.seconds / 3):
            self.client.set_tag(run_id, LEASE_TAG, self.value())

    def start(self, run_id: str) -> Lease:
        threading.Thread(target=self._keep, args=(run_id,), name=f"smt-lease-{run_id[:8]}", daemon=True).start()
        return self

    def end(self) -> None:
        """Stop renewing: the run is ending. A renewal already sent may still land; it only extends a
        lease that nobody reads once the run is no longer RUNNING."""
        self._ended.set()

    def _keep(self, run_id: str) -> None:
        # After a failed renewal the next comes at once: a renewal that gave up after waiting a whole
        # interval, then another interval of waiting, would let the lease lapse under a live job.
        interval, failing = self.seconds / 3, False
        while not self._ended.wait(RETRY_RENEWAL if failing else interval):
            try:
                self.renew(run_id)
            except Exception as exc:  # noqa: BLE001 - the job goes on; the next renewal tries again
                if not failing:
                    log.warning("could not renew the lease on run %s: %s", run_id, first_line(exc)[:200])
                failing = True
            else:
                failing = False


def claim(client: MlflowClient, run: Run, seconds: float) -> Lease | None:
    """Take over a run whose lease expired (or a FAILED run): this job's lease on it, renewed from now
    on, or None when another rerun's lease is on it after CLAIM_SETTLE seconds."""
    run_id = run.info.run_id
    lease = Lease(client, seconds)
    lease.renew(run_id)
    time.sleep(CLAIM_SETTLE)
    if client.get_run(run_id).data.tags.get(LEASE_TAG, "").split(" ")[0] != lease.holder:
        log.info("run %s was taken over by another job at the same moment", run_id)
        return None
    return lease.start(run_id)
