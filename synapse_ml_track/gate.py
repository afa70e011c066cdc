"""The quality gate: a model is registered only when its metrics hold and, optionally, beat the champion."""

from __future__ import annotations

from dataclasses import dataclass

from synapse_ml_track.config import GateConfig

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
    failed = []
    for name, threshold in sorted(gate.min_metrics.items()):
        if name not in metrics:
            failed.append(f"{name} is not a metric of this run (known: {', '.join(sorted(metrics))})")
        elif metrics[name] < threshold:
            failed.append(f"{name} {metrics[name]:.4f} < {threshold}")
    if failed:
        return Decision(False, "below threshold: " + "; ".join(failed))
    if champion_metrics is not None:
        metric = gate.champion_metric
        ours, theirs = metrics.get(metric), champion_metrics.get(metric)
        if ours is None:
            return Decision(False, f"gate.champion_metric {metric!r} is not a metric of this run")
        if theirs is not None and ours <= theirs:
            return Decision(
                False, f"does not beat the champion: {metric} {ours:.4f} <= {theirs:.4f} on the same test data"
            )
        return Decision(True, f"beats the champion: {metric} {ours:.4f} > {theirs:.4f}" if theirs is not None else None)
    return Decision(True)
