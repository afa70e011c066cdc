"""The batch-scoring job: check the input against a registered model's signature, score, write, track.

One MLflow run per job, in the same experiment as training (tag smt.job=score). The output holds
the input's columns, the predicted class, one probability column per class and the model's lineage.

mlflow (and the modules built on it) is imported where it is used.
"""

from __future__ import annotations

import logging
import re
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Any

from pyspark.ml.functions import vector_to_array
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from synapse_ml_track import data as data_module
from synapse_ml_track.config import JobConfig
from synapse_ml_track.context import run_tags
from synapse_ml_track.errors import ConfigError, DataError
from synapse_ml_track.pipeline import PREDICTION, PROBABILITY
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.runs import JOB_TAG
from synapse_ml_track.spark import spark_error

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from synapse_ml_track.session import TrackingSession
    from synapse_ml_track.tracking import RunTracker

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("model_name", "model_version", "model_run_id", "scored_at")
MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[^/@]+))?$")
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


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str
    run_id: str
    artifact_path: str = "model"  # where in its run the version's files are

    @property
    def uri(self) -> str:
        """The pinned URI: an alias moved while the job runs does not change what it loads."""
        return f"models:/{self.name}/{self.version}"


def default_model_uri(config: JobConfig) -> str:
    return f"models:/{config.tracking.registered_model_name}@{config.gate.champion_alias}"


def resolve_model(client: MlflowClient, model_uri: str) -> ModelRef:
    """The registered version a models:/ URI names: by number, by alias, or the latest READY one."""
    from mlflow.exceptions import MlflowException

    from synapse_ml_track import registry

    match = MODEL_URI.match(model_uri)
    if not match:
        raise ConfigError(f"model URI {model_uri!r} is not models:/NAME/VERSION, models:/NAME@ALIAS or models:/NAME")
    name, version, alias = match.group("name", "version", "alias")
    try:
        if alias:
            version = registry.champion_version(client, name, alias)
            if version is None:
                raise ConfigError(f"no version of model '{name}' has the alias '{alias}' (or there is no such model)")
        elif version is None:
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


def count_nulls(df: DataFrame, columns: list[str]) -> tuple[int, dict[str, int]]:
    """Rows with a null in any of the columns, and nulls per column, from one aggregation."""
    any_null = reduce(or_, [F.col(c).isNull() for c in columns])
    row = df.select(
        F.count(F.when(any_null, 1)).alias("_rows"), *[F.count(F.when(F.col(c).isNull(), 1)).alias(c) for c in columns]
    ).first()
    return row["_rows"], {c: row[c] for c in columns if row[c]}


def probability_column(label: str) -> str:
    return "probability_" + re.sub(r"\W", "_", label)


def scored_columns(labels: list[str], model: ModelRef, scored_at: datetime) -> list:
    """The prediction, the class probabilities as plain doubles (in the model's label order), lineage."""
    probabilities = vector_to_array(F.col(PROBABILITY))
    return [
        F.col(PREDICTION),
        *[probabilities[i].alias(probability_column(label)) for i, label in enumerate(labels)],
        F.lit(model.name).alias("model_name"),
        F.lit(model.version).alias("model_version"),
        F.lit(model.run_id).alias("model_run_id"),
        F.lit(scored_at).alias("scored_at"),
    ]


def output_format(spark: SparkSession, requested: str | None) -> str:
    if requested:
        return requested
    return "delta" if "DeltaSparkSessionExtension" in spark.conf.get("spark.sql.extensions", "") else "parquet"


def run_scoring(
    spark: SparkSession,
    config: JobConfig,
    session: TrackingSession,
    redactor: Redactor,
    model_uri: str,
    output_path: str,
    *,
    mode: str = "errorifexists",
    requested_format: str | None = None,
) -> dict[str, Any]:
    tags = {**run_tags(spark, config.run_key), **config.tracking.tags, JOB_TAG: "score"}
    with session.tracking_errors():
        tracker = session.start_run(config.tracking.run_name, tags, redactor)
    with session.failing_run(tracker):
        summary = _score(
            spark, config, session, tracker, model_uri, output_path, mode, output_format(spark, requested_format)
        )
        tracker.finish()
    return summary


def _score(
    spark: SparkSession,
    config: JobConfig,
    session: TrackingSession,
    tracker: RunTracker,
    model_uri: str,
    output_path: str,
    mode: str,
    fmt: str,
) -> dict[str, Any]:
    from mlflow.models import get_model_info

    from synapse_ml_track.registry import load_spark_model

    source = data_module.resolve_source(config.data)
    tracker.log_params(
        {
            "model_uri": model_uri,
            "data.path": source.path,
            "data.format": source.format,
            "output.path": output_path,
            "output.format": fmt,
            "output.mode": mode,
        }
    )
    model = resolve_model(session.client, model_uri)
    tracker.log_params({"model.name": model.name, "model.version": model.version, "model.run_id": model.run_id})

    with data_module.malformed_input_errors(source), tempfile.TemporaryDirectory() as download_dir:
        raw = data_module.read_input(spark, source, config.data)
        # As training loads the champion: from the run artifacts the version was registered from,
        # with this session's client, so no global MLflow URI is involved.
        local_model = session.download_artifacts(model.run_id, model.artifact_path, download_dir)
        columns = signature_columns(raw.schema, get_model_info(local_model).signature, f"{model.name}/{model.version}")
        pipeline = load_spark_model(local_model, config.tracking.dfs_tmp)
        labels = list(pipeline.stages[-1].getLabels())
        scored_at = datetime.now(timezone.utc)
        clashes = [c for c in raw.columns if c in (PREDICTION, *map(probability_column, labels), *LINEAGE_COLUMNS)]
        if clashes:
            raise DataError(
                f"input already has output column(s) {', '.join(clashes)}; drop or rename them before scoring"
            )
        skipped = _skipped_rows(raw, columns, config.data.nulls)
        scored = pipeline.transform(raw.dropna(subset=columns) if skipped else raw)
        _write(scored.select(*raw.columns, *scored_columns(labels, model, scored_at)), fmt, mode, output_path)

    counts = {
        r[PREDICTION]: r["count"]
        for r in spark.read.format(fmt).load(output_path).groupBy(PREDICTION).count().collect()
    }
    rows = sum(counts.values())
    tracker.log_metrics(
        {
            "rows_scored": rows,
            "rows_skipped": skipped,
            **{f"predicted_{label}": counts.get(label, 0) for label in labels},
        }
    )
    log.info("scored %s rows with %s version %s into %s (%s)", rows, model.name, model.version, output_path, fmt)
    return {
        "status": "scored",
        "run_id": tracker.run_id,
        "experiment_id": session.experiment_id,
        "model_uri": model.uri,
        "model_name": model.name,
        "model_version": model.version,
        "model_run_id": model.run_id,
        "input": source.path,
        "output_path": output_path,
        "output_format": fmt,
        "rows_scored": rows,
        "rows_skipped": skipped,
        "predicted": {label: counts.get(label, 0) for label in labels},
        "scored_at": scored_at.isoformat(),
        "tracking_uri": session.uri,
    }


def _skipped_rows(df: DataFrame, columns: list[str], nulls: str) -> int:
    """Rows the model cannot score (a null in an input column): counted under nulls=drop, refused under reject."""
    skipped, per_column = count_nulls(df, columns)
    if skipped and nulls == "reject":
        listing = ", ".join(f"{c} ({n})" for c, n in per_column.items())
        raise DataError(
            f"{skipped} row(s) have nulls in model input columns: {listing}; clean the data or set data.nulls=drop"
        )
    return skipped


def _write(scores: DataFrame, fmt: str, mode: str, path: str) -> None:
    try:
        # overwriteSchema: on Delta, a model with other classes replaces the probability columns (Parquet ignores it).
        scores.write.format(fmt).mode(mode).option("overwriteSchema", "true").save(path)
    except Exception as exc:
        if not any(
            spark_error(exc, error_class) is not None for error_class in ("PATH_ALREADY_EXISTS", "DELTA_PATH_EXISTS")
        ):
            raise
        raise DataError(f"output {path} already exists; pass --mode overwrite to replace it") from None
