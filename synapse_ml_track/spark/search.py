"""Hyperparameter search: candidates from a grid or a seeded random draw, each validated by k-fold
cross-validation or one train/validation split, the best refitted on the whole training split.

Each candidate is validated on its own and its result yielded as it completes, so the job records it
(a child run of the training run, synapse_ml_track/tracking/search_runs.py) and an interrupted search
resumes (by run key) without refitting the candidates an earlier attempt finished. The folds come from
a seeded hash of each row, like the train/test split: the same rows and seed give the same folds anywhere.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import statistics
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark import inheritable_thread_target
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from synapse_ml_track.config import SearchConfig
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.plots import candidates_figure
from synapse_ml_track.spark.data import hash_bucket
from synapse_ml_track.spark.pipeline import set_param
from synapse_ml_track.vocabulary import higher_is_better

log = logging.getLogger(__name__)

FOLD_COLUMN = "_smt_fold_bucket"
RANGE_KEYS = {"low", "high", "log", "integer"}

# Metrics of one validation fold, by name (Evaluation.metrics or RegressionEvaluation.metrics).
Evaluate = Callable[[PipelineModel, DataFrame], dict[str, float]]


@dataclass(frozen=True)
class Candidate:
    index: int
    params: dict[str, Any]  # estimator parameter -> value

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def candidates(search: SearchConfig, estimator, seed: int) -> list[Candidate]:
    """Every combination of the listed values (grid), or `samples` seeded draws (random), each
    value checked against the estimator before anything is fitted."""
    grid = search.method == "grid"
    for name, spec in search.params.items():
        if isinstance(spec, dict):
            if grid:
                raise ConfigError(f"model.search.params.{name} is a range; ranges need model.search.method=random")
            _check_range(name, spec)
        elif not isinstance(spec, list) or not spec:
            raise ConfigError(f"model.search.params.{name} must list values (or, for method random, give a range)")
    names = sorted(search.params)
    if all(isinstance(search.params[name], list) for name in names):
        combos = [
            dict(zip(names, values, strict=True)) for values in itertools.product(*(search.params[n] for n in names))
        ]
        if not grid and search.samples < len(combos):
            combos = random.Random(seed).sample(combos, search.samples)
    else:
        rng = random.Random(seed)
        drawn = {
            json.dumps(c := {n: _draw(rng, search.params[n]) for n in names}, sort_keys=True): c
            for _ in range(search.samples)
        }
        combos = list(drawn.values())
    for combo in combos:
        for name, value in combo.items():
            set_param(estimator.copy(), name, value, "model.search.params")
    return [Candidate(index, combo) for index, combo in enumerate(combos)]


def _check_range(name: str, spec: dict[str, Any]) -> None:
    unknown = set(spec) - RANGE_KEYS
    low, high = spec.get("low"), spec.get("high")
    if unknown or not isinstance(low, (int, float)) or not isinstance(high, (int, float)) or low > high:
        raise ConfigError(
            f"model.search.params.{name} must be a range {{low: number, high: number, log: bool, integer: bool}} "
            f"with low <= high, got {spec!r}"
        )
    if spec.get("log") and low <= 0:
        raise ConfigError(f"model.search.params.{name}: a log range needs low > 0, got {low}")


def _draw(rng: random.Random, spec: list | dict[str, Any]) -> Any:
    if isinstance(spec, list):
        return rng.choice(spec)
    low, high = spec["low"], spec["high"]
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if spec.get("log") else rng.uniform(low, high)
    return int(round(value)) if spec.get("integer") else value


def with_folds(train: DataFrame, seed: int) -> DataFrame:
    """The training split with each row's fold bucket, a number in [0, 1), cached: every fit and
    evaluation of every candidate scans it, so the hashing and the filters before it run once."""
    return train.withColumn(FOLD_COLUMN, hash_bucket(train, seed + 1)).cache()  # not the train/test split's hash


def folds(tagged: DataFrame, search: SearchConfig) -> list[tuple[DataFrame, DataFrame]]:
    """(fit, validation) pairs of a with_folds frame: k folds, or one train_ratio split."""
    bucket = F.col(FOLD_COLUMN)
    if search.validation == "train_validation_split":
        bounds = [(bucket < search.train_ratio, bucket >= search.train_ratio)]
    else:
        fold = F.floor(bucket * search.folds)
        bounds = [(fold != i, fold == i) for i in range(search.folds)]
    return [(tagged.where(fit).drop(FOLD_COLUMN), tagged.where(held).drop(FOLD_COLUMN)) for fit, held in bounds]


def validation_metrics(
    pipeline: Pipeline, estimator, candidate: Candidate, splits, evaluate: Evaluate
) -> dict[str, float]:
    """The candidate's mean metrics over the folds, and their standard deviation (`<metric>_std`,
    population, as CrossValidatorModel.stdMetrics) when there is more than one fold."""
    param_map = {estimator.getParam(name): value for name, value in candidate.params.items()}
    per_fold = [evaluate(pipeline.fit(fit, param_map), held) for fit, held in splits]
    names = [name for name in per_fold[0] if name != "test_rows"]
    metrics = {name: statistics.fmean(fold[name] for fold in per_fold) for name in names}
    if len(per_fold) > 1:
        metrics |= {f"{name}_std": statistics.pstdev(fold[name] for fold in per_fold) for name in names}
    return metrics


@dataclass
class Outcome:
    candidates: list[Candidate]
    metrics: dict[int, dict[str, float]]  # candidate index -> validation metrics
    run_ids: dict[int, str]  # candidate index -> child run id
    reused: set[int] = field(default_factory=set)  # finished in an earlier attempt, not refitted
    best: Candidate | None = None

    def table(self, metric: str):
        import pandas as pd

        rows = [
            {
                "candidate": c.index,
                **{f"param.{name}": value for name, value in c.params.items()},
                metric: self.metrics[c.index].get(metric, math.nan),
                f"{metric}_std": self.metrics[c.index].get(f"{metric}_std", math.nan),
                "best": c is self.best,
                "reused": c.index in self.reused,
                "run_id": self.run_ids.get(c.index, ""),
            }
            for c in self.candidates
        ]
        return pd.DataFrame(rows)


@dataclass(frozen=True)
class CandidateResult:
    """One candidate's validation: its metrics, or the exception it raised (`error`, metrics empty)."""

    candidate: Candidate
    metrics: dict[str, float] = field(default_factory=dict)
    error: BaseException | None = None


class Search:
    """Fits a pipeline by search, in steps the job calls in order: `fold_buckets` of the training
    split, `validate` each candidate on them, `refit_best` on the whole split, then `write` the table.
    The candidates are checked against the estimator when the search is made, before any data is read."""

    def __init__(self, search: SearchConfig, estimator, seed: int, evaluate: Evaluate) -> None:
        assert search.metric is not None  # build_config fills it in: the gate's metric unless given
        self.config = search
        self.metric: str = search.metric
        self.estimator = estimator
        self.seed = seed
        self.evaluate = evaluate
        self.candidates = candidates(search, estimator, seed)
        self.outcome: Outcome | None = None

    @contextmanager
    def fold_buckets(self, train: DataFrame) -> Iterator[DataFrame]:
        """The training split with its fold buckets (with_folds), cached while the block runs."""
        tagged = with_folds(train, self.seed)
        try:
            yield tagged
        finally:
            tagged.unpersist()

    def validate(
        self, pipeline: Pipeline, tagged: DataFrame, finished: Mapping[str, tuple[str, dict[str, float]]]
    ) -> Generator[CandidateResult, None, None]:
        """Each candidate's result as it completes, up to `parallelism` validated at once; `finished`
        (candidate key -> (run id, metrics)): the candidates an earlier attempt finished, not refitted.

        After a failure no candidate starts; those already running finish and are yielded (a resumed
        attempt counts them as done); then the first failure is raised.
        """
        outcome = self.outcome = Outcome(self.candidates, {}, {})
        for candidate in self.candidates:
            if candidate.key in finished:
                outcome.run_ids[candidate.index], outcome.metrics[candidate.index] = finished[candidate.key]
                outcome.reused.add(candidate.index)
        if outcome.reused:
            log.info(
                "search: %s of %s candidates finished in an earlier attempt", len(outcome.reused), len(self.candidates)
            )
        pending = [c for c in self.candidates if c.index not in outcome.reused]
        splits = folds(tagged, self.config)
        running: dict[Future, Candidate] = {}
        failure: BaseException | None = None
        task = inheritable_thread_target(self._validate_one)  # Spark job properties follow into the thread
        with ThreadPoolExecutor(max_workers=self.config.parallelism, thread_name_prefix="smt-search") as pool:
            while pending or running:
                while pending and failure is None and len(running) < self.config.parallelism:
                    candidate = pending.pop(0)
                    running[pool.submit(task, pipeline, candidate, splits)] = candidate
                if not running:
                    break
                completed, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in completed:
                    candidate, error = running.pop(future), future.exception()
                    if error is not None:
                        failure = failure or error
                        yield CandidateResult(candidate, error=error)
                    else:
                        outcome.metrics[candidate.index] = future.result()
                        yield CandidateResult(candidate, future.result())
        if failure is not None:
            raise failure

    def _validate_one(self, pipeline: Pipeline, candidate: Candidate, splits) -> dict[str, float]:
        metrics = validation_metrics(pipeline, self.estimator, candidate, splits, self.evaluate)
        log.info("search: candidate %s %s: %s %.4f", candidate.index, candidate.params, self.metric,
                 metrics.get(self.metric, math.nan))  # fmt: skip
        return metrics

    def refit_best(self, pipeline: Pipeline, tagged: DataFrame) -> PipelineModel:
        """The best validated candidate, fitted on the whole training split."""
        if self.outcome is None:
            raise RuntimeError("no candidate has been validated")
        best = self.outcome.best = self._best(self.outcome)
        log.info("search: best candidate %s %s; refitting it on the training split", best.index, best.params)
        return pipeline.fit(tagged.drop(FOLD_COLUMN), {self.estimator.getParam(k): v for k, v in best.params.items()})

    def _best(self, outcome: Outcome) -> Candidate:
        metric = self.metric
        scored = [c for c in self.candidates if metric in outcome.metrics[c.index]]
        if not scored:
            known = sorted(outcome.metrics[self.candidates[0].index])
            raise ConfigError(f"model.search.metric {metric!r} was not measured (measured: {', '.join(known)})")
        sign = 1 if higher_is_better(metric) else -1
        return max(scored, key=lambda c: (sign * outcome.metrics[c.index][metric], -c.index))

    @property
    def result(self) -> tuple[Outcome, Candidate]:
        """The finished search's outcome and its best candidate."""
        if self.outcome is None or self.outcome.best is None:
            raise RuntimeError("the search has not run")
        return self.outcome, self.outcome.best

    def params(self) -> dict[str, Any]:
        """The parent run's record of the search: how it was run, and the winner's values (as best.* and
        as the estimator.* params the job leaves out until the search has chosen them)."""
        config, (_, best) = self.config, self.result
        return {
            "search.method": config.method,
            "search.validation": config.validation,
            "search.folds": config.folds if config.validation == "cross_validation" else 1,
            "search.candidates": len(self.candidates),
            "search.metric": self.metric,
            "search.parallelism": config.parallelism,
            "search.best_candidate": best.index,
            **{f"best.{name}": value for name, value in best.params.items()},
            # The refitted model's: the run's estimator.* params are the model it holds, searched ones too.
            **{f"estimator.{name}": value for name, value in best.params.items()},
        }

    def metrics(self) -> dict[str, float]:
        outcome, best = self.result
        return {f"validation_{name}": value for name, value in outcome.metrics[best.index].items()}

    def write(self, directory: Path, run_ids: Mapping[int, str]) -> None:
        """candidates.csv (one row per candidate) and candidates.png (the metric per candidate, ± std);
        `run_ids`: the child run recorded for each candidate validated in this attempt, by index."""
        directory.mkdir(parents=True, exist_ok=True)
        outcome = self.result[0]
        table = replace(outcome, run_ids={**outcome.run_ids, **run_ids}).table(self.metric)
        table.to_csv(directory / "candidates.csv", index=False)
        figure = candidates_figure(table, self.metric, f"{len(table)} candidates, {self.config.method} search")
        figure.savefig(directory / "candidates.png", dpi=100)
