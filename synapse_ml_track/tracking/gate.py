"""The quality gate: a model is registered when its metrics hold, and promoted to champion only when
it beats the champion on the same test split (unless gate.compare_to_champion is turned off)."""

from __future__ import annotations

from dataclasses import dataclass

from synapse_ml_track.config import GateConfig
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.vocabulary import GATE_REASON_TAG, GATE_TAG, PROMOTION_TAG, higher_is_better


@dataclass(frozen=True)
class Decision:
    register: bool
    reason: str | None = None
    promote: bool = False  # take the champion alias; only a registered version is promoted

    def tags(self) -> dict[str, str]:
        tags = {GATE_TAG: "passed" if self.register else "rejected"}
        if self.reason:
            tags[GATE_REASON_TAG] = self.reason
        if self.register:
            tags[PROMOTION_TAG] = "promoted" if self.promote else "not promoted"
        return tags


def decide(
    gate: GateConfig,
    metrics: dict[str, float],
    champion_metrics: dict[str, float] | None,
    incomparable: str | None = None,
) -> Decision:
    """Register when every min_metrics and max_metrics bound holds. Promote too unless there is a
    champion to compare with (None: none, or the comparison is off) and the run does not do better
    on gate.champion_metric: higher, or lower for an error metric. A champion that could not be scored
    on this run's test split (`incomparable` says why) is not beaten: the version is not promoted."""
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
    if incomparable:
        return Decision(True, f"not compared with the champion: {incomparable}; --no-compare-to-champion promotes it")
    if champion_metrics is None:
        return Decision(True, promote=True)
    metric = gate.champion_metric
    if metric is None:  # build_config fills it in from model.task (config.with_task_defaults)
        raise ConfigError("gate.champion_metric is not set: build the config with build_config")
    ours, theirs = metrics.get(metric), champion_metrics.get(metric)
    if ours is None:
        return Decision(False, f"gate.champion_metric {metric!r} is not a metric of this run")
    if theirs is None:
        return Decision(True, promote=True)
    better, worse = (">", "<=") if higher_is_better(metric) else ("<", ">=")
    if not (ours > theirs if higher_is_better(metric) else ours < theirs):
        return Decision(
            True, f"does not beat the champion: {metric} {ours:.4f} {worse} {theirs:.4f} on the same test data"
        )
    return Decision(True, f"beats the champion: {metric} {ours:.4f} {better} {theirs:.4f}", promote=True)
