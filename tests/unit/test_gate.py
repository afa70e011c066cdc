"""The quality gate's decision, table-driven: thresholds first, then the champion on the same test split."""

import pytest

from synapse_ml_track.config import GateConfig
from synapse_ml_track.gate import decide

RUN = {"accuracy": 0.95, "f1": 0.94}


@pytest.mark.parametrize(
    ("gate", "champion", "register", "reason"),
    [
        (GateConfig(), None, True, None),
        (GateConfig(min_metrics={"f1": 0.9}), None, True, None),
        (GateConfig(min_metrics={"f1": 0.95}), None, False, "below threshold: f1 0.9400 < 0.95"),
        (GateConfig(min_metrics={"f1": 0.9, "accuracy": 0.99}), None, False, "below threshold: accuracy 0.9500 < 0.99"),
        (GateConfig(min_metrics={"auc": 0.5}), None, False, "below threshold: auc is not a metric of this run"),
        (GateConfig(compare_to_champion=True), {"f1": 0.90}, True, "beats the champion: f1 0.9400 > 0.9000"),
        (GateConfig(compare_to_champion=True), {"f1": 0.94}, False, "does not beat the champion: f1 0.9400 <= 0.9400"),
        (GateConfig(compare_to_champion=True), {"accuracy": 0.9}, True, None),  # the champion lacks the metric
        (GateConfig(compare_to_champion=True, champion_metric="auc"), {"auc": 0.9}, False, "'auc' is not a metric"),
        (GateConfig(min_metrics={"f1": 0.99}, compare_to_champion=True), {"f1": 0.1}, False, "below threshold"),
    ],
)
def test_decision(gate, champion, register, reason):
    decision = decide(gate, RUN, champion)
    assert decision.register is register
    if reason is None:
        assert decision.reason is None
    else:
        assert reason in decision.reason
    assert decision.tags()["smt.gate"] == ("passed" if register else "rejected")
    assert ("smt.gate_reason" in decision.tags()) is (decision.reason is not None)
