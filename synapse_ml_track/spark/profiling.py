"""The Spark side of drift (synapse_ml_track/drift.py): the training split's profile, and the aggregate
columns that count scored rows into the profile's bins inside the scoring query (an Observation of the
input), so drift costs no second read.

Both count with the same columns (`distribution_columns`), so a value falls in the same bin at
training and at scoring. A numeric feature is counted by cumulative sums, one per edge (values at or
below it) plus the non-null count, from which each bin's count is a difference: one comparison per edge
and row, where a bin index would need one per edge and another per bin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from synapse_ml_track.drift import (
    NUMERIC_BINS,
    TOP_CATEGORIES,
    Distribution,
    FeatureProfile,
    TrainingProfile,
    shares,
)
from synapse_ml_track.spark.data import RESERVED_PREFIX, FeatureSpec, column
from synapse_ml_track.spark.session import one_row

QUANTILE_ERROR = 0.001  # approxQuantile's relative error: exact on a few thousand rows
_ROWS = f"{RESERVED_PREFIX}drift_rows"


def training_profile(train: DataFrame, spec: FeatureSpec) -> TrainingProfile:
    """The profile of the training split: three small jobs (the numeric features' quantiles, the
    categorical features' most frequent values, then every bin's count in one aggregation)."""
    edges = _quantile_edges(train, spec.numeric)
    categories = _top_categories(train, spec.categorical)
    outline = [FeatureProfile(name, "numeric", (), 0.0, edges=edges[name]) for name in spec.numeric]
    outline += [FeatureProfile(name, "categorical", (), 0.0, categories=categories[name]) for name in spec.categorical]
    counted = one_row(train.agg(*distribution_columns(outline))).asDict()
    distributions = distributions_of(outline, counted)
    rows = int(counted[_ROWS])
    features = tuple(
        FeatureProfile(
            feature.name,
            feature.kind,
            shares(distributions[feature.name].counts),
            distributions[feature.name].nulls / rows if rows else 0.0,
            feature.edges,
            feature.categories,
        )  # fmt: skip
        for feature in outline
    )
    return TrainingProfile(rows, features)


def _quantile_edges(train: DataFrame, numeric: tuple[str, ...]) -> dict[str, tuple[float, ...]]:
    """Each numeric feature's deciles, repeated values once (a feature with few values has fewer bins)."""
    if not numeric:
        return {}
    probabilities = [i / NUMERIC_BINS for i in range(1, NUMERIC_BINS)]
    slots = [f"{RESERVED_PREFIX}q_{i}" for i in range(len(numeric))]
    frame = train.select(*[column(name).cast("double").alias(slot) for name, slot in zip(numeric, slots, strict=True)])
    quantiles = frame.approxQuantile(slots, probabilities, QUANTILE_ERROR)
    return {name: tuple(sorted(set(values))) for name, values in zip(numeric, quantiles, strict=True)}


def _top_categories(train: DataFrame, categorical: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Each categorical feature's most frequent values (up to TOP_CATEGORIES), in one job for all."""
    if not categorical:
        return {}
    pairs = F.explode(
        F.array(*[
            F.struct(F.lit(i).alias("feature"), column(name).cast("string").alias("value"))
            for i, name in enumerate(categorical)
        ])
    ).alias("pair")  # fmt: skip
    counted = train.select(pairs).select("pair.*").where(F.col("value").isNotNull()).groupBy("feature", "value").count()
    ranked = counted.withColumn(
        "rank", F.row_number().over(Window.partitionBy("feature").orderBy(F.desc("count"), F.asc("value")))
    )
    top: dict[str, list[str]] = {name: [] for name in categorical}
    for row in ranked.where(F.col("rank") <= TOP_CATEGORIES).orderBy("feature", "rank").collect():
        top[categorical[row["feature"]]].append(row["value"])
    return {name: tuple(values) for name, values in top.items()}


def distribution_columns(features: Sequence[FeatureProfile]) -> list[Column]:
    """Aggregate columns counting rows into each feature's bins (see the module's docstring)."""
    columns = [F.count(F.lit(1)).alias(_ROWS)]
    for i, feature in enumerate(features):
        if feature.kind == "numeric":
            value = column(feature.name).cast("double")
            columns += [F.sum((value <= edge).cast("long")).alias(_slot(i, j)) for j, edge in enumerate(feature.edges)]
        else:
            value = column(feature.name).cast("string")
            columns += [
                F.sum((value == category).cast("long")).alias(_slot(i, j))
                for j, category in enumerate(feature.categories)
            ]
        columns.append(F.count(value).alias(_slot(i, "present")))
    return columns


def distributions_of(features: Sequence[FeatureProfile], counted: Mapping[str, Any]) -> dict[str, Distribution]:
    """Each feature's counts per bin from the values of `distribution_columns` (a row, or an
    Observation's values)."""
    rows = int(counted[_ROWS])
    found = {}
    for i, feature in enumerate(features):
        present = int(counted[_slot(i, "present")] or 0)
        if feature.kind == "numeric":
            cumulative = [int(counted[_slot(i, j)] or 0) for j in range(len(feature.edges))] + [present]
            counts = [cumulative[0], *(cumulative[j + 1] - cumulative[j] for j in range(len(feature.edges)))]
        else:
            counts = [int(counted[_slot(i, j)] or 0) for j in range(len(feature.categories))]
            counts.append(present - sum(counts))
        found[feature.name] = Distribution(tuple(counts), rows - present)
    return found


def _slot(feature: int, part: int | str) -> str:
    return f"{RESERVED_PREFIX}drift_{feature}_{part}"
