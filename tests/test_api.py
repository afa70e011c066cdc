"""The Python API (synapse_ml_track.train / score) from a running SparkSession, against a real MLflow
server: DataFrames in, typed results out, typed errors, and the caller's MLflow state left as it was."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import threading
import uuid
from collections import OrderedDict
from pathlib import Path

import matplotlib
import mlflow
import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from mlflow.tracking._model_registry import utils as registry_utils
from mlflow.tracking._tracking_service import utils as tracking_utils
from mlflow.utils import rest_utils
from pyspark.sql import functions as F

import synapse_ml_track as smt
from synapse_ml_track.errors import ConfigError, DataError
from synapse_ml_track.spark import models as spark_models
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, bundled_penguins_path
from synapse_ml_track.tracking import http

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]


def penguins(spark):
    # A DataFrame made in the caller's code (filtered), not a path the job could read itself.
    return spark.read.csv(bundled_penguins_path(), header=True, schema=BUNDLED_PENGUINS_SCHEMA).where("year >= 2007")


# MLflow's telemetry thread unsets this whenever it gives up reaching its endpoint (offline here),
# call or no call (mlflow/telemetry/client.py, _set_telemetry_client).
MLFLOWS_OWN = {"_MLFLOW_TELEMETRY_SESSION_ID"}


def process_state() -> dict:
    """What a job may change process-wide and the caller must find as it left it."""
    return {
        "environment": {name: value for name, value in os.environ.items() if name not in MLFLOWS_OWN},
        "tracking_uri": tracking_utils._tracking_uri,
        "registry_uri": registry_utils._registry_uri,
        "http_request": rest_utils.http_request,
        "policy": http.current_policy(),
        "matplotlib_backend": matplotlib.get_backend(),
        "stdout": sys.stdout,
        "stderr": sys.stderr,
        "root_logger": (logging.root.level, tuple(logging.root.handlers)),
    }


@pytest.fixture(scope="module")
def trained(spark, mlflow_server, tmp_path_factory):
    """One model trained through the API from a DataFrame, while the caller has MLflow URIs, an
    MLflow HTTP setting and a matplotlib backend of its own; the process state before and after the call."""
    suffix = uuid.uuid4().hex[:8]
    experiment, name = f"api-{suffix}", f"api-model-{suffix}"
    users_uri = (tmp_path_factory.mktemp("users-store") / "mine.db").as_posix()
    mlflow.set_tracking_uri(f"sqlite:///{users_uri}")
    mlflow.set_registry_uri(f"sqlite:///{users_uri}")
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "77"
    backend = matplotlib.get_backend()
    matplotlib.use("svg")  # a notebook's own choice; training draws its plots without changing it
    try:
        before = process_state()
        result = smt.train(
            spark=spark,
            data=penguins(spark),
            tracking_uri=mlflow_server.uri,
            experiment_name=experiment,
            registered_model_name=name,
            overrides={"tracking.local_result_dir": str(tmp_path_factory.mktemp("results"))},
        )
        after = process_state()
    finally:
        matplotlib.use(backend)
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
            os.environ.pop(variable, None)
    return result, experiment, name, before, after


def test_train_with_a_dataframe_registers_a_model_and_records_the_frame_not_a_path(trained, mlflow_server, spark):
    result, _, name, _, _ = trained
    assert isinstance(result, smt.TrainingResult)
    assert (result.status, result.registered_model_name, result.model_version, result.promoted) == (
        "registered", name, "1", True,
    )  # fmt: skip
    assert result.metrics["accuracy"] >= 0.9
    # What a notebook cell shows: who and what, not 17 metrics and a whole PipelineModel; read-only.
    assert result.run_id in repr(result) and "accuracy" not in repr(result) and "PipelineModel" not in repr(result)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = "rejected"
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(result.run_id)
    assert run.info.status == "FINISHED"
    assert client.get_model_version(name, "1").run_id == result.run_id

    # The run says the data came from a DataFrame: no path (nor the bundled data), its rows and schema.
    assert (run.data.params["data.path"], run.data.params["data.source"]) == ("", "dataframe")
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    assert (dataset.name, dataset.source_type, json.loads(dataset.source)) == ("dataframe", "code", {"tags": {}})
    rows = int(result.metrics["train_rows"] + result.metrics["test_rows"])
    complete = penguins(spark).dropna(subset=["species", *FEATURES]).count()
    assert json.loads(dataset.profile) == {"num_rows": rows} and rows == complete
    assert sorted(column["name"] for column in json.loads(dataset.schema)["mlflow_colspec"]) == sorted(FEATURES)


def changed(before: dict, after: dict) -> dict:
    """What differs, environment variables by name."""
    old, new = before["environment"], after["environment"]
    variables = {
        name: (old.get(name), new.get(name)) for name in old.keys() | new.keys() if old.get(name) != new.get(name)
    }
    return {**{key: after[key] for key in before if key != "environment" and before[key] != after[key]}, **variables}


def test_train_puts_back_the_callers_mlflow_uris_and_http_settings(trained):
    _, _, _, before, after = trained
    assert changed(before, after) == {}


def test_score_a_dataframe_writes_and_returns_the_scores(trained, mlflow_server, spark, tmp_path):
    result, experiment, name, _, _ = trained
    new_penguins = penguins(spark).drop("species")
    before = process_state()
    scored = smt.score(
        spark=spark,
        data=new_penguins,
        model_uri=f"models:/{name}@champion",
        output_path=str(tmp_path / "scores"),
        tracking_uri=mlflow_server.uri,
        experiment_name=experiment,
    )
    assert changed(before, process_state()) == {}
    assert isinstance(scored, smt.ScoringResult)
    assert (scored.status, scored.model_uri, scored.model_version) == ("scored", f"models:/{name}/1", "1")
    rows = new_penguins.count()
    assert scored.rows_scored + scored.rows_unscorable == rows and scored.rows_unscorable > 0
    scores = scored.scores()
    assert scores.count() == rows
    predicted = {row.prediction for row in scores.where("unscorable_reason IS NULL").select("prediction").collect()}
    assert predicted <= {"Adelie", "Chinstrap", "Gentoo"} and len(predicted) == 3
    assert scored.summary()["output_path"] == str(tmp_path / "scores")

    run = MlflowClient(mlflow_server.uri).get_run(scored.run_id)
    assert run.info.status == "FINISHED"
    assert (run.data.params["data.path"], run.data.params["data.source"]) == ("", "dataframe")
    assert run.data.metrics["rows_scored"] == scored.rows_scored


def test_predict_gives_the_scores_score_writes_without_a_run_and_loads_a_version_once(
    trained, mlflow_server, spark, tmp_path, monkeypatch, capfd
):
    """What a notebook user asks for first: the scores as a DataFrame, to display or join. The same
    rows and columns as `score` writes, from the champion by default, from a Spark or a pandas frame;
    no MLflow run, nothing written, the caller's MLflow state as it was, and each version loaded into
    the session once, however often it is asked for."""
    _, experiment, name, _, _ = trained
    new_penguins = penguins(spark).drop("species")
    client = MlflowClient(mlflow_server.uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs_before = {run.info.run_id for run in client.search_runs([experiment_id])}
    reads: list[str] = []
    read = spark_models._read_spark_model
    monkeypatch.setattr(spark_models, "_models", OrderedDict())  # as in a new session
    monkeypatch.setattr(spark_models, "_read_spark_model", lambda *args: reads.append(args[0].name) or read(*args))
    before = process_state()

    predicted = smt.predict(new_penguins, spark=spark, tracking_uri=mlflow_server.uri, registered_model_name=name)
    few = new_penguins.dropna().limit(5).toPandas()
    from_pandas = smt.predict(few, f"models:/{name}/1", spark=spark, tracking_uri=mlflow_server.uri)

    assert changed(before, process_state()) == {}
    assert "Downloading artifacts" not in capfd.readouterr().err  # MLflow's bars, in a notebook's output
    assert reads == ["sparkml"]  # the champion, version 1, read once for both calls
    assert {run.info.run_id for run in client.search_runs([experiment_id])} == runs_before
    assert from_pandas.count() == 5 and from_pandas.columns == predicted.columns
    assert from_pandas.where("prediction IS NULL").count() == 0

    scored = smt.score(
        spark=spark, data=new_penguins, model_uri=f"models:/{name}/1", output_path=str(tmp_path / "scores"),
        tracking_uri=mlflow_server.uri, experiment_name=experiment,
    )  # fmt: skip
    written = scored.scores()
    assert predicted.columns == written.columns
    assert_df_equality(
        predicted.drop("scored_at"), written.drop("scored_at"), ignore_row_order=True, ignore_nullable=True
    )


def test_a_call_from_another_thread_leaves_the_callers_session_settings(spark):
    """SparkSession.getActiveSession is per thread: a call from a thread of a notebook's own took the
    running session for none and applied the package's local defaults to it (time zone UTC, 8 shuffle
    partitions): the caller's timestamps then read otherwise."""
    spark.conf.set("spark.sql.session.timeZone", "America/New_York")
    try:
        counted: list[int] = []
        thread = threading.Thread(target=lambda: counted.append(smt.sample_data().count()))
        thread.start()
        thread.join()
        settings = [spark.conf.get(key) for key in ("spark.sql.session.timeZone", "spark.sql.shuffle.partitions")]
    finally:
        spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert (counted, settings) == ([344], ["America/New_York", "1"])


def test_train_predict_score_and_report_each_leave_the_callers_process_as_it_was(
    spark, mlflow_server, tmp_path, monkeypatch
):
    """A notebook's own settings, each of the four calls made in turn, and the process state compared
    after each: environment, MLflow's URIs and HTTP layer, the matplotlib backend, sys.stdout and
    sys.stderr, the root logger's level and handlers."""
    monkeypatch.chdir(tmp_path)
    suffix = uuid.uuid4().hex[:8]
    tracking = {"tracking_uri": mlflow_server.uri, "experiment_name": f"api-all-{suffix}"}
    name = f"api-all-{suffix}"
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "77")
    monkeypatch.setattr(logging.root, "level", logging.WARNING)
    monkeypatch.setattr(logging.root, "handlers", [logging.StreamHandler(sys.stderr)])
    backend = matplotlib.get_backend()
    matplotlib.use("svg")
    mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'mine.db').as_posix()}")
    calls = {
        "train": lambda: smt.train(spark=spark, data=penguins(spark), registered_model_name=name, **tracking),
        "predict": lambda: smt.predict(penguins(spark), tracking_uri=mlflow_server.uri, overrides={
            "tracking.registered_model_name": name}).count(),
        "score": lambda: smt.score(
            spark=spark, data=penguins(spark), registered_model_name=name, output_path=str(tmp_path / "scores"),
            output_format="parquet", **tracking,
        ),
        "report": lambda: smt.report(registered_model_name=name, output_dir=tmp_path / "report", **tracking),
    }  # fmt: skip
    try:
        outcomes, differences = {}, {}
        for call, make in calls.items():
            before = process_state()
            outcomes[call] = make()
            differences[call] = changed(before, process_state())
    finally:
        matplotlib.use(backend)
        mlflow.set_tracking_uri(None)
    assert differences == {call: {} for call in calls}
    assert outcomes["train"].status == "registered" and outcomes["predict"] == penguins(spark).count()
    assert outcomes["score"].status == "scored"
    report = outcomes["report"]
    assert isinstance(report, smt.RunsReport) and report.best_run_id == outcomes["train"].run_id
    assert (report.runs, report.metric, report.best_model_version) == (1, "f1", "1")
    assert list(report.table["run_id"]) == [outcomes["train"].run_id]
    assert report.figure.axes[0].get_ylabel() == "f1"
    files = ["drift.csv", "drift.png", "f1.png", "runs.csv", "runs.md"]  # drift: the scoring run above measured it
    assert sorted(Path(path).name for path in report.files.values()) == files
    assert report.drift is not None and list(report.drift["run_id"]) == [outcomes["score"].run_id]
    assert report.best_run_id in repr(report) and "DataFrame" not in repr(report)


def test_predict_refuses_what_is_not_a_dataframe_in_one_line(spark):
    with pytest.raises(ConfigError, match=r"^data must be a Spark or pandas DataFrame, got builtins.list$"):
        smt.predict([{"island": "Dream"}], "models:/m/1", spark=spark)


def test_a_missing_label_column_raises_a_data_error_fails_the_run_and_registers_nothing(
    spark, mlflow_server, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    experiment, name = f"api-bad-{uuid.uuid4().hex[:8]}", f"api-bad-{uuid.uuid4().hex[:8]}"
    before = process_state()
    with pytest.raises(DataError, match="label column 'species' is not in the input") as raised:
        smt.train(
            spark=spark,
            data=penguins(spark).drop("species"),
            tracking_uri=mlflow_server.uri,
            experiment_name=experiment,
            registered_model_name=name,
        )
    assert raised.value.exit_code == 2
    assert changed(before, process_state()) == {}  # put back on failure too; here nothing was set before
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FAILED"
    assert client.search_model_versions(f"name = '{name}'") == []


def test_scoring_a_dataframe_without_a_model_input_raises_a_data_error(trained, mlflow_server, spark, tmp_path):
    _, experiment, name, _, _ = trained
    with pytest.raises(DataError, match="input lacks column\\(s\\) body_mass_g"):
        smt.score(
            spark=spark,
            data=penguins(spark).drop("body_mass_g"),
            model_uri=f"models:/{name}/1",
            output_path=str(tmp_path / "scores"),
            tracking_uri=mlflow_server.uri,
            experiment_name=experiment,
        )
    assert not (tmp_path / "scores").exists()


def test_arguments_that_contradict_a_dataframe_or_each_other_are_config_errors(spark):
    frame = penguins(spark)
    with pytest.raises(ConfigError, match="unset data.path"):
        smt.train(spark=spark, data=frame, overrides={"data.path": "penguins.csv"})
    with pytest.raises(ConfigError, match="output_path or output_table"):
        smt.score(spark=spark, data=frame, output_path="a", output_table="b")
    with pytest.raises(ConfigError, match="mode must be one of"):
        smt.score(spark=spark, data=frame, output_path="a", mode="upsert")


def test_train_and_score_in_an_azure_ml_workspace_then_the_callers_mlflow_state_is_back(
    spark, aml_server, aml_env, offline, tmp_path, monkeypatch
):
    """Through the real azureml-mlflow plugin against the AML double (tests/aml_server.py; Azure AD
    and ARM are the double's), which reads MLflow's global tracking URI during the job."""
    monkeypatch.chdir(tmp_path)
    suffix = uuid.uuid4().hex[:8]
    tracking = {"tracking_uri": aml_server.tracking_uri, "experiment_name": f"api-aml-{suffix}"}
    mlflow.set_tracking_uri(f"sqlite:///{(tmp_path / 'mine.db').as_posix()}")
    before = process_state()
    try:
        trained = smt.train(spark=spark, data=penguins(spark), registered_model_name=f"api-aml-{suffix}", **tracking)
        scored = smt.score(
            spark=spark, data=penguins(spark).drop("species"), model_uri=f"models:/api-aml-{suffix}/1",
            output_path=str(tmp_path / "scores"), output_format="parquet", **tracking,
        )  # fmt: skip
        after = process_state()
    finally:
        mlflow.set_tracking_uri(None)
    assert changed(before, after) == {}
    assert (trained.status, trained.model_version) == ("registered", "1")
    assert scored.status == "scored" and scored.scores().count() == penguins(spark).count()
    assert offline == []


def test_an_api_caller_is_told_the_keyword_to_pass_not_only_the_flag(trained, mlflow_server, spark, tmp_path):
    """A caller of score() was told 'pass --mode overwrite', a flag it has no way to pass."""
    _, experiment, name, _, _ = trained
    arguments = dict(
        spark=spark, data=penguins(spark).drop("species"), model_uri=f"models:/{name}/1",
        output_path=str(tmp_path / "scores"), tracking_uri=mlflow_server.uri, experiment_name=experiment,
    )  # fmt: skip
    smt.score(**arguments)
    with pytest.raises(DataError, match=r'already exists; pass --mode overwrite \(mode="overwrite"\) to replace it$'):
        smt.score(**arguments)
    assert smt.score(**arguments, mode="overwrite").status == "scored"


def test_a_pandas_frame_trains_and_scores_through_the_callers_session(mlflow_server, spark, tmp_path):
    """A notebook user's pandas DataFrame: made a Spark DataFrame in the caller's session before
    anything else. It gave "AttributeError: 'DataFrame' object has no attribute 'schema'" and a
    FAILED run."""
    suffix = uuid.uuid4().hex[:8]
    frame = penguins(spark).dropna().toPandas()
    trained = smt.train(
        data=frame, spark=spark, tracking_uri=mlflow_server.uri, experiment_name=f"api-pandas-{suffix}",
        registered_model_name=f"api-pandas-{suffix}",
        overrides={"tracking.local_result_dir": str(tmp_path / "results")},
    )  # fmt: skip
    assert trained.status == "registered", trained
    scored = smt.score(
        data=frame.drop(columns=["species"]), spark=spark, model_uri=f"models:/api-pandas-{suffix}/1",
        output_path=str(tmp_path / "scores"), tracking_uri=mlflow_server.uri, experiment_name=f"api-pandas-{suffix}",
    )  # fmt: skip
    assert scored.rows_scored == len(frame)

    # A cell run again with the same rows and run key: one write. Each pandas frame made a Spark plan of
    # its own, so the write's key changed and the retry appended the rows a second time.
    def append(rows):
        return smt.score(
            data=rows, spark=spark, model_uri=f"models:/api-pandas-{suffix}/1", output_path=str(tmp_path / "appended"),
            output_format="delta", mode="append", run_key="cell-1", tracking_uri=mlflow_server.uri,
            experiment_name=f"api-pandas-{suffix}",
        )  # fmt: skip

    statuses = [append(frame.head(20)).status, append(frame.head(20).copy()).status, append(frame.head(21)).status]
    assert statuses == ["scored", "already-written", "scored"]
    assert spark.read.format("delta").load(str(tmp_path / "appended")).count() == 41

    # A frame missing a feature in every row, or with no rows, gave a raw PySparkValueError
    # (CANNOT_DETERMINE_TYPE); a missing number was written as NaN, which IS NULL and sums do not skip.
    gappy = frame.drop(columns=["species"]).head(3).copy()
    gappy["sex"], gappy.loc[gappy.index[0], "bill_length_mm"] = None, float("nan")
    predicted = smt.predict(gappy, f"models:/api-pandas-{suffix}/1", spark=spark, tracking_uri=mlflow_server.uri)
    rows = predicted.orderBy(F.col("bill_length_mm").asc_nulls_first()).collect()
    shown = [(row["bill_length_mm"] is None, row["prediction"]) for row in rows]
    assert shown == [(True, None), (False, None), (False, None)]
    assert all(row["unscorable_reason"] for row in rows)
    empty = smt.predict(gappy.iloc[0:0], f"models:/api-pandas-{suffix}/1", spark=spark, tracking_uri=mlflow_server.uri)
    assert empty.count() == 0 and empty.columns == predicted.columns
