"""The quality gate: a model is registered only when its metrics hold and, optionally, beat the champion."""

from __future__ import annotations

from dataclasses import dataclass

from synapse_ml_track.config import GateConfig
from synapse_ml_track.vocabulary import higher_is_better

GATE_TAG = "smt.gate"
GATE_REASON_TAG = "smt.gate_reason"


@dataclass(frozen=True)
class Decision:
    register: bool
    reason: str | None = None

    def tags(self) -> dict[str, str]:
        tags = {GATE_TAG: "passed" if self.register else "rejected"}
        if self.reason:
            tags[GATE_REASON_TAG] = self.reason
        return tags


def decide(gate: GateConfig, metrics: dict[str, float], champion_metrics: dict[str, float] | None) -> Decision:
    """Register when every min_metrics and max_metrics bound holds and, when there is a champion to
    compare with, the run does better on gate.champion_metric: higher, or lower for an error metric."""
    failed = []
    for bound, thresholds, beyond in (("below", gate.min_metrics, "<"), ("above", gate.max_metrics, ">")):
        missed = []
        for name, threshold in sorted(thresholds.items()):
            if name not in metrics:
                missed.append(f"{name} is not a metric of this run (known: {', '.join(sorted(metrics))})")
            elif metrics[name] < threshold if beyond == "<" else metrics[name] > threshold:
                missed.append(f"{name} {metrics[name]:.4f} {beyond} {threshold}")
        if missed:
            failed.append(f"{bound} threshold: " + "; ".join(missed))
    if failed:
        return Decision(False, "; ".join(failed))
    if champion_metrics is not None:
        metric = gate.champion_metric
        ours, theirs = metrics.get(metric), champion_metrics.get(metric)
        if ours is None:
            return Decision(False, f"gate.champion_metric {metric!r} is not a metric of this run")
        if theirs is None:
            return Decision(True)
        better, worse = (">", "<=") if higher_is_better(metric) else ("<", ">=")
        if not (ours > theirs if higher_is_better(metric) else ours < theirs):
            return Decision(
                False, f"does not beat the champion: {metric} {ours:.4f} {worse} {theirs:.4f} on the same test data"
            )
        return Decision(True, f"beats the champion: {metric} {ours:.4f} {better} {theirs:.4f}")
    return Decision(True)
