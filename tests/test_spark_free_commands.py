"""`check` and `report` run in a process where Spark cannot be imported (tests/spark_free.py)."""

from mlflow.tracking import MlflowClient
from spark_free import without_spark

from synapse_ml_track.vocabulary import JOB_TAG, TASK_PARAM, TRAIN_JOB


def test_check_and_report_run_without_spark(mlflow_server, tmp_path):
    """`check` and `report`, end to end against a real MLflow server, in a process without Spark."""
    client = MlflowClient(mlflow_server.uri)
    experiment = f"spark-free-{tmp_path.name}"
    experiment_id = client.create_experiment(experiment)
    run = client.create_run(experiment_id, tags={JOB_TAG: TRAIN_JOB})
    client.log_param(run.info.run_id, TASK_PARAM, "classification")
    client.log_metric(run.info.run_id, "f1", 0.9)
    client.set_terminated(run.info.run_id)
    common = ("--tracking-uri", mlflow_server.uri, "--experiment-name", experiment)

    assert without_spark(args=("check", *common), cwd=tmp_path) == {"code": 0, "requests": []}
    assert without_spark(args=("report", *common, "--output-dir", str(tmp_path)), cwd=tmp_path) == {
        "code": 0,
        "requests": [],
    }
    assert (tmp_path / "runs.csv").read_text().count(run.info.run_id) == 1
