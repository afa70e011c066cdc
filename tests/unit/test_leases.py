"""Which runs a rerun by run key must leave to another job (tracking/leases.py)."""

from __future__ import annotations

import pytest
from mlflow.entities import Run, RunData, RunInfo, RunTag

from synapse_ml_track.tracking.leases import expires_at, is_live
from synapse_ml_track.vocabulary import LEASE_TAG

NOW = 1_800_000_000.0


def run(status: str, lease: str | None) -> Run:
    info = RunInfo("r1", "1", "u", status, 0, None, "active")
    return Run(info, RunData(tags=[RunTag(LEASE_TAG, lease)] if lease is not None else []))


@pytest.mark.parametrize(
    ("status", "lease", "live"),
    [
        ("RUNNING", f"abc {NOW + 30:.0f}", True),
        ("RUNNING", f"abc {NOW - 1:.0f}", False),  # its job stopped renewing: killed, or cut off
        ("RUNNING", None, False),  # made before leases, or by another tool
        ("RUNNING", "abc", False),  # unreadable: taken over rather than waited for forever
        ("FAILED", f"abc {NOW + 30:.0f}", False),  # a renewal that landed after the run ended
        ("FINISHED", f"abc {NOW + 30:.0f}", False),
    ],
)
def test_only_a_running_run_with_an_unexpired_lease_is_live(status, lease, live):
    assert is_live(run(status, lease), now=NOW) is live


def test_the_lease_expiry_is_read_from_its_tag():
    assert expires_at(run("RUNNING", f"abc {NOW:.0f}")) == NOW
    assert expires_at(run("RUNNING", None)) is None
