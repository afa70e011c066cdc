"""Every kind of bad input: one clear line, a non-zero exit, the run FAILED, nothing registered."""

from __future__ import annotations

import importlib.util
import uuid
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import DataConfig
from synapse_ml_track.spark import data as data_module
from synapse_ml_track.spark.data import (
    LABEL,
    feature_spec,
    prepare,
    read_input,
    split,
)
from synapse_ml_track.spark.sources import bundled_penguins_path, resolve_source

MODEL = "bad-input-model"


def penguins() -> pd.DataFrame:
    return pd.read_csv(bundled_penguins_path())


def write_csv(path: Path, frame: pd.DataFrame) -> str:
    frame.to_csv(path, index=False)
    return str(path)


def class_only_in_test(spark, tmp_path: Path) -> list[str]:
    """Penguins plus one row of a new class, with a seed that puts that row in the test split."""
    frame = penguins().dropna()
    rare = frame.iloc[[0]].assign(species="Emperor")
    data = pd.concat([frame, rare])
    path = write_csv(tmp_path / "rare.csv", data)
    config = DataConfig(path=path)
    source = resolve_source(config)
    raw = read_input(spark, source, config)
    prepared = prepare(raw, feature_spec(raw.schema, config)).where(f"{LABEL} = 'Emperor'")
    seed = next(s for s in range(100) if split(prepared, config.train_fraction, s)[1].count() == 1)
    return ["--input", path, "--seed", str(seed)]


CASES = {
    "missing path": (lambda spark, tmp: ["--input", str(tmp / "nope.csv")], "input not found"),
    "unreadable format": (
        lambda spark, tmp: ["--input", str(_write_text(tmp / "broken.parquet", "this is not parquet"))],
        "cannot read",
    ),
    "label absent": (lambda spark, tmp: ["--label", "kind"], "label column 'kind' is not in the input"),
    "feature absent": (lambda spark, tmp: ["--numeric-features", "wing_span"], "wing_span not in the input"),
    "non-numeric feature values (sampled)": (
        lambda spark, tmp: [
            "--input",
            write_csv(
                tmp / "text.csv",
                penguins().astype({"bill_length_mm": str}).replace({"bill_length_mm": {"39.1": "long"}}),
            ),
            "--numeric-features",
            "bill_length_mm,bill_depth_mm",
        ],
        "hold non-numeric values",
    ),
    "non-numeric feature values (explicit schema)": (
        lambda spark, tmp: [
            "--input",
            str(_write_text(tmp / "late.csv", "species,bill_length_mm\nAdelie,39.1\nGentoo,47.5\nAdelie,abc\n")),
            "--schema",
            "species STRING, bill_length_mm DOUBLE",
        ],
        "does not match the schema",
    ),
    "files with their columns in another order": (
        lambda spark, tmp: ["--input", swapped_files(tmp), "--format", "csv", "--set", "data.schema_sample_rows=100"],
        "does not match the columns",
    ),
    "empty after filtering": (
        lambda spark, tmp: ["--input", write_csv(tmp / "nulls.csv", penguins().assign(sex=None))],
        "no rows left to train on",
    ),
    "single class": (
        lambda spark, tmp: ["--input", write_csv(tmp / "one.csv", penguins().assign(species="Adelie"))],
        "has a single class ('Adelie')",
    ),
    "class only in test split": (class_only_in_test, "'Emperor' of 'species' appear only in the test split"),
    "gbt with three classes": (lambda spark, tmp: ["--model-type", "gbt"], "gbt supports binary labels only"),
    "nulls rejected": (lambda spark, tmp: ["--nulls", "reject"], "null values in"),
    "NaN and Inf rejected as nulls": (
        lambda spark, tmp: [
            "--input",
            write_csv(
                tmp / "odd.csv",
                penguins()
                .dropna()
                .astype({"bill_length_mm": object})
                .replace({"bill_length_mm": {39.1: "NaN", 39.5: "Inf"}}),
            ),
            "--nulls",
            "reject",
        ],
        "null values in bill_length_mm (",
    ),
    "bad hyperparameter": (
        lambda spark, tmp: ["--param", "maxIterations=5"],
        "model.params.maxIterations is not a parameter",
    ),
}


def swapped_files(tmp: Path) -> str:
    """Two CSV files of one input, the second with two columns in the other order, header and values
    alike: Spark read it by position, so its bill lengths became depths, and the job trained on them."""
    frame, directory = penguins(), tmp / "parts"
    directory.mkdir()
    write_csv(directory / "part-1.csv", frame.iloc[:200])
    order = list(frame.columns)
    length, depth = order.index("bill_length_mm"), order.index("bill_depth_mm")
    order[length], order[depth] = order[depth], order[length]
    write_csv(directory / "part-2.csv", frame.iloc[200:][order])
    return str(directory)


def _write_text(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_cleanly_with_a_failed_run(case, run_cli, mlflow_server, spark, tmp_path):
    make_args, expected = CASES[case]
    experiment = f"bad-{case.replace(' ', '-').replace('(', '').replace(')', '')}"
    result = run_cli(
        "train",
        "--tracking-uri",
        mlflow_server.uri,
        "--experiment-name",
        experiment,
        "--registered-model-name",
        MODEL,
        *make_args(spark, tmp_path),
    )
    assert result.exit_code == 2, result.stderr
    assert expected in result.error_line
    assert "Traceback" not in result.stderr
    client = MlflowClient(mlflow_server.uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert [run.info.status for run in runs] == ["FAILED"]
    assert expected in runs[0].data.tags["smt.error"]
    assert client.search_model_versions(f"name='{MODEL}'") == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--set", "data.labl=species"], "unknown config key 'data.labl' (did you mean 'data.label'?)"),
        (["--set", "data.train_fraction=1.5"], "'data.train_fraction' must be between 0 and 1"),
        (["--set", "data.seed=abc"], "'data.seed' must be an integer"),
        (["--config", "missing.yaml"], "config file not found: missing.yaml"),
        # MLflow 3's refusal of a file store came out as "unexpected MlflowException", exit 1.
        (["--tracking-uri", "./mlruns"], "tracking URI ./mlruns is a directory (a file store)"),
    ],
)
def test_bad_config_fails_before_any_run(args, expected, run_cli, mlflow_server):
    result = run_cli("train", "--tracking-uri", mlflow_server.uri, "--experiment-name", "bad-config", *args)
    assert result.exit_code == 2
    assert expected in result.error_line
    assert MlflowClient(mlflow_server.uri).get_experiment_by_name("bad-config") is None
    assert run_cli.spark_requests == []


def test_no_tracking_uri_without_the_embedded_stores_dependencies_is_one_line(run_cli, monkeypatch, tmp_path):
    """On a Synapse pool (mlflow-skinny, SQLAlchemy, no Alembic) the embedded sqlite store cannot open."""
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "alembic" else real_find_spec(name, *a)
    )
    result = run_cli("train")
    assert result.exit_code == 2
    assert result.error_line.startswith(
        "error: no tracking URI is configured and the embedded store (sqlite) needs alembic"
    )
    assert not (tmp_path / "mlruns").exists()
    assert run_cli.spark_requests == []


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--param", "maxIter=-1"], "model.params.maxIter=-1 is not valid for LogisticRegression: max number of"),
        (["--param", "maxIter=10000000000"], "model.params.maxIter=10000000000 is not valid for LogisticRegression: "),
        (["--param", "family=bogus"], "model.params.family='bogus' is not valid for LogisticRegression: "),
        (["--param", "regParam=abc"], "model.params.regParam='abc' is not valid for LogisticRegression"),
        (["--param", "maxIterations=5"], "model.params.maxIterations is not a parameter of LogisticRegression"),
        (
            ["--model-type", "random_forest", "--param", "maxDepth=100"],
            "model.params.maxDepth=100 is not valid for RandomForestClassifier: ",
        ),
        (
            ["--set", "model.search.params.regParam=[0.1, -1]"],
            "model.search.params.regParam=-1 is not valid for LogisticRegression: ",
        ),
        (["--set", "model.search.params.maxIter=[5, many]"], "model.search.params.maxIter='many' is not valid"),
    ],
)
def test_invalid_estimator_values_are_one_line_before_any_data_is_read(
    args, expected, run_cli, mlflow_server, monkeypatch
):
    """Spark checks most values only when the estimator is fitted, after the data is read and split;
    whatever it raises then, the job refuses the value up front, in one line with exit 2."""

    def read_input(*_args, **_kwargs):
        raise AssertionError("the input was read before the estimator's values were checked")

    monkeypatch.setattr(data_module, "read_input", read_input)
    experiment = f"bad-value-{uuid.uuid4().hex[:8]}"
    result = run_cli("train", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment, "--no-register",
                     *args)  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert expected in result.error_line
    assert "Traceback" not in result.stderr
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FAILED" and expected in run.data.tags["smt.error"]


def test_a_failure_inside_spark_names_its_cause_in_the_error_line_and_the_run(run_cli, mlflow_server, tmp_path):
    """A Spark write that fails (here the model's copy in tracking.dfs_tmp, under a regular file) is
    py4j's "An error occurred while calling o1092.save." and a JVM stack; the JVM's cause says why."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where dfs_tmp needs a directory")
    experiment = f"spark-failure-{uuid.uuid4().hex[:8]}"
    result = run_cli(
        "train", "--tracking-uri", mlflow_server.uri, "--experiment-name", experiment, "--no-register",
        "--set", f"tracking.dfs_tmp={blocker}/staging",
    )  # fmt: skip
    cause = f"Parent path is not a directory: {blocker.as_uri().replace('file:///', 'file:/')}"
    assert result.exit_code == 1
    assert result.error_line == f"error: unexpected Py4JJavaError: {cause}"
    client = MlflowClient(mlflow_server.uri)
    (run,) = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["smt.error"] == f"Py4JJavaError: {cause}"
