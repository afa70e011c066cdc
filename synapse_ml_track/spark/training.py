"""The training job: read, split, fit (or search), evaluate, track, register; one MLflow run per job."""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from mlflow.models import ModelSignature, infer_signature
from mlflow.types import ColSpec, Schema
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession

from synapse_ml_track.config import JobConfig, resolved
from synapse_ml_track.errors import GateRejected
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark import data as data_module
from synapse_ml_track.spark import models as spark_models
from synapse_ml_track.spark.context import run_tags
from synapse_ml_track.spark.data import LABEL, FeatureSpec
from synapse_ml_track.spark.evaluation import Evaluation, evaluate
from synapse_ml_track.spark.pipeline import (
    LABEL_INDEX,
    PREDICTION,
    build_estimator,
    build_pipeline,
    class_labels,
    feature_weights,
    fit_label_indexer,
    predictor,
)
from synapse_ml_track.spark.regression_evaluation import PLOT_POINTS, RegressionEvaluation, evaluate_regression
from synapse_ml_track.spark.search import Search
from synapse_ml_track.spark.sources import InputSource, frame_source, resolve_source
from synapse_ml_track.tracking import gate, registry
from synapse_ml_track.tracking.run_keys import find_keyed_run
from synapse_ml_track.tracking.runs import RunTracker
from synapse_ml_track.tracking.session import TrackingSession
from synapse_ml_track.vocabulary import (
    JOB_TAG,
    MANY_VALUED_TAG,
    MODEL_TYPE_PARAM,
    TASK_PARAM,
    TRAIN_JOB,
    higher_is_better,
)

log = logging.getLogger(__name__)

INPUT_EXAMPLE_ROWS = 5


@dataclass
class TrainingResult:
    run_id: str
    experiment_id: str
    model_uri: str
    model_version: str | None
    registered_model_name: str | None
    metrics: dict[str, float]
    local_result_dir: str
    status: str = "registered"
    reason: str | None = None
    promoted: bool | None = None  # whether the registered version took the champion alias
    tracking_uri: str | None = None
    model: PipelineModel | None = None  # the fitted model, in memory; not part of the summary

    def summary(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "run_id": self.run_id,
            "experiment_id": self.experiment_id,
            "model_uri": self.model_uri,
            "registered_model_name": self.registered_model_name,
            "model_version": self.model_version,
            "promoted": self.promoted,
            "metrics": self.metrics,
            "reason": self.reason,
            "tracking_uri": self.tracking_uri,
            "local_result_dir": self.local_result_dir,
        }


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
    for param, value in estimator.extractParamMap().items():
        params[f"estimator.{param.name}"] = value
    return params


def run_training(
    spark: SparkSession,
    config: JobConfig,
    session: TrackingSession,
    redactor: Redactor,
    data: DataFrame | None = None,
) -> TrainingResult:
    """The training job; `data`, when given, is the input in place of data.path / data.table."""
    source = resolve_source(config.data) if data is None else frame_source(data)
    if source.version is not None or source.timestamp:
        # Time travel asked for by name is checked before any run exists: a version VACUUM has
        # cleaned, or a time after the last commit, is the user's to fix, not a FAILED run's.
        source = data_module.pin_version(spark, source)
    with session.tracking_errors():
        keyed = (
            find_keyed_run(session.client, session.experiment_id, config.run_key, TRAIN_JOB) if config.run_key else None
        )
        if keyed is not None and keyed.info.status == "FINISHED" and not config.force:
            log.info(
                "run key %s already has finished run %s; reporting it (pass --force to train again)",
                config.run_key,
                keyed.info.run_id,
            )
            return _result_of_finished_run(session, config, keyed)
        resume = keyed is not None and not config.force
        if keyed is not None and resume:
            log.info("resuming run %s of run key %s", keyed.info.run_id, config.run_key)
            tracker = session.resume_run(keyed, redactor)
        else:
            tags = {**run_tags(spark, config.run_key), **config.tracking.tags, JOB_TAG: TRAIN_JOB}
            tracker = session.start_run(config.tracking.run_name, tags, redactor)
    with session.failing_run(tracker):
        result = _train_and_track(spark, config, session, tracker, redactor, source, resumed=resume)
    if result.status == "rejected" and config.gate.fail_on_reject:
        raise GateRejected(f"model not registered: {result.reason}")  # the run itself finished
    return result


# Fits the pipeline to the training split: plain `Pipeline.fit`, or a hyperparameter search.
Fit = Callable[[Pipeline, DataFrame], PipelineModel]
Save = Callable[[PipelineModel, pd.DataFrame, list[str] | None], Future[Path]]


@dataclass
class FittedModel:
    spec: FeatureSpec
    model: PipelineModel
    labels: list[str] | None  # the classes; None for a regression
    evaluation: Evaluation | RegressionEvaluation
    train_rows: int
    test_indexed: DataFrame  # the test split (with its label index, for classification), for further evaluation
    sample: pd.DataFrame  # a few test rows of the model's input: the input example
    champion_metrics: dict[str, float] | None = None
    dropped_rows: int = 0  # rows with a null label or feature, left out (data.nulls=drop)
    null_label_rows: int = 0  # of which with a null label
    many_valued: dict[str, int] = field(default_factory=dict)  # categorical features over data.max_categories
    saved: Future[Path] | None = None  # the model's directory, once `save` has written it

    @property
    def metrics(self) -> dict[str, float]:
        rows = {
            "train_rows": self.train_rows,
            "rows_dropped_nulls": self.dropped_rows,
            "rows_null_label": self.null_label_rows,
        }
        return {**self.evaluation.all_metrics, **{k: float(v) for k, v in rows.items()}}


def fit_and_evaluate(
    spark: SparkSession,
    config: JobConfig,
    source: InputSource,
    estimator,
    champion: Callable[[DataFrame, list[str] | None], dict[str, float] | None] | None = None,
    fit: Fit | None = None,
    save: Save | None = None,
) -> FittedModel:
    """The job's Spark work, without tracking: read, check, split, fit, evaluate on the test split.

    `champion`, when given, scores the current champion on the same test split while it is cached;
    `fit`, when given, fits the pipeline in place of `Pipeline.fit` (a search); `save`, when given,
    starts saving the fitted model, which then goes on beside the evaluation.
    """
    task = config.model.task
    with data_module.malformed_input_errors(source):
        raw = data_module.read_input(spark, source, config.data)
        spec = data_module.feature_spec(raw.schema, config.data)
        prepared = data_module.prepare(raw, spec, task).cache()
        try:
            train, test = data_module.split(prepared, config.data.train_fraction, config.data.seed)
            counts = data_module.count_split(train, test, task)
            if counts.incomplete and config.data.nulls == "reject":
                data_module.refuse_nulls(prepared, spec)
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
            pipeline = build_pipeline(spec, estimator, labels)
            model = fit(pipeline, train) if fit else pipeline.fit(train)
            sample = test.select(*[data_module.column(c) for c in spec.columns]).limit(INPUT_EXAMPLE_ROWS).toPandas()
            saved = save(model, sample, labels) if save else None
            evaluation = evaluate_model(model, test, config.data.seed)
            champion_metrics = champion(test, labels) if champion else None
        finally:
            prepared.unpersist()
    return FittedModel(
        spec, model, labels, evaluation, sum(counts.train.values()), test, sample, champion_metrics,
        dropped_rows=counts.incomplete, null_label_rows=counts.null_label, many_valued=wide, saved=saved,
    )  # fmt: skip


def model_signature(sample: pd.DataFrame, labels: list[str] | None) -> ModelSignature:
    # The output is the decoded class name, or the regression's number; no need to run the model to learn that.
    output_type = "string" if labels is not None else "double"
    return ModelSignature(inputs=infer_signature(sample).inputs, outputs=Schema([ColSpec(output_type, PREDICTION)]))


def _train_and_track(
    spark: SparkSession,
    config: JobConfig,
    session: TrackingSession,
    tracker: RunTracker,
    redactor: Redactor,
    source: InputSource,
    resumed: bool,
) -> TrainingResult:
    model_type = resolved(config.model.type, "model.type")
    estimator = build_estimator(config.model.task, model_type, config.model.params, config.data.seed)
    search = None
    if config.model.search.params:
        search = Search(
            config.model.search, estimator, config.data.seed, session, tracker, redactor,
            evaluate=lambda model, held: evaluate_model(model, held, config.data.seed, plots=False).metrics,
        )  # fmt: skip
    tracker.log_params(config_params(config, estimator, dataframe=source.frame is not None))
    if resumed and source.version is None and not source.timestamp:
        # A resumed attempt reads the Delta version the first one recorded, not a newer one.
        with session.tracking_errors():
            recorded = session.client.get_run(tracker.run_id).data.params.get("data.version_read")
        source = replace(source, version=int(recorded)) if recorded else source
    if not source.pinned:
        source = data_module.pin_version(spark, source)  # read this version, whatever commits come meanwhile
    tracker.log_params(source.params())
    compared: dict[str, str] = {}  # the champion the gate compares with, if any
    result_dir = Path(config.tracking.local_result_dir).resolve() / tracker.run_id
    # The model is saved (a Spark write of every stage, about a second even for a small model) in a
    # thread, beside the evaluation, the champion's scoring and the tracking requests that do not need
    # it. Leaving the block waits for the save, so a failure's "saved at" hint is true when shown.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="smt-model-save") as saver:

        def save(model: PipelineModel, sample: pd.DataFrame, labels: list[str] | None) -> Future[Path]:
            signature = model_signature(sample, labels)
            return saver.submit(
                spark_models.save_model, model, result_dir / "model", signature, sample, config.tracking.dfs_tmp
            )

        fitted = fit_and_evaluate(
            spark,
            config,
            source,
            estimator,
            champion=lambda test, labels: _champion_metrics(session, config, test, labels, compared),
            fit=search,
            save=save,
        )
        metrics = fitted.metrics
        weights = feature_weights(fitted.model, fitted.spec, fitted.test_indexed)
        fitted.evaluation.write(weights, result_dir / "evaluation")
        if search:
            search.write(result_dir / "evaluation" / "search")
        (result_dir / "metrics.json").write_text(json.dumps(metrics, indent=2), encoding="utf-8")

        decision = gate.decide(config.gate, metrics, fitted.champion_metrics) if config.tracking.register else None
        saved_at = f"the trained model and metrics are saved at {result_dir}"
        with session.tracking_errors(hint=saved_at):
            # Artifact stores may be write-once (AML): a resumed run adds what is missing and puts this
            # attempt's model beside any earlier upload of it, never over it.
            existing = tracker.artifact_files() if resumed else set()
            model_path = registry.free_model_path(existing)
            late_tags = {**(decision.tags() if decision else {}), **registry.model_path_tags(model_path)}
            if fitted.many_valued:
                late_tags[MANY_VALUED_TAG] = ", ".join(
                    f"{name} (~{count})" for name, count in fitted.many_valued.items()
                )
            session.log_input(
                tracker.run_id,
                source,
                json.dumps({"mlflow_colspec": infer_signature(fitted.sample).inputs.to_dict()}),
                fitted.train_rows + int(fitted.evaluation.metrics["test_rows"]),
            )
            if search:
                tracker.log_params(search.params())
            tracker.log_metrics({**metrics, **(search.metrics() if search else {})}, tags=late_tags)
            tracker.log_artifacts(result_dir / "evaluation", skip=existing)
        assert fitted.saved is not None  # fit_and_evaluate saves with the `save` it is given
        model_dir = fitted.saved.result()  # outside: a failed save is the job's error, not the server's
    log.info("model and evaluation saved locally at %s", result_dir)
    with session.tracking_errors(hint=saved_at):
        tracker.log_artifacts(model_dir, model_path)
        version, promoted = None, False
        if decision and decision.register:
            name = config.tracking.registered_model_name
            version = registry.register(
                session.client, name, tracker.run_id, artifact_path=model_path, resumed=resumed,
                create_attempts=session.create_attempts,
            )  # fmt: skip
            if decision.promote:
                metric = resolved(config.gate.champion_metric, "gate.champion_metric")
                worst = float("-inf") if higher_is_better(metric) else float("inf")
                standing = registry.Standing(
                    metric, metrics.get(metric, worst), compared.get("version"), config.gate.compare_to_champion
                )
                promoted = registry.promote(session.client, version, config.gate.champion_alias, standing)
                if not promoted:
                    decision = gate.Decision(True, "a better version was promoted at the same moment", promote=False)
                    for key, value in decision.tags().items():
                        tracker.set_tag(key, value)
        tracker.finish()

    if decision and not decision.register:
        log.warning("model not registered: %s", decision.reason)
    elif version and decision and not decision.promote:
        log.warning("model version %s registered but not promoted: %s", version.version, decision.reason)
    return TrainingResult(
        run_id=tracker.run_id,
        experiment_id=session.experiment_id,
        model_uri=f"runs:/{tracker.run_id}/{model_path}",
        model_version=version.version if version else None,
        registered_model_name=config.tracking.registered_model_name if version else None,
        metrics=metrics,
        local_result_dir=str(result_dir),
        status="registered" if version else ("rejected" if decision else "tracked"),
        reason=decision.reason if decision else None,
        promoted=promoted if version else None,
        tracking_uri=session.uri,
        model=fitted.model,
    )


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
        return evaluate(predictions, labels, prediction, fitted.getRawPredictionCol())
    finally:
        if second_pass:
            predictions.unpersist()


def _champion_metrics(
    session: TrackingSession, config: JobConfig, test: DataFrame, labels: list[str] | None, found: dict[str, str]
) -> dict[str, float] | None:
    """The current champion's metrics on this run's test split, or None when there is nothing to beat;
    `found["version"]` names the champion compared with."""
    if not (config.tracking.register and config.gate.compare_to_champion):
        return None
    name = config.tracking.registered_model_name
    version = registry.champion_version(session.client, name, config.gate.champion_alias)
    if version is None:
        return None
    found["version"] = version
    champion_run, champion_path = registry.model_source(session.client.get_model_version(name, version))
    with tempfile.TemporaryDirectory() as download_dir:
        local_model = session.download_artifacts(champion_run, champion_path, download_dir)
        champion = spark_models.load_spark_model(local_model, config.tracking.dfs_tmp)
    if class_labels(champion) != labels:
        log.warning(
            "champion %s/%s is not comparable: it predicts other classes, or is not a %s model; it is not compared",
            name, version, config.model.task,
        )  # fmt: skip
        return None
    return evaluate_model(champion, test, config.data.seed).all_metrics


def _result_of_finished_run(session: TrackingSession, config: JobConfig, run) -> TrainingResult:
    name = config.tracking.registered_model_name
    version = registry.version_for_run(session.client, name, run.info.run_id) if config.tracking.register else None
    return TrainingResult(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        model_uri=f"runs:/{run.info.run_id}/{registry.model_path_of(run)}",
        model_version=version.version if version else None,
        registered_model_name=name if version else None,
        metrics=dict(run.data.metrics),
        local_result_dir=str(Path(config.tracking.local_result_dir).resolve() / run.info.run_id),
        status="reused",
        reason=f"run key {config.run_key} already finished in run {run.info.run_id}; pass --force to train again",
        tracking_uri=session.uri,
    )
