"""The batch-scoring job against a real MLflow server: round trip, lineage, signature checks, aliases."""

from __future__ import annotations

import re
import shutil
import uuid
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from mlflow.tracking import MlflowClient
from pyspark.ml.functions import vector_to_array
from pyspark.sql import functions as F

import synapse_ml_track as smt
from synapse_ml_track.config import build_config
from synapse_ml_track.drift import PROFILE_FILE, TrainingProfile
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark import models as spark_models
from synapse_ml_track.spark.pipeline import PROBABILITY
from synapse_ml_track.spark.scoring import ModelRef, resolve_model, score_frame
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, bundled_penguins_path
from synapse_ml_track.tracking.session import open_session
from synapse_ml_track.train_job import run_training

LABELS = ["Adelie", "Chinstrap", "Gentoo"]
PROBABILITIES = [f"probability_{label}" for label in LABELS]


@pytest.fixture(scope="module")
def registered(spark, mlflow_server, tmp_path_factory):
    """Two registered versions of one model (1: logistic regression, 2: random forest), trained once for
    the module; in-process so the tests can compare the scores with the in-memory models."""
    suffix = uuid.uuid4().hex[:8]
    experiment, model = f"scoring-{suffix}", f"scored-{suffix}"
    results_dir = tmp_path_factory.mktemp("scoring-train")
    redactor = Redactor()
    results = []
    for model_overrides in ({}, {"type": "random_forest", "params": {"numTrees": 5}}):
        config = build_config(
            overrides={
                "model": model_overrides,
                "tracking": {
                    "uri": mlflow_server.uri,
                    "experiment_name": experiment,
                    "registered_model_name": model,
                    "local_result_dir": str(results_dir),
                },
            },
            environ={},
        )
        results.append(run_training(spark, config, open_session(config, redactor, environ={}), redactor))
    assert [r.model_version for r in results] == ["1", "2"]
    return experiment, model, results


def score(run_cli, server, experiment, output, *args):
    return run_cli(
        "score", "--tracking-uri", server.uri, "--experiment-name", experiment, "--output-path", str(output), *args
    )


def penguins(spark):
    return spark.read.csv(bundled_penguins_path(), header=True, schema=BUNDLED_PENGUINS_SCHEMA)


def last_scoring_run(client, experiment_id):
    return client.search_runs([experiment_id], "tags.`smt.job` = 'score'", order_by=["attributes.start_time DESC"])[0]


def test_scores_match_the_trained_model_with_probabilities_and_lineage(
    run_cli, registered, mlflow_server, spark, tmp_path
):
    experiment, model, (first, _) = registered
    output = tmp_path / "scores"
    result = score(
        run_cli, mlflow_server, experiment, output, "--model-uri", f"models:/{model}/1", "--run-key", "pipeline-7"
    )
    assert result.exit_code == 0, result.stderr
    summary = result.summary
    scored = spark.read.parquet(str(output))

    # Round trip: the registered model, loaded and applied by the job, answers like the in-memory model.
    source = penguins(spark)
    complete = source.dropna(subset=[c for c in source.columns if c != "species"])
    probabilities = vector_to_array(PROBABILITY)
    expected = first.model.transform(complete).select(
        *source.columns, "prediction", *[probabilities[i].alias(name) for i, name in enumerate(PROBABILITIES)]
    )
    assert_df_equality(
        scored.where("unscorable_reason IS NULL").select(*expected.columns), expected, ignore_row_order=True
    )
    # Nothing is lost: every input row is in the output; those with a null model input have no prediction.
    assert scored.count() == source.count() == summary["rows_in"] == 344
    assert summary["rows_scored"] == complete.count() == 333 and summary["rows_unscorable"] == 11
    unscorable = scored.where("unscorable_reason IS NOT NULL").toPandas()
    assert len(unscorable) == 11 and unscorable[["prediction", *PROBABILITIES]].isna().all().all()
    assert set(unscorable["unscorable_reason"]) >= {"null in sex"}
    assert all(reason.startswith("null in ") for reason in unscorable["unscorable_reason"])

    frame = scored.where("unscorable_reason IS NULL").toPandas()
    assert frame[PROBABILITIES].sum(axis=1).to_numpy() == pytest.approx(1.0, abs=1e-9)
    assert (frame[PROBABILITIES].idxmax(axis=1).str.removeprefix("probability_") == frame["prediction"]).all()
    lineage = frame[["model_name", "model_version", "model_run_id", "scored_at"]].drop_duplicates()
    assert lineage.to_dict("records") == [
        {
            "model_name": model,
            "model_version": "1",
            "model_run_id": first.run_id,
            "scored_at": pd.Timestamp(datetime.fromisoformat(summary["scored_at"])).tz_convert(None),
        }
    ]
    assert dict(scored.dtypes)["scored_at"] == "timestamp"

    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED" and run.info.experiment_id == first.experiment_id
    assert run.data.tags["smt.job"] == "score" and run.data.tags["smt.run_key"] == "pipeline-7"
    assert run.data.params["model_uri"] == f"models:/{model}/1"
    assert (run.data.params["model.version"], run.data.params["model.run_id"]) == ("1", first.run_id)
    assert run.data.params["data.path"] == bundled_penguins_path() and run.data.params["output.path"] == str(output)
    assert run.data.metrics["rows_scored"] == 333 and run.data.metrics["rows_unscorable"] == 11
    assert run.data.metrics["rows_in"] == 344
    assert sum(run.data.metrics[f"predicted_{label}"] for label in LABELS) == 333
    (scored_input,) = run.inputs.dataset_inputs
    (trained_input,) = client.get_run(first.run_id).inputs.dataset_inputs
    assert {tag.key: tag.value for tag in scored_input.tags} == {"mlflow.data.context": "scoring"}
    # The same location and schema: MLflow links the scoring run to the dataset that training recorded.
    assert scored_input.dataset.digest == trained_input.dataset.digest
    assert summary["predicted"] == frame["prediction"].value_counts().to_dict()


BAD_INPUTS = {
    "missing column": (
        lambda frame: frame.drop(columns=["bill_depth_mm"]),
        (),
        "input lacks column(s) bill_depth_mm that model",
    ),
    "mistyped column": (
        lambda frame: frame.assign(flipper_length_mm=frame.flipper_length_mm.map("{} mm".format)),
        (),
        "flipper_length_mm is string, the model expects double",
    ),
    "nulls refused": (
        lambda frame: frame,
        ("--unscorable", "reject"),
        "nulls in model input columns: ",
    ),
    # Spark resolves names case-insensitively: an unexpected AMBIGUOUS_REFERENCE error, exit 1, before.
    "an output column in other case": (
        lambda frame: frame.assign(Prediction="earlier"),
        (),
        "input already has output column(s) Prediction; drop or rename them before scoring",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS, ids=list(BAD_INPUTS))
def test_input_that_does_not_fit_the_model_fails_and_writes_nothing(case, run_cli, registered, mlflow_server, tmp_path):
    experiment, model, (first, _) = registered
    change, flags, message = BAD_INPUTS[case]
    bad_input = tmp_path / "bad.csv"
    change(pd.read_csv(bundled_penguins_path())).to_csv(bad_input, index=False)
    output = tmp_path / "scores"

    result = score(
        run_cli,
        mlflow_server,
        experiment,
        output,
        "--model-uri",
        f"models:/{model}/1",
        "--input",
        str(bad_input),
        *flags,
    )

    assert result.exit_code == 2
    assert message in result.error_line
    assert not output.exists()
    run = last_scoring_run(MlflowClient(mlflow_server.uri), first.experiment_id)
    assert run.info.status == "FAILED" and message in run.data.tags["smt.error"]
    assert run.data.params["data.path"] == str(bad_input)


def test_alias_latest_and_default_model_uris_and_output_modes(run_cli, registered, mlflow_server, tmp_path):
    experiment, model, (first, second) = registered
    MlflowClient(mlflow_server.uri).set_registered_model_alias(model, "champion", "1")
    output = tmp_path / "scores"

    by_alias = score(run_cli, mlflow_server, experiment, output, "--model-uri", f"models:/{model}@champion")
    assert by_alias.exit_code == 0, by_alias.stderr
    assert (by_alias.summary["model_version"], by_alias.summary["model_uri"]) == ("1", f"models:/{model}/1")

    exists = score(run_cli, mlflow_server, experiment, output, "--model-uri", f"models:/{model}")
    assert exists.exit_code == 2
    assert exists.error_line == (
        f'error: output {output} already exists; pass --mode overwrite (mode="overwrite") to replace it'
    )
    last = last_scoring_run(MlflowClient(mlflow_server.uri), by_alias.summary["experiment_id"])
    assert last.info.run_id == by_alias.summary["run_id"]  # refused before a run: no FAILED one left behind

    latest = score(run_cli, mlflow_server, experiment, output, "--model-uri", f"models:/{model}", "--mode", "overwrite")
    assert latest.exit_code == 0, latest.stderr
    assert (latest.summary["model_version"], latest.summary["model_run_id"]) == ("2", second.run_id)

    # No --model-uri: the champion of tracking.registered_model_name.
    default = score(
        run_cli,
        mlflow_server,
        experiment,
        output,
        "--mode",
        "overwrite",
        "--set",
        f"tracking.registered_model_name={model}",
    )
    assert default.exit_code == 0, default.stderr
    assert (default.summary["model_version"], default.summary["model_run_id"]) == ("1", first.run_id)

    unknown = score(run_cli, mlflow_server, experiment, tmp_path / "other", "--model-uri", f"models:/{model}@staging")
    assert unknown.exit_code == 2
    assert f"no version of model '{model}' has the alias 'staging'" in unknown.error_line


@pytest.mark.parametrize(
    ("uri", "version"),
    [
        ("models:/{model}/1", "1"),
        ("models:/{model}/latest", "2"),
        ("models:/{model}", "2"),
        ("models:/{model}@champion", "1"),
        ("runs:/{first_run}/model", ""),
    ],
)
def test_every_model_uri_mlflow_users_write(uri, version, registered, mlflow_server):
    """One contract: what `score --model-uri` accepts is what MLflow's own loaders take."""
    _, model, (first, second) = registered
    client = MlflowClient(mlflow_server.uri)
    client.set_registered_model_alias(model, "champion", "1")
    resolved = resolve_model(client, uri.format(model=model, first_run=first.run_id))
    assert resolved.version == version
    assert resolved.run_id == (second.run_id if version == "2" else first.run_id)
    assert resolved.artifact_path == "model"


def test_a_model_is_read_once_per_session_and_content(registered, mlflow_server, spark, tmp_path, monkeypatch):
    """A session scoring with one model again (a notebook's cells, a loop over regions) reads it once;
    another version, or the same files changed in one byte, is read anew."""
    _, model, _ = registered
    client = MlflowClient(mlflow_server.uri)
    monkeypatch.setattr(spark_models, "_models", OrderedDict())  # as in a new session
    reads: list[Path] = []
    read = spark_models._read_spark_model
    monkeypatch.setattr(spark_models, "_read_spark_model", lambda *args: reads.append(args[0]) or read(*args))

    def loaded(version: str, where: str):
        ref = resolve_model(client, f"models:/{model}/{version}")
        local = client.download_artifacts(ref.run_id, ref.artifact_path, str(tmp_path / where))
        return spark_models.load_spark_model(local, None), Path(local)

    first, first_dir = loaded("1", "a")
    again, _ = loaded("1", "b")
    other, _ = loaded("2", "c")
    assert again is first and other is not first
    edited_dir = tmp_path / "d"
    shutil.copytree(first_dir, edited_dir)
    metadata = edited_dir / "sparkml" / "metadata" / "part-00000"
    metadata.write_text(metadata.read_text() + "\n")  # the same model, in other bytes
    (metadata.parent / ".part-00000.crc").unlink()  # Hadoop would refuse the file against its old checksum
    edited = spark_models.load_spark_model(str(edited_dir), None)
    assert edited is not first and len(reads) == 3
    frame = spark.read.csv(bundled_penguins_path(), header=True, schema=BUNDLED_PENGUINS_SCHEMA).dropna()
    assert_df_equality(
        edited.transform(frame).select("prediction"), first.transform(frame).select("prediction"), ignore_nullable=True
    )


def test_the_deployed_score_job_resolves_its_model_uri(registered, mlflow_server, tmp_path):
    """The score job definition deploy renders parses with the real score parser, and its default
    --model-uri names the champion, not the latest version (which may be registered but not promoted)."""
    from synapse_ml_track.cli import build_parser
    from synapse_ml_track.cli.deploy import request_of
    from synapse_ml_track.deploy import plan

    _, model, (_, second) = registered
    config = tmp_path / "synapse.yaml"
    config.write_text(f"tracking:\n  registered_model_name: {model}\n")
    arguments = ["deploy", "--workspace", "w", "--storage-account", "acct", "--config", str(config)]
    deploy_plan = plan.make_plan(request_of(build_parser().parse_args(arguments)))
    (score_job,) = [
        s.document for s in deploy_plan.steps if getattr(s, "document", {}).get("name") == "synapse-ml-track-score"
    ]
    args = build_parser().parse_args(["score", *score_job["properties"]["jobProperties"]["args"]])
    client = MlflowClient(mlflow_server.uri)
    client.set_registered_model_alias(model, "champion", "1")
    resolved = resolve_model(client, args.model_uri)
    assert (resolved.name, resolved.version) == (model, "1")


def test_dropping_unscorable_rows_is_a_choice(run_cli, registered, mlflow_server, spark, tmp_path):
    experiment, model, _ = registered
    output = tmp_path / "scores"
    result = score(
        run_cli, mlflow_server, experiment, output, "--model-uri", f"models:/{model}/1", "--unscorable", "drop"
    )
    assert result.exit_code == 0, result.stderr
    assert (result.summary["rows_in"], result.summary["rows_scored"], result.summary["rows_unscorable"]) == (
        344,
        333,
        11,
    )
    assert spark.read.parquet(str(output)).count() == 333


def test_a_number_that_is_nan_or_infinite_is_missing_and_so_is_a_pandas_gap_in_text(
    run_cli, registered, mlflow_server, spark, tmp_path
):
    """A CSV's NaN failed the job with a raw Py4JJavaError (the assembler refuses NaN), Inf was scored
    with NaN probabilities, and a pandas frame's NaN in a text column was scored as the category 'NaN'."""
    experiment, model, _ = registered
    rows = penguins(spark).dropna().limit(4).toPandas()
    rows = rows.astype({"bill_length_mm": object, "body_mass_g": object})
    rows.loc[0, "bill_length_mm"], rows.loc[1, "body_mass_g"] = "NaN", "Inf"  # as Spark's CSV reader writes them
    rows.to_csv(tmp_path / "odd.csv", index=False)
    result = score(run_cli, mlflow_server, experiment, tmp_path / "scores", "--model-uri", f"models:/{model}/1",
                   "--input", str(tmp_path / "odd.csv"), "--output-format", "parquet")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    written = spark.read.parquet(str(tmp_path / "scores")).toPandas()
    assert written["unscorable_reason"].tolist() == ["null in bill_length_mm", "null in body_mass_g", None, None]
    assert written["prediction"].isna().tolist() == [True, True, False, False]

    frame = penguins(spark).dropna().limit(3).toPandas()
    frame.loc[0, "sex"], frame.loc[1, "flipper_length_mm"] = float("nan"), float("nan")
    predicted = smt.predict(frame, f"models:/{model}/1", spark=spark, tracking_uri=mlflow_server.uri).toPandas()
    assert predicted["unscorable_reason"].tolist() == ["null in sex", "null in flipper_length_mm", None]


def test_a_category_unseen_in_training_is_scored_as_unknown_and_counted(
    run_cli, registered, mlflow_server, spark, tmp_path
):
    """The pipeline scores every category it did not learn as one unknown category (StringIndexer's
    handleInvalid keep). An island written in lower case changed predictions, and nothing said so."""
    experiment, model, _ = registered
    rows = penguins(spark).toPandas()
    renamed = rows.index[rows.notna().all(axis=1) & (rows["island"] == "Biscoe")][:8]
    rows.loc[renamed, "island"] = "biscoe"
    rows.to_csv(tmp_path / "renamed.csv", index=False)
    result = score(run_cli, mlflow_server, experiment, tmp_path / "scores", "--model-uri", f"models:/{model}/1",
                   "--input", str(tmp_path / "renamed.csv"), "--output-format", "parquet")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.summary["rows_unseen"] == {"island": 8, "sex": 0}
    assert "unseen:          rows with a category not seen in training, scored as unknown: island 8" in result.stdout
    assert "did not see in training, scored as one unknown category: island 8 row(s)" in result.stderr
    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(result.summary["run_id"])
    assert (run.data.metrics["rows_unseen_island"], run.data.metrics["rows_unseen_sex"]) == (8, 0)


def test_a_run_key_on_an_append_into_parquet_is_refused_before_any_run(run_cli, registered, mlflow_server, tmp_path):
    """Only a Delta write can be made once per run key: a retried append into Parquet added its rows again."""
    experiment = "parquet-append-run-key"
    result = score(run_cli, mlflow_server, experiment, tmp_path / "scores", "--model-uri", f"models:/{registered[1]}/1",
                   "--output-format", "parquet", "--mode", "append", "--run-key", "n-1")  # fmt: skip
    assert result.exit_code == 2, result.stderr
    assert result.error_line.startswith("error: --run-key (run_key=...) writes once only into Delta: ")
    client = MlflowClient(mlflow_server.uri)
    assert client.search_runs([client.get_experiment_by_name(experiment).experiment_id]) == []
    assert not (tmp_path / "scores").exists()


@pytest.mark.parametrize(("drop", "observations", "written"), [(False, 1, 344), (True, 2, 333)])
def test_the_scoring_query_computes_each_output_once(drop, observations, written, registered, spark, tmp_path):
    """The per-class probabilities read one array per row (not one vector_to_array per class), and the
    counts come from one observation of the output (with drop, a second counts the input first)."""
    _, model, (first, _) = registered
    source = penguins(spark)
    columns = [c for c in source.columns if c != "species"]
    ref = ModelRef(model, "1", first.run_id)
    scores, counting = score_frame(source, columns, first.model, LABELS, ref, datetime.now(timezone.utc), drop)

    optimized = scores._jdf.queryExecution().optimizedPlan().toString()
    for i, name in enumerate(PROBABILITIES):
        assert re.search(rf"__smt_probabilities#\d+\[{i}\] AS {name}#", optimized), optimized
    assert scores._jdf.queryExecution().executedPlan().toString().count("CollectMetrics") == observations
    scores.write.parquet(str(tmp_path / "scores"))
    counts = counting.counts()
    assert (counts.rows, counts.unscorable, sum(counts.predicted.values())) == (344, 11, 333)
    assert spark.read.parquet(str(tmp_path / "scores")).count() == written


@pytest.mark.parametrize("uri", ["models:/{model}/one", "model:/{model}/1", "models:/{model}/1/extra", "runs:/{run}"])
def test_a_mistyped_model_uri_is_one_line_and_starts_no_scoring_run(uri, run_cli, registered, mlflow_server, tmp_path):
    experiment, model, (first, _) = registered
    client = MlflowClient(mlflow_server.uri)

    def scoring_runs() -> set[str]:
        return {run.info.run_id for run in client.search_runs([first.experiment_id], "tags.`smt.job` = 'score'")}

    before = scoring_runs()
    result = score(
        run_cli,
        mlflow_server,
        experiment,
        tmp_path / "scores",
        "--model-uri",
        uri.format(model=model, run=first.run_id),
    )
    assert result.exit_code == 2
    assert "is not one of models:/NAME/VERSION" in result.error_line
    assert "Traceback" not in result.stderr
    assert scoring_runs() == before


# ---- drift from the training split (synapse_ml_track/drift.py) ---------------------------------

NUMERIC_FEATURES = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]


def test_the_training_split_profile_travels_in_the_model_directory(registered, mlflow_server, tmp_path):
    _, _, (first, _) = registered
    downloaded = MlflowClient(mlflow_server.uri).download_artifacts(first.run_id, "model", str(tmp_path))
    profile = TrainingProfile.read(downloaded)
    assert profile is not None and profile.rows == first.metrics["train_rows"]
    by_name = {feature.name: feature for feature in profile.features}
    assert sorted(by_name) == sorted([*NUMERIC_FEATURES, "island", "sex"])
    length = by_name["bill_length_mm"]
    assert len(length.edges) == 9 and list(length.edges) == sorted(length.edges)
    assert len(length.shares) == 10 and sum(length.shares) == pytest.approx(1.0)
    assert all(0.05 < share < 0.15 for share in length.shares)  # deciles: about a tenth each
    # Three years: the deciles repeat them, kept once; the bin above the last (a later year) is empty.
    assert by_name["year"].edges == (2007.0, 2008.0, 2009.0) and by_name["year"].shares[-1] == 0.0
    assert set(by_name["island"].categories) == {"Biscoe", "Dream", "Torgersen"}
    assert by_name["island"].shares[-1] == 0.0  # no island outside the top categories


def test_a_shifted_feature_drifts_the_run_is_tagged_and_fail_on_drift_exits_7_after_writing(
    run_cli, registered, mlflow_server, spark, tmp_path
):
    experiment, model, _ = registered
    client = MlflowClient(mlflow_server.uri)
    data = penguins(spark)

    unchanged = score(run_cli, mlflow_server, experiment, tmp_path / "same", "--model-uri", f"models:/{model}/1")
    assert unchanged.exit_code == 0, unchanged.stderr
    assert unchanged.summary["drift"]["level"] == "ok", unchanged.summary["drift"]
    assert "drift:           ok" in unchanged.stdout
    # The bundled data holds the label (species): the model's metrics on it come from the same pass.
    labelled = unchanged.summary["labelled"]
    written = spark.read.parquet(str(tmp_path / "same")).where(F.col("prediction").isNotNull())
    right = written.where(F.col("prediction") == F.col("species")).count()
    assert labelled["rows"] == written.count() == 333
    assert labelled["accuracy"] == pytest.approx(right / 333)
    assert {"f1", "precision", "recall", "f1_Adelie"} <= set(labelled)

    deviation = data.agg(F.stddev("bill_length_mm")).first()[0]
    shifted_csv = tmp_path / "shifted.csv"
    data.withColumn("bill_length_mm", F.col("bill_length_mm") + 2 * deviation).toPandas().to_csv(
        shifted_csv, index=False
    )
    output = tmp_path / "scores"
    result = score(
        run_cli, mlflow_server, experiment, output, "--model-uri", f"models:/{model}/1",
        "--input", str(shifted_csv), "--fail-on-drift",
    )  # fmt: skip

    assert result.exit_code == 7, result.stderr
    assert result.error_line.startswith("error: drift at or over drift.fail (0.25) in bill_length_mm (PSI ")
    assert "the scores are written" in result.error_line
    drift = result.summary["drift"]  # the summary line is printed before the error
    psi_of = {name: values["psi"] for name, values in drift["features"].items()}
    assert psi_of["bill_length_mm"] > 0.25, psi_of
    assert all(value < 0.1 for name, value in psi_of.items() if name != "bill_length_mm"), psi_of
    assert drift["level"] == "fail" and drift["psi_max"] == psi_of["bill_length_mm"]
    assert spark.read.parquet(str(output)).count() == 344

    run = client.get_run(result.summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.tags["smt.drift"] == "fail"
    assert run.data.tags["smt.drift_features"] == "bill_length_mm"
    assert run.data.metrics["drift_psi_bill_length_mm"] == pytest.approx(psi_of["bill_length_mm"])
    assert run.data.metrics["drift_psi_max"] == pytest.approx(psi_of["bill_length_mm"])
    assert run.data.metrics["drift_null_change_sex"] == pytest.approx(11 / 344, abs=1e-4)  # none in training
    artifacts = {info.path for info in client.list_artifacts(run.info.run_id, "drift")}
    assert artifacts == {"drift/drift.json", "drift/drift_psi.png"}

    without_flag = score(
        run_cli, mlflow_server, experiment, tmp_path / "again", "--model-uri", f"models:/{model}/1",
        "--input", str(shifted_csv),
    )  # fmt: skip
    assert without_flag.exit_code == 0, without_flag.stderr
    assert without_flag.summary["drift"]["level"] == "fail"


def test_a_model_without_a_training_profile_scores_as_before_and_says_why_no_drift(
    run_cli, registered, mlflow_server, tmp_path
):
    experiment, _, (first, _) = registered
    client = MlflowClient(mlflow_server.uri)
    older = client.download_artifacts(first.run_id, "model", str(tmp_path))
    (Path(older) / PROFILE_FILE).unlink()  # as a model trained before profiles were recorded
    holder = client.create_run(first.experiment_id).info.run_id
    client.log_artifacts(holder, older, "model")
    client.set_terminated(holder)

    unlabelled = tmp_path / "unlabelled.csv"
    pd.read_csv(bundled_penguins_path()).drop(columns=["species"]).to_csv(unlabelled, index=False)
    result = score(
        run_cli, mlflow_server, experiment, tmp_path / "scores", "--model-uri", f"runs:/{holder}/model",
        "--input", str(unlabelled),
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.summary["drift"] is None and result.summary["rows_scored"] == 333
    assert result.summary["labelled"] is None  # no label column: nothing to backtest
    assert result.stderr.count("no drift reported") == 1
    assert "has no training profile" in result.stderr
    assert "smt.drift" not in client.get_run(result.summary["run_id"]).data.tags
