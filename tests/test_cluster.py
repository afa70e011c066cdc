"""The jobs on a real multi-process Spark cluster, shipped the way Synapse ships them.

A Spark standalone master and two workers (one core, 1 GB each) run on this machine, each its own
JVM, started with the installed pyspark's own `bin/spark-class` (tests/spark_cluster.py).
`spark-submit --master spark://…` runs jobs/train.py and jobs/score.py themselves, in client mode,
with the package only in `--py-files` as a wheel built from the source tree; the driver runs in a
scratch directory outside the checkout. Each executor is a JVM launched by a worker, in that
worker's own work directory, with its own Python workers. Training tracks to a real `mlflow
server` and registers the model; scoring uses that registered version. The checks come from the
cluster itself: the master's and workers' JSON endpoints (which worker ran which executor of which
application) and Spark's event log (which executor ran every task).

How the package reaches each process, and why the test can tell:

- The executors' and the driver's Python (PYSPARK_PYTHON, PYSPARK_DRIVER_PYTHON) is the venv's own
  interpreter with its installed packages, started with `-S`: no `.pth` file is processed, and the
  venv's editable install of this package is exactly such a file (a path finder pointing at the
  checkout). The venv's site-packages are put on PYTHONPATH instead, after everything Spark puts
  there. So `import synapse_ml_track` succeeds only from the shipped wheel; without `-S` the
  executors would silently import the checkout (tried: they do). Cheaper and as strict as a second
  venv without the package, and unlike a mount namespace hiding the checkout it needs no privileges.
  tests/cluster_probe.py checks it on the driver and on each executor.
- On YARN, and so on Synapse, every `--py-files` archive is put on the executors' PYTHONPATH.
  A standalone cluster puts only .zip/.egg/.jar files there (pyspark/context.py,
  PACKAGE_EXTENSIONS): a .whl reaches each executor's directory but not its imports. The submits
  here set `spark.executorEnv.PYTHONPATH` to the wheel's name (relative to the executor's working
  directory, where Spark fetches it), which is what YARN does. (Neither job runs this package's own
  code in an executor today: their Python tasks are pyspark's, e.g. CSV schema inference. The probe
  shows what any future UDF would get.)

Every process here shares one machine's disk, so a file only the driver has would still be
readable by the executors; on a real cluster they run on other machines. Storage both use (the
model staging dir `tracking.dfs_tmp`, the scoring input and output) is a `shared` directory, as ABFS
is on Synapse; the driver's own directories (working directory, TMPDIR, spark.local.dir) are kept
apart, and test_executors_touch_no_file_of_the_drivers reads the executors' logs for any file of
the driver's they read or wrote. The bundled data never reaches executors as a file: the driver
reads it from the wheel (the probe shows it readable there) and sends the rows.
"""

from __future__ import annotations

import re
import shutil
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from pyspark.sql import functions as F

from synapse_ml_track.spark import delta
from synapse_ml_track.spark.sources import BUNDLED_PENGUINS_SCHEMA, bundled_penguins_path

from spark_cluster import SparkCluster, read_event_log, start_spark_cluster
from support import EXPECTED_ARTIFACTS, REPO, CliResult

pytestmark = pytest.mark.minutes(4)

MODEL_NAME = "penguins-on-a-cluster"
EXPERIMENT = "on-a-cluster"
CLASSES = {"Adelie", "Chinstrap", "Gentoo"}

# About 2.5 minutes on a shared 2-core machine (three applications, seven JVMs, an MLflow server):
# it fits the default run and CI.


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> SparkCluster:
    cluster = start_spark_cluster(tmp_path_factory.mktemp("spark-cluster"), workers=2, cores=1, memory="1g")
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def wheel_only_python(tmp_path_factory) -> Path:
    """The venv's interpreter and installed packages, but none of its .pth files: synapse_ml_track
    (installed editable, through a .pth) is importable only from a wheel on the path."""
    site_packages = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    script = tmp_path_factory.mktemp("python") / "python"
    script.write_text(
        "#!/bin/sh\n"
        f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}{":".join(site_packages)}" exec "{sys.executable}" -S "$@"\n'
    )
    script.chmod(0o755)
    return script


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """Storage driver and executors both use, as they use ABFS on Synapse."""
    return tmp_path_factory.mktemp("shared")


@dataclass
class Job:
    """A spark-submit on the cluster: its result, and its directory: events/ (the event log) and
    driver/ (the driver's working directory, TMPDIR and spark.local.dir: files only the driver uses)."""

    directory: Path
    result: CliResult | None = None

    @property
    def driver_dir(self) -> Path:
        return self.directory / "driver"

    @property
    def events(self) -> Path:
        return self.directory / "events"

    @property
    def app_id(self) -> str:
        (log,) = [path for path in self.events.iterdir() if not path.name.startswith(".")]
        return log.name


@pytest.fixture(scope="module")
def submit(cluster, package_wheel, wheel_only_python, tmp_path_factory):
    """Run a script with spark-submit on the cluster, the driver in a fresh directory outside the checkout."""

    def run(script: Path, *args: str, name: str, extra_conf: dict[str, str] | None = None) -> Job:
        job = Job(tmp_path_factory.mktemp(name))
        for directory in (job.events, job.driver_dir / "tmp", job.driver_dir / "local"):
            directory.mkdir(parents=True)
        conf = {
            "spark.app.name": name,
            "spark.ui.enabled": "false",
            "spark.ui.showConsoleProgress": "false",
            "spark.executor.memory": "512m",
            "spark.executor.cores": "1",
            "spark.cores.max": "2",
            "spark.driver.memory": "1g",
            "spark.local.dir": str(job.driver_dir / "local"),
            "spark.sql.shuffle.partitions": "2",
            "spark.default.parallelism": "2",
            # Start the first job only once both executors have registered (or after 30 s).
            "spark.scheduler.minRegisteredResourcesRatio": "1.0",
            "spark.eventLog.enabled": "true",
            "spark.eventLog.dir": job.events.as_uri(),
            # What YARN does for every --py-files archive (see the module docstring).
            "spark.executorEnv.PYTHONPATH": package_wheel.name,
            **(extra_conf or {}),
        }
        environ = {
            "PYSPARK_PYTHON": str(wheel_only_python),
            "PYSPARK_DRIVER_PYTHON": str(wheel_only_python),
            "TMPDIR": str(job.driver_dir / "tmp"),
            "MLFLOW_DISABLE_TELEMETRY": "true",
        }
        job.result = cluster.submit(
            script, *args, directory=job.driver_dir, conf=conf, py_files=[package_wheel], env=environ
        )
        return job

    return run


@pytest.fixture(scope="module")
def trained(submit, mlflow_server, shared) -> Job:
    """jobs/train.py on the cluster: no --input, so the data bundled in the wheel."""
    return submit(
        REPO / "jobs" / "train.py",
        "--tracking-uri", mlflow_server.uri,
        "--experiment-name", EXPERIMENT,
        "--registered-model-name", MODEL_NAME,
        "--run-name", "train-on-a-cluster",
        "--set", f"tracking.dfs_tmp={shared / 'dfs-tmp'}",
        name="train",
    )  # fmt: skip


@pytest.fixture(scope="module")
def scored(trained, submit, mlflow_server, shared) -> Job:
    """jobs/score.py on the cluster with the version training registered, on a CSV in shared storage."""
    assert trained.result.exit_code == 0, "training failed; see test_training_on_the_cluster_tracks_and_registers"
    shutil.copy(bundled_penguins_path(), shared / "new_penguins.csv")
    return submit(
        REPO / "jobs" / "score.py",
        "--tracking-uri", mlflow_server.uri,
        "--experiment-name", EXPERIMENT,
        "--model-uri", f"models:/{MODEL_NAME}/{trained.result.summary['model_version']}",
        "--input", str(shared / "new_penguins.csv"),
        "--output-path", str(shared / "scores"),
        "--output-format", "parquet",
        "--set", f"tracking.dfs_tmp={shared / 'dfs-tmp'}",
        name="score",
    )  # fmt: skip


def assert_ran_on_both_workers(cluster: SparkCluster, job: Job) -> str:
    """The application ran one executor on each worker, and all its tasks in those executors. Returns its id."""
    app_id = job.app_id
    assert not app_id.startswith("local-"), f"the job ran in local mode ({app_id}), not on the cluster"
    assert not app_id.endswith(".inprogress"), f"the application did not end cleanly: {app_id}"
    assert cluster.completed_app(app_id)["state"] == "FINISHED"

    by_worker = cluster.executors_by_worker(app_id)
    assert len(by_worker) == 2 and all(len(executors) == 1 for executors in by_worker.values()), by_worker
    executor_ids = {str(executors[0]["id"]) for executors in by_worker.values()}

    log = read_event_log(job.events, app_id)
    added = {event["Executor ID"] for event in log if event["Event"] == "SparkListenerExecutorAdded"}
    tasks = [event for event in log if event["Event"] == "SparkListenerTaskEnd"]
    assert added == executor_ids and len(added) == 2
    # Every task ran in one of the two executors, and each of them ran some: none ran in the driver.
    assert {task["Task Info"]["Executor ID"] for task in tasks} == added
    assert all(task["Task End Reason"]["Reason"] == "Success" for task in tasks)
    return app_id


def test_driver_and_executors_import_the_package_from_the_wheel_only(submit, cluster, package_wheel):
    job = submit(REPO / "tests" / "cluster_probe.py", name="probe")
    assert job.result.exit_code == 0, job.result.stderr[-5000:]
    probe = job.result.summary
    bundled_bytes = Path(bundled_penguins_path()).stat().st_size

    driver = probe["driver"]
    assert driver["package"] == f"{package_wheel}/synapse_ml_track/__init__.py"
    assert driver["no_site"] and not driver["editable_finder"] and driver["data_bytes"] == bundled_bytes

    executors = probe["executors"]
    assert len(executors) == 2 and len({e["pid"] for e in executors}) == 2, executors
    assert len({Path(e["cwd"]).parents[2] for e in executors}) == 2, "one executor per worker"
    for executor in executors:
        assert "error" not in executor, executor
        # its own copy of the wheel, in its own work dir: <worker>/work/<app id>/<executor id>/
        assert executor["package"] == f"{executor['cwd']}/{package_wheel.name}/synapse_ml_track/__init__.py"
        assert executor["cwd"].startswith(str(cluster.root)) and Path(executor["cwd"]).parent.name == probe["app_id"]
        assert executor["executable"] == sys.executable
        assert executor["no_site"] and not executor["editable_finder"]
        assert executor["data_bytes"] == bundled_bytes
    assert_ran_on_both_workers(cluster, job)


def test_training_on_the_cluster_tracks_and_registers(trained, cluster, mlflow_server, shared):
    result = trained.result
    assert result.exit_code == 0, result.stderr[-5000:]
    summary = result.summary
    assert summary["status"] == "registered" and summary["model_version"], summary

    client = MlflowClient(mlflow_server.uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "train-on-a-cluster"
    assert {artifact.path for artifact in client.list_artifacts(run.info.run_id)} == EXPECTED_ARTIFACTS
    assert 0.9 <= run.data.metrics["accuracy"] <= 1.0
    assert run.data.metrics == pytest.approx(summary["metrics"])
    version = client.get_model_version(MODEL_NAME, summary["model_version"])
    assert version.run_id == run.info.run_id and version.status == "READY"

    app_id = assert_ran_on_both_workers(cluster, trained)
    assert run.data.tags["spark.app_id"] == app_id
    # The executors wrote the model to the staging dir on shared storage (created by that write),
    # from where the driver moved it to its local results: nothing is left there.
    assert (shared / "dfs-tmp").is_dir() and not any((shared / "dfs-tmp").iterdir())


def test_scoring_on_the_cluster_with_the_registered_model(scored, trained, cluster, mlflow_server, shared):
    result = scored.result
    assert result.exit_code == 0, result.stderr[-5000:]
    run = MlflowClient(mlflow_server.uri).get_run(result.summary["run_id"])
    assert run.info.status == "FINISHED"

    expected = pd.read_csv(shared / "new_penguins.csv")
    scores = pd.read_parquet(shared / "scores")
    assert len(scores) == len(expected)
    assert set(expected.columns) <= set(scores.columns)
    complete = scores[expected.columns.drop("species")].notna().all(axis=1)
    assert scores.loc[complete, "prediction"].notna().all() and scores.loc[~complete, "prediction"].isna().all()
    assert set(scores.loc[complete, "prediction"]) == CLASSES
    assert (scores.loc[complete, "prediction"] == scores.loc[complete, "species"]).mean() >= 0.9
    assert (scores["model_version"].astype(str) == trained.result.summary["model_version"]).all()

    assert_ran_on_both_workers(cluster, scored)
    assert not any((shared / "dfs-tmp").iterdir())


@pytest.mark.parametrize(
    "job_name",
    ["trained", "scored"],
)
def test_executors_touch_no_file_of_the_drivers(job_name, request, cluster, shared):
    """Executors read and write only shared storage, never the driver's own directories (its working
    directory, temp dir and local dir): on a real cluster those are on another machine. Scoring once
    loaded the model from the driver's temp dir through the executors (spark_models.load_spark_model now
    stages it in dfs_tmp).

    Seen in the executors' logs, where Hadoop names every file a task reads ("Input split",
    "Reading File path") or commits; that they name the shared files shows the logs are there to read."""
    job = request.getfixturevalue(job_name)
    assert job.result.exit_code == 0, job.result.stderr[-5000:]
    app_id = assert_ran_on_both_workers(cluster, job)
    files = set(re.findall(r"file:/*(/[^\s,:]+)", cluster.executor_logs(app_id)))
    assert any(path.startswith(f"{shared}/") for path in files), f"no shared file in the executors' logs: {files}"
    drivers = sorted(path for path in files if path.startswith(f"{job.driver_dir}/"))
    assert not drivers, f"executors used {len(drivers)} of the driver's files, e.g. {drivers[:3]}"


def test_delta_train_score_and_a_retried_score_on_the_cluster(spark, submit, cluster, mlflow_server, shared):
    """The Delta cycle as a cluster without Delta of its own runs it: the pinned jars in spark.jars
    and the two settings, as spark-submit --jars / --conf would pass them (a Synapse pool has both)."""
    jars = delta.local_jars()
    assert jars is not None and delta.has_delta(spark), delta.MISSING
    table = shared / "penguins-delta"
    penguins = spark.read.csv(bundled_penguins_path(), header=True, schema=BUNDLED_PENGUINS_SCHEMA)
    penguins.withColumn("id", F.monotonically_increasing_id()).coalesce(1).write.format("delta").save(str(table))
    with_delta = {"spark.jars": ",".join(jars), **delta.SESSION_CONF}
    tracking = ("--tracking-uri", mlflow_server.uri, "--experiment-name", f"{EXPERIMENT}-delta")
    staging = ("--set", f"tracking.dfs_tmp={shared / 'dfs-tmp'}")

    trained = submit(
        REPO / "jobs" / "train.py", *tracking, "--input", str(table), "--no-register", *staging,
        name="train-delta", extra_conf=with_delta,
    )  # fmt: skip
    assert trained.result.exit_code == 0, trained.result.stderr[-5000:]
    params = MlflowClient(mlflow_server.uri).get_run(trained.result.summary["run_id"]).data.params
    assert params["data.version_read"] == "0"
    assert_ran_on_both_workers(cluster, trained)

    scores = shared / "delta-scores"
    score_args = (
        *tracking, "--model-uri", trained.result.summary["model_uri"], "--input", str(table),
        "--output-path", str(scores), "--mode", "merge", "--merge-key", "id", "--run-key", "cluster-run-1", *staging,
    )  # fmt: skip
    scored = submit(REPO / "jobs" / "score.py", *score_args, name="score-delta", extra_conf=with_delta)
    assert scored.result.exit_code == 0, scored.result.stderr[-5000:]
    assert (scored.result.summary["status"], scored.result.summary["output_version"]) == ("scored", 0)
    assert_ran_on_both_workers(cluster, scored)
    retried = submit(REPO / "jobs" / "score.py", *score_args, name="rescore-delta", extra_conf=with_delta)
    assert retried.result.exit_code == 0, retried.result.stderr[-5000:]
    assert (retried.result.summary["status"], retried.result.summary["output_version"]) == ("already-written", 0)

    assert spark.read.format("delta").load(str(scores)).count() == penguins.count()
    assert spark.sql(f"DESCRIBE HISTORY delta.`{scores}`").count() == 1
