"""The quality gate's decision, table-driven: thresholds decide registration; beating the champion on
the same test split decides promotion."""

import pytest

from synapse_ml_track.config import GateConfig
from synapse_ml_track.tracking.gate import decide

RUN = {"accuracy": 0.95, "f1": 0.94}
REGRESSION_RUN = {"rmse": 2.5, "r2": 0.9}
CHAMPION_F1 = {"champion_metric": "f1"}
CHAMPION_RMSE = {"champion_metric": "rmse"}
REGISTERED, PROMOTED, REJECTED = (True, False), (True, True), (False, False)


def test_the_champion_comparison_is_on_by_default():
    assert GateConfig().compare_to_champion is True


@pytest.mark.parametrize(
    ("gate", "champion", "outcome", "reason"),
    [
        (GateConfig(), None, PROMOTED, None),  # no champion yet
        (GateConfig(min_metrics={"f1": 0.9}), None, PROMOTED, None),
        (GateConfig(min_metrics={"f1": 0.95}), None, REJECTED, "below threshold: f1 0.9400 < 0.95"),
        (GateConfig(min_metrics={"f1": 0.9, "accuracy": 0.99}), None, REJECTED, "below threshold: accuracy 0.9500"),
        (GateConfig(min_metrics={"auc": 0.5}), None, REJECTED, "below threshold: auc is not a metric of this run"),
        (GateConfig(**CHAMPION_F1), {"f1": 0.90}, PROMOTED, "beats the champion: f1 0.9400 > 0.9000"),
        (GateConfig(**CHAMPION_F1), {"f1": 0.94}, REGISTERED, "does not beat the champion: f1 0.9400 <= 0.9400"),
        (GateConfig(**CHAMPION_F1), {"f1": 0.99}, REGISTERED, "does not beat the champion: f1 0.9400 <= 0.9900"),
        (GateConfig(**CHAMPION_F1), {"accuracy": 0.9}, PROMOTED, None),  # the champion lacks the metric
        (GateConfig(champion_metric="auc"), {"auc": 0.9}, REJECTED, "'auc' is not a metric"),
        (GateConfig(min_metrics={"f1": 0.99}, **CHAMPION_F1), {"f1": 0.1}, REJECTED, "below threshold"),
    ],
)
def test_decision(gate, champion, outcome, reason):
    check(decide(gate, RUN, champion), outcome, reason)


@pytest.mark.parametrize(
    ("gate", "champion", "outcome", "reason"),
    [
        (GateConfig(max_metrics={"rmse": 3.0}), None, PROMOTED, None),
        (GateConfig(max_metrics={"rmse": 2.0}), None, REJECTED, "above threshold: rmse 2.5000 > 2.0"),
        (GateConfig(min_metrics={"r2": 0.95}, max_metrics={"rmse": 2.0}), None, REJECTED, "below threshold: r2"),
        (GateConfig(max_metrics={"mae": 1.0}), None, REJECTED, "above threshold: mae is not a metric of this run"),
        # An error metric: lower beats the champion.
        (GateConfig(**CHAMPION_RMSE), {"rmse": 3.0}, PROMOTED, "beats the champion: rmse 2.5000 < 3.0000"),
        (GateConfig(**CHAMPION_RMSE), {"rmse": 2.0}, REGISTERED, "does not beat the champion: rmse 2.5000 >= 2.0000"),
        (GateConfig(**CHAMPION_RMSE), {"rmse": 2.5}, REGISTERED, "does not beat the champion: rmse 2.5000 >= 2.5000"),
        # A score: higher beats the champion, for regression too.
        (GateConfig(champion_metric="r2"), {"r2": 0.8}, PROMOTED, "r2 0.9000 > 0.8000"),
    ],
)
def test_regression_decision(gate, champion, outcome, reason):
    check(decide(gate, REGRESSION_RUN, champion), outcome, reason)


def test_a_champion_that_could_not_be_scored_on_the_split_is_not_beaten():
    """Promotion means beating the champion on the same test split; a champion that cannot be scored
    there (other classes, columns this run leaves out) is not beaten, and the reason names the way out."""
    why = "version 2 reads bill_depth_mm, which this run's features leave out"
    check(decide(GateConfig(**CHAMPION_F1), RUN, None, why), REGISTERED, f"not compared with the champion: {why}")
    assert "--no-compare-to-champion" in decide(GateConfig(**CHAMPION_F1), RUN, None, why).reason
    check(decide(GateConfig(min_metrics={"f1": 0.99}), RUN, None, why), REJECTED, "below threshold")


def check(decision, outcome, reason):
    register, promote = outcome
    assert (decision.register, decision.promote) == (register, promote)
    if reason is None:
        assert decision.reason is None
    else:
        assert reason in decision.reason
    tags = decision.tags()
    assert tags["smt.gate"] == ("passed" if register else "rejected")
    assert ("smt.gate_reason" in tags) is (decision.reason is not None)
    # Why a registered version did or did not take the champion alias, in the run.
    assert tags.get("smt.promotion") == (None if not register else "promoted" if promote else "not promoted")
