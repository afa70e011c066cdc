"""Drift: how far the data a model scores has moved from the data it was trained on, per feature.

Training records a profile of its training split (TrainingProfile): for a numeric feature, up to 10
quantile bins and the share of non-null values in each; for a categorical one, the shares of its most
frequent categories and of all others; for both, the share of nulls. It travels inside the model's
directory (PROFILE_FILE). Scoring counts the rows it scores into the same bins in the pass that writes
the scores (spark/profiling.py) and compares (`compare`): the population stability index (PSI) of
each feature's non-null values, and the change in its null share.

PSI = sum over bins of (actual - expected) * ln(actual / expected), with shares of non-null values.
A bin empty on either side would make it infinite: a share below SHARE_FLOOR counts as SHARE_FLOOR
(a common choice; one empty bin of ten then adds at most about 0.9 for a bin that held a tenth).
Conventional reading: below 0.1 no real change, 0.1 to 0.25 a moderate one, above 0.25 a large one:
the defaults of drift.warn and drift.fail.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synapse_ml_track.plots import new_figure
from synapse_ml_track.vocabulary import DRIFT_TAG, DRIFTED_TAG

PROFILE_FILE = "training_profile.json"
PROFILE_FORMAT = 1
NUMERIC_BINS = 10
TOP_CATEGORIES = 20
SHARE_FLOOR = 1e-4
LEVELS = ("ok", "warn", "fail")


@dataclass(frozen=True)
class FeatureProfile:
    """One feature of the training split. Numeric: `edges` split the non-null values into
    len(edges) + 1 bins, a value v in the first bin whose upper edge is >= v. Categorical: `categories`,
    then one bin for every other value. `shares`: each bin's share of the non-null values."""

    name: str
    kind: str  # numeric | categorical
    shares: tuple[float, ...]
    null_share: float
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"name": self.name, "kind": self.kind}
        fields.update({"edges": list(self.edges)} if self.kind == "numeric" else {"categories": list(self.categories)})
        return {**fields, "shares": list(self.shares), "null_share": self.null_share}

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> FeatureProfile:
        return cls(
            name=str(fields["name"]), kind=str(fields["kind"]),
            shares=tuple(float(s) for s in fields["shares"]), null_share=float(fields["null_share"]),
            edges=tuple(float(e) for e in fields.get("edges", ())),
            categories=tuple(str(c) for c in fields.get("categories", ())),
        )  # fmt: skip


@dataclass(frozen=True)
class TrainingProfile:
    rows: int
    features: tuple[FeatureProfile, ...]

    def write(self, directory: Path) -> Path:
        path = directory / PROFILE_FILE
        document = {"format": PROFILE_FORMAT, "rows": self.rows, "features": [f.to_dict() for f in self.features]}
        path.write_text(json.dumps(document, indent=2), encoding="utf-8")
        return path

    @classmethod
    def read(cls, model_dir: str | Path) -> TrainingProfile | None:
        """The profile saved in a model's directory; None for a model trained before profiles were."""
        path = Path(model_dir) / PROFILE_FILE
        if not path.is_file():
            return None
        document = json.loads(path.read_text(encoding="utf-8"))
        return cls(int(document["rows"]), tuple(FeatureProfile.from_dict(f) for f in document["features"]))


@dataclass(frozen=True)
class Distribution:
    """One feature's rows as scoring counted them: per bin (the profile's bins), and the nulls."""

    counts: tuple[int, ...]
    nulls: int

    @property
    def rows(self) -> int:
        return sum(self.counts) + self.nulls


def shares(counts: Sequence[int]) -> tuple[float, ...]:
    total = sum(counts)
    return tuple(count / total if total else 0.0 for count in counts)


def psi(expected: Sequence[float], actual: Sequence[float]) -> float:
    """The population stability index of two distributions over the same bins (shares floored)."""
    total = 0.0
    for e, a in zip(expected, actual, strict=True):
        e, a = max(e, SHARE_FLOOR), max(a, SHARE_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


@dataclass(frozen=True)
class FeatureDrift:
    name: str
    psi: float
    null_share_change: float  # the scored rows' null share minus the training split's
    rows: int  # the scored rows counted


@dataclass(frozen=True)
class DriftReport:
    features: tuple[FeatureDrift, ...]
    warn: float
    fail: float

    @property
    def psi_max(self) -> float:
        return max((f.psi for f in self.features), default=0.0)

    @property
    def level(self) -> str:
        worst = self.psi_max
        return "fail" if worst >= self.fail else "warn" if worst >= self.warn else "ok"

    @property
    def drifted(self) -> list[FeatureDrift]:
        """The features at or above drift.warn, largest PSI first."""
        return sorted((f for f in self.features if f.psi >= self.warn), key=lambda f: -f.psi)

    def metrics(self, keys: Mapping[str, str]) -> dict[str, float]:
        """drift_psi_<feature>, drift_null_change_<feature> (`keys`: each feature's name as a metric
        name may spell it) and drift_psi_max."""
        metrics: dict[str, float] = {}
        for feature in self.features:
            metrics[f"drift_psi_{keys[feature.name]}"] = round(feature.psi, 6)
            metrics[f"drift_null_change_{keys[feature.name]}"] = round(feature.null_share_change, 6)
        return {**metrics, "drift_psi_max": round(self.psi_max, 6)}

    def tags(self) -> dict[str, str]:
        return {DRIFT_TAG: self.level, DRIFTED_TAG: ", ".join(f.name for f in self.drifted)}

    def summary(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "psi_max": round(self.psi_max, 6),
            "warn": self.warn,
            "fail": self.fail,
            "features": {
                f.name: {"psi": round(f.psi, 6), "null_share_change": round(f.null_share_change, 6)}
                for f in self.features
            },
        }

    def line(self) -> str:
        """One line for the log and the error: the level and the drifted features with their PSI."""
        listing = ", ".join(f"{f.name} (PSI {f.psi:.2f})" for f in self.drifted) or "none"
        thresholds = f"warn {self.warn}, fail {self.fail}"
        return f"drift {self.level}: largest PSI {self.psi_max:.2f} ({thresholds}); at or over warn: {listing}"

    def write(self, directory: Path) -> None:
        """drift.json (the summary) and drift_psi.png (PSI per feature, with the two thresholds)."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "drift.json").write_text(json.dumps(self.summary(), indent=2), encoding="utf-8")
        names = [f.name for f in self.features]
        figure, axes = new_figure((6.4, 1.2 + 0.35 * max(len(names), 1)))
        colours = ["tab:red" if f.psi >= self.fail else "tab:orange" if f.psi >= self.warn else "tab:blue"
                   for f in self.features]  # fmt: skip
        axes.barh(names, [f.psi for f in self.features], color=colours)
        axes.axvline(self.warn, color="tab:orange", linestyle="--", label=f"warn {self.warn}")
        axes.axvline(self.fail, color="tab:red", linestyle="--", label=f"fail {self.fail}")
        axes.invert_yaxis()
        axes.set_xlabel("population stability index")
        axes.set_title("Drift from the training split, per feature")
        axes.legend(loc="lower right")
        figure.tight_layout()
        figure.savefig(directory / "drift_psi.png", dpi=100)


def compare(profile: TrainingProfile, observed: Mapping[str, Distribution], warn: float, fail: float) -> DriftReport:
    """Each profiled feature's drift; a feature the scored rows lack, or hold no value of (no rows, or
    every one null), is left out: there is no distribution to compare, and PSI over empty bins would
    be as large as the share floor makes it (a night that only deleted rows failed on drift)."""
    drifts = []
    for feature in profile.features:
        seen = observed.get(feature.name)
        if seen is None or not sum(seen.counts):
            continue
        null_change = (seen.nulls / seen.rows if seen.rows else 0.0) - feature.null_share
        drifts.append(FeatureDrift(feature.name, psi(feature.shares, shares(seen.counts)), null_change, seen.rows))
    return DriftReport(tuple(drifts), warn, fail)
