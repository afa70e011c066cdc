"""Delta tables, by path or by catalog name: read at a pinned version, and write scores exactly once.

Everything goes through Spark SQL and the DataFrame API (DESCRIBE HISTORY, VERSION AS OF, MERGE INTO,
the writer's txnAppId/txnVersion), so the delta-spark Python package is not needed: only the jars.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from synapse_ml_track.errors import ConfigError, DataError
from synapse_ml_track.spark import delta
from synapse_ml_track.spark.session import spark_error, spark_errors
from synapse_ml_track.vocabulary import RUN_ID_FIELD, RUN_KEY_FIELD

if TYPE_CHECKING:
    from synapse_ml_track.spark.data import InputSource

TABLE_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+){0,2}$")  # [catalog.][database.]table
NOT_A_TABLE = (
    "DELTA_TABLE_ONLY_OPERATION",  # what Delta 3.2.1 raises for DESCRIBE HISTORY of a path with no _delta_log
    "DELTA_MISSING_DELTA_TABLE",
    "DELTA_TABLE_NOT_FOUND",
    "PATH_NOT_FOUND",
)
NO_SUCH_TABLE = ("TABLE_OR_VIEW_NOT_FOUND",)
COMMIT_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
# The writer's idempotency (Delta "idempotent writes"): a write whose txnAppId already committed a
# txnVersion at least as high is skipped; one appId per run key, always version 0.
TXN_APP_PREFIX = "synapse-ml-track score "


def table_identifier(name: str) -> str:
    if not TABLE_NAME.match(name):
        raise ConfigError(f"table name {name!r} is not [database.]table (letters, digits and _ only)")
    return ".".join(f"`{part}`" for part in name.split("."))


def path_identifier(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def _require_delta(spark: SparkSession) -> None:
    if not delta.has_delta(spark):
        raise DataError(delta.MISSING)


# ---- reading ------------------------------------------------------------------------------------


def pin_version(spark: SparkSession, source: InputSource) -> InputSource:
    """The source with the Delta version to read fixed (the one asked for, the one current at the
    timestamp asked for, or the latest) and that version's commit time; other formats unchanged."""
    if source.table:
        provider = _provider(spark, source.path)
        if provider != "delta":
            if source.version is not None or source.timestamp:
                raise DataError(
                    f"data.version and data.timestamp need a Delta table; {source.path} is {provider or 'not Delta'}"
                )
            return replace(source, format=provider or "table")
        identifier = table_identifier(source.path)
    else:
        identifier = path_identifier(source.path)
    _require_delta(spark)
    history = _history(spark, identifier, source.path)
    if source.version is not None:
        chosen = history.where(F.col("version") == source.version)
        missing = f"{source.path} has no version {source.version}"
    elif source.timestamp:
        at = spark.range(1).select(F.to_timestamp(F.lit(source.timestamp))).first()[0]
        if at is None:
            raise ConfigError(f"data.timestamp {source.timestamp!r} is not a timestamp (e.g. 2026-01-31 12:00:00)")
        chosen = history.where(F.col("timestamp") <= F.to_timestamp(F.lit(source.timestamp)))
        missing = f"{source.path} has no version as old as {source.timestamp}"
    else:
        chosen, missing = history, f"{source.path} has no commits"
    row = chosen.orderBy(F.col("version").desc()).select("version", "commit_time").first()
    if row is None:
        oldest = history.agg(F.min("version"), F.max("version")).first()
        raise DataError(f"{missing} (versions {oldest[0]} to {oldest[1]} are kept); fix data.version / data.timestamp")
    return replace(source, format="delta", version=int(row["version"]), commit_time=row["commit_time"])


def read(spark: SparkSession, source: InputSource) -> DataFrame:
    """A pinned source's rows: a Delta table at its version, or another catalog table as it is."""
    if source.format != "delta":
        return spark.read.table(table_identifier(source.path))
    if source.table:
        return spark.sql(f"SELECT * FROM {table_identifier(source.path)} VERSION AS OF {int(source.version)}")
    return spark.read.format("delta").option("versionAsOf", source.version).load(source.path)


def _provider(spark: SparkSession, name: str) -> str | None:
    try:
        rows = spark.sql(f"DESCRIBE TABLE EXTENDED {table_identifier(name)}").collect()
    except Exception as exc:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError
        if any(spark_error(exc, error_class) is not None for error_class in NO_SUCH_TABLE):
            raise DataError(f"table {name} not found in the catalog (check data.table / --input-table)") from None
        raise
    return next((row["data_type"].lower() for row in rows if row["col_name"] == "Provider"), None)


def _history(spark: SparkSession, identifier: str, shown: str) -> DataFrame:
    try:
        history = spark.sql(f"DESCRIBE HISTORY {identifier}")
    except Exception as exc:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError
        if any(spark_error(exc, error_class) is not None for error_class in NOT_A_TABLE):
            raise DataError(f"{shown} is not a Delta table (no _delta_log); check the path or data.format") from None
        raise
    return history.withColumn("commit_time", F.date_format("timestamp", COMMIT_TIME_FORMAT))


# ---- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    location: str  # a path, or a catalog table's name
    table: bool

    @property
    def identifier(self) -> str:
        return table_identifier(self.location) if self.table else path_identifier(self.location)


@dataclass(frozen=True)
class Written:
    version: int | None  # the table version holding these scores
    written: bool  # False: an earlier attempt of the same run key wrote them; this one wrote nothing


def exists(spark: SparkSession, target: Target) -> bool:
    if target.table:
        table_identifier(target.location)
        return spark.catalog.tableExists(target.location)
    try:
        spark.sql(f"DESCRIBE HISTORY {target.identifier} LIMIT 1").collect()
    except Exception as exc:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError
        if any(spark_error(exc, error_class) is not None for error_class in NOT_A_TABLE):
            return False
        raise
    return True


def commit_of(spark: SparkSession, target: Target, field: str, value: str) -> int | None:
    """The newest version whose commit metadata (userMetadata, written by write_once) has field = value."""
    rows = (
        spark.sql(f"DESCRIBE HISTORY {target.identifier}")
        .where(F.col("userMetadata").isNotNull())
        .select("version", "userMetadata")
        .collect()
    )
    found = [row["version"] for row in rows if _metadata(row["userMetadata"]).get(field) == value]
    return max(found) if found else None


def _metadata(text: str) -> dict:
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def write_once(
    spark: SparkSession,
    scores: DataFrame,
    *,
    target: Target,
    mode: str,
    run_key: str | None,
    run_id: str,
    merge_key: str | None = None,
    evolve_schema: bool = False,
    materialize: bool = False,
) -> Written:
    """Write the scores to a Delta table once per run key; `materialize`: compute them (one action,
    which reports the query's observations) and write them from the cache, after the checks.

    A retried run key finds its earlier commit (by the commit metadata) and writes nothing; two
    attempts racing past that check are settled by Delta itself: appends and overwrites carry the
    writer options txnAppId/txnVersion, and every write (a MERGE included) the same pair as session
    settings (DeltaSQLConf write.txnAppId / write.txnVersion, for SQL and DML commands).
    """
    _require_delta(spark)
    if mode == "merge" and merge_key not in scores.columns:
        raise ConfigError(f"--merge-key {merge_key} is not an input column; name the column that identifies a row")
    present = exists(spark, target)
    if present and mode == "errorifexists":
        raise DataError(f"output {target.location} already exists; pass --mode overwrite to replace it")
    earlier = commit_of(spark, target, RUN_KEY_FIELD, run_key) if present and run_key else None
    if earlier is not None:
        return Written(earlier, written=False)
    if present and mode in ("append", "merge"):
        _check_schema(spark.table(target.identifier).columns, scores.columns, target, evolve_schema)
    metadata = json.dumps({RUN_KEY_FIELD: run_key, RUN_ID_FIELD: run_id}, sort_keys=True)
    # As session settings too: a catalog table's first write (CREATE TABLE AS SELECT) ignores the
    # writer's userMetadata option (seen with Delta 3.2.1), and a MERGE has no writer options.
    settings = {"spark.databricks.delta.commitInfo.userMetadata": metadata}
    if run_key:
        settings["spark.databricks.delta.write.txnAppId"] = TXN_APP_PREFIX + run_key
        settings["spark.databricks.delta.write.txnVersion"] = "0"
    with _materialized(scores, materialize) as scores, _session_settings(spark, settings):
        if mode == "merge" and present:
            _merge(spark, scores, target, merge_key, evolve_schema)
        else:
            _write(scores, target, "append" if mode == "merge" else mode, metadata, run_key, evolve_schema)
    version = commit_of(spark, target, RUN_ID_FIELD, run_id)
    if version is None and run_key:  # another attempt of the run key committed first; Delta skipped this one
        earlier = commit_of(spark, target, RUN_KEY_FIELD, run_key)
        if earlier is not None:
            return Written(earlier, written=False)
    return Written(version, written=True)


def _write(
    scores: DataFrame, target: Target, mode: str, metadata: str, run_key: str | None, evolve_schema: bool
) -> None:
    writer = scores.write.format("delta").mode(mode).option("userMetadata", metadata)
    if run_key:
        writer = writer.option("txnAppId", TXN_APP_PREFIX + run_key).option("txnVersion", 0)
    if mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")  # a model of other classes replaces the columns
    elif evolve_schema:
        writer = writer.option("mergeSchema", "true")
    if target.table:
        writer.saveAsTable(target.location)
    else:
        writer.save(target.location)


def _check_schema(existing: list[str], new: list[str], target: Target, evolve: bool) -> None:
    """Another class set means other probability columns: added only when asked (--evolve-schema)."""
    added = [name for name in new if name not in existing]
    if added and not evolve:
        raise DataError(
            f"the scores have column(s) {', '.join(added)} that {target.location} lacks (a model with other "
            "classes?); pass --evolve-schema to add them, or --mode overwrite"
        )


def _merge(spark: SparkSession, scores: DataFrame, target: Target, key: str, evolve: bool) -> None:
    """Upsert on the key: rows seen before get their new scores (columns the scores lack become
    null: no stale probability of a class the model no longer has), new rows are inserted."""
    view = f"smt_scores_{uuid.uuid4().hex}"
    scores.createOrReplaceTempView(view)
    existing = spark.table(target.identifier).columns
    if evolve:
        actions = "WHEN MATCHED THEN UPDATE SET * WHEN NOT MATCHED THEN INSERT *"
    else:
        sets = ", ".join(f"t.{_q(c)} = {'s.' + _q(c) if c in scores.columns else 'NULL'}" for c in existing)
        names = ", ".join(_q(c) for c in scores.columns)
        values = ", ".join(f"s.{_q(c)}" for c in scores.columns)
        actions = f"WHEN MATCHED THEN UPDATE SET {sets} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    settings = {"spark.databricks.delta.schema.autoMerge.enabled": "true"} if evolve else {}
    try:
        with _session_settings(spark, settings):
            spark.sql(
                f"MERGE INTO {target.identifier} AS t USING {view} AS s ON t.{_q(key)} = s.{_q(key)} {actions}"
            ).collect()
    except Exception as exc:  # noqa: BLE001 - AnalysisException, UnsupportedOperationException...
        if any("MULTIPLE_SOURCE_ROW_MATCHING" in (cls or "") for cls, _ in spark_errors(exc)):
            raise DataError(f"merge key {key} is not unique in the input; merge needs one row per key") from None
        raise
    finally:
        spark.catalog.dropTempView(view)


@contextmanager
def _materialized(frame: DataFrame, materialize: bool) -> Iterator[DataFrame]:
    if not materialize:
        yield frame
        return
    cached = frame.cache()
    try:
        cached.count()
        yield cached
    finally:
        cached.unpersist()


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


@contextmanager
def _session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
