"""The batch-scoring job: check the input against a registered model's signature, score, write, track.

One MLflow run per job, in the same experiment as training (tag smt.job=score). The output holds
the input's columns, the prediction (a classifier's class, with one probability column per class,
or a regressor's number) and the model's lineage.

mlflow (and the modules built on it) is imported where it is used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import reduce
from operator import or_
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame, Observation, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from synapse_ml_track.config import JobConfig
from synapse_ml_track.drift import PROFILE_FILE, DriftReport, TrainingProfile, compare
from synapse_ml_track.errors import ConfigError, DataError, option
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark import data as data_module
from synapse_ml_track.spark import delta, delta_tables, incremental
from synapse_ml_track.spark.context import run_tags
from synapse_ml_track.spark.data import RESERVED_PREFIX, column
from synapse_ml_track.spark.evaluation import class_keys, confusion_columns, confusion_of, from_confusion
from synapse_ml_track.spark.model_ref import ModelRef
from synapse_ml_track.spark.pipeline import PREDICTION, class_labels, known_categories, predictor
from synapse_ml_track.spark.profiling import distribution_columns, distributions_of
from synapse_ml_track.spark.regression_evaluation import metrics_from_moments, moment_columns
from synapse_ml_track.spark.session import one_row, spark_error
from synapse_ml_track.spark.sources import InputSource, absolute_location, local_path, resolve_source
from synapse_ml_track.vocabulary import (
    INPUT_FIELD,
    INPUT_ID_FIELD,
    INPUT_VERSION_FIELD,
    JOB_TAG,
    MODEL_FIELD,
    RUN_ID_FIELD,
    RUN_KEY_FIELD,
    SCORE_JOB,
    WRITE_TAG,
)

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from synapse_ml_track.tracking.runs import RunTracker
    from synapse_ml_track.tracking.session import TrackingSession

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("model_name", "model_version", "model_run_id", "scored_at")
UNSCORABLE_REASON = "unscorable_reason"  # null, or why the row has no prediction
LABELLED = "labelled_"  # the metrics on a labelled input, and the prefix of their aggregates
# The model URIs MLflow users write (mlflow.models.get_model_info and mlflow.pyfunc.load_model take
# them all): a version number, "latest", an alias, the bare name (its latest version), or a run's path.
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+|latest)|@(?P<alias>[^/@]+))?/?$")
RUN_URI = re.compile(r"^runs:/(?P<run_id>[^/]+)/(?P<path>.+?)/?$")
URI_FORMS = "models:/NAME/VERSION, models:/NAME/latest, models:/NAME@ALIAS, models:/NAME or runs:/RUN_ID/PATH"
INTEGRAL_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
# Input column types each signature type accepts. Training logs numeric features as double,
# so any numeric column will do: the pipeline assembles them as doubles anyway.
ACCEPTED_TYPES = {
    "double": data_module.NUMERIC_TYPES,
    "float": data_module.NUMERIC_TYPES,
    "long": INTEGRAL_TYPES,
    "integer": INTEGRAL_TYPES,
    "string": (T.StringType,),
    "boolean": (T.BooleanType,),
    "datetime": (T.TimestampType, T.TimestampNTZType, T.DateType),
    "binary": (T.BinaryType,),
}


def default_model_uri(config: JobConfig) -> str:
    return f"models:/{config.tracking.registered_model_name}@{config.gate.champion_alias}"


def parse_model_uri(model_uri: str) -> tuple[re.Match | None, re.Match | None]:
    """(the runs:/ match, None) or (None, the models:/ match); a URI of neither form is a ConfigError,
    raised before any run starts: a mistyped URI leaves no FAILED scoring run behind."""
    run = RUN_URI.match(model_uri)
    model = None if run else MODEL_URI.match(model_uri)
    if not (run or model):
        raise ConfigError(f"model URI {model_uri!r} is not one of {URI_FORMS}")
    return run, model


def resolve_model(client: MlflowClient, model_uri: str) -> ModelRef:
    """What a model URI names, pinned: a registered version (by number, alias, or the latest READY
    one), or a run's model (name and version then empty)."""
    from mlflow.exceptions import MlflowException

    from synapse_ml_track.tracking import registry

    run, match = parse_model_uri(model_uri)
    if run:
        try:
            client.get_run(run.group("run_id"))
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise ConfigError(f"{model_uri}: no run {run.group('run_id')}") from None
        return ModelRef("", "", run.group("run_id"), run.group("path"))
    assert match is not None  # parse_model_uri matched one of the two forms
    name, version, alias = match.group("name", "version", "alias")
    try:
        if alias:
            version = registry.champion_version(client, name, alias)
            if version is None:
                raise ConfigError(f"no version of model '{name}' has the alias '{alias}' (or there is no such model)")
        elif version in (None, "latest"):
            ready = [int(v.version) for v in registry.all_versions(client, name) if v.status == "READY"]
            if not ready:
                raise ConfigError(f"model '{name}' has no registered version ready to load")
            version = str(max(ready))
        details = client.get_model_version(name, version)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        raise ConfigError(f"{model_uri}: no such registered model or version") from None
    if details.status != "READY":
        raise ConfigError(f"model '{name}' version {version} is {details.status}, not READY")
    run_id, artifact_path = registry.model_source(details)
    return ModelRef(name, str(details.version), run_id, artifact_path)


def signature_columns(schema: T.StructType, signature, model: str) -> list[str]:
    """The model's input columns present in the input, after checking none is missing or mistyped."""
    if signature is None:
        raise ConfigError(f"model {model} has no input signature, so its input cannot be checked; log it with one")
    specs = signature.inputs.inputs
    types = {field.name: field.dataType for field in schema.fields}
    missing = [spec.name for spec in specs if spec.name not in types and spec.required]
    if missing:
        raise DataError(
            f"input lacks column(s) {', '.join(missing)} that model {model} needs (input columns: {', '.join(types)})"
        )
    mistyped = [
        f"{spec.name} is {types[spec.name].simpleString()}, the model expects {_type_name(spec)}"
        for spec in specs
        if spec.name in types and not isinstance(types[spec.name], ACCEPTED_TYPES.get(_type_name(spec), T.DataType))
    ]
    if mistyped:
        raise DataError(
            f"input column(s) of the wrong type for model {model}: {'; '.join(mistyped)}; fix the data or data.schema"
        )
    return [spec.name for spec in specs if spec.name in types]


def _type_name(spec) -> str:
    return getattr(spec.type, "name", str(spec.type))  # scalar types are DataType members; array/object types are not


def count_nulls(df: DataFrame, columns: list[str]) -> dict[str, int]:
    """Missing values per column (null, or a NaN or infinite number), for the ones that have any, from
    one aggregation."""
    kinds = {f.name: f.dataType for f in df.schema.fields}
    row = one_row(df.select([F.count(F.when(missing(c, kinds[c]), 1)).alias(c) for c in columns]))
    return {c: row[c] for c in columns if row[c]}


def missing(name: str, kind: T.DataType) -> Column:
    """A model input the model cannot use: null, or in a float column NaN or infinite (pandas writes a
    missing number as NaN, a CSV may hold NaN or Inf; the model's assembler refuses NaN, and infinity
    makes every probability NaN)."""
    value = column(name)
    if isinstance(kind, T.FloatType | T.DoubleType):
        return value.isNull() | F.isnan(value) | (F.abs(value) == float("inf"))
    return value.isNull()


def probability_columns(labels: list[str]) -> list[str]:
    keys = class_keys(labels)
    return [f"probability_{keys[label]}" for label in labels]


def why_unscorable(columns: list[str], kinds: Mapping[str, T.DataType]) -> Column:
    """Null when every model input is there; else "null in a, b" naming the missing ones (see `missing`)."""
    absent = [missing(c, kinds[c]) for c in columns]
    named = [F.when(gone, F.lit(c)) for c, gone in zip(columns, absent, strict=True)]
    return F.when(reduce(or_, absent), F.concat(F.lit("null in "), F.concat_ws(", ", *named)))


def filled(name: str, kind: T.DataType) -> Column:
    """The input with a stand-in for null, so the model runs on every row; its answer for a row with
    a stand-in is thrown away (see why_unscorable)."""
    if isinstance(kind, T.BooleanType):
        stand_in = F.lit(False)
    elif isinstance(kind, T.StringType):
        stand_in = F.lit("")
    else:
        stand_in = F.lit(0).cast(kind)
    return F.when(missing(name, kind), stand_in).otherwise(column(name)).alias(name)


@dataclass(frozen=True)
class Output:
    """Where the scores go: a path (made absolute) or a catalog table (Delta), and how to write them."""

    location: str  # an absolute path or URI, or the table's [database.]name
    table: bool = False
    mode: str = "errorifexists"
    requested_format: str | None = None
    merge_key: str | None = None  # mode merge: the input column naming a row
    evolve_schema: bool = False  # Delta append/merge: add columns the table lacks
    partition_by: tuple[str, ...] = ()  # columns the output is partitioned by
    replace_where: str | None = None  # Delta, mode overwrite: replace only the rows matching this predicate

    @classmethod
    def of(cls, path: str | None, table: str | None, **options: Any) -> Output:
        """The output a job names: exactly one of a path and a table."""
        if (path is None) == (table is None):
            # The command line cannot get here (its flags exclude each other): the Python API's words.
            raise ConfigError("give the scores one place: output_path or output_table")
        partition_by = options.pop("partition_by", None) or ()
        if isinstance(partition_by, str):
            partition_by = tuple(name.strip() for name in partition_by.split(",") if name.strip())
        location = table if table is not None else absolute_location(str(path))
        return cls(location, table=table is not None, partition_by=tuple(partition_by), **options)

    def format(self, spark: SparkSession) -> str:
        """delta where the session has Delta Lake (a table, a merge: always), else parquet; checked."""
        needs_delta = (
            "a catalog output table"
            if self.table
            else "--mode merge"
            if self.mode == "merge"
            else "--replace-where"
            if self.replace_where
            else None
        )
        if needs_delta and self.requested_format not in (None, "delta"):
            raise ConfigError(f"{needs_delta} is written as Delta, not {self.requested_format}")
        fmt = self.requested_format or ("delta" if needs_delta or delta.has_delta(spark) else "parquet")
        if fmt == "delta" and not delta.has_delta(spark):
            raise DataError(delta.MISSING)
        if self.mode == "merge" and not self.merge_key:
            raise ConfigError(
                f"{option('--mode', 'merge')} needs {option('--merge-key')}: the input column that identifies a row"
            )
        if self.replace_where and self.mode != "overwrite":
            raise ConfigError(
                f"{option('--replace-where')} replaces the rows it matches: it needs {option('--mode', 'overwrite')}"
            )
        return fmt

    def params(self, fmt: str) -> dict[str, Any]:
        return {
            "output.table" if self.table else "output.path": self.location,
            "output.format": fmt,
            "output.mode": self.mode,
            **({"output.merge_key": self.merge_key} if self.mode == "merge" else {}),
            **({"output.partition_by": ",".join(self.partition_by)} if self.partition_by else {}),
            **({"output.replace_where": self.replace_where} if self.replace_where else {}),
        }


def write_key(spark: SparkSession, run_key: str, model_uri: str, given: InputSource, output: Output) -> str:
    """What a scoring write is, as the job was asked for it: the run key, the input as named (a path,
    a table, or a DataFrame's plan) with any version or time asked for, the model URI as given, the
    output and how it is written. Two activities of one pipeline run (one run key) that score other
    inputs, or with another model URI, into one table are two writes; a retry of either is the same
    write, even when the champion alias or the input table has moved on since: it reports what the
    first attempt wrote. A place is named one way however it is spelled (`out` and file:/…/out; a
    table `scores`, `default.scores` and `SCORES`)."""
    if given.table:
        named = delta_tables.qualified_table_name(spark, given.path)
    else:
        named = given.named() if given.frame is not None else _place(given.path)
    place = delta_tables.qualified_table_name(spark, output.location) if output.table else _place(output.location)
    fields = {
        "run_key": run_key,
        "model_uri": model_uri,
        "input": [named, given.version, given.timestamp],
        "output": [place, output.table, output.mode, output.merge_key, list(output.partition_by)],
        "replace_where": output.replace_where,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def run_scoring(
    spark: SparkSession,
    config: JobConfig,
    session: TrackingSession,
    redactor: Redactor,
    model_uri: str,
    output: Output,
    *,
    unscorable: str = "keep",
    data: InputSource | None = None,
) -> dict[str, Any]:
    """The scoring job's summary; `data`, when given, is the input in place of data.path / data.table
    (sources.frame_source).

    The input's version and the output's format are settled before the run starts: a time-travel
    request that cannot be met or an output that cannot be written leaves no FAILED run behind."""
    parse_model_uri(model_uri)
    given = resolve_source(config.data) if data is None else data
    if config.data.incremental:
        if output.mode not in ("errorifexists", "merge"):
            raise ConfigError(
                f"{option('--incremental', True)} merges the changed rows' scores; pass no {option('--mode')} "
                f"or {option('--mode', 'merge')}"
            )
        output = replace(output, mode="merge")
    fmt = output.format(spark)
    if config.run_key and fmt == "parquet" and output.mode == "append":
        raise ConfigError(
            f"{option('--run-key')} writes once only into Delta: a retried append into Parquet would add its rows "
            f"again; write Delta ({option('--output-format', 'delta')}, which a Synapse pool has) or append "
            f"without a run key"
        )
    if _is_the_input(spark, given, output):
        where = f"table {output.location}" if output.table else output.location
        raise ConfigError(
            f"the output is the input ({where}): the scores would replace or mix with the data they score; "
            f"write them elsewhere ({option('--output-path')} or {option('--output-table')})"
        )
    _check_the_output(spark, output, fmt)
    source = data_module.pin_version(spark, given)
    input_id = incremental.check(spark, source, fmt, output.merge_key) if config.data.incremental else None
    run_key = config.run_key
    key = write_key(spark, run_key, model_uri, given, output) if run_key else None
    tags = {**run_tags(spark, config.run_key), **config.tracking.tags, JOB_TAG: SCORE_JOB}
    if key:
        tags[WRITE_TAG] = key
    with session.tracking_errors():
        if run_key and key:
            _end_interrupted_attempt(session, run_key, key, redactor)
        tracker = session.start_run(config.tracking.run_name, tags, redactor)
    with session.failing_run(tracker):
        job = ScoringJob(spark, config, session, tracker, model_uri, output, fmt, unscorable, source, key, input_id)
        summary = job.run()
        tracker.finish()
    return summary


def _check_the_output(spark: SparkSession, output: Output, fmt: str) -> None:
    """Before any run: an output that exists, unless the mode says what to do with it; and a write in
    one format into a path that holds the other (Delta appended beside Parquet files, or Parquet beside
    a Delta table wrote rows no reader of the other format sees, exit 0)."""
    if output.table:
        # exists() registers by name a table an earlier process wrote (catalog_table), whatever the mode.
        present = delta_tables.exists(spark, delta_tables.Target(output.location, table=True))
        if present and output.mode == "errorifexists":
            raise delta_tables.output_exists(output.location)
        return
    location = output.location
    holds = delta_tables.path_holds(spark, location)
    if holds is not None and output.mode == "errorifexists":
        raise delta_tables.output_exists(location)
    if holds is None or holds == fmt:
        return
    if holds == "delta":
        raise ConfigError(
            f"{location} is a Delta table: write the scores as Delta ({option('--output-format', 'delta')}) "
            "or elsewhere"
        )
    raise ConfigError(
        f"{location} holds Parquet files, not a Delta table: write the scores as Parquet "
        f"({option('--output-format', 'parquet')}) or elsewhere"
    )


def _is_the_input(spark: SparkSession, given: InputSource, output: Output) -> bool:
    if given.frame is not None or given.table != output.table:
        return False
    if given.table:
        qualified = delta_tables.qualified_table_name
        return qualified(spark, given.path) == qualified(spark, output.location)
    return _place(given.path) == _place(output.location)


def _place(location: str) -> str:
    """A path or URI as one place is named: a local file: URI as its path, no trailing slash."""
    return absolute_location(local_path(location)).rstrip("/")


def _end_interrupted_attempt(session: TrackingSession, run_key: str, key: str, redactor: Redactor) -> None:
    """A rerun of a write whose last scoring attempt was killed (still RUNNING, its lease expired) ends
    that run FAILED before scoring in a run of its own: its params are write-once, and a new attempt
    may resolve another model version. An attempt still alive is waited for (its scores may be the
    write's, which a Delta output then finds). Found by the write's own tag: another activity of the
    same pipeline run (the same run key), scoring at this very moment, is not an attempt of this write."""
    earlier = session.keyed_run(run_key, SCORE_JOB, take_over=("RUNNING",), what=key)
    if earlier is not None and earlier.lease is not None:
        log.info("run key %s: ending the interrupted scoring run %s as FAILED", run_key, earlier.run.info.run_id)
        session.resume_run(earlier, redactor).fail(f"interrupted; scored again by a rerun of run key {run_key}")


@dataclass
class ScoringJob:
    spark: SparkSession
    config: JobConfig
    session: TrackingSession
    tracker: RunTracker
    model_uri: str
    output: Output
    fmt: str
    unscorable: str
    source: InputSource
    write_key: str | None
    input_id: str | None = None  # incremental scoring: the input's Delta table id

    def run(self) -> dict[str, Any]:
        source, output = self.source, self.output
        self.tracker.log_params(
            {
                "model_uri": self.model_uri,
                "data.table" if source.table else "data.path": source.path,
                "data.format": source.format,
                **source.params(),
                **output.params(self.fmt),
                "output.unscorable": self.unscorable,
            }
        )
        target = delta_tables.Target(output.location, output.table)
        earlier = (
            delta_tables.earlier_write(self.spark, target, self.write_key)
            if self.fmt == "delta" and self.write_key
            else None
        )
        if earlier is not None:  # a retry: its scores are in the table already; nothing to load or score
            return self._already_written(earlier)
        model = resolve_model(self.session.client, self.model_uri)
        changes = self._changes(model) if self.config.data.incremental else None
        if changes is not None:
            self.tracker.log_params(changes.params())
            if changes.kind == "unchanged":
                return self._unchanged(model, changes)
        with data_module.malformed_input_errors(source), tempfile.TemporaryDirectory() as download_dir:
            scores, counting, scored_at, input_schema = self._scores(model, download_dir, changes)
            try:
                if self.fmt == "delta":
                    written = self._write_delta(scores, model, changes)
                    if not written.written:  # an earlier attempt committed first; Delta skipped this one
                        return self._already_written(written)
                else:
                    _write(scores, self.fmt, output)
                    written = None
            finally:
                if changes is not None:
                    changes.release()
        self._log_model(model)
        # Counted by the commit, not from the input's changes: a key inserted and deleted between two runs
        # was never in the output, and a whole rescore deletes the keys gone from the input.
        deleted = delta_tables.rows_deleted(self.spark, target, written) if changes is not None else 0
        outcome = self._outcome(written)
        counts = counting.counts()
        keys = class_keys(counting.labels or [])
        drift = self._drift(counting, model)
        labelled = counting.labelled_metrics()
        unseen_keys = class_keys(list(counts.unseen))
        self.tracker.log_metrics(
            {
                "rows_in": counts.rows,
                "rows_scored": counts.scored,
                "rows_unscorable": counts.unscorable,
                **{f"rows_unseen_{unseen_keys[name]}": count for name, count in counts.unseen.items()},
                **{f"predicted_{keys[label]}": count for label, count in counts.predicted.items()},
                **{f"prediction_{name}": value for name, value in counts.prediction_stats.items()},
                **(drift.metrics(class_keys([f.name for f in drift.features])) if drift else {}),
                **{f"{LABELLED}{name}": value for name, value in (labelled or {}).items()},
            },
            tags=drift.tags() if drift else None,
        )
        self.session.log_input(
            self.tracker.run_id, source, input_schema, counts.rows, context="scoring",
            tags=changes.input_tags() if changes is not None else None,
        )  # fmt: skip
        log.info(
            "scored %s of %s rows with %s into %s (%s)",
            counts.scored, counts.rows, model.described, output.location, self.fmt,
        )  # fmt: skip
        unseen = {name: count for name, count in counts.unseen.items() if count}
        if unseen:
            log.warning(
                "scored row(s) with a category %s did not see in training, scored as one unknown category: %s",
                model.described, ", ".join(f"{name} {count} row(s)" for name, count in unseen.items()),
            )  # fmt: skip
        return {
            "status": "scored",
            **self._identity(model),
            **outcome,
            "rows_in": counts.rows,
            "rows_scored": counts.scored,
            "rows_unscorable": counts.unscorable,
            "rows_unseen": counts.unseen,
            "unscorable": self.unscorable,
            "predicted": counts.predicted,
            "prediction_stats": counts.prediction_stats,
            "scored_at": scored_at.isoformat(),
            "drift": drift.summary() if drift else None,
            "labelled": labelled,
            "incremental": self._incremental(changes, deleted),
        }

    def _incremental(self, changes: incremental.Changes | None, deleted: int) -> dict[str, Any] | None:
        """What an incremental run read: the input versions, and the output rows its write deleted."""
        if changes is None:
            return None
        self.tracker.log_metrics({"rows_deleted": deleted})
        return {"read": changes.kind, "from_version": changes.start, "to_version": self.source.version,
                "rows_deleted": deleted}  # fmt: skip

    def _drift(self, counting: Counting, model: ModelRef) -> DriftReport | None:
        """The scored rows' drift from the model's training split, its plot and table logged; None for a
        model trained without a profile (before synapse-ml-track recorded one)."""
        if counting.profile is None or counting.drift is None:
            log.info(
                "no drift reported: %s has no training profile (%s); models trained since have one",
                model.described, PROFILE_FILE,
            )  # fmt: skip
            return None
        observed = distributions_of(counting.profile.features, counting.drift.get)
        drift = self.config.drift
        report = compare(counting.profile, observed, drift.warn, drift.fail)
        if report.level != "ok":  # the summary and the printed drift line say "ok" already
            log.warning("%s", report.line())
        with tempfile.TemporaryDirectory(prefix="smt-drift-") as directory:
            report.write(Path(directory))
            self.tracker.log_artifacts(Path(directory), "drift")
        return report

    def _changes(self, model: ModelRef) -> incremental.Changes:
        """What an incremental run scores: the input rows changed since the last scoring into the target."""
        full = data_module.read_input(self.spark, self.source, self.config.data)
        _require_merge_key(self.output.merge_key, full.columns)
        target = delta_tables.Target(self.output.location, self.output.table)
        last = delta_tables.last_scored_input(self.spark, target, self.source.path, self.input_id or "")
        return incremental.changes_to_score(self.spark, self.source, full, last, model, self.output.merge_key or "")

    def _unchanged(self, model: ModelRef, changes: incremental.Changes) -> dict[str, Any]:
        """An incremental run with no commit to the input since the last scoring: nothing to score or write."""
        self._log_model(model)
        self.tracker.log_metrics({"rows_in": 0, "rows_scored": 0, "rows_unscorable": 0})
        log.info(
            "%s has not changed since version %s, which %s was last scored from; nothing scored or written",
            self.source.path, self.source.version, self.output.location,
        )  # fmt: skip
        return {
            "status": "scored", **self._identity(model), "output_path": self.output.location,
            "output_table": self.output.table, "output_format": self.fmt, "output_version": None,
            "output_written": False, "rows_in": 0, "rows_scored": 0, "rows_unscorable": 0, "rows_unseen": {},
            "unscorable": self.unscorable, "predicted": {}, "prediction_stats": {}, "scored_at": None,
            "drift": None, "labelled": None, "incremental": self._incremental(changes, 0),
        }  # fmt: skip

    def _scores(
        self, model: ModelRef, download_dir: str, changes: incremental.Changes | None
    ) -> tuple[DataFrame, Counting, datetime, str]:
        if changes is not None:
            raw = changes.rows
        else:
            raw = data_module.read_input(self.spark, self.source, self.config.data)
        if self.output.replace_where:  # the rows of the part replaced: Delta refuses scores outside it
            raw = raw.where(self.output.replace_where)
        loaded = load_model(self.session, model, download_dir, self.config.tracking.dfs_tmp)
        columns = loaded.input_columns(raw)
        pipeline, labels, outputs = loaded.pipeline, loaded.labels, loaded.outputs()
        missing = [c for c in self.output.partition_by if c not in raw.columns + outputs]
        if missing:
            raise ConfigError(f"partition column(s) {', '.join(missing)} are neither input nor output columns")
        if self.unscorable == "reject":
            with_nulls = count_nulls(raw, columns)  # the one extra pass, asked for by name
            if with_nulls:
                listing = ", ".join(f"{c} ({n})" for c, n in with_nulls.items())
                raise DataError(
                    f"nulls in model input columns: {listing}; clean the data or score with "
                    f"{option('--unscorable', 'keep')}"
                )
        scored_at = datetime.now(timezone.utc)
        # A merge keeps the rows it drops until the write, which deletes their keys' earlier scores.
        drop = self.unscorable == "drop" and self.output.mode != "merge"
        scores, counting = score_frame(
            raw, columns, pipeline, labels, model, scored_at, drop=drop, profile=loaded.profile,
            label=loaded.label or self.config.data.label,  # a model of `sex` is checked against sex, not species
        )  # fmt: skip
        return scores, counting, scored_at, loaded.input_schema(raw)

    def _write_delta(
        self, scores: DataFrame, model: ModelRef, changes: incremental.Changes | None
    ) -> delta_tables.Written:
        output = self.output
        if output.mode == "merge" and self.unscorable == "drop":
            # A row that can no longer be scored is dropped, and its key's earlier scores with it: they
            # were made from input values the row no longer has.
            scores = scores.withColumn(delta_tables.DELETED, F.col(UNSCORABLE_REASON).isNotNull())
        if changes is not None:
            scores = incremental.with_deletes(scores, changes.deleted)
        if output.mode == "merge":
            _require_merge_key(output.merge_key, scores.columns)
        write = delta_tables.Write(
            output.mode, self.write_key, output.merge_key, output.evolve_schema, output.partition_by,
            output.replace_where,
            # The whole input scored again (its changes gone, or not what the output was scored from): keys
            # no longer in it lose their scores too.
            delete_missing=changes is not None and changes.kind != "changes",
        )  # fmt: skip
        metadata: dict[str, Any] = {
            RUN_KEY_FIELD: self.config.run_key,
            RUN_ID_FIELD: self.tracker.run_id,
            MODEL_FIELD: model.fields(),
        }  # fmt: skip
        # Where --incremental starts next: recorded by a write after which the output holds the scores of
        # the whole input, not by an append, a merge of rows (which deletes none) or a partial overwrite.
        whole = changes is not None or (output.mode in ("overwrite", "errorifexists") and not output.replace_where)
        if whole and self.source.format == "delta" and self.source.version is not None:
            metadata.update({INPUT_FIELD: self.source.path, INPUT_VERSION_FIELD: self.source.version})
            if self.input_id:
                metadata[INPUT_ID_FIELD] = self.input_id
        return delta_tables.write_once(
            self.spark, scores, target=delta_tables.Target(output.location, output.table), write=write,
            metadata=metadata,
            # A MERGE, and a write through the catalog (CREATE TABLE AS SELECT, or an append to a table),
            # run the query inside Delta's own command, whose plans report no observations to the job
            # (seen with Delta 3.2.1: a KeyError on the counts).
            materialize=output.mode == "merge" or output.table,
        )  # fmt: skip

    def _already_written(self, written: delta_tables.Written) -> dict[str, Any]:
        """A retry's summary: the model and table version of the commit that holds the scores."""
        model = ModelRef.recorded(written.metadata.get(MODEL_FIELD) or {})
        self._log_model(model)
        log.info(
            "run key %s already wrote these scores to %s (version %s, model %s); nothing written",
            self.config.run_key, self.output.location, written.version, model.uri,
        )  # fmt: skip
        return {
            "status": "already-written",
            **self._identity(model),
            **self._outcome(written),
            "unscorable": self.unscorable,
        }

    def _log_model(self, model: ModelRef) -> None:
        self.tracker.log_params(
            {"model.name": model.name, "model.version": model.version, "model.run_id": model.run_id}
        )

    def _outcome(self, written: delta_tables.Written | None) -> dict[str, Any]:
        if written:
            self.tracker.log_params({"output.version": written.version, "output.written": written.written})
        return {
            "output_path": self.output.location,
            "output_table": self.output.table,
            "output_format": self.fmt,
            "output_version": written.version if written else None,
            "output_written": written.written if written else True,
        }

    def _identity(self, model: ModelRef) -> dict[str, Any]:
        return {
            "run_id": self.tracker.run_id,
            "experiment_id": self.session.experiment_id,
            "model_uri": model.uri,
            "model_name": model.name,
            "model_version": model.version,
            "model_run_id": model.run_id,
            "input": self.source.path,
            "tracking_uri": self.session.uri,
        }


def _require_merge_key(merge_key: str | None, columns: list[str]) -> None:
    if merge_key not in columns:
        raise ConfigError(
            f"the merge key {merge_key} is not an input column; "
            f"name the column that identifies a row with {option('--merge-key')}"
        )


@dataclass(frozen=True)
class LoadedModel:
    """A model as scoring uses it: what it is, its Spark pipeline, its signature and its classes."""

    ref: ModelRef
    pipeline: Any  # a PipelineModel
    signature: Any  # an mlflow ModelSignature, or None
    labels: list[str] | None  # None: a regression
    profile: TrainingProfile | None = None  # the training split's (drift.py); None for an older model
    label: str | None = None  # the column it was trained to predict, as its training run records it

    def outputs(self) -> list[str]:
        return [PREDICTION, *probability_columns(self.labels or []), UNSCORABLE_REASON, *LINEAGE_COLUMNS]

    def input_schema(self, raw: DataFrame) -> str:
        """The scoring input's schema as its dataset input records it: the model's input columns, as
        training records its own (mlflow_colspec); the input's Spark schema for a model without a signature."""
        if self.signature is None:
            return raw.schema.json()
        return json.dumps({"mlflow_colspec": self.signature.inputs.to_dict()})

    def input_columns(self, raw: DataFrame) -> list[str]:
        """The model's input columns in `raw`, once none is missing or mistyped and `raw` holds no
        column the scores add."""
        columns = signature_columns(raw.schema, self.signature, self.ref.uri)
        added = {name.lower() for name in self.outputs()}  # Spark resolves names case-insensitively
        clashes = [c for c in raw.columns if c.lower() in added]
        if clashes:
            raise DataError(
                f"input already has output column(s) {', '.join(clashes)}; drop or rename them before scoring"
            )
        return columns


def load_model(session: TrackingSession, model: ModelRef, directory: str, dfs_tmp: str | None) -> LoadedModel:
    """As training loads the champion: from the run artifacts the version was registered from, with
    the session's client, so no global MLflow URI is involved. Spark reads the model's files as it
    loads it: `directory` may go once this returns."""
    from mlflow.models import get_model_info

    from synapse_ml_track.spark.models import load_spark_model

    local_model = session.download_artifacts(model.run_id, model.artifact_path, directory)
    pipeline = load_spark_model(local_model, dfs_tmp)
    signature = get_model_info(local_model).signature
    with session.tracking_errors():
        label = session.client.get_run(model.run_id).data.params.get("data.label")  # training.config_params
    return LoadedModel(model, pipeline, signature, class_labels(pipeline), TrainingProfile.read(local_model), label)


@dataclass(frozen=True)
class ScoringCounts:
    rows: int  # input rows
    unscorable: int  # of which with a null model input
    predicted: dict[str, int]  # predictions per class (classification)
    prediction_stats: dict[str, float]  # mean, min and max prediction (regression)
    unseen: dict[str, int] = field(default_factory=dict)  # scored rows per categorical feature with a category
    # the model did not see in training

    @property
    def scored(self) -> int:
        return self.rows - self.unscorable


@dataclass(frozen=True)
class Counting:
    """Spark's own observations of the scoring query, filled in as the output is written."""

    outputs: Observation  # per class (or the prediction's mean, min, max); rows and unscorable too unless dropped
    inputs: Observation | None  # with drop: rows and unscorable, observed before the unscorable rows go
    labels: list[str] | None
    drift: Observation | None = None  # every input row counted into the profile's bins
    profile: TrainingProfile | None = None
    labelled: bool = False  # the input holds the label: `outputs` also counts the model's errors
    categorical: tuple[str, ...] = ()  # the model's categorical features: `outputs` counts their unseen values

    def labelled_metrics(self) -> dict[str, float] | None:
        """The model's metrics on the scored rows that have a label (accuracy, f1, ... or rmse, r2, ...),
        as training reports them on its test split; None when the input has no label column, or no row
        with a label."""
        if not self.labelled:
            return None
        values = self.outputs.get
        if self.labels is None:
            metrics = metrics_from_moments(values, LABELLED)
        else:
            metrics = from_confusion(self.labels, confusion_of(values, self.labels, LABELLED)).all_metrics
        rows = metrics.pop("test_rows", 0.0)
        return {**metrics, "rows": rows} if rows else None  # no labelled row: no metric, rather than zeros

    def counts(self) -> ScoringCounts:
        written = self.outputs.get
        seen = self.inputs.get if self.inputs is not None else written
        predicted = {label: int(written[f"predicted_{i}"] or 0) for i, label in enumerate(self.labels or [])}
        stats = (
            {} if self.labels is not None else {k: written[k] for k in ("mean", "min", "max") if written[k] is not None}
        )
        unseen = {name: int(written[f"unseen_{i}"] or 0) for i, name in enumerate(self.categorical)}
        return ScoringCounts(int(seen["rows"]), int(seen["unscorable"] or 0), predicted, stats, unseen)


def score_frame(
    raw: DataFrame,
    columns: list[str],
    pipeline,
    labels: list[str] | None,
    model: ModelRef,
    scored_at: datetime,
    drop: bool,
    profile: TrainingProfile | None = None,
    label: str | None = None,
) -> tuple[DataFrame, Counting]:
    """The scores (see `predictions`), or with drop only the scorable rows', counted by Spark observations
    while the output is written, so the input is read once: every count comes from one observation
    of the output (two with drop, whose input count is taken before the unscorable rows go). With a
    training `profile`, a third observation counts every input row into its bins, for drift. With a
    `label` column in the input, the output's observation also counts the model's errors on it."""
    drift = Observation(f"{RESERVED_PREFIX}drift") if profile is not None else None
    if drift is not None and profile is not None:
        raw = raw.observe(drift, *distribution_columns(profile.features))
    inputs = Observation(f"{RESERVED_PREFIX}inputs") if drop else None
    output = predictions(raw, columns, pipeline, labels, model, scored_at, dropping=inputs)
    outputs = Observation(f"{RESERVED_PREFIX}outputs")
    if labels is not None:
        counted = [
            F.sum((F.col(PREDICTION) == label).cast("long")).alias(f"predicted_{i}") for i, label in enumerate(labels)
        ]
    else:
        counted = [F.avg(PREDICTION).alias("mean"), F.min(PREDICTION).alias("min"), F.max(PREDICTION).alias("max")]
    labelled = label is not None and label in raw.columns
    if labelled and label is not None:
        actual = column(label)
        if labels is not None:
            counted += confusion_columns(actual.cast("string"), F.col(PREDICTION), labels, LABELLED)
        else:
            counted += moment_columns(actual.cast("double"), F.col(PREDICTION), LABELLED)
    categories = known_categories(pipeline)
    counted += _unseen_counts(categories)
    output = output.observe(outputs, *counted, *([] if drop else _row_counts()))
    return output, Counting(outputs, inputs, labels, drift, profile, labelled, tuple(categories))


def _unseen_counts(categories: Mapping[str, list[str]]) -> list[Column]:
    """Per categorical feature, the scored rows whose value (as the model reads it, as text) is none of
    the categories it learned: the model scores them all as one unknown category."""
    scored = F.col(UNSCORABLE_REASON).isNull()
    return [
        F.count(F.when(scored & ~column(name).cast("string").isin(*known), True)).alias(f"unseen_{i}")
        for i, (name, known) in enumerate(categories.items())
    ]


def _row_counts() -> list[Column]:
    return [
        F.count(F.lit(1)).alias("rows"),
        F.count(UNSCORABLE_REASON).alias("unscorable"),  # count() counts the non-null
    ]


def predictions(
    raw: DataFrame,
    columns: list[str],
    pipeline,
    labels: list[str] | None,
    model: ModelRef,
    scored_at: datetime,
    dropping: Observation | None = None,
) -> DataFrame:
    """Every input row with its prediction (for a classifier, one probability column per class), the
    reason it could not be scored, and the model's lineage. With `dropping`, the unscorable rows are
    left out, counted first by that observation.

    The model runs on every row, with stand-ins for nulls; a row with a null model input keeps its
    columns and gets a null prediction and probabilities, and its reason. The query computes only
    what is asked for: the probability vector becomes an array once per row (not once per class),
    and the lineage is literals.
    """
    kinds = {f.name: f.dataType for f in raw.schema.fields}
    originals = [f"{RESERVED_PREFIX}in_{i}" for i in range(len(raw.columns))]
    frame = raw.select(
        *[column(c).alias(kept) for c, kept in zip(raw.columns, originals, strict=True)],
        *[filled(c, kinds[c]) for c in columns],
        why_unscorable(columns, kinds).alias(UNSCORABLE_REASON),
    )
    if dropping is not None:
        frame = frame.observe(dropping, *_row_counts()).where(F.col(UNSCORABLE_REASON).isNull())
    scored = pipeline.transform(frame)
    scorable = F.col(UNSCORABLE_REASON).isNull()
    per_class = []
    if labels is not None:
        # One array per row, referenced once per class: Spark keeps a non-trivial expression used more
        # than once in its own projection (CollapseProject) instead of inlining it into each column.
        probabilities = f"{RESERVED_PREFIX}probabilities"
        scored = scored.select(
            *[F.col(kept) for kept in originals],
            F.col(PREDICTION),
            F.col(UNSCORABLE_REASON),
            F.when(scorable, vector_to_array(F.col(predictor(pipeline).getProbabilityCol()))).alias(probabilities),
        )
        per_class = [F.col(probabilities)[i].alias(name) for i, name in enumerate(probability_columns(labels))]
    return scored.select(
        *[F.col(kept).alias(c) for c, kept in zip(raw.columns, originals, strict=True)],
        F.when(scorable, F.col(PREDICTION)).alias(PREDICTION),
        *per_class,
        F.col(UNSCORABLE_REASON),
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(model.run_id).alias("model_run_id"),
        F.lit(scored_at).alias("scored_at"),
    )


def _write(scores: DataFrame, fmt: str, output: Output) -> None:
    writer = scores.write.format(fmt).mode(output.mode)
    if output.partition_by:
        writer = writer.partitionBy(*output.partition_by)
    try:
        writer.save(output.location)
    except Exception as exc:
        if spark_error(exc, "PATH_ALREADY_EXISTS") is None:
            raise
        raise delta_tables.output_exists(output.location) from None
