"""Hyperparameter search: candidates from a grid or a seeded random draw, each validated by k-fold
cross-validation or one train/validation split and tracked as a child run of the training run.

Each candidate is validated and tracked on its own, so an interrupted search resumes (by run key)
without refitting the candidates whose child runs finished. The folds come from a seeded hash of
each row, like the train/test split: the same rows and seed give the same folds anywhere.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import random
import statistics
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyspark import inheritable_thread_target
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from synapse_ml_track.config import SearchConfig
from synapse_ml_track.errors import ConfigError
from synapse_ml_track.plots import candidates_figure, pyplot
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark.data import hash_bucket
from synapse_ml_track.spark.pipeline import set_param
from synapse_ml_track.tracking.runs import RunTracker, all_pages
from synapse_ml_track.tracking.session import TrackingSession
from synapse_ml_track.vocabulary import CANDIDATE_TAG, JOB_TAG, SEARCH_CANDIDATE_JOB, higher_is_better

log = logging.getLogger(__name__)

PARENT_TAG = "mlflow.parentRunId"  # MLflow's own: the UI and AML studio nest child runs by it
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


class Search:
    """Fits a pipeline by search: one child run per candidate, then the best refitted on the whole
    training split. Called where the job would call Pipeline.fit (training.fit_and_evaluate)."""

    def __init__(
        self,
        search: SearchConfig,
        estimator,
        seed: int,
        session: TrackingSession,
        parent: RunTracker,
        redactor: Redactor,
        evaluate: Evaluate,
    ) -> None:
        assert search.metric is not None  # build_config fills it in: the gate's metric unless given
        self.config = search
        self.metric: str = search.metric
        self.estimator = estimator
        self.seed = seed
        self.session = session
        self.parent = parent
        self.redactor = redactor
        self.evaluate = evaluate
        self.candidates = candidates(search, estimator, seed)  # checked before any data is read
        self.outcome: Outcome | None = None

    def __call__(self, pipeline: Pipeline, train: DataFrame) -> PipelineModel:
        done = self._finished_children()
        outcome = Outcome(self.candidates, {}, {})
        for candidate in self.candidates:
            if candidate.key in done:
                run = done[candidate.key]
                outcome.metrics[candidate.index] = dict(run.data.metrics)
                outcome.run_ids[candidate.index] = run.info.run_id
                outcome.reused.add(candidate.index)
        if outcome.reused:
            log.info(
                "search: %s of %s candidates finished in an earlier attempt", len(outcome.reused), len(self.candidates)
            )
        todo = [c for c in self.candidates if c.index not in outcome.reused]
        tagged = with_folds(train, self.seed)
        try:
            for candidate, (run_id, metrics) in self._run_all(pipeline, todo, folds(tagged, self.config)):
                outcome.run_ids[candidate.index], outcome.metrics[candidate.index] = run_id, metrics
            outcome.best = self._best(outcome)
            self.outcome = outcome
            best_map = {self.estimator.getParam(name): value for name, value in outcome.best.params.items()}
            log.info("search: best candidate %s %s; refitting it on the training split",
                     outcome.best.index, outcome.best.params)  # fmt: skip
            return pipeline.fit(tagged.drop(FOLD_COLUMN), best_map)
        finally:
            tagged.unpersist()

    def _run_all(self, pipeline: Pipeline, todo: list[Candidate], splits) -> list[tuple[Candidate, Any]]:
        """Up to `parallelism` candidates at once. After a failure no candidate starts; those already
        running finish (and count as done for a resumed attempt); then the first failure is raised."""
        pending, done = list(todo), []
        running: dict[Future, Candidate] = {}
        failure: BaseException | None = None
        task = inheritable_thread_target(self._run_candidate)  # Spark job properties follow into the thread
        with ThreadPoolExecutor(max_workers=self.config.parallelism, thread_name_prefix="smt-search") as pool:
            while pending or running:
                while pending and failure is None and len(running) < self.config.parallelism:
                    candidate = pending.pop(0)
                    running[pool.submit(task, pipeline, candidate, splits)] = candidate
                if not running:
                    break
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    candidate = running.pop(future)
                    if future.exception() is not None:
                        failure = failure or future.exception()
                    else:
                        done.append((candidate, future.result()))
        if failure is not None:
            raise failure
        return done

    def _run_candidate(self, pipeline: Pipeline, candidate: Candidate, splits) -> tuple[str, dict[str, float]]:
        tags = {PARENT_TAG: self.parent.run_id, JOB_TAG: SEARCH_CANDIDATE_JOB, CANDIDATE_TAG: candidate.key}
        with self.session.tracking_errors():
            child = self.session.start_run(f"candidate-{candidate.index}", tags, self.redactor)
        with self.session.failing_run(child):
            child.log_params(
                {"candidate.index": candidate.index, **{f"estimator.{k}": v for k, v in candidate.params.items()}}
            )
            metrics = validation_metrics(pipeline, self.estimator, candidate, splits, self.evaluate)
            child.log_metrics(metrics)
            child.finish()
        log.info("search: candidate %s %s: %s %.4f", candidate.index, candidate.params, self.metric,
                 metrics.get(self.metric, math.nan))  # fmt: skip
        return child.run_id, metrics

    def _finished_children(self) -> dict[str, Any]:
        """This parent's finished candidates, by key; children an interrupted attempt left RUNNING are
        ended FAILED (their candidates run again)."""
        client, parent_id = self.session.client, self.parent.run_id
        with self.session.tracking_errors():
            children = all_pages(
                lambda token: client.search_runs(
                    [self.session.experiment_id], filter_string=f"tags.{PARENT_TAG} = '{parent_id}'", page_token=token
                )
            )
            for run in children:
                if run.info.status == "RUNNING":
                    client.set_terminated(run.info.run_id, "FAILED")
        return {
            run.data.tags[CANDIDATE_TAG]: run
            for run in children
            if run.info.status == "FINISHED" and CANDIDATE_TAG in run.data.tags
        }

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
        """The parent run's record of the search: how it was run, and the winner's values."""
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
        }

    def metrics(self) -> dict[str, float]:
        outcome, best = self.result
        return {f"validation_{name}": value for name, value in outcome.metrics[best.index].items()}

    def write(self, directory: Path) -> None:
        """candidates.csv (one row per candidate) and candidates.png (the metric per candidate, ± std)."""
        directory.mkdir(parents=True, exist_ok=True)
        metric = self.metric
        table = self.result[0].table(metric)
        table.to_csv(directory / "candidates.csv", index=False)
        figure = candidates_figure(table, metric, f"{len(table)} candidates, {self.config.method} search")
        figure.savefig(directory / "candidates.png", dpi=100)
        pyplot().close(figure)
