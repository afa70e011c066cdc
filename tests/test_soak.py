"""The short soak (about 10 jobs) of tests/soak.py: real job processes through the real azureml-mlflow
plugin to the AML double, with random faults between the double and its mlflow server, some jobs
killed mid-run and rerun by run key. `make soak` runs the long one (50 jobs)."""

from __future__ import annotations

import pytest

from soak import soak

pytestmark = [pytest.mark.timeout(1800), pytest.mark.minutes(9)]


def test_a_short_soak_loses_nothing_duplicates_nothing_and_leaves_nothing_running(tmp_path):
    verdict, race_problems = soak(count=10, seed=20261205, root=tmp_path)
    print(verdict.line())
    assert not verdict.lost, verdict.lost
    assert not verdict.duplicated, verdict.duplicated
    assert not verdict.left_running, verdict.left_running
    assert not race_problems, race_problems
    # Not vacuous: requests met faults while the jobs ran, and the race (run once the faults stop)
    # registered two versions and left the champion on the better one.
    assert sum(verdict.faults.values()) >= 10, verdict.faults
