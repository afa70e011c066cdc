"""Delta Lake for real: the pinned jars on a local session, training from a table at a version, and
scores written into a table once per run key (append, merge), against a real MLflow server."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import uuid

import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from synapse_ml_track.config import build_config
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark import delta
from synapse_ml_track.spark.delta_tables import DELETION_VECTORS
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, bundled_penguins_path
from synapse_ml_track.tracking.session import open_session
from synapse_ml_track.train_job import run_training
from synapse_ml_track.vocabulary import CHANGES_FROM_TAG, ERROR_TAG, LEASE_TAG

from support import REPO, VENV_BIN, unique


@pytest.fixture(scope="module")
def delta_spark(spark):
    """The test session, which must have Delta on: `make test` fetches the jars first (make delta-jars)."""
    if not delta.has_delta(spark):
        pytest.fail(delta.MISSING)
    spark.sql("CREATE DATABASE IF NOT EXISTS lake")
    return spark


def penguins(spark):
    """The bundled data with an id per row (its line in the file), for merges."""
    frame = spark.read.csv(bundled_penguins_path(), header=True, schema=BUNDLED_PENGUINS_SCHEMA)
    return frame.withColumn("id", F.monotonically_increasing_id()).coalesce(1)


def history(spark, identifier: str) -> list[tuple[int, str]]:
    rows = spark.sql(f"DESCRIBE HISTORY {identifier}").orderBy("version").collect()
    return [(row["version"], row["operation"]) for row in rows]


def test_the_pinned_jars_are_what_the_session_runs_on(delta_spark):
    jars = delta.local_jars()
    assert jars is not None
    for jar, path in zip(delta.JARS, jars, strict=True):
        with open(path, "rb") as handle:
            assert hashlib.sha256(handle.read()).hexdigest() == jar.sha256, path
    on_session = delta_spark.conf.get("spark.jars")
    assert all(path in on_session for path in jars), on_session
    assert (
        delta_spark.conf.get("spark.sql.catalog.spark_catalog") == delta.SESSION_CONF["spark.sql.catalog.spark_catalog"]
    )


def test_train_append_and_train_at_the_old_version_reproduces_split_and_metrics(run_cli, delta_spark, mlflow_server):
    table, experiment = f"lake.{unique('penguins', '_')}", unique("delta-train", "_")
    penguins(delta_spark).write.format("delta").saveAsTable(table)

    def train(*args: str):
        result = run_cli(
            "train", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment, "--no-register", *args
        )
        assert result.exit_code == 0, result.stderr
        return result.summary, MlflowClient(mlflow_server.uri).get_run(result.summary["run_id"])

    first, first_run = train("--input-table", table)
    assert first_run.data.params["data.table"] == table
    assert first_run.data.params["data.version_read"] == "0"
    commit_time = first_run.data.params["data.commit_time"]
    dataset = first_run.inputs.dataset_inputs[0].dataset
    assert dataset.source_type == "delta_table"
    assert json.loads(dataset.source) == {
        "delta_table_name": table,
        "delta_table_version": 0,
        "commit_time": commit_time,
    }

    shifted = penguins(delta_spark).limit(80).withColumn("bill_length_mm", F.col("bill_length_mm") + 3.0)
    shifted.withColumn("id", F.col("id") + 1000).write.format("delta").mode("append").saveAsTable(table)

    latest, latest_run = train("--input-table", table)
    assert latest_run.data.params["data.version_read"] == "1"
    assert latest["metrics"]["train_rows"] > first["metrics"]["train_rows"]

    again, again_run = train("--input-table", table, "--set", "data.version=0")
    assert again_run.data.params["data.version_read"] == "0"
    assert again_run.data.params["data.commit_time"] == commit_time
    assert again["metrics"] == first["metrics"]  # the same split (train_rows, test_rows) and the same metrics
    assert again_run.inputs.dataset_inputs[0].dataset.digest == dataset.digest

    # By path, at a time: the version current then.
    location = delta_spark.sql(f"DESCRIBE DETAIL {table}").first()["location"]
    by_time, by_time_run = train("--input", location, "--set", f"data.timestamp={commit_time}")
    assert by_time_run.data.params["data.version_read"] == "0"
    assert by_time["metrics"] == first["metrics"]

    gone = run_cli(
        "train", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment, "--no-register",
        "--input-table", table, "--set", "data.version=7",
    )  # fmt: skip
    assert gone.exit_code == 2
    assert (
        gone.error_line
        == f"error: {table} has no version 7 (versions 0 to 1 are kept); fix data.version / data.timestamp"
    )


@pytest.fixture(scope="module")
def registered(delta_spark, mlflow_server, tmp_path_factory):
    suffix = uuid.uuid4().hex[:8]
    experiment, model = f"delta-scoring-{suffix}", f"delta-scored-{suffix}"
    config = build_config(
        overrides={
            "tracking": {
                "uri": mlflow_server.uri,
                "experiment_name": experiment,
                "registered_model_name": model,
                "local_result_dir": str(tmp_path_factory.mktemp("delta-train")),
            },
        },
        environ={},
    )
    redactor = Redactor()
    result = run_training(delta_spark, config, open_session(config, redactor, environ={}), redactor)
    assert result.model_version == "1"
    input_table = f"lake.{unique('to_score', '_')}"
    penguins(delta_spark).write.format("delta").saveAsTable(input_table)
    return experiment, model, input_table


def score(run_cli, server, experiment, model, input_table, *args):
    return run_cli(
        "score", "--tracking-uri", server.uri, "--experiment-name", experiment, "--model-uri", f"models:/{model}/1",
        "--input-table", input_table, *args,
    )  # fmt: skip


def test_an_append_retried_with_the_same_run_key_writes_once(run_cli, registered, delta_spark, mlflow_server):
    experiment, model, input_table = registered
    output = f"lake.{unique('scores', '_')}"
    rows = delta_spark.table(input_table).count()
    append = ("--output-table", output, "--mode", "append")

    first = score(run_cli, mlflow_server, experiment, model, input_table, *append, "--run-key", "pipeline-41")
    assert first.exit_code == 0, first.stderr
    assert (first.summary["status"], first.summary["output_version"], first.summary["rows_scored"]) == (
        "scored",
        0,
        333,
    )
    retried = score(run_cli, mlflow_server, experiment, model, input_table, *append, "--run-key", "pipeline-41")
    assert retried.exit_code == 0, retried.stderr
    assert (retried.summary["status"], retried.summary["output_version"]) == ("already-written", 0)

    assert delta_spark.table(output).count() == rows
    assert len(history(delta_spark, output)) == 1
    client = MlflowClient(mlflow_server.uri)
    params = client.get_run(retried.summary["run_id"]).data.params
    assert (params["output.version"], params["output.written"], params["data.version_read"]) == ("0", "False", "0")

    another = score(run_cli, mlflow_server, experiment, model, input_table, *append, "--run-key", "pipeline-42")
    assert another.exit_code == 0, another.stderr
    assert another.summary["output_version"] == 1
    assert delta_spark.table(output).count() == 2 * rows


def test_a_retry_waits_for_a_live_attempt_of_its_write_instead_of_ending_it(
    run_cli, registered, delta_spark, mlflow_server
):
    """A pipeline's retry can start while the attempt it retries still runs (Synapse ends an activity
    at its timeout, not its Spark job). That attempt is put back here as it looks while its job still
    writes: RUNNING under a fresh lease, until it finishes 15 s later. The retry must neither end it
    FAILED nor write, then find the attempt's scores in the table."""
    experiment, model, input_table = registered
    output = f"lake.{unique('scores', '_')}"
    append = ("--output-table", output, "--mode", "append", "--run-key", "pipeline-43")
    first = score(run_cli, mlflow_server, experiment, model, input_table, *append)
    assert first.exit_code == 0, first.stderr
    client, attempt = MlflowClient(mlflow_server.uri), first.summary["run_id"]
    client.update_run(attempt, status="RUNNING")
    client.set_tag(attempt, LEASE_TAG, f"livejob {time.time() + 600:.0f}")
    finisher = threading.Thread(target=lambda: (time.sleep(15), client.set_terminated(attempt, "FINISHED")))
    finisher.start()
    retried = score(run_cli, mlflow_server, experiment, model, input_table, *append)
    finisher.join()
    assert f"run {attempt} is running in another job; waiting" in retried.stderr
    assert (retried.exit_code, retried.summary["status"]) == (0, "already-written"), retried.stderr
    run = client.get_run(attempt)
    assert run.info.status == "FINISHED" and ERROR_TAG not in run.data.tags
    assert delta_spark.table(output).count() == delta_spark.table(input_table).count()


def test_merge_upserts_on_the_key_and_a_retry_writes_once(run_cli, registered, delta_spark, mlflow_server, tmp_path):
    experiment, model, input_table = registered
    output = str(tmp_path / "scores")
    rows = delta_spark.table(input_table).count()
    merge = ("--output-path", output, "--mode", "merge", "--merge-key", "id")

    no_key = score(run_cli, mlflow_server, experiment, model, input_table, *merge[:-1], "row_id")
    assert no_key.exit_code == 2
    assert no_key.error_line == (
        "error: the merge key row_id is not an input column; "
        "name the column that identifies a row with --merge-key (merge_key=...)"
    )

    created = score(run_cli, mlflow_server, experiment, model, input_table, *merge, "--run-key", "nightly-1")
    assert created.exit_code == 0, created.stderr
    retried = score(run_cli, mlflow_server, experiment, model, input_table, *merge, "--run-key", "nightly-1")
    assert (retried.exit_code, retried.summary["status"]) == (0, "already-written"), retried.stderr
    assert [operation for _, operation in history(delta_spark, f"delta.`{output}`")] == ["WRITE"]

    before = delta_spark.read.format("delta").load(output).select("id", "scored_at").collect()
    rescored = score(run_cli, mlflow_server, experiment, model, input_table, *merge, "--run-key", "nightly-2")
    assert rescored.exit_code == 0, rescored.stderr
    assert rescored.summary["output_version"] == 1
    after = delta_spark.read.format("delta").load(output)
    assert after.count() == rows  # every row seen before: updated, none added
    assert after.select("id").distinct().count() == rows
    assert {row["scored_at"] for row in after.collect()} == {max(row["scored_at"] for row in after.collect())}
    assert {row["scored_at"] for row in before}.isdisjoint({row["scored_at"] for row in after.collect()})
    assert [operation for _, operation in history(delta_spark, f"delta.`{output}`")] == ["WRITE", "MERGE"]


def scores_of(frame):
    """A scores table as rows to compare, the time of scoring left out."""
    return frame.drop("scored_at").orderBy("id")


def test_incremental_scoring_reads_only_the_changes_and_equals_a_full_rescore(
    run_cli, registered, delta_spark, mlflow_server, tmp_path
):
    experiment, model, _ = registered
    spark = delta_spark
    source, target = f"lake.{unique('nightly_in', '_')}", f"lake.{unique('nightly_scores', '_')}"
    penguins(spark).write.format("delta").option("delta.enableChangeDataFeed", "true").saveAsTable(source)  # v0
    nightly = ("--incremental", "--merge-key", "id", "--output-table", target)

    def incremental(*args: str):
        result = score(run_cli, mlflow_server, experiment, model, source, *nightly, *args)
        assert result.exit_code == 0, result.stderr
        return result.summary

    def full_rescore(name: str):
        output = str(tmp_path / name)
        result = score(run_cli, mlflow_server, experiment, model, source, "--output-path", output)
        assert result.exit_code == 0, result.stderr
        return spark.read.format("delta").load(output)

    first = incremental()
    assert first["incremental"] == {"read": "first", "from_version": None, "to_version": 0, "rows_deleted": 0}
    assert first["rows_in"] == 344

    # A night's changes: three rows updated (one of them, 7, then deleted), two added, two deleted, and
    # one row's key changed (2 to 2002: the change feed has key 2 only in the update's pre-image).
    spark.sql(f"UPDATE {source} SET bill_length_mm = bill_length_mm + 10 WHERE id IN (0, 1, 7)")  # v1
    spark.table(source).where("id IN (3, 4)").withColumn("id", F.col("id") + 1000).write.format("delta").mode(
        "append"
    ).saveAsTable(source)  # v2
    spark.sql(f"DELETE FROM {source} WHERE id IN (5, 6, 7)")  # v3
    spark.sql(f"UPDATE {source} SET id = id + 2000 WHERE id = 2")  # v4
    second = incremental("--run-key", "nightly-2")
    assert second["incremental"] == {"read": "changes", "from_version": 1, "to_version": 4, "rows_deleted": 4}
    assert second["rows_in"] == 5  # 0 and 1 updated, 1003, 1004 and 2002 added: nothing else read or scored
    assert_df_equality(scores_of(spark.table(target)), scores_of(full_rescore("full-1")), ignore_nullable=True)
    run = MlflowClient(mlflow_server.uri).get_run(second["run_id"])
    params = run.data.params
    assert (params["data.incremental"], params["data.changes_from"], params["data.version_read"]) == ("True", "1", "4")
    (read,) = run.inputs.dataset_inputs  # the version range, on the dataset input too
    assert {tag.key: tag.value for tag in read.tags} == {"mlflow.data.context": "scoring", CHANGES_FROM_TAG: "1"}
    assert (json.loads(read.dataset.source)["delta_table_version"], read.dataset.source_type) == (4, "delta_table")
    # The merge marked the replaced rows in deletion vectors (the table was created with them on) rather
    # than rewriting the files that held them.
    properties = spark.sql(f"DESCRIBE DETAIL {target}").first()["properties"]
    assert properties[DELETION_VECTORS] == "true"
    merge = spark.sql(f"DESCRIBE HISTORY {target}").where("operation = 'MERGE'").orderBy("version").first()
    assert int(merge["operationMetrics"]["numTargetDeletionVectorsAdded"]) > 0
    assert merge["operationMetrics"]["numTargetFilesRemoved"] == "0"

    retried = score(run_cli, mlflow_server, experiment, model, source, *nightly, "--run-key", "nightly-2")
    assert (retried.exit_code, retried.summary["status"]) == (0, "already-written"), retried.stderr
    unchanged = incremental()
    assert (unchanged["incremental"]["read"], unchanged["rows_in"]) == ("unchanged", 0)
    assert_df_equality(scores_of(spark.table(target)), scores_of(full_rescore("full-2")), ignore_nullable=True)

    # Changes that VACUUM has removed: the whole input is scored again, replacing the output.
    spark.sql(f"UPDATE {source} SET body_mass_g = body_mass_g + 500 WHERE id = 8")
    spark.sql(f"DELETE FROM {source} WHERE id = 9")  # its scores must go too, with no change feed to say so
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    spark.conf.set(check, "false")
    try:
        spark.sql(f"VACUUM {source} RETAIN 0 HOURS")
    finally:
        spark.conf.unset(check)
    vacuumed = incremental()
    # id 9's scores deleted, counted though no change feed said so (the count was 0)
    assert (vacuumed["incremental"]["read"], vacuumed["rows_in"], vacuumed["incremental"]["rows_deleted"]) == (
        "vacuumed",
        342,
        1,
    )
    assert_df_equality(scores_of(spark.table(target)), scores_of(full_rescore("full-3")), ignore_nullable=True)

    # An insert repeating a key another row still holds: its scores would replace that row's.
    before = scores_of(spark.table(target))
    spark.table(source).where("id = 10").withColumn("body_mass_g", F.lit(6300.0)).write.format("delta").mode(
        "append"
    ).saveAsTable(source)
    repeated = score(run_cli, mlflow_server, experiment, model, source, *nightly)
    assert repeated.exit_code == 2, repeated.stderr
    assert repeated.error_line == (
        "error: merge key id is not unique in the input: 1 key(s) on more than one row (e.g. 10); "
        "a merge needs one row per key"
    )
    assert_df_equality(scores_of(spark.table(target)), before, ignore_nullable=True)
    (newest,) = MlflowClient(mlflow_server.uri).search_runs(
        [run.info.experiment_id], order_by=["attributes.start_time DESC"], max_results=1
    )
    assert newest.info.status == "FAILED"


def test_incremental_scoring_of_an_input_without_its_change_feed_says_how_to_turn_it_on(
    run_cli, registered, delta_spark, mlflow_server
):
    experiment, model, input_table = registered
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    before = len(client.search_runs([experiment_id]))
    result = score(
        run_cli, mlflow_server, experiment, model, input_table, "--incremental", "--merge-key", "id",
        "--output-table", f"lake.{unique('never', '_')}",
    )  # fmt: skip
    assert result.exit_code == 2
    assert result.error_line == (
        f"error: {input_table} has no Change Data Feed, which --incremental (incremental=True) reads; turn it on "
        f"with ALTER TABLE {'.'.join(f'`{part}`' for part in input_table.split('.'))} SET TBLPROPERTIES "
        "(delta.enableChangeDataFeed = true), then score once more"
    )
    assert len(client.search_runs([experiment_id])) == before  # refused before any run started


def test_new_probability_columns_are_refused_by_name_unless_the_schema_may_evolve(
    run_cli, registered, delta_spark, mlflow_server, tmp_path
):
    """A table written by a model without class Gentoo meets one that has it."""
    experiment, model, input_table = registered
    output = str(tmp_path / "scores")
    first = score(run_cli, mlflow_server, experiment, model, input_table, "--output-path", output)
    assert first.exit_code == 0, first.stderr
    older = delta_spark.read.format("delta").load(output).drop("probability_Gentoo")
    older.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(output)

    refused = score(run_cli, mlflow_server, experiment, model, input_table, "--output-path", output, "--mode", "append")
    assert refused.exit_code == 2
    assert refused.error_line == (
        f"error: the scores have column(s) probability_Gentoo that {output} lacks (a model with other classes?); "
        'pass --evolve-schema (evolve_schema=True) to add them, or --mode overwrite (mode="overwrite")'
    )
    evolved = score(run_cli, mlflow_server, experiment, model, input_table, "--output-path", output, "--mode", "append",
                    "--evolve-schema")  # fmt: skip
    assert evolved.exit_code == 0, evolved.stderr
    table = delta_spark.read.format("delta").load(output)
    assert "probability_Gentoo" in table.columns
    older_scored = table.where(F.col("probability_Gentoo").isNull() & F.col("prediction").isNotNull())
    assert older_scored.count() == 333  # the older rows never had it


def test_a_delta_input_without_the_jars_is_one_line_saying_how_to_get_them(tmp_path, mlflow_server):
    table = tmp_path / "table"
    (table / "_delta_log").mkdir(parents=True)
    environ = {**os.environ, delta.JARS_DIR_VARIABLE: str(tmp_path / "no-jars"), "PYTHONPATH": str(REPO)}
    completed = subprocess.run(
        [str(VENV_BIN / "synapse-ml-track"), "train", "--input", str(table), "--tracking-uri", mlflow_server.uri,
         "--experiment-name", "delta-no-jars", "--no-register"],
        capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 2, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {delta.MISSING}"]
