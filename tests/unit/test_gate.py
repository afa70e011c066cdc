"""The quality gate's decision, table-driven: thresholds first, then the champion on the same test split."""

import pytest

from synapse_ml_track.config import GateConfig
from synapse_ml_track.gate import decide

RUN = {"accuracy": 0.95, "f1": 0.94}
REGRESSION_RUN = {"rmse": 2.5, "r2": 0.9}
CHAMPION_F1 = {"compare_to_champion": True, "champion_metric": "f1"}
CHAMPION_RMSE = {"compare_to_champion": True, "champion_metric": "rmse"}


@pytest.mark.parametrize(
    ("gate", "champion", "register", "reason"),
    [
        (GateConfig(), None, True, None),
        (GateConfig(min_metrics={"f1": 0.9}), None, True, None),
        (GateConfig(min_metrics={"f1": 0.95}), None, False, "below threshold: f1 0.9400 < 0.95"),
        (GateConfig(min_metrics={"f1": 0.9, "accuracy": 0.99}), None, False, "below threshold: accuracy 0.9500 < 0.99"),
        (GateConfig(min_metrics={"auc": 0.5}), None, False, "below threshold: auc is not a metric of this run"),
        (GateConfig(**CHAMPION_F1), {"f1": 0.90}, True, "beats the champion: f1 0.9400 > 0.9000"),
        (GateConfig(**CHAMPION_F1), {"f1": 0.94}, False, "does not beat the champion: f1 0.9400 <= 0.9400"),
        (GateConfig(**CHAMPION_F1), {"accuracy": 0.9}, True, None),  # the champion lacks the metric
        (GateConfig(compare_to_champion=True, champion_metric="auc"), {"auc": 0.9}, False, "'auc' is not a metric"),
        (GateConfig(min_metrics={"f1": 0.99}, **CHAMPION_F1), {"f1": 0.1}, False, "below threshold"),
    ],
)
def test_decision(gate, champion, register, reason):
    check(decide(gate, RUN, champion), register, reason)


@pytest.mark.parametrize(
    ("gate", "champion", "register", "reason"),
    [
        (GateConfig(max_metrics={"rmse": 3.0}), None, True, None),
        (GateConfig(max_metrics={"rmse": 2.0}), None, False, "above threshold: rmse 2.5000 > 2.0"),
        (GateConfig(min_metrics={"r2": 0.95}, max_metrics={"rmse": 2.0}), None, False, "below threshold: r2"),
        (GateConfig(max_metrics={"mae": 1.0}), None, False, "above threshold: mae is not a metric of this run"),
        # An error metric: lower beats the champion.
        (GateConfig(**CHAMPION_RMSE), {"rmse": 3.0}, True, "beats the champion: rmse 2.5000 < 3.0000"),
        (GateConfig(**CHAMPION_RMSE), {"rmse": 2.0}, False, "does not beat the champion: rmse 2.5000 >= 2.0000"),
        (GateConfig(**CHAMPION_RMSE), {"rmse": 2.5}, False, "does not beat the champion: rmse 2.5000 >= 2.5000"),
        # A score: higher beats the champion, for regression too.
        (GateConfig(compare_to_champion=True, champion_metric="r2"), {"r2": 0.8}, True, "r2 0.9000 > 0.8000"),
    ],
)
def test_regression_decision(gate, champion, register, reason):
    check(decide(gate, REGRESSION_RUN, champion), register, reason)


def check(decision, register, reason):
    assert decision.register is register
    if reason is None:
        assert decision.reason is None
    else:
        assert reason in decision.reason
    assert decision.tags()["smt.gate"] == ("passed" if register else "rejected")
    assert ("smt.gate_reason" in decision.tags()) is (decision.reason is not None)
