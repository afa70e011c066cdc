"""The training job's Spark work, in the steps synapse_ml_track/train_job.py calls in order: `prepare`
the input, fit its pipeline (or `search_for` the best one, spark/search.py), `evaluate` the model and
the champion on the test split while the model is saved beside. Nothing here tracks: each step
returns plain results, which the job records."""

from __future__ import annotations

import json
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession

from synapse_ml_track.config import JobConfig, resolved
from synapse_ml_track.drift import TrainingProfile
from synapse_ml_track.spark import data as data_module
from synapse_ml_track.spark import models as spark_models
from synapse_ml_track.spark.data import LABEL, FeatureSpec, SplitCounts
from synapse_ml_track.spark.evaluation import Evaluation
from synapse_ml_track.spark.evaluation import evaluate as evaluate_classification
from synapse_ml_track.spark.pipeline import (
    LABEL_INDEX,
    PREDICTION,
    build_pipeline,
    class_labels,
    feature_weights,
    fit_label_indexer,
    predictor,
)
from synapse_ml_track.spark.profiling import training_profile
from synapse_ml_track.spark.regression_evaluation import PLOT_POINTS, RegressionEvaluation, evaluate_regression
from synapse_ml_track.spark.search import Search
from synapse_ml_track.spark.sources import InputSource
from synapse_ml_track.vocabulary import MODEL_TYPE_PARAM, TASK_PARAM

log = logging.getLogger(__name__)

INPUT_EXAMPLE_ROWS = 5


def config_params(config: JobConfig, estimator, *, dataframe: bool = False) -> dict[str, Any]:
    """Every setting that shapes the result, and the estimator's full parameter map; `dataframe`: the
    input was handed over as a DataFrame, so there is no path (nor the bundled data)."""
    data = config.data
    params: dict[str, Any] = {
        "data.path": data.path or ("" if data.table or dataframe else "bundled:penguins"),
        "data.table": data.table or "",
        "data.version": "" if data.version is None else data.version,
        "data.timestamp": data.timestamp or "",
        "data.format": data.format or "",
        "data.label": data.label,
        "data.nulls": data.nulls,
        "data.train_fraction": data.train_fraction,
        "data.seed": data.seed,
        "data.exclude": ",".join(data.exclude),
        TASK_PARAM: config.model.task,
        MODEL_TYPE_PARAM: config.model.type,
    }
    for name, value in sorted(data.csv_options.items()):
        params[f"data.csv_options.{name}"] = value
    searched = config.model.search.params  # recorded once the search has chosen them (Search.params)
    for param, value in estimator.extractParamMap().items():
        if param.name not in searched:
            params[f"estimator.{param.name}"] = value
    return params


def search_for(config: JobConfig, estimator) -> Search | None:
    """The configured hyperparameter search, its candidates checked against `estimator`; None without one."""
    if not config.model.search.params:
        return None
    seed = config.data.seed
    return Search(
        config.model.search, estimator, seed,
        evaluate=lambda model, held: evaluate_model(model, held, seed, plots=False).metrics,
    )  # fmt: skip


@dataclass(frozen=True)
class PreparedData:
    """The input read, checked and split, the label indexed for a classification: cached until `close`."""

    frame: DataFrame  # the prepared input, cached: both splits read from it
    train: DataFrame
    test: DataFrame
    spec: FeatureSpec
    labels: list[str] | None  # the classes; None for a regression
    counts: SplitCounts
    many_valued: dict[str, int]  # categorical features over data.max_categories

    def pipeline(self, estimator) -> Pipeline:
        return build_pipeline(self.spec, estimator, self.labels)

    def close(self) -> None:
        self.frame.unpersist()


def prepare(spark: SparkSession, config: JobConfig, source: InputSource) -> PreparedData:
    """Read the input, check it and split it into train and test."""
    task = config.model.task
    raw = data_module.read_input(spark, source, config.data)
    spec = data_module.feature_spec(raw.schema, config.data)
    frame = data_module.prepare(raw, spec, task).cache()
    try:
        train, test = data_module.split(frame, config.data.train_fraction, config.data.seed)
        counts = data_module.count_split(train, test, task)
        if counts.incomplete and config.data.nulls == "reject":
            data_module.refuse_nulls(frame, spec)
        train, test = data_module.without_nulls(train), data_module.without_nulls(test)
        data_module.check_split(counts.train, counts.test, spec, task, resolved(config.model.type, "model.type"))
        wide = data_module.many_valued(train, spec, config.data.max_categories)
        if wide:
            listing = ", ".join(f"{name} (~{count})" for name, count in wide.items())
            log.warning(
                "categorical feature(s) with more than %s distinct values, each one-hot encoded into as many "
                "columns: %s; exclude identifier-like columns with data.exclude or raise data.max_categories",
                config.data.max_categories, listing,
            )  # fmt: skip
        labels = None
        if task == "classification":
            label_indexer = fit_label_indexer(train)
            labels = list(label_indexer.labels)
            train, test = label_indexer.transform(train), label_indexer.transform(test)
    except BaseException:
        frame.unpersist()
        raise
    return PreparedData(frame, train, test, spec, labels, counts, wide)


@dataclass(frozen=True)
class Champion:
    """The registered model's current champion, loaded, to score on this run's test split."""

    model: PipelineModel
    name: str  # the registered model's
    version: str
    columns: list[str] | None = None  # its input columns (its signature's); None: no signature


@dataclass
class FittedModel:
    spec: FeatureSpec
    model: PipelineModel
    labels: list[str] | None  # the classes; None for a regression
    evaluation: Evaluation | RegressionEvaluation
    train_rows: int
    test_indexed: DataFrame  # the test split (with its label index, for classification), for further evaluation
    sample: pd.DataFrame  # a few test rows of the model's input: the input example
    champion_metrics: dict[str, float] | None = None  # None: no champion, or one not comparable
    champion_incomparable: str | None = None  # why the champion could not be scored on the test split
    dropped_rows: int = 0  # rows with a null label or feature, left out (data.nulls=drop)
    null_label_rows: int = 0  # of which with a null label
    many_valued: dict[str, int] = field(default_factory=dict)  # categorical features over data.max_categories
    saved: Future[Path] | None = None  # the model's directory, once the save has written it
    profile: TrainingProfile | None = None  # the training split's, saved in the model's directory

    @property
    def metrics(self) -> dict[str, float]:
        rows = {
            "train_rows": self.train_rows,
            "rows_dropped_nulls": self.dropped_rows,
            "rows_null_label": self.null_label_rows,
        }
        return {**self.evaluation.all_metrics, **{k: float(v) for k, v in rows.items()}}

    def write(self, directory: Path) -> None:
        """evaluation/ (the report and plots, the feature weights) and metrics.json."""
        weights = feature_weights(self.model, self.spec, self.test_indexed)
        self.evaluation.write(weights, directory / "evaluation")
        (directory / "metrics.json").write_text(json.dumps(self.metrics, indent=2), encoding="utf-8")


def evaluate(
    model: PipelineModel,
    prepared: PreparedData,
    seed: int,
    champion: Champion | None = None,
    *,
    save_to: Path | None = None,
    dfs_tmp: str | None = None,
) -> FittedModel:
    """The model's metrics on the test split, and the champion's while the split is cached.

    `save_to`: the directory to save the model in, with the training split's profile (drift.py) beside
    it. The save (a Spark write of every stage, about a second even for a small model) goes on in a
    thread of its own, beside the evaluation and whatever the caller does next, until
    FittedModel.saved is done.
    """
    test = prepared.test
    sample = test.select(*[data_module.column(c) for c in prepared.spec.columns]).limit(INPUT_EXAMPLE_ROWS).toPandas()
    profile = training_profile(prepared.train, prepared.spec) if save_to else None
    saved = _start_saving(model, sample, prepared.labels, save_to, dfs_tmp, profile) if save_to else None
    try:
        evaluation = evaluate_model(model, test, seed)
        champion_metrics, incomparable = None, _incomparable(champion, test, prepared.labels) if champion else None
        if champion is not None and incomparable is None:
            champion_metrics = evaluate_model(champion.model, test, seed).all_metrics
    except BaseException:
        if saved is not None:
            wait([saved])  # the failure is reported once the model's directory is complete
        raise
    counts = prepared.counts
    return FittedModel(
        prepared.spec, model, prepared.labels, evaluation, sum(counts.train.values()), test, sample, champion_metrics,
        champion_incomparable=incomparable, dropped_rows=counts.incomplete, null_label_rows=counts.null_label,
        many_valued=prepared.many_valued, saved=saved, profile=profile,
    )  # fmt: skip


def _start_saving(
    model: PipelineModel,
    sample: pd.DataFrame,
    labels: list[str] | None,
    directory: Path,
    dfs_tmp: str | None,
    profile: TrainingProfile | None,
) -> Future[Path]:
    def save() -> Path:
        saved = spark_models.save_model(model, directory, model_signature(sample, labels), sample, dfs_tmp)
        if profile is not None:
            profile.write(saved)  # inside the model's directory: every registered version carries its own
        return saved

    saver = ThreadPoolExecutor(max_workers=1, thread_name_prefix="smt-model-save")
    try:
        return saver.submit(save)
    finally:
        saver.shutdown(wait=False)  # the save goes on; its thread ends with it


def model_signature(sample: pd.DataFrame, labels: list[str] | None) -> ModelSignature:
    # The output is the decoded class name, or the regression's number; no need to run the model to learn that.
    output_type = "string" if labels is not None else "double"
    return ModelSignature(inputs=infer_signature(sample).inputs, outputs=Schema([ColSpec(output_type, PREDICTION)]))


def evaluate_model(
    model: PipelineModel, test: DataFrame, seed: int, plots: bool = True
) -> Evaluation | RegressionEvaluation:
    """The model's metrics on `test`; `plots` False when only the numbers are wanted (search folds).

    Only the columns the metrics read are kept, and cached only when a second pass reads them again
    (a binary label's AUC, a regression's plot sample): caching the whole pipeline output for one
    aggregation cost a search 2.6x the evaluation time of CrossValidator's evaluator (bench/search.py).
    """
    fitted = predictor(model)  # its own column names: a champion may predate today's
    labels = class_labels(model)
    prediction = fitted.getPredictionCol()
    if labels is None:
        needed, second_pass = [LABEL, prediction], plots
    else:
        second_pass = len(labels) == 2
        needed = [LABEL_INDEX, prediction, *([fitted.getRawPredictionCol()] if second_pass else [])]
    predictions = model.transform(test).select(*needed)
    if second_pass:
        predictions = predictions.cache()
    try:
        if labels is None:
            return evaluate_regression(predictions, LABEL, prediction, seed, PLOT_POINTS if plots else 0)
        return evaluate_classification(predictions, labels, prediction, fitted.getRawPredictionCol())
    finally:
        if second_pass:
            predictions.unpersist()


def _incomparable(champion: Champion, test: DataFrame, labels: list[str] | None) -> str | None:
    """Why the champion cannot be scored on this run's test split, or None when it can: it predicts other
    classes, or reads a column this run's features leave out (the split holds the features alone)."""
    if class_labels(champion.model) != labels:
        kind = "regression" if labels is None else "classification"
        return f"version {champion.version} predicts other classes than this run's, or is not a {kind} model"
    unread = [name for name in champion.columns or [] if name not in test.columns]
    if unread:
        return f"version {champion.version} reads {', '.join(unread)}, which this run's features leave out"
    return None
