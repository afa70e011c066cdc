"""Data as it comes: column names Spark would misread, labels of any type, identifier-like columns.

One generated data set carries every awkward name at once, so one training and one scoring run
cover feature selection, preparation, the pipeline's stages, the signature, the input example,
scoring's checks and output, and the report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.models import get_model_info
from mlflow.tracking import MlflowClient

# (name, kind): each a way real headers break unquoted Spark column references.
AWKWARD = [
    ("monthly.charges", "numeric"),  # a dot reads as a struct field
    ("total charges", "numeric"),  # a space
    ("tenure (months)", "numeric"),  # parentheses
    ("2nd_line", "categorical"),  # a leading digit
    ("Straße-größe", "categorical"),  # non-ASCII letters and a dash
    ("odd`name", "categorical"),  # a backtick, the SQL quote itself
]
LABEL = "churn.flag"


def awkward_frame(rows: int = 240, seed: int = 7) -> pd.DataFrame:
    random = np.random.default_rng(seed)
    charges = random.uniform(10, 120, rows)
    frame = pd.DataFrame(
        {
            "monthly.charges": charges.round(2),
            "total charges": (charges * random.uniform(1, 40, rows)).round(2),
            "tenure (months)": random.integers(1, 72, rows),
            "2nd_line": random.choice(["ja", "nein"], rows),
            "Straße-größe": random.choice(["klein", "groß", "mittel"], rows),
            "odd`name": random.choice(["x", "y"], rows),
            "customer id": [f"c-{i:05d}" for i in range(rows)],  # identifier-like: excluded by choice
        }
    )
    frame[LABEL] = np.where(charges > 65, "geht weg", "bleibt")  # non-ASCII-free, with a space
    return frame


def run_train(run_cli, server, experiment: str, model: str, data: Path, *extra: str):
    return run_cli(
        "train", "--tracking-uri", server.uri, "--experiment-name", experiment, "--registered-model-name", model,
        "--input", str(data), "--label", LABEL, *extra,
    )  # fmt: skip


def test_awkward_column_names_through_training_scoring_and_report(run_cli, mlflow_server, spark, tmp_path):
    data = tmp_path / "customers.csv"
    awkward_frame().to_csv(data, index=False)
    trained = run_train(run_cli, mlflow_server, "awkward-names", "awkward", data, "--exclude", "customer id")
    assert trained.exit_code == 0, trained.stderr
    assert trained.summary["metrics"]["accuracy"] > 0.8  # the charges rule is learnt through a dotted name

    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(trained.summary["run_id"])
    assert run.data.params["data.label"] == LABEL and run.data.params["data.exclude"] == "customer id"
    model_dir = client.download_artifacts(run.info.run_id, "model", str(tmp_path / "model"))
    signature = get_model_info(model_dir).signature
    assert [spec.name for spec in signature.inputs.inputs] == [name for name, _ in AWKWARD]
    example = json.loads((Path(model_dir) / "input_example.json").read_text())
    assert example["columns"] == [name for name, _ in AWKWARD]
    weights = json.loads(Path(trained.summary["local_result_dir"], "evaluation", "coefficients.json").read_text())
    assert {"monthly.charges", "tenure (months)", "Straße-größe=groß", "odd`name=(unseen)"} <= set(
        weights["geht weg vs bleibt"]
    )

    scores = tmp_path / "scores"
    scored = run_cli(
        "score", "--tracking-uri", mlflow_server.uri, "--experiment-name", "awkward-names",
        "--model-uri", "models:/awkward/1", "--input", str(data),
        "--output-path", str(scores), "--output-format", "parquet",
    )  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    output = pd.read_parquet(scores)
    assert list(output.columns[: len(awkward_frame().columns)]) == list(awkward_frame().columns)
    assert {"probability_bleibt", "probability_geht weg", "prediction", "unscorable_reason"} <= set(output.columns)
    assert (output["prediction"] == output[LABEL]).mean() > 0.8

    reported = run_cli(
        "report", "--tracking-uri", mlflow_server.uri, "--experiment", "awkward-names", "--model-name", "awkward",
        "--output-dir", str(tmp_path / "report"),
    )  # fmt: skip
    assert reported.exit_code == 0, reported.stderr


@pytest.mark.parametrize(
    ("labels", "classes"),
    [
        (lambda charges: np.where(charges > 65, "Müller", "Ölçü ß"), ["Müller", "Ölçü ß"]),  # non-ASCII text
        (lambda charges: pd.array(charges > 65, dtype="Int64"), ["0", "1"]),  # integers (Spark reads int)
        (lambda charges: pd.array(charges > 65, dtype="boolean"), ["false", "true"]),  # booleans, as Spark shows them
    ],
    ids=["non-ascii", "integer", "boolean"],
)
def test_labels_of_any_type_are_classes(labels, classes, run_cli, mlflow_server, tmp_path):
    frame = awkward_frame().drop(columns=["customer id"])
    frame[LABEL] = labels(frame["monthly.charges"].to_numpy())
    frame.loc[frame.index[:5], LABEL] = None  # a label column with nulls: dropped by the null policy, counted
    data = tmp_path / "labels.csv"
    frame.to_csv(data, index=False)
    trained = run_train(run_cli, mlflow_server, "label-types", "label-types", data, "--no-register")
    assert trained.exit_code == 0, trained.stderr
    metrics = trained.summary["metrics"]
    assert metrics["rows_null_label"] == 5 and metrics["rows_dropped_nulls"] == 5
    assert {f"f1_{label}" for label in classes} <= set(metrics)


def test_a_many_valued_categorical_feature_is_warned_about(run_cli, mlflow_server, tmp_path, caplog):
    data = tmp_path / "ids.csv"
    awkward_frame().to_csv(data, index=False)  # "customer id" left in: 240 distinct values
    trained = run_train(run_cli, mlflow_server, "many-valued", "many-valued", data, "--no-register",
                        "--set", "data.max_categories=50")  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    assert "customer id (~" in trained.stderr and "data.exclude" in trained.stderr
    run = MlflowClient(mlflow_server.uri).get_run(trained.summary["run_id"])
    assert run.data.tags["smt.many_valued_features"].startswith("customer id (~")
