"""Which runs a rerun by run key must leave to another job (tracking/leases.py)."""

from __future__ import annotations

import pytest
from mlflow.entities import Run, RunData, RunInfo, RunTag

from synapse_ml_track.tracking.leases import expires_at, holder_of, is_live
from synapse_ml_track.tracking.limits import MLFLOW_LIMITS
from synapse_ml_track.tracking.session import TrackingSession
from synapse_ml_track.vocabulary import LEASE_TAG

NOW = 1_800_000_000.0
ENDED = NOW - 10  # when an ended run ended


def run(status: str, lease: str | None) -> Run:
    end_time = None if status == "RUNNING" else int(ENDED * 1000)
    info = RunInfo("r1", "1", "u", status, 0, end_time, "active")
    return Run(info, RunData(tags=[RunTag(LEASE_TAG, lease)] if lease is not None else []))


@pytest.mark.parametrize(
    ("status", "lease", "live"),
    [
        ("RUNNING", f"abc {NOW + 30:.0f} {NOW - 30:.0f}", True),
        ("RUNNING", f"abc {NOW + 30:.0f}", True),  # no time of writing: RUNNING is enough
        ("RUNNING", f"abc {NOW - 1:.0f} {NOW - 61:.0f}", False),  # its job stopped renewing: killed, or cut off
        ("RUNNING", None, False),  # made before leases, or by another tool
        ("RUNNING", "abc", False),  # unreadable: taken over rather than waited for forever
        ("FAILED", f"abc {NOW + 30:.0f} {ENDED - 5:.0f}", False),  # its own job's, from before it failed
        ("FAILED", f"abc {NOW + 30:.0f} {ENDED + 5:.0f}", True),  # a rerun taking it over
        ("FAILED", f"abc {NOW - 1:.0f} {ENDED + 5:.0f}", False),  # that rerun was killed in turn
        ("FINISHED", f"abc {NOW + 30:.0f} {ENDED + 5:.0f}", False),  # a renewal that landed as it finished
    ],
)
def test_a_run_is_live_while_an_unexpired_lease_holds_it(status, lease, live):
    assert is_live(run(status, lease), now=NOW) is live


def test_this_jobs_own_lease_from_a_claim_that_failed_half_way_holds_nothing():
    taken = run("FAILED", f"mine {NOW + 30:.0f} {ENDED + 5:.0f}")
    assert is_live(taken, now=NOW) and not is_live(taken, now=NOW, ignore={"mine"})


def test_the_lease_is_read_from_its_tag():
    leased = run("RUNNING", f"abc {NOW:.0f} {NOW - 60:.0f}")
    assert (holder_of(leased), expires_at(leased)) == ("abc", NOW)
    assert (holder_of(run("RUNNING", None)), expires_at(run("RUNNING", None))) == (None, None)


class Tracker:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def fail(self, message: str) -> None:
        self.calls.append("fail")

    def end_lease(self) -> None:
        self.calls.append("end_lease")


@pytest.mark.parametrize(("raised", "calls"), [(ValueError, ["fail"]), (KeyboardInterrupt, ["end_lease"])])
def test_a_job_that_stops_inside_its_run_stops_renewing_its_lease(raised, calls):
    """A notebook's interrupt keeps the process: its lease must expire, or every rerun would wait."""
    session = TrackingSession(uri="http://127.0.0.1:1", client=None, experiment_id="1", limits=MLFLOW_LIMITS)
    tracker = Tracker()
    with pytest.raises(raised), session.failing_run(tracker):
        raise raised()
    assert tracker.calls == calls
