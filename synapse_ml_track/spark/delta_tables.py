"""Delta tables, by path or by catalog name: read at a pinned version, and write scores exactly once.

Everything goes through Spark SQL and the DataFrame API (DESCRIBE HISTORY, VERSION AS OF, MERGE INTO,
the writer's txnAppId/txnVersion), so the delta-spark Python package is not needed: only the jars.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, Row, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from synapse_ml_track.errors import ConfigError, DataError, WriteConflict, option
from synapse_ml_track.spark import delta
from synapse_ml_track.spark.session import first_line_of, one_row, spark_error, spark_errors
from synapse_ml_track.spark.sources import InputSource, local_path
from synapse_ml_track.vocabulary import (
    INPUT_FIELD,
    INPUT_ID_FIELD,
    INPUT_VERSION_FIELD,
    MODEL_FIELD,
    RUN_ID_FIELD,
    WRITE_FIELD,
)

log = logging.getLogger(__name__)
# A table property: with it, an UPDATE or MERGE marks the rows it replaces in a deletion vector beside
# their file instead of rewriting the file (Delta 3.1+; readable by Delta 2.3+). A night's merge of 1%
# of a table's keys, spread over every file, otherwise rewrites the whole table (bench/score_incremental.py).
DELETION_VECTORS = "delta.enableDeletionVectors"
# A column of a merge's source marking a key to delete (incremental scoring: deleted from the input).
DELETED = "__smt_deleted"

TABLE_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+){0,2}$")  # [catalog.][database.]table
NOT_A_TABLE = (
    "DELTA_TABLE_ONLY_OPERATION",  # what Delta 3.2.1 raises for DESCRIBE HISTORY of a path with no _delta_log
    "DELTA_MISSING_DELTA_TABLE",
    "DELTA_TABLE_NOT_FOUND",
    "PATH_NOT_FOUND",
)
NO_SUCH_TABLE = ("TABLE_OR_VIEW_NOT_FOUND",)
COMMIT_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSXXX"
# The writer's idempotency (Delta "idempotent writes"): Delta skips a write whose txnAppId already
# committed a txnVersion at least as high. One application id per write (run key, input, model URI,
# target, mode: scoring.write_key), always version 0, so two different writes of one pipeline run
# never take each other for a retry.
TXN_APP_PREFIX = "synapse-ml-track score "
# How far back a retry looks for its earlier commit before writing (DESCRIBE HISTORY ... LIMIT).
RECENT_COMMITS = 50
# Delta's optimistic-concurrency conflicts (delta-error-classes.json, Delta 3.2.1): each says "try the
# operation again". None of them leaves a commit of the failed attempt, so a retry writes at most once.
CONFLICTS = (
    "DELTA_CONCURRENT_APPEND",
    "DELTA_CONCURRENT_DELETE_READ",
    "DELTA_CONCURRENT_DELETE_DELETE",
    "DELTA_CONCURRENT_TRANSACTION",
    "DELTA_CONCURRENT_WRITE",
    "DELTA_METADATA_CHANGED",
    "DELTA_PROTOCOL_CHANGED",
)
CONFLICT_ATTEMPTS = 4
CONFLICT_BACKOFF = 1.0  # seconds before the second attempt; doubled each time, with jitter


def table_identifier(name: str) -> str:
    if not TABLE_NAME.match(name):
        raise ConfigError(f"table name {name!r} is not [database.]table (letters, digits and _ only)")
    return ".".join(f"`{part}`" for part in name.split("."))


def qualified_table_name(spark: SparkSession, name: str) -> str:
    """catalog.database.table in lower case, as the session resolves `name` now: `scores`,
    `default.scores` and `SCORES` are one table (Spark's catalog names are case-insensitive)."""
    parts = name.lower().split(".")
    if len(parts) == 1:
        parts.insert(0, spark.catalog.currentDatabase().lower())
    if len(parts) == 2:
        parts.insert(0, spark.catalog.currentCatalog().lower())
    return ".".join(parts)


def path_identifier(path: str) -> str:
    return "delta.`" + path.replace("`", "``") + "`"


def _require_delta(spark: SparkSession) -> None:
    if not delta.has_delta(spark):
        raise DataError(delta.MISSING)


# ---- the catalog ----------------------------------------------------------------------------------


def catalog_table(spark: SparkSession, name: str) -> str:
    """A catalog table's identifier, checked; on a session whose catalog lives in memory (a laptop),
    a Delta table an earlier process wrote under the warehouse directory is registered by name first.

    Spark's in-memory catalog forgets every table when the process ends, while the table's files stay
    in the warehouse (mlruns/spark-warehouse for a session the job starts, see session.py): without
    this, the next command neither finds the table by name nor may create it there
    (DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION). Spark's embedded Derby metastore would keep the
    names, but lets one process at a time open it, so two jobs could not run at once. A Hive
    metastore (a Synapse pool's) is left alone.
    """
    identifier = table_identifier(name)
    # No default: a static setting left unset answers its own default ("in-memory" in Spark 3.5).
    if spark.conf.get("spark.sql.catalogImplementation") != "in-memory" or name.count(".") > 1:
        return identifier
    database, _, table = name.rpartition(".")
    if database:
        spark.sql(f"CREATE DATABASE IF NOT EXISTS {_q(database)}")
    if spark.catalog.tableExists(name):
        return identifier
    warehouse = Path(local_path(spark.conf.get("spark.sql.warehouse.dir") or "spark-warehouse"))
    location = warehouse / (f"{database.lower()}.db" if database and database.lower() != "default" else "")
    location = location / table.lower()
    if (location / "_delta_log").is_dir():
        spark.sql(f"CREATE TABLE IF NOT EXISTS {identifier} USING delta LOCATION '{_literal(str(location))}'")
    return identifier


# ---- reading ------------------------------------------------------------------------------------


def pin_version(spark: SparkSession, source: InputSource) -> InputSource:
    """The source with the Delta version to read fixed (the one asked for, the one current at the
    timestamp asked for, or the latest) and that version's commit time; other formats unchanged.

    A version whose data files VACUUM has removed, and a time after the last commit (which a later
    run would read as another version), are refused here, before the job reads or records anything.
    """
    if source.table:
        identifier = catalog_table(spark, source.path)
        provider = _provider(spark, identifier, source.path)
        if provider != "delta":
            if source.version is not None or source.timestamp:
                raise DataError(
                    f"data.version and data.timestamp need a Delta table; {source.path} is {provider or 'not Delta'}"
                )
            return replace(source, format=provider or "table")
    else:
        identifier = path_identifier(source.path)
    _require_delta(spark)
    history = _history(spark, identifier, source.path)
    rows = history.select("version", "timestamp", "commit_time", "operation").orderBy("version").collect()
    if not rows:
        raise DataError(f"{source.path} has no commits")
    latest, oldest = rows[-1], rows[0]
    if source.version is not None:
        chosen = [row for row in rows if row["version"] == source.version]
        missing = f"{source.path} has no version {source.version}"
    elif source.timestamp:
        at = one_row(spark.range(1).select(F.to_timestamp(F.lit(source.timestamp))))[0]
        if at is None:
            raise ConfigError(f"data.timestamp {source.timestamp!r} is not a timestamp (e.g. 2026-01-31 12:00:00)")
        if at > latest["timestamp"]:
            raise DataError(
                f"data.timestamp {source.timestamp} is after the last commit of {source.path} (version "
                f"{latest['version']}, {latest['commit_time']}): a later run would read other data; give a time "
                "at or before it, or data.version"
            )
        chosen = [row for row in rows if row["timestamp"] <= at]
        missing = f"{source.path} has no version as old as {source.timestamp}"
    else:
        chosen, missing = rows, f"{source.path} has no commits"
    if not chosen:
        raise DataError(
            f"{missing} (versions {oldest['version']} to {latest['version']} are kept); "
            "fix data.version / data.timestamp"
        )
    version = int(chosen[-1]["version"])
    vacuums = [row for row in rows if row["version"] > version and str(row["operation"]).startswith("VACUUM")]
    pinned = replace(source, format="delta", version=version, commit_time=chosen[-1]["commit_time"])
    if vacuums:
        _check_files_kept(spark, pinned, vacuums[-1])
    return pinned


def _check_files_kept(spark: SparkSession, source: InputSource, vacuum: Row) -> None:
    """A version older than a VACUUM may have lost its data files: Delta still reads its log and
    plans the read, then fails inside the job (SparkFileNotFoundException) after the run started."""
    files = read(spark, source).inputFiles()
    gone = [name for name in files if not _path_exists(spark, name)]
    if gone:
        raise DataError(
            f"version {source.version} of {source.path} can no longer be read: VACUUM (version {vacuum['version']}, "
            f"{vacuum['commit_time']}) removed {len(gone)} of its {len(files)} data files; read a newer data.version, "
            "or leave it out for the latest"
        )


def read(spark: SparkSession, source: InputSource) -> DataFrame:
    """A pinned source's rows: a Delta table at its version, or another catalog table as it is."""
    if source.format != "delta":
        return spark.read.table(table_identifier(source.path))
    if source.table:
        return spark.sql(f"SELECT * FROM {table_identifier(source.path)} VERSION AS OF {int(source.version or 0)}")
    return spark.read.format("delta").option("versionAsOf", source.version).load(source.path)


def _provider(spark: SparkSession, identifier: str, name: str) -> str | None:
    try:
        rows = spark.sql(f"DESCRIBE TABLE EXTENDED {identifier}").collect()
    except Exception as exc:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError
        if any(spark_error(exc, error_class) is not None for error_class in NO_SUCH_TABLE):
            raise DataError(f"table {name} not found in the catalog (check data.table / --input-table)") from None
        raise
    return next((row["data_type"].lower() for row in rows if row["col_name"] == "Provider"), None)


def _history(spark: SparkSession, identifier: str, shown: str, limit: int | None = None) -> DataFrame:
    try:
        history = spark.sql(f"DESCRIBE HISTORY {identifier}" + (f" LIMIT {int(limit)}" if limit else ""))
    except Exception as exc:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError
        if any(spark_error(exc, error_class) is not None for error_class in NOT_A_TABLE):
            raise DataError(f"{shown} is not a Delta table (no _delta_log); check the path or data.format") from None
        raise
    return history.withColumn("commit_time", F.date_format("timestamp", COMMIT_TIME_FORMAT))


def _path_exists(spark: SparkSession, location: str) -> bool:
    file_system, path = _file_system(spark, location)
    return bool(file_system.exists(path))


def _file_system(spark: SparkSession, location: str) -> tuple[Any, Any]:
    """Hadoop's FileSystem for a location and its Path (JVM objects): a look without a Spark job."""
    jvm: Any = spark.sparkContext._jvm
    path = jvm.org.apache.hadoop.fs.Path(location)
    return path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), path


# ---- writing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    location: str  # an absolute path or URI, or a catalog table's name
    table: bool

    @property
    def identifier(self) -> str:
        return table_identifier(self.location) if self.table else path_identifier(self.location)


@dataclass(frozen=True)
class Write:
    """What a write is: the scores, where they go, and how."""

    mode: str
    write_key: str | None = None  # identifies the write of a run key (scoring.write_key); None: no run key
    merge_key: str | None = None
    evolve_schema: bool = False
    partition_by: tuple[str, ...] = ()
    replace_where: str | None = None
    delete_missing: bool = False  # merge: a target row whose key the scores lack is deleted (a full re-score)


@dataclass(frozen=True)
class Written:
    version: int | None  # the table version holding these scores
    written: bool  # False: an earlier attempt of the same write committed them; this one wrote nothing
    metadata: dict[str, Any] = field(default_factory=dict)  # the commit's: run key, run id, the model


def exists(spark: SparkSession, target: Target) -> bool:
    """Whether the table is there: the catalog's answer, or a _delta_log with commits in it (no Spark job)."""
    if target.table:
        catalog_table(spark, target.location)
        return spark.catalog.tableExists(target.location)
    file_system, log_dir = _file_system(spark, target.location.rstrip("/") + "/_delta_log")
    if not file_system.exists(log_dir):
        return False
    return any(status.getPath().getName().endswith(".json") for status in file_system.listStatus(log_dir))


def output_exists(location: str) -> DataError:
    return DataError(f"output {location} already exists; pass {option('--mode', 'overwrite')} to replace it")


def path_holds(spark: SparkSession, location: str) -> str | None:
    """What a path already holds: "delta" (a table), "parquet" (files but no Delta table: what a Parquet
    write leaves), or None (nothing, or an empty directory). A look at the file system, no Spark job."""
    if exists(spark, Target(location, table=False)):
        return "delta"
    file_system, path = _file_system(spark, location)
    if not file_system.exists(path):
        return None
    if not file_system.getFileStatus(path).isDirectory():
        return "parquet"
    names = [status.getPath().getName() for status in file_system.listStatus(path)]
    return "parquet" if any(not name.startswith(("_", ".")) or name == "_SUCCESS" for name in names) else None


def earlier_write(spark: SparkSession, target: Target, write_key: str) -> Written | None:
    """The commit an earlier attempt of this write made, among the newest history entries: a retry
    comes soon after its attempt. One older than that is still found after the write, which Delta
    skips for an application id (txnAppId) it has seen."""
    if not exists(spark, target):
        return None
    return _find(_commits(spark, target, RECENT_COMMITS), WRITE_FIELD, write_key, written=False)


# Operations on a table that leave its rows as they were: another writer's commit of any other kind
# (RESTORE, DELETE, UPDATE, MERGE, WRITE, TRUNCATE...) may have changed the scores a target holds.
ROWS_KEPT = frozenset({
    "OPTIMIZE", "VACUUM START", "VACUUM END", "SET TBLPROPERTIES", "UNSET TBLPROPERTIES", "ADD COLUMNS",
    "CHANGE COLUMN", "ADD CONSTRAINT", "DROP CONSTRAINT", "UPGRADE PROTOCOL", "REORG",
})  # fmt: skip


@dataclass(frozen=True)
class ScoredInput:
    """The newest commit after which the target held the scores of the whole input (a full write or an
    incremental run): the input version it read, whether the input is still that table, the model, and
    the first commit since that another writer made and that may have changed the target's rows."""

    version: int
    same_table: bool  # False: the name or path has since come to hold another table (another Delta id)
    model: dict[str, Any]
    altered_by: str | None = None  # e.g. "RESTORE (version 4)"; None: only our writes, or none, since


def last_scored_input(spark: SparkSession, target: Target, input_location: str, input_id: str) -> ScoredInput | None:
    """The newest commit that recorded scoring the whole input into the target: the input found by its
    Delta table id (named by path one night and by table name the next, it is one table), or, in a
    commit without one, by its name. None when the target is absent or no commit records the input."""
    if not exists(spark, target):
        return None
    altered_by = None
    for row in _commits(spark, target, None):  # newest first
        metadata = _metadata(row["userMetadata"] or "")
        if metadata.get(INPUT_VERSION_FIELD) is None:
            if RUN_ID_FIELD not in metadata and row["operation"] not in ROWS_KEPT:
                altered_by = f"{row['operation']} (version {row['version']})"  # the oldest such is kept
            continue
        recorded_id = metadata.get(INPUT_ID_FIELD)
        if recorded_id == input_id or metadata.get(INPUT_FIELD) == input_location:
            same = recorded_id in (None, input_id)
            return ScoredInput(int(metadata[INPUT_VERSION_FIELD]), same, metadata.get(MODEL_FIELD) or {}, altered_by)
    return None


def write_once(
    spark: SparkSession,
    scores: DataFrame,
    *,
    target: Target,
    write: Write,
    metadata: dict[str, Any],
    materialize: bool = False,
) -> Written:
    """Write the scores to a Delta table, once per write key; `metadata` (with the run id under
    RUN_ID_FIELD) goes into the commit. `materialize`: compute the scores first (one action, which
    reports the query's observations) and write them from the cache.

    Two attempts of one write racing past earlier_write are settled by Delta itself: every write
    carries the write key as its application id (txnAppId, txnVersion 0; as writer options, and as
    session settings for a MERGE or a catalog table's first write), and Delta skips or refuses a
    second commit of it. A commit another writer made meanwhile (Delta's concurrency conflicts) is
    retried a few times, each time against the table as it then is.
    """
    _require_delta(spark)
    metadata = {**metadata, WRITE_FIELD: write.write_key}
    text = json.dumps(metadata, sort_keys=True)
    settings = {"spark.databricks.delta.commitInfo.userMetadata": text}
    if write.write_key:
        settings["spark.databricks.delta.write.txnAppId"] = TXN_APP_PREFIX + write.write_key
        settings["spark.databricks.delta.write.txnVersion"] = "0"
    with _materialized(scores, materialize) as scores, _session_settings(spark, settings):
        if write.mode == "merge":
            require_one_row_per_key(scores, write.merge_key or "")
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            present = exists(spark, target)
            if present and write.mode == "errorifexists":
                raise output_exists(target.location)
            columns = [c for c in scores.columns if c != DELETED]
            if present and write.mode in ("append", "merge"):
                existing = spark.table(target.identifier).schema
                _check_schema(existing, [scores.schema[name] for name in columns], target, write.evolve_schema)
            try:
                if write.mode == "merge" and present:
                    _merge(spark, scores, target, write)
                else:  # a first write has no scores to delete
                    kept = scores.where(~F.col(DELETED)).drop(DELETED) if DELETED in scores.columns else scores
                    _write(kept, target, write, text)
                break
            except Exception as exc:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError
                conflict = next((cls for cls, _ in spark_errors(exc) if cls in CONFLICTS), None)
                if conflict is None:
                    raise
                if attempt == CONFLICT_ATTEMPTS:
                    raise WriteConflict(_conflict_line(spark, target, conflict, metadata)) from None
                wait = CONFLICT_BACKOFF * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
                log.info("%s while writing %s; trying again in %.1f s", conflict, target.location, wait)
                time.sleep(wait)
    commits = _commits(spark, target, RECENT_COMMITS)
    ours = _find(commits, RUN_ID_FIELD, metadata[RUN_ID_FIELD], written=True)
    if ours is not None:
        return ours
    if write.write_key:  # Delta skipped this commit: an earlier attempt of the write made it
        earlier = _find(commits, WRITE_FIELD, write.write_key, written=False) or _find(
            _commits(spark, target, None), WRITE_FIELD, write.write_key, written=False
        )
        if earlier is not None:
            return earlier
    return Written(None, written=True, metadata=metadata)


def _conflict_line(spark: SparkSession, target: Target, conflict: str, metadata: dict[str, Any]) -> str:
    newest = _commits(spark, target, 1)
    other = ""
    if newest:
        row = newest[0]
        who = _metadata(row["userMetadata"] or "").get(RUN_ID_FIELD)
        other = f"; the other write: {row['operation']} (version {row['version']}, {row['commit_time']}"
        other += f", MLflow run {who})" if who else ")"
    return (
        f"another writer changed {target.location} while this job wrote to it (Delta {conflict}, "
        f"{CONFLICT_ATTEMPTS} attempts){other}; run the job again (with the same run key it writes once)"
    )


def _commits(spark: SparkSession, target: Target, limit: int | None) -> list[Row]:
    """The newest commits first, `limit` of them (None: all)."""
    history = _history(spark, target.identifier, target.location, limit)
    return history.select("version", "operation", "commit_time", "userMetadata").orderBy(F.desc("version")).collect()


def rows_deleted(spark: SparkSession, target: Target, written: Written | None) -> int:
    """The target rows the write's commit deleted (a MERGE's numTargetRowsDeleted; 0 for one that deletes none)."""
    if written is None or written.version is None:
        return 0
    # The commit was just made, so it is among the newest: the whole history (which the run has read once
    # already, and which grows by a commit a night) is read only if other writers have committed many since.
    for limit in (RECENT_COMMITS, None):
        history = _history(spark, target.identifier, target.location, limit)
        row = history.where(F.col("version") == written.version).select("operationMetrics").first()
        if row is not None:
            return int((row["operationMetrics"] or {}).get("numTargetRowsDeleted") or 0)
    return 0


def _find(commits: list[Row], field_name: str, value: str | None, *, written: bool) -> Written | None:
    if value is None:
        return None
    for row in commits:  # newest first
        metadata = _metadata(row["userMetadata"] or "")
        if metadata.get(field_name) == value:
            return Written(int(row["version"]), written=written, metadata=metadata)
    return None


def _metadata(text: str) -> dict:
    try:
        loaded = json.loads(text)
    except ValueError:
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write(scores: DataFrame, target: Target, write: Write, metadata: str) -> None:
    mode = "append" if write.mode == "merge" else write.mode
    writer = scores.write.format("delta").mode(mode).option("userMetadata", metadata)
    if write.write_key:
        writer = writer.option("txnAppId", TXN_APP_PREFIX + write.write_key).option("txnVersion", 0)
    if write.partition_by:
        writer = writer.partitionBy(*write.partition_by)
    if write.mode == "merge":  # creating the table: its later merges mark replaced rows, not rewrite files
        writer = writer.option(DELETION_VECTORS, "true")
    if write.replace_where:
        writer = writer.option("replaceWhere", write.replace_where)
    elif mode == "overwrite":
        writer = writer.option("overwriteSchema", "true")  # a model of other classes replaces the columns
    elif write.evolve_schema:
        writer = writer.option("mergeSchema", "true")
    try:
        spark = scores.sparkSession
        if target.table and not spark.catalog.tableExists(target.location):
            writer.saveAsTable(target.location)
        else:
            writer.save(_table_location(spark, target) if target.table else target.location)
    except Exception as exc:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError
        mismatch = spark_error(exc, "DELTA_REPLACE_WHERE_MISMATCH")
        if mismatch is None:
            raise
        raise DataError(f"scores outside --replace-where {write.replace_where!r}: {first_line_of(mismatch)}") from None


def _table_location(spark: SparkSession, target: Target) -> str:
    """Where an existing catalog table keeps its files. Appending or overwriting by name goes through the
    catalog's schema of the table, which for a table registered by catalog_table (a later process of a
    laptop's in-memory catalog) is empty: Spark refused every later write ("the column number of the
    existing table (struct<>) doesn't match"). Delta writes the same commit by path."""
    return str(one_row(spark.sql(f"DESCRIBE DETAIL {target.identifier}").select("location"))[0])


def _check_schema(existing: T.StructType, new: list[T.StructField], target: Target, evolve: bool) -> None:
    """Another class set means other probability columns: added only when asked (--evolve-schema). A
    column the table has with another type would be cast into it, losing what does not fit (a MERGE
    casts a double into an int column): refused, unless the table's type holds every value of the new."""
    types = {field.name: field.dataType for field in existing.fields}
    added = [field.name for field in new if field.name not in types]
    if added and not evolve:
        raise DataError(
            f"the scores have column(s) {', '.join(added)} that {target.location} lacks (a model with other "
            f"classes?); pass {option('--evolve-schema', True)} to add them, or {option('--mode', 'overwrite')}"
        )
    narrowed = [
        f"{field.name} is {field.dataType.simpleString()}, the table's {types[field.name].simpleString()}"
        for field in new
        if field.name in types and not _holds(types[field.name], field.dataType)
    ]
    if narrowed:
        raise DataError(
            f"the scores do not fit the types of {target.location}: {'; '.join(narrowed)}; the input's types "
            f"changed since the table was written: pass {option('--mode', 'overwrite')} to replace it, or cast "
            "the input to the table's types"
        )


_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)


def _holds(table: T.DataType, given: T.DataType) -> bool:
    """Whether every value of type `given` is a value of the table's type: the same type, or a wider one."""
    if table == given:
        return True
    if isinstance(table, T.StructType | T.ArrayType | T.MapType) or isinstance(
        given, T.StructType | T.ArrayType | T.MapType
    ):
        return table.simpleString() == given.simpleString()  # nullability aside
    if isinstance(given, _INTEGRAL) and isinstance(table, _INTEGRAL):
        return _INTEGRAL.index(type(table)) >= _INTEGRAL.index(type(given))
    if isinstance(given, T.FloatType):
        return isinstance(table, T.DoubleType)
    if isinstance(given, T.ByteType | T.ShortType | T.IntegerType):
        return isinstance(table, T.DoubleType)
    return False


def require_one_row_per_key(rows: DataFrame, merge_key: str, whole: DataFrame | None = None) -> None:
    """A merge's rows each need a key of their own, checked before anything is written. Delta refuses
    two rows of one key only when they meet a row of the target, so a table the merge creates took
    them both; and a null key matches nothing, so each merge inserted its row again.

    `whole`: the input that `rows` are the changes of (incremental scoring): each of their keys must be
    on one row of it, or a changed row's scores would replace those of another row with its key."""
    key = F.col(_q(merge_key))
    keyed = rows.select(key.alias("key"))
    if whole is not None:
        changed = keyed.where(F.col("key").isNotNull()).distinct()
        keyed = whole.select(key.alias("key")).join(changed, "key", "left_semi")
    per_key = keyed.groupBy("key").count()
    found = one_row(
        per_key.where(F.col("key").isNull() | (F.col("count") > 1)).agg(
            F.sum(F.when(F.col("key").isNull(), F.col("count"))).alias("null_rows"),
            F.count("key").alias("repeated"),
            F.min("key").alias("example"),
        )
    )
    if found["null_rows"]:
        raise DataError(
            f"merge key {merge_key} is null in the input ({found['null_rows']} row(s) to merge); a merge needs a "
            "key on every row: fill it or leave those rows out"
        )
    if found["repeated"]:
        raise DataError(
            f"merge key {merge_key} is not unique in the input: {found['repeated']} key(s) on more than one row "
            f"(e.g. {found['example']}); a merge needs one row per key"
        )


def _merge(spark: SparkSession, scores: DataFrame, target: Target, write: Write) -> None:
    """Upsert on the key: rows seen before get their new scores, new rows are inserted. Every target
    column is set by name: one the scores lack becomes null (no stale probability of a class the
    model no longer has); with evolve_schema, the scores' new columns are named too and Delta adds
    them (schema evolution with named columns, Delta 2.3+). UPDATE SET * would leave a column only
    the target has as it was."""
    view = f"smt_scores_{uuid.uuid4().hex}"
    scores.createOrReplaceTempView(view)
    existing = spark.table(target.identifier).columns
    given = [c for c in scores.columns if c != DELETED]
    columns = existing + [c for c in given if c not in existing]
    # Unqualified target names: Delta resolves a new column named in an action only so.
    sets = ", ".join(f"{_q(c)} = {'s.' + _q(c) if c in given else 'NULL'}" for c in columns)
    names = ", ".join(_q(c) for c in given)
    values = ", ".join(f"s.{_q(c)}" for c in given)
    update, insert = f"UPDATE SET {sets}", f"INSERT ({names}) VALUES ({values})"
    if DELETED in scores.columns:  # incremental scoring: a key deleted from the input loses its scores
        deleted = f"s.{_q(DELETED)}"
        actions = (
            f"WHEN MATCHED AND {deleted} THEN DELETE WHEN MATCHED THEN {update} "
            f"WHEN NOT MATCHED AND NOT {deleted} THEN {insert}"
        )
    else:
        actions = f"WHEN MATCHED THEN {update} WHEN NOT MATCHED THEN {insert}"
    if write.delete_missing:  # Delta 2.3+
        actions += " WHEN NOT MATCHED BY SOURCE THEN DELETE"
    settings = {"spark.databricks.delta.schema.autoMerge.enabled": "true"} if write.evolve_schema else {}
    key = _q(write.merge_key or "")
    try:
        with _session_settings(spark, settings):
            spark.sql(f"MERGE INTO {target.identifier} AS t USING {view} AS s ON t.{key} = s.{key} {actions}").collect()
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


def _literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


@contextmanager
def _session_settings(spark: SparkSession, settings: dict[str, str]) -> Iterator[None]:
    before: dict[str, str | None] = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, earlier in before.items():
            if earlier is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, earlier)
