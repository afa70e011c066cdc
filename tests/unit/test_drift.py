"""Drift's arithmetic (synapse_ml_track/drift.py): PSI, its floor for empty bins, levels, the profile file."""

from __future__ import annotations

import math

import pytest

from synapse_ml_track.drift import (
    SHARE_FLOOR,
    Distribution,
    FeatureProfile,
    TrainingProfile,
    compare,
    psi,
)

NUMERIC = FeatureProfile("length", "numeric", (0.25, 0.25, 0.25, 0.25), 0.0, edges=(1.0, 2.0, 3.0))
CATEGORICAL = FeatureProfile("island", "categorical", (0.5, 0.3, 0.2), 0.1, categories=("Biscoe", "Dream"))
PROFILE = TrainingProfile(100, (NUMERIC, CATEGORICAL))


def test_the_same_distribution_has_no_drift_and_a_moved_one_has_the_textbook_value():
    assert psi([0.25] * 4, [0.25] * 4) == 0.0
    expected, actual = [0.5, 0.5], [0.9, 0.1]
    by_hand = (0.9 - 0.5) * math.log(0.9 / 0.5) + (0.1 - 0.5) * math.log(0.1 / 0.5)
    assert psi(expected, actual) == pytest.approx(by_hand)


def test_an_empty_bin_counts_as_the_floor_not_as_infinity():
    value = psi([0.5, 0.5], [1.0, 0.0])
    floored = (1.0 - 0.5) * math.log(1.0 / 0.5) + (SHARE_FLOOR - 0.5) * math.log(SHARE_FLOOR / 0.5)
    assert math.isfinite(value) and value == pytest.approx(floored)


def test_each_feature_is_compared_on_its_non_null_values_and_its_null_share_apart():
    observed = {
        "length": Distribution((25, 25, 25, 25), nulls=0),
        "island": Distribution((40, 40, 20), nulls=100),  # half the rows null: the shares are of the rest
    }
    report = compare(PROFILE, observed, warn=0.1, fail=0.25)
    drift = {f.name: f for f in report.features}
    assert drift["length"].psi == 0.0 and drift["length"].null_share_change == 0.0
    assert drift["island"].psi == pytest.approx(psi([0.5, 0.3, 0.2], [0.4, 0.4, 0.2]))
    assert drift["island"].null_share_change == pytest.approx(0.5 - 0.1)


@pytest.mark.parametrize(
    ("scored", "level", "drifted"),
    [((25, 25, 25, 25), "ok", ""), ((10, 20, 30, 40), "warn", "length"), ((0, 0, 0, 100), "fail", "length")],
)
def test_the_largest_psi_sets_the_level_and_names_the_features_over_warn(scored, level, drifted):
    report = compare(PROFILE, {"length": Distribution(scored, 0)}, warn=0.1, fail=0.25)
    assert report.level == level
    assert report.tags() == {"smt.drift": level, "smt.drift_features": drifted}
    assert report.metrics({"length": "length"})["drift_psi_max"] == pytest.approx(report.features[0].psi, abs=1e-6)


def test_a_feature_the_scored_rows_lack_is_left_out():
    assert [f.name for f in compare(PROFILE, {"island": Distribution((1, 1, 1), 0)}, 0.1, 0.25).features] == ["island"]


def test_a_feature_with_no_value_to_compare_is_left_out_and_no_rows_is_no_drift():
    """No rows (a night that only deleted rows) or every value null: every bin at the floor gave PSI ~8.5,
    drift fail, and --fail-on-drift exit 7."""
    no_rows = {"length": Distribution((0, 0, 0, 0), 0), "island": Distribution((0, 0, 0), 0)}
    assert compare(PROFILE, no_rows, 0.1, 0.25).level == "ok"
    all_null = {"length": Distribution((0, 0, 0, 0), nulls=10), "island": Distribution((5, 3, 2), 0)}
    assert [f.name for f in compare(PROFILE, all_null, 0.1, 0.25).features] == ["island"]


def test_the_profile_file_round_trips_and_a_model_without_one_has_none(tmp_path):
    PROFILE.write(tmp_path)
    assert TrainingProfile.read(tmp_path) == PROFILE
    assert TrainingProfile.read(tmp_path / "elsewhere") is None
