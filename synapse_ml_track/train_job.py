"""The training job, step by step: one MLflow run per job.

The Spark side (synapse_ml_track/spark: training.py, search.py) reads, fits, evaluates and saves, and
returns plain results; the tracking layer (synapse_ml_track/tracking) records them. This module alone
knows both, and calls them in the job's order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, wait
from contextlib import closing, contextmanager
from dataclasses import asdict, replace
from pathlib import Path

from mlflow.entities import Run
from mlflow.models import get_model_info, infer_signature
from pyspark.ml import Pipeline, PipelineModel
from pyspark.sql import DataFrame, SparkSession

from synapse_ml_track.config import JobConfig, resolved
from synapse_ml_track.errors import GateRejected
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.results import TrainingResult
from synapse_ml_track.spark import data as data_module
from synapse_ml_track.spark import models as spark_models
from synapse_ml_track.spark import training
from synapse_ml_track.spark.context import run_tags
from synapse_ml_track.spark.pipeline import build_estimator
from synapse_ml_track.spark.search import Search
from synapse_ml_track.spark.sources import InputSource, resolve_source
from synapse_ml_track.tracking import gate, registry, search_runs
from synapse_ml_track.tracking.run_keys import UNFINISHED
from synapse_ml_track.tracking.runs import RunTracker
from synapse_ml_track.tracking.session import TrackingSession
from synapse_ml_track.vocabulary import JOB_TAG, MANY_VALUED_TAG, TRAIN_JOB, TRAINING_TAG, higher_is_better

log = logging.getLogger(__name__)


def training_key(run_key: str, config: JobConfig, given: InputSource) -> str:
    """What a training is, as the job was asked for it: the run key, the input as named (a path, a table
    or a DataFrame's plan) with any version or time asked for, how it is read and split, the model, the
    gate and the registered model. Two training activities of one pipeline run (one run key) that train
    on other data or another model, or register under another name, are two trainings; a retry of
    either is the same training, and finds its run."""
    data = {name: value for name, value in asdict(config.data).items() if name not in ("path", "table", "incremental")}
    named = given.named()
    fields = {
        "run_key": run_key,
        "input": [named, given.version, given.timestamp],
        "data": data,
        "model": asdict(config.model),
        "gate": asdict(config.gate),
        "registered_model": [config.tracking.registered_model_name, config.tracking.register],
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:32]


def run_training(
    spark: SparkSession,
    config: JobConfig,
    session: TrackingSession,
    redactor: Redactor,
    data: InputSource | None = None,
) -> TrainingResult:
    """The training job; `data`, when given, is the input in place of data.path / data.table
    (sources.frame_source)."""
    source = resolve_source(config.data) if data is None else data
    what = training_key(config.run_key, config, source) if config.run_key else None
    if source.version is not None or source.timestamp:
        # Time travel asked for by name is checked before any run exists: a version VACUUM has
        # cleaned, or a time after the last commit, is the user's to fix, not a FAILED run's.
        source = data_module.pin_version(spark, source)
    with session.tracking_errors():
        keyed = None
        if config.run_key and not config.force:  # --force trains in a new run, whatever the key holds
            keyed = session.keyed_run(config.run_key, TRAIN_JOB, take_over=UNFINISHED, what=what)
        if keyed is not None and keyed.run.info.status == "FINISHED":
            log.info(
                "run key %s already has finished run %s; reporting it (pass --force to train again)",
                config.run_key,
                keyed.run.info.run_id,
            )
            return _result_of_finished_run(session, config, keyed.run)
        resumed = keyed is not None
        if keyed is not None:
            log.info("resuming run %s of run key %s", keyed.run.info.run_id, config.run_key)
            tracker = session.resume_run(keyed, redactor)
        else:
            tags = {**run_tags(spark, config.run_key), **config.tracking.tags, JOB_TAG: TRAIN_JOB}
            if what:
                tags[TRAINING_TAG] = what
            tracker = session.start_run(config.tracking.run_name, tags, redactor)
    with session.failing_run(tracker):
        result = _train(spark, config, session, tracker, redactor, source, resumed)
    if result.status == "rejected" and config.gate.fail_on_reject:
        raise GateRejected(f"model not registered: {result.reason}")  # the run itself finished
    return result


def _train(
    spark: SparkSession,
    config: JobConfig,
    session: TrackingSession,
    tracker: RunTracker,
    redactor: Redactor,
    source: InputSource,
    resumed: bool,
) -> TrainingResult:
    """The job's steps inside its run: any failure ends the run FAILED (run_training's failing_run)."""
    model_type = resolved(config.model.type, "model.type")
    estimator = build_estimator(config.model.task, model_type, config.model.params, config.data.seed)
    search = training.search_for(config, estimator)  # its candidates are checked before any data is read
    tracker.log_params(training.config_params(config, estimator, dataframe=source.frame is not None))
    source = _source_to_read(spark, session, tracker, source, resumed)
    tracker.log_params(source.params())
    champion = _fetch_champion(session, config)

    result_dir = Path(config.tracking.local_result_dir).resolve() / tracker.run_id
    with data_module.malformed_input_errors(source), closing(training.prepare(spark, config, source)) as prepared:
        pipeline = prepared.pipeline(estimator)
        child_runs: dict[int, str] = {}  # candidate index -> its child run, for a search
        if search is None:
            model = pipeline.fit(prepared.train)
        else:
            model, child_runs = _search(session, tracker, redactor, search, pipeline, prepared.train)
        fitted = training.evaluate(
            model, prepared, config.data.seed, champion,
            save_to=result_dir / "model", dfs_tmp=config.tracking.dfs_tmp,
        )  # fmt: skip
    assert fitted.saved is not None  # evaluate saves the model when given save_to

    saved_at = f"the trained model and metrics are saved at {result_dir}"
    with _until_done(fitted.saved):  # the model is saved meanwhile, beside the requests that do not need it
        fitted.write(result_dir)
        if search:
            search.write(result_dir / "evaluation" / "search", child_runs)
        decision = None
        if config.tracking.register:
            decision = gate.decide(config.gate, fitted.metrics, fitted.champion_metrics, fitted.champion_incomparable)
        with session.tracking_errors(hint=saved_at):
            model_path, existing = _log_results(session, tracker, source, fitted, search, decision, result_dir, resumed)
    model_dir = fitted.saved.result()  # outside: a failed save is the job's error, not the server's
    log.info("model and evaluation saved locally at %s", result_dir)

    with session.tracking_errors(hint=saved_at):
        model_path = _upload_model(tracker, model_dir, model_path, existing, resumed)
        version, promoted = None, False
        if decision and decision.register:
            version = registry.register(
                session.client, config.tracking.registered_model_name, tracker.run_id, artifact_path=model_path,
                resumed=resumed, create_attempts=session.create_attempts,
            )  # fmt: skip
        # The run is FINISHED before its version can become the champion, which the deployed score job
        # loads: a run that fails to finish leaves the champion where it was. A promotion that fails
        # ends the run FAILED all the same (failing_run), so a rerun by run key resumes and promotes.
        tracker.finish()
        if version and decision and decision.promote:
            standing = _standing(config, fitted.metrics, champion)
            promoted = registry.promote(session.client, version, config.gate.champion_alias, standing)
            if not promoted:
                decision = gate.Decision(True, "a better version was promoted at the same moment", promote=False)
                for key, value in decision.tags().items():
                    tracker.set_tag(key, value)

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
        metrics=fitted.metrics,
        local_result_dir=str(result_dir),
        status="registered" if version else ("rejected" if decision else "tracked"),
        reason=decision.reason if decision else None,
        promoted=promoted if version else None,
        tracking_uri=session.uri,
        model=fitted.model,
    )


def _source_to_read(
    spark: SparkSession, session: TrackingSession, tracker: RunTracker, source: InputSource, resumed: bool
) -> InputSource:
    """The input at the version to read, whatever commits come meanwhile; a resumed attempt reads the
    Delta version the first one recorded, not a newer one."""
    if resumed and source.version is None and not source.timestamp:
        with session.tracking_errors():
            recorded = session.client.get_run(tracker.run_id).data.params.get("data.version_read")
        source = replace(source, version=int(recorded)) if recorded else source
    return source if source.pinned else data_module.pin_version(spark, source)


def _fetch_champion(session: TrackingSession, config: JobConfig) -> training.Champion | None:
    """The champion the gate compares with, loaded; None when there is none or the comparison is off."""
    if not (config.tracking.register and config.gate.compare_to_champion):
        return None
    name = config.tracking.registered_model_name
    version = registry.champion_version(session.client, name, config.gate.champion_alias)
    if version is None:
        return None
    champion_run, champion_path = registry.model_source(session.client.get_model_version(name, version))
    with tempfile.TemporaryDirectory() as download_dir:
        local_model = session.download_artifacts(champion_run, champion_path, download_dir)
        model = spark_models.load_spark_model(local_model, config.tracking.dfs_tmp)  # loaded whole, into memory
        signature = get_model_info(local_model).signature
    columns = signature.inputs.input_names() if signature is not None else None
    return training.Champion(model, name, version, columns)


def _search(
    session: TrackingSession,
    tracker: RunTracker,
    redactor: Redactor,
    search: Search,
    pipeline: Pipeline,
    train: DataFrame,
) -> tuple[PipelineModel, dict[int, str]]:
    """The best candidate refitted, and the child run recorded for each candidate validated now (by
    index); those an interrupted attempt of this run finished are taken as they are."""
    finished = search_runs.finished_candidates(session, tracker.run_id)
    child_runs: dict[int, str] = {}
    with search.fold_buckets(train) as tagged:
        # Closed at once when a record fails: no candidate starts, those running finish.
        with closing(search.validate(pipeline, tagged, finished)) as results:
            for result in results:
                candidate = result.candidate
                child_runs[candidate.index] = search_runs.record_candidate(
                    session, tracker.run_id, redactor, index=candidate.index, key=candidate.key,
                    params=candidate.params, metrics=result.metrics, error=result.error,
                )  # fmt: skip
        return search.refit_best(pipeline, tagged), child_runs


@contextmanager
def _until_done(saved: Future[Path]) -> Iterator[None]:
    """Leaving waits for the model's save, so a failure's "saved at" hint is true when it is shown."""
    try:
        yield
    finally:
        wait([saved])


def _log_results(
    session: TrackingSession,
    tracker: RunTracker,
    source: InputSource,
    fitted: training.FittedModel,
    search: Search | None,
    decision: gate.Decision | None,
    result_dir: Path,
    resumed: bool,
) -> tuple[str, set[str]]:
    """The run's input, the search's params, the metrics, the late tags and the evaluation artifacts;
    returns the artifact path the model goes to, and the files the run held already.

    Artifact stores may be write-once (AML): a resumed run adds what is missing and puts this
    attempt's model beside any earlier upload of it, never over it.
    """
    existing = tracker.artifact_files() if resumed else set()
    model_path = registry.free_model_path(existing)
    late_tags = {**(decision.tags() if decision else {}), **registry.model_path_tags(model_path)}
    if fitted.many_valued:
        late_tags[MANY_VALUED_TAG] = ", ".join(f"{name} (~{count})" for name, count in fitted.many_valued.items())
    session.log_input(
        tracker.run_id,
        source,
        json.dumps({"mlflow_colspec": infer_signature(fitted.sample).inputs.to_dict()}),
        fitted.train_rows + int(fitted.evaluation.metrics["test_rows"]),
    )
    if search:
        tracker.log_params(search.params())
    tracker.log_metrics({**fitted.metrics, **(search.metrics() if search else {})}, tags=late_tags)
    left_empty = tracker.log_artifacts(result_dir / "evaluation", skip=existing, resumed=resumed)
    if left_empty:
        log.warning(
            "the run holds %s empty, left by an interrupted attempt (AML run artifacts are write-once); "
            "this attempt's copies are in %s", ", ".join(sorted(left_empty)), result_dir / "evaluation",
        )  # fmt: skip
    return model_path, existing


def _upload_model(tracker: RunTracker, model_dir: Path, model_path: str, existing: set[str], resumed: bool) -> str:
    """Upload the model under `model_path`; returns the path it went to. Where an interrupted attempt of
    a resumed run left files of that path empty (write-once: AML neither lists nor rewrites them), the
    model goes to the next free path, recorded in the run's model path tag: no version is registered
    from a path with an empty file."""
    taken = set(existing)
    while left_empty := tracker.log_artifacts(model_dir, model_path, resumed=resumed):
        taken.add(f"{model_path}/")
        moved_to = registry.free_model_path(taken)
        log.warning(
            "%s holds %d file(s) left empty by an interrupted attempt (AML run artifacts are write-once): "
            "the model goes to %s instead", model_path, len(left_empty), moved_to,
        )  # fmt: skip
        model_path = moved_to
        for key, value in registry.model_path_tags(model_path).items():
            tracker.set_tag(key, value)
    return model_path


def _standing(config: JobConfig, metrics: dict[str, float], champion: training.Champion | None) -> registry.Standing:
    """What the promotion is judged on: the gate's metric, and the champion it was compared with."""
    metric = resolved(config.gate.champion_metric, "gate.champion_metric")
    worst = float("-inf") if higher_is_better(metric) else float("inf")
    beaten = champion.version if champion else None
    return registry.Standing(metric, metrics.get(metric, worst), beaten, config.gate.compare_to_champion)


def _result_of_finished_run(session: TrackingSession, config: JobConfig, run: Run) -> TrainingResult:
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
