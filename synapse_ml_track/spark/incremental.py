"""Incremental scoring: only the input rows changed since the last scoring into the same target.

Every Delta write of scores records in its commit the input it read and that input's version
(INPUT_FIELD, INPUT_VERSION_FIELD). An incremental run looks for the newest such commit in the target's
history, then reads the input's Change Data Feed from the version after it to the version it pinned
(`readChangeFeed`, `startingVersion`, `endingVersion`). Per merge key only the last change counts: an
insert or an update's post-image is scored and upserted, a delete deletes the key's scores, and so does
an update that changes a row's key, for the old key.

- No earlier scoring of this input into the target: the whole input is scored.
- The input is another table under its name, the model another than the target's, a column of the input
  changed type or was renamed or dropped, or another writer changed the target's rows since (a RESTORE,
  a DELETE...): the whole input is scored again and keys no longer in it deleted.
- Nothing committed to the input since: nothing is scored or written.
- A changed row whose merge key another row of the input holds (or holds too) is refused before anything
  is written, as a full scoring's merge refuses a repeated key.
- The changes have been removed by VACUUM (or the log retention), or were not recorded (the feed off
  for a while): the whole input is scored again and merged, keys no longer in the input deleted from
  the target, and the job says so.
- An input without the Change Data Feed is refused before anything starts, with the statement that
  turns it on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from synapse_ml_track.errors import ConfigError, DataError, option
from synapse_ml_track.spark import delta_tables
from synapse_ml_track.spark.data import RESERVED_PREFIX, column
from synapse_ml_track.spark.delta_tables import DELETED
from synapse_ml_track.spark.model_ref import ModelRef
from synapse_ml_track.spark.session import spark_errors
from synapse_ml_track.spark.sources import InputSource
from synapse_ml_track.vocabulary import CHANGES_FROM_TAG

log = logging.getLogger(__name__)

CHANGE_COLUMNS = ("_change_type", "_commit_version", "_commit_timestamp")
# What Delta raises when the change feed's files or log entries are gone (VACUUM, log retention), or
# were never written (the Change Data Feed off for some versions).
CHANGES_GONE = {
    "DELTA_CHANGE_DATA_FILE_NOT_FOUND",
    "DELTA_MISSING_CHANGE_DATA",
    "DELTA_FILE_NOT_FOUND_DETAILED",
    "DELTA_VERSIONS_NOT_CONTIGUOUS",
    "DELTA_CANNOT_RECONSTRUCT_PATH_FROM_URI",
    "FAILED_READ_FILE",
}
# What Delta raises when the versions' schemas differ too much for one read of their changes.
SCHEMA_CHANGED = {
    "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_DATA_SCHEMA",
    "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE",
}
CDF_PROPERTY = "delta.enableChangeDataFeed"
# Changes that take a key out of the input: a delete, and the pre-image of an update (which, when the
# update changed the key, is the old key's last change).
REMOVING_A_KEY = ("delete", "update_preimage")


@dataclass(frozen=True)
class Changes:
    rows: DataFrame  # the input rows to score: all of them, or those inserted or updated since
    deleted: DataFrame | None  # the merge keys deleted from the input since (one column), or None
    start: int | None  # the first input version read from the change feed; None: the whole input
    kind: str  # first | changes | unchanged | vacuumed | replaced | model | schema | altered
    cached: DataFrame | None = None  # the net changes, read once; released once the scores are written

    def release(self) -> None:
        if self.cached is not None:
            self.cached.unpersist()

    def input_tags(self) -> dict[str, str]:
        """On the run's dataset input: the first input version read from the change feed, if any."""
        return {CHANGES_FROM_TAG: str(self.start)} if self.kind == "changes" else {}

    def params(self) -> dict[str, object]:
        return {"data.incremental": True, "data.changes_from": "" if self.start is None else self.start,
                "data.incremental_read": self.kind}  # fmt: skip


def check(spark: SparkSession, source: InputSource, output_format: str, merge_key: str | None) -> str:
    """What incremental scoring needs, checked before the run starts: a pinned Delta input with its
    Change Data Feed on, a Delta output, and the merge key. Returns the input's Delta table id."""
    if source.format != "delta" or source.version is None:
        raise ConfigError(
            f"{option('--incremental', True)} reads a Delta table's changes; {source.path} is not a Delta input"
        )
    if output_format != "delta":
        raise ConfigError(f"{option('--incremental', True)} merges its scores into a Delta output, not {output_format}")
    if not merge_key:
        raise ConfigError(
            f"{option('--incremental', True)} upserts on {option('--merge-key')}: name the column that identifies a row"
        )
    detail = spark.sql(f"DESCRIBE DETAIL {_identifier(source)}").select("id", "properties").first()
    if detail is None or str((detail["properties"] or {}).get(CDF_PROPERTY, "")).lower() != "true":
        raise DataError(
            f"{source.path} has no Change Data Feed, which {option('--incremental', True)} reads; turn it on with "
            f"ALTER TABLE {_identifier(source)} SET TBLPROPERTIES ({CDF_PROPERTY} = true), then score once more"
        )
    return str(detail["id"])


def changes_to_score(
    spark: SparkSession,
    source: InputSource,
    full: DataFrame,
    last: delta_tables.ScoredInput | None,
    model: ModelRef,
    merge_key: str,
) -> Changes:
    """The rows to score and the keys to delete, from the input version the target's last scoring read
    (`last`; None: none) to the source's pinned version. `full` is the whole input, `model` the one
    scoring now. Where the changes cannot say what the target lacks, the whole input is scored
    again and the keys no longer in it deleted: the input is another table under the same name (dropped
    and written again), the model is another than the one whose scores the target holds (so that the
    target never mixes two models' scores), another writer changed the target since (`last.altered_by`),
    or the input's schema changed so that its change feed cannot be read."""
    version = int(source.version or 0)
    if last is None:
        return Changes(full, None, None, "first")
    # A run's model (runs:/) has no name or version: its run and path tell two such models apart.
    scored_by = ModelRef.recorded(last.model)
    if not last.same_table or last.version > version:
        why = f"{source.path} is another table than the one last scored into this output (at version {last.version})"
        return _whole_input(full, "replaced", why, version)
    if scored_by != model:
        why = f"the output holds the scores of {scored_by.described}, and this run scores with {model.described}"
        return _whole_input(full, "model", why, version)
    if last.altered_by:
        why = (
            f"the output was changed by {last.altered_by} since it recorded the scores of input version {last.version}"
        )
        return _whole_input(full, "altered", why, version)
    if last.version >= version:
        return Changes(full.limit(0), None, version + 1, "unchanged")
    start = last.version + 1
    changed = _columns_changed(spark, source, last.version, version)
    if changed:
        why = (
            f"column(s) {', '.join(changed)} of {source.path} changed type, or were renamed or dropped, since "
            f"version {last.version}"
        )
        return _whole_input(full, "schema", why, version)
    latest = None
    try:
        latest = _last_change_per_key(_change_feed(spark, source, start, version), column(merge_key))
        # Fills the cache, so reads the feed now: changes VACUUM has removed are found before anything is scored.
        latest.count()
    except Exception as exc:  # noqa: BLE001 - a bare Py4JJavaError or a SparkException
        if latest is not None:
            latest.unpersist()
        classes = {error_class for error_class, _ in spark_errors(exc)}
        if classes & SCHEMA_CHANGED:
            why = f"the schema of {source.path} changed since version {last.version}, so its changes cannot be read"
            return _whole_input(full, "schema", why, version)
        if not classes & CHANGES_GONE and not _files_gone(exc):
            raise
        why = (
            f"the changes to {source.path} since version {start} are gone or were not recorded (VACUUM, log "
            "retention, or its Change Data Feed off for a while)"
        )
        return _whole_input(full, "vacuumed", why, version)
    rows = latest.where(~_removes_a_key()).drop(*CHANGE_COLUMNS)
    try:
        # The changes hold each key once (its last change), and a key another row of the input still has
        # is not among them: it is checked against the whole input, as a full scoring's merge would be.
        delta_tables.require_one_row_per_key(rows, merge_key, whole=full)
    except BaseException:
        latest.unpersist()
        raise
    deleted = latest.where(_removes_a_key()).select(column(merge_key))
    return Changes(rows, deleted, start, "changes", latest)


def _whole_input(full: DataFrame, kind: str, why: str, version: int) -> Changes:
    """The whole input to score again, when its changes cannot say what the target lacks."""
    log.warning(
        "%s: scoring the whole input (version %s) again; scores of rows no longer in it are deleted", why, version
    )
    return Changes(full, None, None, kind)


def _columns_changed(spark: SparkSession, source: InputSource, scored: int, version: int) -> list[str]:
    """The input's columns at the version last scored that are gone or of another type at `version`: the
    change feed reads older files under the newer schema, which a type change breaks (a Parquet column
    that cannot be converted) and a rename makes Delta refuse. [] when the older schema cannot be read
    (the feed's own errors then say why)."""
    try:
        before, now = (_schema_at(spark, source, v) for v in (scored, version))
    except Exception:  # noqa: BLE001 - AnalysisException or a bare Py4JJavaError: the log is gone
        return []
    types = {field.name: field.dataType for field in now.fields}
    return [field.name for field in before.fields if types.get(field.name) != field.dataType]


def _schema_at(spark: SparkSession, source: InputSource, version: int):
    return spark.sql(f"SELECT * FROM {_identifier(source)} VERSION AS OF {int(version)}").schema


def _last_change_per_key(feed: DataFrame, key: Column) -> DataFrame:
    """The feed's last change of each key, cached: an insert or an update's post-image (scored), or a
    delete or an update's pre-image (the key's scores deleted). An update that changes the key leaves
    its old key only in the pre-image; an update that keeps it has both, and the post-image wins."""
    order = F.when(_removes_a_key(), 0).otherwise(1)  # within one commit: a delete, then an insert of the key
    rank = f"{RESERVED_PREFIX}rank"
    # As many partitions as the change feed's files make, not spark.sql.shuffle.partitions: a cached
    # plan keeps the window's 200 shuffle partitions (AQE may not coalesce it), and every job over a
    # night's few thousand changes then ran 200 to 400 tasks (bench/score_incremental.py).
    partitions = max(feed.rdd.getNumPartitions(), 1)
    return (
        feed.withColumn(rank, F.row_number().over(
            Window.partitionBy(key).orderBy(F.desc("_commit_version"), order.desc())))
        .where(F.col(rank) == 1)
        .drop(rank)
        .coalesce(partitions)
        .cache()
    )  # fmt: skip


def _removes_a_key() -> Column:
    return F.col("_change_type").isin(*REMOVING_A_KEY)


def _identifier(source: InputSource) -> str:
    return delta_tables.table_identifier(source.path) if source.table else delta_tables.path_identifier(source.path)


def _change_feed(spark: SparkSession, source: InputSource, start: int, end: int) -> DataFrame:
    reader = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", start)
        .option("endingVersion", end)
    )
    return reader.table(source.path) if source.table else reader.load(source.path)


def _files_gone(exc: BaseException) -> bool:
    return any("FileNotFoundException" in message or "does not exist" in message for _, message in spark_errors(exc))


def with_deletes(scores: DataFrame, deleted: DataFrame | None) -> DataFrame:
    """The merge's source: the scores, and one row per deleted key marked DELETED."""
    if deleted is None:
        return scores
    marked = scores if DELETED in scores.columns else scores.withColumn(DELETED, F.lit(False))
    return marked.unionByName(deleted.withColumn(DELETED, F.lit(True)), allowMissingColumns=True)
