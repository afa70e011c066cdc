"""Scores written into Delta the way pipelines write them: one run id shared by every activity, retries,
two writers at once, relative paths, time travel that cannot be met, tables named across commands,
and one day's partition replaced. Real Spark, real Delta 3.2.1, a real MLflow server."""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import uuid

import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from synapse_ml_track.config import build_config
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark import delta
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, bundled_penguins_path, local_path
from synapse_ml_track.tracking.session import open_session
from synapse_ml_track.train_job import run_training

from support import VENV_BIN, unique

pytestmark = pytest.mark.minutes(7)

PROBABILITIES = ["probability_Adelie", "probability_Chinstrap", "probability_Gentoo"]


@pytest.fixture(scope="module")
def delta_spark(spark):
    if not delta.has_delta(spark):
        pytest.fail(delta.MISSING)
    return spark


@pytest.fixture(scope="module")
def model(delta_spark, mlflow_server, tmp_path_factory):
    """One registered model (version 1, the champion), trained once for the module."""
    suffix = uuid.uuid4().hex[:8]
    experiment, name = f"delta-writes-{suffix}", f"delta-writes-{suffix}"
    config = build_config(
        overrides={
            "tracking": {
                "uri": mlflow_server.uri,
                "experiment_name": experiment,
                "registered_model_name": name,
                "local_result_dir": str(tmp_path_factory.mktemp("delta-writes-train")),
            },
        },
        environ={},
    )
    redactor = Redactor()
    result = run_training(delta_spark, config, open_session(config, redactor, environ={}), redactor)
    assert (result.model_version, result.promoted) == ("1", True)
    return experiment, name


def penguins(spark):
    """The bundled data with an id per row, for merges and for counting each row."""
    frame = spark.read.csv(bundled_penguins_path(), header=True, schema=BUNDLED_PENGUINS_SCHEMA)
    return frame.withColumn("id", F.monotonically_increasing_id()).coalesce(1)


def score(run_cli, server, experiment, *args):
    return run_cli("score", "--tracking-uri", server.uri, "--experiment-name", experiment, *args)


def scoring_runs(server, experiment):
    client = MlflowClient(server.uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], "tags.`smt.job` = 'score'") if found else []


def test_two_activities_of_one_pipeline_run_append_both_inputs_and_retries_add_nothing(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    """A ForEach over regions: every activity gets the same @pipeline().RunId as its run key."""
    experiment, name = model
    rows = penguins(delta_spark)
    regions = {"biscoe": rows.where("island = 'Biscoe'"), "others": rows.where("island <> 'Biscoe'")}
    for region, frame in regions.items():
        frame.write.format("delta").save(str(tmp_path / region))
    output = f"lake.{unique('regions', '_')}"

    def activity(region, table=output):
        return score(run_cli, mlflow_server, experiment, "--model-uri", f"models:/{name}/1", "--input",
                     str(tmp_path / region), "--output-table", table, "--mode", "append",
                     "--run-key", "pipeline-run-0a1b")  # fmt: skip

    first, second = activity("biscoe"), activity("others")
    assert (first.exit_code, second.exit_code) == (0, 0), first.stderr + second.stderr
    assert (first.summary["status"], second.summary["status"]) == ("scored", "scored")
    assert (first.summary["output_version"], second.summary["output_version"]) == (0, 1)
    # The table spelled another way is the same table: those retries wrote the rows again.
    retried = [activity("biscoe", output.upper()), activity("others", f"spark_catalog.{output}")]
    assert [(r.exit_code, r.summary["status"]) for r in retried] == [(0, "already-written")] * 2
    assert [r.summary["output_version"] for r in retried] == [0, 1]

    table = delta_spark.table(output)
    assert table.count() == rows.count()
    assert table.select("id").distinct().count() == rows.count()  # each row exactly once
    runs = scoring_runs(mlflow_server, experiment)
    keyed = [run for run in runs if run.data.tags.get("smt.run_key") == "pipeline-run-0a1b"]
    assert sorted(run.info.status for run in keyed) == ["FINISHED"] * 4  # no activity ended another's run


def test_a_retry_after_the_champion_moved_reports_the_model_whose_scores_are_in_the_table(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    experiment, name = model
    client = MlflowClient(mlflow_server.uri)
    penguins(delta_spark).write.format("delta").save(str(tmp_path / "input"))
    output = str(tmp_path / "scores")
    keyed = ("--model-uri", f"models:/{name}@champion", "--input", str(tmp_path / "input"), "--output-path", output,
             "--mode", "append", "--run-key", "nightly-2026-12-05")  # fmt: skip
    first = score(run_cli, mlflow_server, experiment, *keyed)
    assert (first.exit_code, first.summary["model_version"]) == (0, "1"), first.stderr

    one = client.get_model_version(name, "1")
    two = client.create_model_version(name, one.source, run_id=one.run_id)
    client.set_registered_model_alias(name, "champion", two.version)
    retried = score(run_cli, mlflow_server, experiment, *keyed)
    assert retried.exit_code == 0, retried.stderr
    assert (retried.summary["status"], retried.summary["model_version"]) == ("already-written", "1")
    params = client.get_run(retried.summary["run_id"]).data.params
    assert (params["model.version"], params["output.version"], params["output.written"]) == ("1", "0", "False")
    assert {row["model_version"] for row in delta_spark.read.format("delta").load(output).collect()} == {"1"}
    client.set_registered_model_alias(name, "champion", "1")


def test_a_write_in_one_format_into_a_path_that_holds_the_other_is_refused_before_any_run(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    """An append as Delta (the default with the Delta jars) to the Parquet scores a session without them
    wrote, or as Parquet to a Delta table, wrote rows that no reader of the other format sees, exit 0."""
    experiment, name = unique("formats"), model[1]
    uri = ("--model-uri", f"models:/{name}/1")
    for written in (("--output-path", "pq", "--output-format", "parquet"), ("--output-path", "dl")):
        assert score(run_cli, mlflow_server, experiment, *uri, *written).exit_code == 0
    holds_parquet = (
        f"error: {tmp_path / 'pq'} holds Parquet files, not a Delta table: write the scores as Parquet "
        '(--output-format parquet (output_format="parquet")) or elsewhere'
    )
    is_delta = (
        f"error: {tmp_path / 'dl'} is a Delta table: write the scores as Delta "
        '(--output-format delta (output_format="delta")) or elsewhere'
    )
    cases = [
        (("--output-path", "pq", "--mode", "append"), holds_parquet),
        (("--output-path", "pq", "--mode", "overwrite", "--output-format", "delta"), holds_parquet),
        (("--output-path", "dl", "--mode", "append", "--output-format", "parquet"), is_delta),
    ]
    for args, line in cases:
        result = score(run_cli, mlflow_server, experiment, *uri, *args)
        assert (result.exit_code, result.error_line) == (2, line), result.stderr
    assert delta_spark.read.parquet(str(tmp_path / "pq")).count() == 344
    assert delta_spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / 'dl'}`").count() == 1
    assert [run.info.status for run in scoring_runs(mlflow_server, experiment)] == ["FINISHED"] * 2


def test_a_merge_into_another_class_set_with_evolve_schema_leaves_no_stale_probability(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    """A table scored by an older model whose classes were Adelie, Chinstrap and Emperor."""
    experiment, name = model
    penguins(delta_spark).write.format("delta").save(str(tmp_path / "input"))
    output = str(tmp_path / "scores")
    merge = ("--model-uri", f"models:/{name}/1", "--input", str(tmp_path / "input"), "--output-path", output,
             "--mode", "merge", "--merge-key", "id")  # fmt: skip
    assert score(run_cli, mlflow_server, experiment, *merge).exit_code == 0
    older = delta_spark.read.format("delta").load(output).withColumnRenamed("probability_Gentoo", "probability_Emperor")
    older.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(output)

    rescored = score(run_cli, mlflow_server, experiment, *merge, "--evolve-schema", "--run-key", "rescore-1")
    assert rescored.exit_code == 0, rescored.stderr
    table = delta_spark.read.format("delta").load(output)
    assert set(PROBABILITIES + ["probability_Emperor"]) <= set(table.columns)
    for row in table.where(F.col("prediction").isNotNull()).collect():
        assert row["probability_Emperor"] is None, row
        assert math.isclose(sum(row[c] for c in PROBABILITIES), 1.0, abs_tol=1e-9), row


def test_a_merge_key_null_or_repeated_is_refused_before_anything_is_written(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    """Delta refuses two rows of one key only when they meet a target row: a table that a merge created
    took both rows of a key, and a row whose key is null, matching nothing, was inserted again by every
    merge (two identical merges left 22 rows of 20). Refused now in one line, before any write."""
    experiment, name = unique("merge-keys"), model[1]
    frame = penguins(delta_spark)
    inputs = {
        "good": frame,
        "null keys": frame.withColumn("id", F.when(F.col("id").isin(3, 7), None).otherwise(F.col("id"))),
        "repeated key": frame.withColumn("id", F.when(F.col("id") == 6, 5).otherwise(F.col("id"))),
    }
    for case, rows in inputs.items():
        rows.write.format("delta").save(str(tmp_path / case))
    output = str(tmp_path / "scores")

    def merge(case: str):
        return score(run_cli, mlflow_server, experiment, "--model-uri", f"models:/{name}/1", "--input",
                     str(tmp_path / case), "--output-path", output, "--mode", "merge", "--merge-key", "id")  # fmt: skip

    null_line = (
        "error: merge key id is null in the input (2 row(s) to merge); a merge needs a key on every row: "
        "fill it or leave those rows out"
    )
    repeated_line = (
        "error: merge key id is not unique in the input: 1 key(s) on more than one row (e.g. 5); "
        "a merge needs one row per key"
    )
    for case, line in [("null keys", null_line), ("repeated key", repeated_line)]:
        refused = merge(case)
        assert (refused.exit_code, refused.error_line) == (2, line), refused.stderr
        assert not os.path.exists(output), f"{case}: a table was created"
    assert merge("good").exit_code == 0
    for case, line in [("null keys", null_line), ("repeated key", repeated_line)]:
        refused = merge(case)
        assert (refused.exit_code, refused.error_line) == (2, line), refused.stderr
    assert delta_spark.sql(f"DESCRIBE HISTORY delta.`{output}`").count() == 1
    assert delta_spark.read.format("delta").load(output).count() == frame.count()
    statuses = sorted(run.info.status for run in scoring_runs(mlflow_server, experiment))
    assert statuses == ["FAILED"] * 4 + ["FINISHED"]


def test_a_merge_that_drops_a_row_no_longer_scorable_drops_its_earlier_scores(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    """--unscorable drop leaves a row with a null model input out of the output. A merge left out only
    its new scores: its earlier ones stayed, next to input values the row no longer had."""
    experiment, name = unique("merge-drop"), model[1]
    night_1 = penguins(delta_spark)
    night_2 = night_1.withColumn("bill_length_mm", F.when(F.col("id") == 0, None).otherwise(F.col("bill_length_mm")))
    output = str(tmp_path / "scores")
    for night, rows in enumerate([night_1, night_2], 1):
        rows.write.format("delta").save(str(tmp_path / f"night-{night}"))
        result = score(run_cli, mlflow_server, experiment, "--model-uri", f"models:/{name}/1", "--input",
                       str(tmp_path / f"night-{night}"), "--output-path", output, "--mode", "merge", "--merge-key",
                       "id", "--unscorable", "drop")  # fmt: skip
        assert result.exit_code == 0, result.stderr
    assert (result.summary["rows_in"], result.summary["rows_unscorable"]) == (344, 12)
    scorable = night_2.dropna(subset=[c for c in night_2.columns if c not in ("species", "id")])
    table = delta_spark.read.format("delta").load(output)
    assert sorted(row["id"] for row in table.select("id").collect()) == sorted(
        row["id"] for row in scorable.select("id").collect()
    )
    assert table.where("unscorable_reason IS NOT NULL").count() == 0


def test_an_output_that_is_the_input_is_refused_before_any_run(run_cli, model, delta_spark, mlflow_server, tmp_path):
    """`--input din --output-path din --mode overwrite` replaced a Delta input with its own scores, exit 0."""
    experiment = unique("into-itself")
    penguins(delta_spark).write.format("delta").save(str(tmp_path / "din"))
    table = unique("din", "_")
    penguins(delta_spark).write.format("delta").saveAsTable(table)
    cases = [
        (("--input", "din", "--output-path", f"file://{tmp_path / 'din'}/"), f"file://{tmp_path / 'din'}/"),
        (("--input-table", table, "--output-table", table.upper()), f"table {table.upper()}"),
    ]
    for args, named in cases:
        result = score(run_cli, mlflow_server, experiment, "--model-uri", f"models:/{model[1]}/1", *args,
                       "--mode", "overwrite")  # fmt: skip
        assert result.exit_code == 2, result.stderr
        assert result.error_line.startswith(f"error: the output is the input ({named}"), result.error_line
    assert scoring_runs(mlflow_server, experiment) == []
    assert delta_spark.read.format("delta").load(str(tmp_path / "din")).columns == penguins(delta_spark).columns


def test_incremental_scoring_keeps_the_output_equal_to_the_input_across_what_nights_bring(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    """Each night below left the output holding rows the input no longer had, exit 0: the input named by
    path, then by table name (read as a first run, which deleted nothing); a plain merge in between
    (recorded as where the next night starts, though it deletes nothing); the champion moved (the output
    mixed two models' scores); the input dropped and written again (its versions restarted: nothing read).
    Two more left stale rows or failed with an unexpected error: the output restored to undo a night (the
    next night read on from the undone night's input version), and an input column renamed (Delta refuses
    to read changes across it, and every night after failed)."""
    experiment, name = unique("nights"), model[1]
    client = MlflowClient(mlflow_server.uri)
    spark, table, output = delta_spark, unique("nightly_input", "_"), str(tmp_path / "scores")
    penguins(spark).write.format("delta").option("delta.enableChangeDataFeed", "true").saveAsTable(table)
    location = spark.sql(f"DESCRIBE DETAIL {table}").first()["location"]
    champion = ("--model-uri", f"models:/{name}@champion")

    def night(*source: str):
        result = score(run_cli, mlflow_server, experiment, *champion, *source, "--output-path", output,
                       "--merge-key", "id", "--incremental")  # fmt: skip
        assert result.exit_code == 0, result.stderr
        scored, given = spark.read.format("delta").load(output), spark.table(table)
        as_written = given.select(*[F.col(c).cast(scored.schema[c].dataType) for c in given.columns])  # int in double
        assert_df_equality(scored.select(*given.columns), as_written, ignore_row_order=True, ignore_nullable=True)
        return result.summary["incremental"], {
            r["model_version"] for r in scored.where("prediction IS NOT NULL").collect()
        }

    assert night("--input", location)[0]["read"] == "first"
    spark.sql(f"DELETE FROM {table} WHERE id IN (3, 4)")
    assert night("--input-table", table)[0]["read"] == "changes"

    spark.sql(f"DELETE FROM {table} WHERE id = 5")
    result = score(run_cli, mlflow_server, experiment, *champion, "--input-table", table, "--output-path", output,
                   "--mode", "merge", "--merge-key", "id")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert night("--input-table", table)[0]["read"] == "changes"

    spark.sql(f"UPDATE {table} SET body_mass_g = body_mass_g + 1000 WHERE id IN (10, 11)")
    assert night("--input-table", table)[0]["read"] == "changes"
    undone = spark.sql(f"DESCRIBE HISTORY delta.`{output}`").agg(F.max("version")).first()[0] - 1
    spark.sql(f"RESTORE TABLE delta.`{output}` TO VERSION AS OF {undone}")  # rows 10 and 11 as they were
    spark.sql(f"UPDATE {table} SET body_mass_g = body_mass_g + 1000 WHERE id = 12")
    assert night("--input-table", table)[0]["read"] == "altered"

    # A column's type changed (the input written again with overwriteSchema): reading the changes failed
    # with a raw Spark error, and a merge would cast the new values into the output's old type.
    typed = spark.table(table).withColumn("year", F.col("year").cast("double") + 0.5)
    typed.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(location)
    refused = score(run_cli, mlflow_server, experiment, *champion, "--input-table", table, "--output-path", output,
                    "--merge-key", "id", "--incremental")  # fmt: skip
    assert (refused.exit_code, refused.error_line) == (
        2,
        f"error: the scores do not fit the types of {output}: year is double, the table's int; the input's types "
        'changed since the table was written: pass --mode overwrite (mode="overwrite") to replace it, or cast the '
        "input to the table's types",
    ), refused.stderr
    replaced = score(run_cli, mlflow_server, experiment, *champion, "--input-table", table, "--output-path", output,
                     "--mode", "overwrite")  # fmt: skip
    assert replaced.exit_code == 0, replaced.stderr
    assert night("--input-table", table)[0]["read"] == "unchanged"

    spark.sql(
        f"ALTER TABLE {table} SET TBLPROPERTIES ('delta.columnMapping.mode' = 'name', "
        "'delta.minReaderVersion' = '2', 'delta.minWriterVersion' = '5')"
    )
    spark.sql(f"ALTER TABLE {table} RENAME COLUMN species TO observed_species")
    spark.sql(f"UPDATE {table} SET body_mass_g = body_mass_g + 1000 WHERE id = 13")
    assert night("--input-table", table, "--evolve-schema")[0]["read"] == "schema"

    one = client.get_model_version(name, "1")
    other = client.create_model_version(name, one.source, run_id=one.run_id).version
    client.set_registered_model_alias(name, "champion", other)
    try:
        read, versions = night("--input-table", table)
    finally:
        client.set_registered_model_alias(name, "champion", "1")
    assert (read["read"], versions) == ("model", {other})

    spark.sql(f"DROP TABLE {table}")
    shutil.rmtree(local_path(location), ignore_errors=True)
    penguins(spark).limit(10).write.format("delta").option("delta.enableChangeDataFeed", "true").saveAsTable(table)
    assert night("--input-table", table)[0]["read"] == "replaced"


def test_incremental_scoring_with_another_runs_model_scores_the_whole_input_again(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    """A run's model (runs:/) has no name or version. Incremental scoring compared only those, so a
    night with another run's model found "the same model" and wrote nothing, exit 0: the output kept the
    first model's scores under a run that names the second. The job's lines read "with  version"."""
    experiment, name = model
    client = MlflowClient(mlflow_server.uri)
    first = client.get_model_version(name, "1").run_id
    # The same model files logged by another run: another model by its URI, scoring alike.
    copy = client.create_run(client.get_experiment_by_name(experiment).experiment_id).info.run_id
    client.log_artifacts(copy, client.download_artifacts(first, "model", str(tmp_path)), "model")
    client.set_terminated(copy)
    table, output = unique("runs_models", "_"), str(tmp_path / "scores")
    penguins(delta_spark).write.format("delta").option("delta.enableChangeDataFeed", "true").saveAsTable(table)

    def night(run_id: str):
        nightly = ("--output-path", output, "--merge-key", "id", "--incremental")
        result = score(run_cli, mlflow_server, experiment, "--model-uri", f"runs:/{run_id}/model", "--input-table",
                       table, *nightly)  # fmt: skip
        assert result.exit_code == 0, result.stderr
        return result

    assert night(first).summary["incremental"]["read"] == "first"
    second = night(copy)
    assert second.summary["incremental"]["read"] == "model"
    assert f"model:           runs:/{copy}/model (run {copy})" in second.stdout
    assert f"rows with runs:/{copy}/model into" in second.stderr
    written = delta_spark.read.format("delta").load(output)
    assert {row["model_run_id"] for row in written.select("model_run_id").distinct().collect()} == {copy}
    assert written.count() == penguins(delta_spark).count()


@pytest.mark.parametrize("case", ["vacuumed version", "future timestamp"])
def test_time_travel_that_cannot_be_met_is_one_line_before_any_run(
    case, run_cli, model, delta_spark, mlflow_server, tmp_path
):
    experiment = unique("time-travel")
    path = str(tmp_path / "input")
    penguins(delta_spark).write.format("delta").save(path)
    penguins(delta_spark).limit(10).write.format("delta").mode("overwrite").save(path)
    if case == "vacuumed version":
        delta_spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
        try:
            delta_spark.sql(f"VACUUM delta.`{path}` RETAIN 0 HOURS").collect()
        finally:
            delta_spark.conf.unset("spark.databricks.delta.retentionDurationCheck.enabled")
        travel, expected = "data.version=0", f"error: version 0 of {path} can no longer be read: VACUUM (version 3, "
    else:
        travel = "data.timestamp=2099-01-01"
        expected = f"error: data.timestamp 2099-01-01 is after the last commit of {path} (version 1, "
    result = score(run_cli, mlflow_server, experiment, "--model-uri", f"models:/{model[1]}/1", "--input", path,
                   "--set", travel, "--output-path", str(tmp_path / "scores"))  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert result.error_line.startswith(expected), result.error_line
    assert scoring_runs(mlflow_server, experiment) == []
    assert not (tmp_path / "scores").exists()


def test_relative_paths_and_file_uris_work_for_every_format(run_cli, model, delta_spark, mlflow_server, tmp_path):
    """run_cli runs from tmp_path: relative paths are relative to it, as in a user's shell."""
    experiment, name = model
    frame = penguins(delta_spark)
    frame.write.format("delta").save(str(tmp_path / "in-delta"))
    frame.write.parquet(str(tmp_path / "in.parquet"))
    frame.drop("id").toPandas().to_csv(tmp_path / "in.csv", index=False)
    uri = ("--model-uri", f"models:/{name}/1")
    cases = [
        ("in.csv", "scores", None, "delta"),
        ("in-delta", "out/parquet-scores", "parquet", "parquet"),
        (f"file://{tmp_path / 'in.parquet'}", "./delta-scores", "delta", "delta"),
        ("in.parquet", f"file:{tmp_path / 'uri-scores'}", None, "delta"),
    ]
    for given_input, given_output, output_format, written in cases:
        fmt = ("--output-format", output_format) if output_format else ()
        result = score(run_cli, mlflow_server, experiment, *uri, "--input", given_input, "--output-path", given_output,
                       *fmt)  # fmt: skip
        assert result.exit_code == 0, f"{given_input} -> {given_output}: {result.stderr}"
        expected_output = given_output if given_output.startswith("file:") else str(tmp_path / given_output)
        assert (
            result.summary["output_path"] == os.path.normpath(expected_output)
            or result.summary["output_path"] == expected_output
        )
        assert result.summary["output_format"] == written
        assert result.summary["rows_in"] == 344
        read = delta_spark.read.format(written).load(result.summary["output_path"])
        assert read.count() == 344

    # One write, its output and input named two ways: the retry wrote the rows again.
    nightly = ("--mode", "append", "--run-key", "night-1")
    first = score(run_cli, mlflow_server, experiment, *uri, "--input", "in-delta", "--output-path", "app", *nightly)
    retried = score(run_cli, mlflow_server, experiment, *uri, "--input", f"file://{tmp_path / 'in-delta'}/",
                    "--output-path", f"file://{tmp_path / 'app'}/", *nightly)  # fmt: skip
    assert (first.exit_code, retried.exit_code, retried.summary["status"]) == (0, 0, "already-written"), retried.stderr
    assert delta_spark.read.format("delta").load(str(tmp_path / "app")).count() == 344


def test_one_days_partition_is_replaced_and_a_retry_writes_it_once(
    run_cli, model, delta_spark, mlflow_server, tmp_path
):
    experiment, name = model
    penguins(delta_spark).write.format("delta").save(str(tmp_path / "input"))
    output = str(tmp_path / "scores")
    common = ("--model-uri", f"models:/{name}/1", "--input", str(tmp_path / "input"), "--output-path", output,
              "--mode", "overwrite")  # fmt: skip
    created = score(run_cli, mlflow_server, experiment, *common, "--partition-by", "island")
    assert created.exit_code == 0, created.stderr
    before = {row["id"]: row["scored_at"] for row in delta_spark.read.format("delta").load(output).collect()}

    dream = ("--replace-where", "island = 'Dream'", "--run-key", "nightly-dream")
    replaced = score(run_cli, mlflow_server, experiment, *common, *dream)
    assert (replaced.exit_code, replaced.summary["rows_in"]) == (0, 124), replaced.stderr
    after = delta_spark.read.format("delta").load(output)
    assert after.count() == 344 and after.select("id").distinct().count() == 344
    changed = {row["island"] for row in after.collect() if row["scored_at"] != before[row["id"]]}
    assert changed == {"Dream"}
    partitions = delta_spark.sql(f"DESCRIBE DETAIL delta.`{output}`").first()["partitionColumns"]
    assert partitions == ["island"]

    retried = score(run_cli, mlflow_server, experiment, *common, *dream)
    assert (retried.exit_code, retried.summary["status"]) == (0, "already-written"), retried.stderr
    assert delta_spark.sql(f"DESCRIBE HISTORY delta.`{output}`").count() == 2


# ---- separate job processes, as on a laptop ------------------------------------------------------


def job(cwd, server, *args, **popen):
    """`synapse-ml-track ARGS` as a user runs it from `cwd`: its own process, its own Spark session."""
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "PYSPARK_"))}
    command = [str(VENV_BIN / "synapse-ml-track"), *args, "--tracking-uri", server.uri]
    return subprocess.Popen(command, cwd=cwd, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **popen)  # fmt: skip


def finished(process, timeout=600):
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out, err


def test_a_table_one_command_writes_is_read_by_name_by_the_next(model, mlflow_server, tmp_path):
    experiment, name = model
    code, out, err = finished(job(tmp_path, mlflow_server, "score", "--experiment-name", experiment, "--model-uri",
                                  f"models:/{name}/1", "--output-table", "lake.penguin_scores"))  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "mlruns" / "spark-warehouse" / "lake.db" / "penguin_scores" / "_delta_log").is_dir()
    code, out, err = finished(job(tmp_path, mlflow_server, "train", "--experiment-name", experiment, "--input-table",
                                  "lake.penguin_scores", "--label", "prediction", "--numeric-features",
                                  "bill_length_mm,flipper_length_mm", "--categorical-features", "island",
                                  "--no-register"))  # fmt: skip
    assert code == 0, err
    run = MlflowClient(mlflow_server.uri).get_run(out.strip().splitlines()[-1].split('"run_id": "')[1].split('"')[0])
    assert (run.data.params["data.table"], run.data.params["data.version_read"]) == ("lake.penguin_scores", "0")


def test_two_score_jobs_started_at_once_into_one_table_lose_and_duplicate_nothing(
    model, delta_spark, mlflow_server, tmp_path
):
    """Both merge the same rows into a table neither has created yet: Delta lets one commit first and
    raises a conflict (ProtocolChangedException, ConcurrentAppendException...) in the other, which
    writes again against the table as it then is. Whether the two commits overlap depends on how fast
    each process starts; the outcome must hold either way: both succeed, or one says why in one line."""
    experiment, name = model
    penguins(delta_spark).write.format("delta").save(str(tmp_path / "input"))
    output = str(tmp_path / "scores")
    writers = [
        job(
            tmp_path,
            mlflow_server,
            "score",
            "--experiment-name",
            experiment,
            "--model-uri",
            f"models:/{name}/1",
            "--input",
            "input",
            "--output-path",
            "scores",
            "--mode",
            "merge",
            "--merge-key",
            "id",
            "--run-key",
            f"writer-{index}",
        )  # fmt: skip
        for index in (1, 2)
    ]
    outcomes = [finished(process) for process in writers]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes in ([0, 0], [0, 6]), outcomes
    for code, _, err in outcomes:
        if code == 6:
            errors = [line for line in err.splitlines() if line.startswith("error: ")]
            assert len(errors) == 1 and "another writer changed" in errors[0], err
    table = delta_spark.read.format("delta").load(output)
    assert table.count() == 344
    assert table.select("id").distinct().count() == 344
