"""The training job end to end: real Spark, a real MLflow server, the model's round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import mlflow.pyfunc
import mlflow.spark
import pandas as pd
import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import build_config
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark.sources import bundled_penguins_path
from synapse_ml_track.tracking.session import open_session
from synapse_ml_track.train_job import run_training

from support import EXPECTED_ARTIFACTS, REPO, VENV_BIN


def test_job_against_mlflow_server_tracks_registers_and_round_trips(run_cli, mlflow_server, spark):
    result = run_cli(
        "train",
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment-name",
        "e2e-server",
        "--registered-model-name",
        "penguins-e2e",
        "--tag",
        "team=ml",
        "--run-key",
        "pipeline-run-1",
    )
    assert result.exit_code == 0, result.stderr
    summary = result.summary
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(summary["run_id"])

    assert run.info.status == "FINISHED"
    assert run.data.params["model.type"] == "logistic_regression"
    assert run.data.params["data.seed"] == "42"
    assert run.data.params["estimator.maxIter"] == "100"
    assert set(run.data.metrics) >= {"accuracy", "precision", "recall", "f1", "f1_Adelie", "recall_Gentoo", "test_rows"}
    assert 0.9 <= run.data.metrics["accuracy"] <= 1.0
    assert run.data.metrics == pytest.approx(summary["metrics"])
    assert run.data.tags["team"] == "ml"
    assert run.data.tags["smt.run_key"] == "pipeline-run-1"
    assert run.data.tags["smt.spark_version"] == spark.version
    assert run.data.tags["smt.gate"] == "passed"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == EXPECTED_ARTIFACTS
    assert run.inputs.dataset_inputs[0].dataset.source.endswith('"format": "csv"}')

    version = client.get_model_version("penguins-e2e", summary["model_version"])
    assert version.run_id == run.info.run_id and version.status == "READY"
    assert client.get_model_version_by_alias("penguins-e2e", "champion").version == version.version

    # The registered model loads with both flavours and answers like the logged one.
    features = spark.read.csv(bundled_penguins_path(), header=True, inferSchema=True).dropna().drop("species")
    model_uri = f"models:/penguins-e2e/{summary['model_version']}"
    mlflow.set_tracking_uri(mlflow_server.uri)
    spark_predictions = mlflow.spark.load_model(model_uri).transform(features).select("prediction")
    pyfunc_predictions = mlflow.pyfunc.load_model(model_uri).predict(features.toPandas())
    assert spark_predictions.toPandas()["prediction"].tolist() == list(pyfunc_predictions)
    assert set(pyfunc_predictions) == {"Adelie", "Chinstrap", "Gentoo"}


def test_logged_model_predicts_like_the_in_memory_model(spark, mlflow_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = build_config(
        overrides={"tracking": {"uri": mlflow_server.uri, "experiment_name": "round-trip", "register": False}},
        environ={},
    )
    redactor = Redactor()
    result = run_training(spark, config, open_session(config, redactor, environ={}), redactor)

    features = spark.read.csv(bundled_penguins_path(), header=True, inferSchema=True).dropna().drop("species")
    features = features.select(
        [features[c].cast("double") if t != "string" else features[c] for c, t in features.dtypes]
    )
    expected = result.model.transform(features).select("prediction")
    mlflow.set_tracking_uri(mlflow_server.uri)
    loaded = mlflow.spark.load_model(result.model_uri).transform(features).select("prediction")
    assert_df_equality(loaded, expected)
    pyfunc = mlflow.pyfunc.load_model(result.model_uri).predict(features.toPandas())
    assert list(pyfunc) == expected.toPandas()["prediction"].tolist()


@pytest.mark.embedded_store
def test_default_run_uses_embedded_store_under_working_directory(run_cli, tmp_path):
    result = run_cli("train")
    assert result.exit_code == 0, result.stderr
    summary = result.summary
    assert summary["tracking_uri"] == f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert summary["model_version"] == "1" and summary["status"] == "registered"
    assert f"mlflow ui --backend-store-uri {summary['tracking_uri']}" in result.stdout
    client = MlflowClient(summary["tracking_uri"])
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((tmp_path / "mlruns" / "artifacts").as_uri())
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == EXPECTED_ARTIFACTS
    assert client.get_registered_model("penguins-classifier").name == "penguins-classifier"


def test_same_seed_gives_identical_metrics_and_output_file(run_cli, mlflow_server, tmp_path):
    common = (
        "train",
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment-name",
        "same-seed",
        "--model-type",
        "random_forest",
    )
    first = run_cli(*common, "--param", "numTrees=10", "--no-register")
    second = run_cli(*common, "--param", "numTrees=10", "--no-register", "--output", "summary.json")
    assert first.exit_code == 0 and second.exit_code == 0, second.stderr
    assert first.summary["metrics"] == second.summary["metrics"]
    assert first.summary["run_id"] != second.summary["run_id"]
    assert (tmp_path / "summary.json").read_text().strip() == second.stdout.strip().splitlines()[-1]


def test_other_model_types_and_feature_selection(run_cli, mlflow_server, tmp_path):
    binary = tmp_path / "binary.csv"
    frame = pd.read_csv(bundled_penguins_path())
    frame[frame.species != "Chinstrap"].to_csv(binary, index=False)
    result = run_cli(
        "train",
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment-name",
        "model-types",
        "--input",
        str(binary),
        "--model-type",
        "gbt",
        "--param",
        "maxIter=5",
        "--numeric-features",
        "bill_length_mm,flipper_length_mm",
        "--categorical-features",
        "island",
        "--no-register",
    )
    assert result.exit_code == 0, result.stderr
    metrics = result.summary["metrics"]
    assert "auc" in metrics and 0.5 < metrics["auc"] <= 1.0
    client = MlflowClient(result.summary["tracking_uri"])
    artifacts = {a.path for a in client.list_artifacts(result.summary["run_id"])}
    assert "feature_importances.json" in artifacts


def test_feature_weights_are_named_slot_by_slot(run_cli, mlflow_server):
    """One name per slot of the assembled vector, in its order: each category, and the slot the
    indexer keeps for values unseen in training (it once shifted every later category's name)."""
    result = run_cli(
        "train", "--tracking-uri", mlflow_server.uri, "--experiment-name", "weights", "--no-register",
        "--numeric-features", "bill_length_mm", "--categorical-features", "island,sex",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    local = Path(result.summary["local_result_dir"]) / "evaluation" / "coefficients.json"
    weights = json.loads(local.read_text())
    assert set(weights) == {"Adelie", "Chinstrap", "Gentoo"}
    assert list(weights["Adelie"]) == [
        "bill_length_mm", "island=Biscoe", "island=Dream", "island=Torgersen", "island=(unseen)",
        "sex=female", "sex=male", "sex=(unseen)",
    ]  # fmt: skip


def test_spark_submit_runs_the_job_script_with_the_wheel(mlflow_server, package_wheel, tmp_path):
    """pyspark's own spark-submit runs jobs/train.py with the package shipped as a wheel in
    --py-files, as the Synapse job definition does; the wheel carries the bundled data, the config's
    JSON Schema and exactly the source tree's modules."""
    wheel = package_wheel
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {
        "synapse_ml_track/data/penguins.csv",
        "synapse_ml_track/data/PENGUINS_LICENSE.txt",
        "synapse_ml_track/job.schema.json",
    } <= names
    source_modules = {p.relative_to(REPO).as_posix() for p in (REPO / "synapse_ml_track").rglob("*.py")}
    assert {name for name in names if name.endswith(".py")} == source_modules

    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env.pop("MLFLOW_TRACKING_URI", None)
    completed = subprocess.run(
        [
            str(VENV_BIN / "spark-submit"),
            "--master",
            "local[1]",
            "--conf",
            "spark.ui.enabled=false",
            "--py-files",
            str(wheel),
            str(REPO / "jobs" / "train.py"),
            "--run-name",
            "from-spark-submit",
            "--no-register",
            "--tracking-uri",
            mlflow_server.uri,
            "--experiment-name",
            "spark-submit",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    summary = __import__("json").loads(completed.stdout.strip().splitlines()[-1])
    run = MlflowClient(summary["tracking_uri"]).get_run(summary["run_id"])
    assert run.info.run_name == "from-spark-submit" and run.info.status == "FINISHED"
    assert run.data.tags["spark.master"] == "local[1]"  # spark-submit's, not a local default of the job's
