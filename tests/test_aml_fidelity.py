"""The jobs against Azure ML as it really behaves: each test here names a defect the lenient double hid.

The workspace is the strict double of tests/aml_server.py (artifacts through AML's run-history
service and SAS blob URLs, AML's filter grammar and limits, no aliases, `mlflow.source.*` tags
dropped at run creation, small search pages), reached only through the real azureml-mlflow plugin
with the tracking URI given as a flag: no MLFLOW_TRACKING_URI, as on a Synapse pool. Azure AD is
the double's; Azure Resource Manager and the managed identity's token service are not reachable
here and are stood in for where a test says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import types
import uuid
from pathlib import Path

import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import AzureConfig
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark import search as search_module
from synapse_ml_track.tracking import aml, registry, run_keys
from synapse_ml_track.tracking.limits import AML_LIMITS
from synapse_ml_track.tracking.runs import RunTracker
from synapse_ml_track.vocabulary import (
    ARTIFACT_PATH_TAG,
    CHAMPION_STANDING_TAG,
    CHAMPION_TAG,
    ERROR_TAG,
    JOB_TAG,
    RUN_KEY_TAG,
)

from aml_server import AML_401_BODY, API, AmlServer, RunLimits
from fault_proxy import FaultProxy, Rule
from support import REPO, train, unique

EVALUATION_FILES = {
    "classification_report.json",
    "classification_report.txt",
    "confusion_matrix.png",
    "coefficients.json",
}


def upstream(server) -> MlflowClient:
    """The real mlflow server behind the double: what the workspace stored, read without AML's rules."""
    return MlflowClient(server.upstream.uri, server.upstream.uri)


def aml_client(server, env) -> MlflowClient:
    """A client through the plugin, as a user's notebook would make one (global URIs set)."""
    uri, _ = aml.connect(server.tracking_uri, AzureConfig(authority_host=server.authority), env.environ, Redactor())
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(uri, uri)


# ---- defect 1: artifacts go through AML's artifact service -------------------------------------------


def test_artifacts_are_uploaded_through_the_aml_artifact_service(run_cli, aml_env, aml_server, offline):
    """Defect 1: the plugin's artifact repository takes its credentials from the *global* tracking URI
    (azureml/mlflow/_store/artifact/utils.py, get_service_context). Without it: "An authorization
    token was not set in the artifact uri" (mlflow/mlflow#9495).

    Defect 6, on the same run (one training for both): AML drops mlflow.source.* tags given at run
    creation (Azure/azure-sdk-for-python#45207)."""
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    result = train(run_cli, aml_server, unique("artifacts"), unique("m"), "--no-register")
    assert result.exit_code == 0, result.stderr
    run_id = result.summary["run_id"]
    stored = aml_server.artifacts.paths(run_id)
    assert EVALUATION_FILES <= stored
    assert {"model/MLmodel", "model/requirements.txt"} <= stored and any(p.startswith("model/sparkml/") for p in stored)
    # Each file was announced to the run-history service, then written to blob storage with its SAS.
    puts = [r for r in aml_server.recorded("blob") if r.method == "PUT"]
    assert len(puts) == len(stored) and all(r.status == 201 for r in puts)
    assert all(r.status == 200 for r in aml_server.recorded("artifacts"))
    assert offline == []
    # Defect 6: the source tags survive run creation.
    if not commit:
        pytest.skip("not a git checkout: the job knows no commit to tag (the artifacts were checked)")
    assert upstream(aml_server).get_run(run_id).data.tags["mlflow.source.git.commit"] == commit


# ---- defect 2: the registry preflight uses calls AML accepts -----------------------------------------


def test_check_and_registration_use_registry_calls_aml_accepts(run_cli, aml_env, aml_server, offline):
    """Defect 2: MLflow 3 appends tag.`mlflow.prompt.is_prompt` != 'true' to every registered-model
    search (mlflow/tracking/_model_registry/client.py); AML refuses it (Azure/azure-sdk-for-python#42155)."""
    model = unique("checked")
    result = run_cli("check", "--tracking-uri", aml_server.tracking_uri, "--registered-model-name", model)
    assert result.exit_code == 0, result.stderr
    assert "ok: model registry is readable" in result.stdout
    refused = [call for call in aml_server.api_calls() if call[2] == 400]
    assert refused == []
    assert ("GET", f"{API}/registered-models/get", 404) in aml_server.api_calls()  # no such model yet: fine


# ---- defect 3: a resumed run does not re-upload into write-once storage --------------------------------


def test_resumed_run_uploads_no_artifact_twice(run_cli, aml_env, aml_server, offline, monkeypatch):
    """Defect 3: AML run artifacts are write-once ("UserError: Resource Conflict", raised by the plugin
    as a bare Exception: run_artifact_client.py). A run resumed by its run key must not re-upload."""
    experiment, model = unique("resume"), unique("resumed")
    real_register = registry.register

    def unavailable(*args, **kwargs):
        raise MlflowException("registry briefly unavailable")

    monkeypatch.setattr(registry, "register", unavailable)
    failed = train(run_cli, aml_server, experiment, model, "--run-key", "activity-9")
    assert failed.exit_code == 3 and "the trained model and metrics are saved at" in failed.error_line
    monkeypatch.setattr(registry, "register", real_register)

    resumed = train(run_cli, aml_server, experiment, model, "--run-key", "activity-9")
    assert resumed.exit_code == 0, resumed.stderr
    run_id = resumed.summary["run_id"]
    conflicts = [r for r in aml_server.recorded("artifacts") if b"Resource Conflict" in r.response_body]
    assert conflicts == []
    run = upstream(aml_server).get_run(run_id)
    assert run.info.status == "FINISHED" and ERROR_TAG not in run.data.tags
    versions = upstream(aml_server).search_model_versions(f"name='{model}'")
    assert [(v.version, v.run_id) for v in versions] == [("1", run_id)]
    assert {"model/MLmodel", *EVALUATION_FILES} <= aml_server.artifacts.paths(run_id)


def fail_then_resume(run_cli, aml_server, monkeypatch, failing_upload, experiment, model, run_key):
    """Train with `failing_upload` as RunTracker.log_artifacts (exit 3), then again with the real one:
    the second attempt resumes the run by its key and finishes."""
    real_log_artifacts = RunTracker.log_artifacts
    monkeypatch.setattr(RunTracker, "log_artifacts", failing_upload)
    failed = train(run_cli, aml_server, experiment, model, "--run-key", run_key)
    assert failed.exit_code == 3, failed.stderr
    monkeypatch.setattr(RunTracker, "log_artifacts", real_log_artifacts)
    resumed = train(run_cli, aml_server, experiment, model, "--run-key", run_key)
    assert resumed.exit_code == 0, resumed.stderr
    return resumed


def test_a_resumed_runs_version_is_scored_from_its_own_model_files(
    run_cli, aml_env, aml_server, offline, monkeypatch, tmp_path
):
    """Issue 21, defect 5b: the first attempt dies halfway through uploading `model/`; the resumed one
    uploads `model-2` and registers it. AML does not echo `runs:/<run>/model-2` back as the source (the
    double answers AML's own form), so the version must not be traced to the old, partial `model/`."""
    experiment, model = unique("partial"), unique("partial-model")
    real_log_artifacts = RunTracker.log_artifacts

    def dies_mid_model(self, local_dir, artifact_path=None, skip=frozenset(), **options):
        if artifact_path != "model":
            return real_log_artifacts(self, local_dir, artifact_path, skip, **options)
        self.client.log_artifact(self.run_id, str(local_dir / "MLmodel"), "model")
        raise MlflowException("connection dropped during the upload")

    resumed = fail_then_resume(run_cli, aml_server, monkeypatch, dies_mid_model, experiment, model, "activity-12")
    run_id = resumed.summary["run_id"]
    stored = aml_server.artifacts.paths(run_id)
    assert "model/MLmodel" in stored and not any(p.startswith("model/sparkml/") for p in stored)  # the partial one
    assert any(p.startswith("model-2/sparkml/") for p in stored)
    client = aml_client(aml_server, aml_env)
    details = client.get_model_version(model, resumed.summary["model_version"])
    assert not details.source.startswith("runs:/")
    assert registry.model_source(details) == (run_id, "model-2")

    scored = run_cli(
        "score", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", experiment,
        "--model-uri", f"models:/{model}/{resumed.summary['model_version']}", "--output-path", str(tmp_path / "scores"),
    )  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    assert scored.summary["rows_scored"] > 300
    assert offline == []


def test_files_an_interrupted_upload_left_empty_do_not_stop_the_resumed_run(
    run_cli, aml_env, aml_server, offline, monkeypatch, tmp_path
):
    """Seen in the 50-job soak: a job killed between AML creating its files' entries and their content
    reaching the blob store leaves entries that AML neither lists nor lets be written again. Every rerun
    of that run key failed on the same file ("the run already holds feature_importances.json"). Here the
    first attempt leaves one evaluation file (coefficients.json) and every model file empty: the resumed
    run keeps the empty evaluation file with a warning, puts the model beside the empty one (model-2) and
    registers that."""
    experiment, model = unique("ghosts"), unique("ghost-model")
    real_log_artifacts = RunTracker.log_artifacts

    def killed_mid_upload(self, local_dir, artifact_path=None, skip=frozenset(), **options):
        files = [p.relative_to(local_dir).as_posix() for p in Path(local_dir).rglob("*") if p.is_file()]
        if artifact_path is None:  # the evaluation: all but one file arrive
            aml_server.artifacts.create_empty(self.run_id, ["coefficients.json"])
            return real_log_artifacts(self, local_dir, None, {"coefficients.json"}, **options)
        aml_server.artifacts.create_empty(self.run_id, [f"{artifact_path}/{name}" for name in files])
        raise MlflowException("the driver was killed during the upload")

    resumed = fail_then_resume(run_cli, aml_server, monkeypatch, killed_mid_upload, experiment, model, "activity-31")
    assert "the run holds coefficients.json empty, left by an interrupted attempt" in resumed.stderr
    assert "model holds" in resumed.stderr and "the model goes to model-2 instead" in resumed.stderr
    run_id = resumed.summary["run_id"]
    stored = aml_server.artifacts.paths(run_id)
    # model/ keeps the files this attempt could write (Spark names its part files anew each save), not MLmodel
    assert "model/MLmodel" not in stored and "model-2/MLmodel" in stored
    assert EVALUATION_FILES - {"coefficients.json"} <= stored
    details = aml_client(aml_server, aml_env).get_model_version(model, resumed.summary["model_version"])
    assert registry.model_source(details) == (run_id, "model-2")
    scored = run_cli(
        "score", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", experiment,
        "--model-uri", f"models:/{model}/{resumed.summary['model_version']}", "--output-path", str(tmp_path / "scores"),
    )  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    assert offline == []


def test_version_searches_carry_no_tags_so_tags_are_read_per_version(aml_env, aml_server):
    """Issue 21, defect 5a: AML documents reading a version's details and editing its tags
    (how-to-manage-models-mlflow.md, support matrix), not tags in search results: the double's searches
    answer none. The champion (a tag, AML having no aliases) and each version's artifact path (a tag
    written at registration, AML's source being no runs:/ URI) are read with get_model_version."""
    client = aml_client(aml_server, aml_env)
    experiment_id = client.create_experiment(unique("tags"))
    name = unique("tagged-model")
    run_ids = [client.create_run(experiment_id).info.run_id for _ in range(2)]
    first = registry.register(client, name, run_ids[0], artifact_path="model-2")
    assert registry.promote(client, first, "champion", registry.Standing("f1", 0.9))

    (found,) = client.search_model_versions(f"name='{name}'")
    assert found.tags == {} and found.run_id == run_ids[0] and not found.source.startswith("runs:/")
    assert registry.champion_version(client, name, "champion") == "1"
    details = client.get_model_version(name, "1")
    assert details.tags == {
        CHAMPION_TAG: "champion",
        ARTIFACT_PATH_TAG: "model-2",
        CHAMPION_STANDING_TAG: "f1=0.9",
    }
    assert registry.model_source(details) == (run_ids[0], "model-2")

    second = registry.register(client, name, run_ids[1])
    assert registry.champion_version(client, name, "champion") == "1"  # registered, not promoted
    assert registry.promote(client, second, "champion", registry.Standing("f1", 0.8, beaten="1"))
    assert registry.champion_version(client, name, "champion") == "2"
    assert CHAMPION_TAG not in client.get_model_version(name, "1").tags
    assert registry.model_source(client.get_model_version(name, "2")) == (run_ids[1], "model")


def test_a_conflicting_upload_is_one_line_naming_the_path(aml_env, aml_server, tmp_path):
    """Defect 3: the plugin's bare Exception for a conflict becomes a tracking error naming the path."""
    client = aml_client(aml_server, aml_env)
    experiment_id = client.create_experiment(unique("conflict"))
    tracker = RunTracker.start(client, experiment_id, "conflict", {}, AML_LIMITS, Redactor())
    (tmp_path / "report.txt").write_text("first")
    tracker.log_artifacts(tmp_path)
    with pytest.raises(Exception) as raised:
        tracker.log_artifacts(tmp_path)
    from synapse_ml_track.tracking.failures import describe_failure

    line = describe_failure(raised.value, aml_server.tracking_uri)
    assert "report.txt" in line and "write-once" in line and "\n" not in line


# ---- defect 4: AML's documented limits, and a failed run always ends ---------------------------------


def test_aml_limits_are_the_documented_ones():
    """Defect 4: tracking.AML_LIMITS must be MicrosoftDocs' resource-limits-capacity.md ("Runs",
    "Metrics"), the same numbers the double enforces."""
    documented = RunLimits()
    assert AML_LIMITS.tags_per_run == documented.tags_per_run == 50
    assert AML_LIMITS.tag_key_length == documented.tag_key_length == 100
    assert AML_LIMITS.tag_value_length == documented.tag_value_length == 1000
    assert AML_LIMITS.metric_names_per_run == documented.metric_names_per_run == 50
    assert AML_LIMITS.metrics_per_batch == documented.metrics_per_batch == 250
    assert AML_LIMITS.params_per_run == documented.params_per_run == 200


def test_a_long_error_fits_the_error_tag_and_the_run_ends_failed(aml_env, aml_server):
    """Defect 4: the error tag is cut to AML's 1,000 characters, so the run is marked FAILED with it."""
    client = aml_client(aml_server, aml_env)
    tracker = RunTracker.start(client, client.create_experiment(unique("long-error")), "e", {}, AML_LIMITS, Redactor())
    tracker.fail("x" * 5000)
    run = upstream(aml_server).get_run(tracker.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags[ERROR_TAG] == "x" * 1000


def test_a_refused_error_tag_does_not_leave_the_run_running(aml_env, aml_server):
    """Defect 4: setting the error tag and ending the run must not share one failure. Here the run
    already holds AML's 50 tags, so the 51st (the error) is refused; the run still ends FAILED."""
    client = aml_client(aml_server, aml_env)
    tracker = RunTracker.start(client, client.create_experiment(unique("full")), "full", {}, AML_LIMITS, Redactor())
    present = len(upstream(aml_server).get_run(tracker.run_id).data.tags)
    for i in range(50 - present):
        client.set_tag(tracker.run_id, f"filler{i:02}", "v")
    tracker.fail("boom")
    run = upstream(aml_server).get_run(tracker.run_id)
    assert run.info.status == "FAILED" and ERROR_TAG not in run.data.tags


# ---- defect 5: artifact transfers are bounded ------------------------------------------------------


@pytest.mark.timeout(240)
def test_an_unanswering_storage_account_fails_the_job_within_its_bound(run_cli, aml_env, aml_server):
    """Defect 5: artifact transfers go through azure-core (300 s timeouts, their own retries), not
    MLflow's bounded HTTP layer. A storage account that never answers must fail the job in bounded
    time, one line, the run FAILED and the result kept locally."""
    aml_server.artifacts.hang_blob_requests = True
    experiment = unique("hang")
    result = train(
        run_cli, aml_server, experiment, unique("m"),
        "--set", "tracking.request_timeout=3", "--set", "tracking.max_retries=1",
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    assert "artifact upload" in result.error_line and "did not finish within" in result.error_line
    assert "the trained model and metrics are saved at" in result.error_line
    stored = upstream(aml_server)
    found = stored.search_runs([stored.get_experiment_by_name(experiment).experiment_id])
    assert [r.info.status for r in found] == ["FAILED"]


@pytest.mark.timeout(300)
def test_a_job_past_its_artifact_deadline_ends_its_process_within_seconds(aml_env, aml_server, tmp_path):
    """The plugin uploads through a ThreadPoolExecutor, and CPython joins every executor worker at
    exit: a job that gave up on a storage account that does not answer printed its error, then its
    process went on uploading into a FAILED run for as long as azure-storage's timeouts and retries
    allowed. Run as a job process, the way it is deployed: it must end soon after its error line."""
    aml_server.artifacts.hang_blob_requests = True
    command = [
        str(Path(sys.executable).with_name("synapse-ml-track")), "train",
        "--tracking-uri", aml_server.tracking_uri, "--experiment-name", unique("deadline"),
        "--registered-model-name", unique("m"),
        "--set", "tracking.request_timeout=3", "--set", "tracking.max_retries=1",
    ]  # fmt: skip
    job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        error_line = next((line for line in job.stderr if line.startswith("error: ")), "")
        said_at = time.monotonic()
        code = job.wait(timeout=240)
        ended_after = time.monotonic() - said_at
    finally:
        job.kill()
    assert "artifact upload" in error_line and "did not finish within" in error_line, error_line
    assert code == 3
    # The uploads it abandoned would have run for minutes (each file: three attempts of 3 s and more).
    assert ended_after < 20, f"the job's process ended {ended_after:.0f} s after its error line"


# ---- defect 6: source tags, the cloud's host, pagination, dfs_tmp -------------------------------------


def test_registry_and_run_searches_follow_page_tokens(aml_env, aml_server):
    """Defect 6: AML returns results a page at a time; every search must follow next_page_token.
    The double serves two results a page here."""
    client = aml_client(aml_server, aml_env)
    experiment_id = client.create_experiment(unique("paged"))
    name = unique("paged-model")
    client.create_registered_model(name)
    run_ids = []
    for i in range(5):
        run = client.create_run(experiment_id, tags={RUN_KEY_TAG: "shared-key", JOB_TAG: "train"}, start_time=1_000 + i)
        run_ids.append(run.info.run_id)
        client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    client.set_model_version_tag(name, "1", CHAMPION_TAG, "champion")
    aml_server.page_size = 2
    try:
        assert registry.champion_version(client, name, "champion") == "1"
        assert registry.version_for_run(client, name, run_ids[0]).version == "1"
        assert run_keys.find_keyed_run(client, experiment_id, "shared-key", "train").info.run_id == run_ids[-1]
    finally:
        aml_server.page_size = 20


def test_loading_a_model_leaves_no_copy_in_dfs_tmp(run_cli, aml_env, aml_server, spark, tmp_path, monkeypatch):
    """Defect 6: mlflow.spark.load_model copies a local model to dfs_tmp whenever the cluster's default
    filesystem is not the local disk (ABFS on Synapse) and never deletes it. Here the default
    filesystem is a Hadoop viewfs on which the driver's /tmp (where the model is downloaded) is an
    empty directory and /staging is the staging directory, as on Synapse; the local master's
    executors read the downloaded model itself (a file: URI), and a cluster's copy is removed
    (tests/test_cluster.py)."""
    from mlflow.spark import _HadoopFileSystem

    model = unique("dfs")
    trained = train(run_cli, aml_server, unique("dfs"), model)
    assert trained.exit_code == 0, trained.stderr
    staging, elsewhere = tmp_path / "staging", tmp_path / "not-the-driver-disk"
    staging.mkdir()
    elsewhere.mkdir()
    hadoop = spark.sparkContext._jsc.hadoopConfiguration()
    hadoop.set("fs.viewfs.mounttable.smt.link./staging", staging.as_uri())
    hadoop.set("fs.viewfs.mounttable.smt.link./tmp", elsewhere.as_uri())
    hadoop.set("fs.defaultFS", "viewfs://smt/")
    monkeypatch.setattr(_HadoopFileSystem, "_filesystem", None)  # mlflow caches the first default filesystem
    try:
        scored = run_cli(
            "score", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", unique("dfs-score"),
            "--model-uri", f"models:/{model}/1", "--output-path", (tmp_path / "scores").as_uri(),
            "--output-format", "parquet", "--set", "tracking.dfs_tmp=/staging/mlflow",
        )  # fmt: skip
    finally:
        hadoop.set("fs.defaultFS", "file:///")
        _HadoopFileSystem._filesystem = None
    assert scored.exit_code == 0, scored.stderr
    copied = [p for p in staging.rglob("*") if p.is_file()]
    assert copied == [], f"left in dfs_tmp: {copied[:3]}"


# ---- defect 7: a Synapse pool's managed identity ----------------------------------------------------


class SynapseTokenService:
    """`mssparkutils.credentials.getToken(audience)` as a Synapse pool answers it, for the workspace's
    managed identity (stand-in: the real one is a JVM TokenLibrary call that only a pool can make)."""

    def __init__(self, server, identity: str) -> None:
        self.server, self.identity, self.audiences = server, identity, []
        self.credentials = self

    def getToken(self, audience: str) -> str:  # noqa: N802 - Synapse's name
        self.audiences.append(audience)
        if audience != "AzureManagement":
            raise RuntimeError(f"audience {audience} is not what AML takes")
        return self.server.issue_token(self.identity)


def test_managed_identity_on_synapse_uses_synapses_token_service(run_cli, aml_env, aml_server, offline, monkeypatch):
    """Defect 7: azure-identity's ManagedIdentityCredential finds no endpoint inside Synapse Spark
    (Azure/azure-sdk-for-python#26997, #30726); tokens come from mssparkutils.credentials.getToken."""
    identity = "synapse-workspace-identity-" + uuid.uuid4().hex[:6]
    aml_server.add_client(identity)
    service = SynapseTokenService(aml_server, identity)
    monkeypatch.setitem(__import__("sys").modules, "notebookutils", types.SimpleNamespace(mssparkutils=service))
    for name in ("AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name)

    result = run_cli("check", "--tracking-uri", aml_server.tracking_uri, "--set", "azure.auth=managed_identity")
    assert result.exit_code == 0, result.stderr
    assert "Synapse token service (the job's own identity" in result.stdout
    assert service.audiences and set(service.audiences) == {"AzureManagement"}
    assert {r.client_id for r in aml_server.recorded("aml")} == {identity}
    assert offline == []  # no IMDS, no Azure AD: the pool's own token service only


# ---- the double refuses what AML refuses -------------------------------------------------------------


def test_the_double_answers_503_when_its_own_store_fails_not_a_wrong_not_found(aml_server, tmp_path):
    """The double looks runs up in the store behind it; when that lookup fails (here a 503 between
    the double and its store), the client gets a transient 503 it retries, not "run not found"."""
    with FaultProxy(aml_server.upstream.uri) as proxy:
        double = AmlServer(proxy.url, tmp_path).start()
        try:
            client_id = double.client_environment()["AZURE_CLIENT_ID"]
            token = double.issue_token(client_id)

            def call(method: str, url: str, **kwargs) -> requests.Response:
                # verify per request: a REQUESTS_CA_BUNDLE in the environment would win over a session's
                return requests.request(method, url, verify=str(double.ca_bundle), timeout=30,
                                        headers={"Authorization": f"Bearer {token}"}, **kwargs)  # fmt: skip

            base = f"{double.authority}{double.prefix}{API}"
            experiment_id = call("POST", f"{base}/experiments/create", json={"name": unique("store-fails")}).json()[
                "experiment_id"
            ]
            run_id = call("POST", f"{base}/runs/create", json={"experiment_id": experiment_id}).json()["run"]["info"][
                "run_id"
            ]
            listing = f"{double.authority}{double.artifacts.history_path(experiment_id, run_id)}"
            proxy.add(Rule("respond", r"/runs/get$", status=503))

            failed = call("GET", listing)
            assert failed.status_code == 503, failed.text
            assert failed.json()["error"]["innerError"]["code"] == "ServiceUnavailable"
            assert call("GET", listing).status_code == 200  # the store answers again
        finally:
            double.stop()


def test_a_connection_the_store_drops_under_the_double_drops_the_clients_at_once(aml_server, tmp_path):
    """The soak's "drop" fault closes the connection between the double and its store. The client
    must see its own connection close at once, as behind a real gateway, not wait out its read
    timeout on a live connection that will never answer (the short soak's "did not answer in time")."""
    with FaultProxy(aml_server.upstream.uri) as proxy:
        double = AmlServer(proxy.url, tmp_path).start()
        try:
            token = double.issue_token(double.client_environment()["AZURE_CLIENT_ID"])
            url = f"{double.authority}{double.prefix}{API}/experiments/get-by-name"
            proxy.add(Rule("drop", r"/experiments/get-by-name$", times=1))
            with requests.Session() as session:  # keep-alive, as MLflow's client sends
                # A read timeout (requests.ReadTimeout) is not a ConnectionError: the old double's hang fails here.
                with pytest.raises(requests.ConnectionError):
                    session.get(url, params={"experiment_name": "x"}, verify=str(double.ca_bundle), timeout=20,
                                headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                again = session.get(url, params={"experiment_name": "x"}, verify=str(double.ca_bundle), timeout=20,
                                    headers={"Authorization": f"Bearer {token}"})  # fmt: skip
                assert again.status_code == 404  # the next request is answered
        finally:
            double.stop()


def test_the_double_refuses_what_aml_refuses(aml_env, aml_server):
    """A contract test of tests/aml_server.py itself, request by request."""
    token = aml_server.issue_token(aml_env.client_id)
    base = f"{aml_server.authority}{aml_server.prefix}{API}"
    session = requests.Session()
    session.verify = str(aml_server.ca_bundle)
    session.headers["Authorization"] = f"Bearer {token}"

    def call(method: str, path: str, **kwargs) -> requests.Response:
        return session.request(method, base + path, timeout=30, **kwargs)

    experiment_id = call("POST", "/experiments/create", json={"name": unique("contract")}).json()["experiment_id"]
    refused_filter = call("GET", "/registered-models/search", params={"filter": "name='m' AND tag.`x` != 'true'"})
    assert refused_filter.status_code == 400
    assert refused_filter.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "Currently unsupported filter string format" in refused_filter.json()["Error"]["Message"]
    for body in (
        {"experiment_ids": [experiment_id], "filter": "tags.a != 'x'"},
        {"experiment_ids": [experiment_id], "filter": "tags.a = 'x' OR tags.b = 'y'"},
        {"experiment_ids": [experiment_id], "order_by": ["metrics.f1 DESC"]},
        {"experiment_ids": [experiment_id], "filter": "tags.`smt.run_key` = 'x'"},
        {"experiment_ids": [experiment_id], "filter": "tags.\"mlflow.parentRunId\" = 'x'"},
    ):
        assert call("POST", "/runs/search", json=body).status_code == 400, body
    assert call("POST", "/runs/search", json={"experiment_ids": [experiment_id], "filter": "tags.a = 'x OR y'"}).ok
    dotted = "tags.mlflow.parentRunId = 'x' AND tags.smt.run_key = 'y'"
    assert call("POST", "/runs/search", json={"experiment_ids": [experiment_id], "filter": dotted}).ok
    assert call("GET", "/registered-models/search", params={"filter": "name LIKE 'm%'"}).status_code == 400

    run = call("POST", "/runs/create", json={
        "experiment_id": experiment_id,
        "tags": [{"key": "mlflow.source.name", "value": "job.py"}, {"key": "kept", "value": "1"}],
    }).json()["run"]  # fmt: skip
    assert {t["key"] for t in run["data"]["tags"]} >= {"kept"} and "mlflow.source.name" not in {
        t["key"] for t in run["data"]["tags"]
    }
    assert run["info"]["artifact_uri"] == aml_server.run_artifact_uri(experiment_id, run["info"]["run_id"])
    run_id = run["info"]["run_id"]
    too_long = call("POST", "/runs/set-tag", json={"run_id": run_id, "key": "k", "value": "v" * 1001})
    assert too_long.status_code == 400 and "FieldName=Tags.Value, Limit=1000" in too_long.json()["Error"]["Message"]
    metrics = [{"key": f"m{i}", "value": 1.0, "timestamp": 0, "step": 0} for i in range(51)]
    assert call("POST", "/runs/log-batch", json={"run_id": run_id, "metrics": metrics}).status_code == 400
    many_values = [{"key": "m", "value": float(i), "timestamp": 0, "step": i} for i in range(251)]
    assert call("POST", "/runs/log-batch", json={"run_id": run_id, "metrics": many_values}).status_code == 400
    assert (
        call(
            "GET", "/metrics/get-history", params={"run_id": run_id, "metric_key": "m", "max_results": 25000}
        ).status_code
        == 400
    )

    call("POST", "/registered-models/create", json={"name": "contract-model"})
    alias = call(
        "POST", "/registered-models/alias", json={"name": "contract-model", "alias": "champion", "version": "1"}
    )
    assert alias.status_code == 404 and alias.content == b""

    aml_server.throttle(r"/runs/get$", times=1, retry_after=7)
    throttled = call("GET", "/runs/get", params={"run_id": run_id})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    assert call("GET", "/runs/get", params={"run_id": run_id}).ok
    # A throttled workspace: from the first matching request, everything in it answers 429 until the window ends.
    window = aml_server.throttle_window(seconds=1.0, retry_after=3, starts_at=r"/runs/get$")
    assert call("GET", "/experiments/get", params={"experiment_id": experiment_id}).ok  # not open yet
    assert call("GET", "/runs/get", params={"run_id": run_id}).status_code == 429
    elsewhere = call("GET", "/experiments/get", params={"experiment_id": experiment_id})
    assert elsewhere.status_code == 429 and elsewhere.headers["Retry-After"] == "3"
    metadata = f"{aml_server.authority}{aml_server.artifacts.history_path(experiment_id, run_id)}/batch/metadata"
    assert session.post(metadata, json={"paths": [{"path": "w.txt"}]}, timeout=30).status_code == 429
    time.sleep(max(0.0, window.ends - time.monotonic()))  # the window's own deadline, not a guess
    assert call("GET", "/experiments/get", params={"experiment_id": experiment_id}).ok

    # Artifacts: write-once paths, SAS-signed blob URLs.
    history = f"{aml_server.authority}{aml_server.artifacts.history_path(experiment_id, run_id)}"
    first = session.post(f"{history}/batch/metadata", json={"paths": [{"path": "a.txt"}]}, timeout=30).json()
    upload_url = first["artifactContentInformation"]["a.txt"]["contentUri"]
    assert ".blob.core.windows.net/azureml/ExperimentRun/dcid." in upload_url and "sig=" in upload_url
    blob = requests.Session()
    blob.verify = str(aml_server.ca_bundle)
    assert blob.put(upload_url, data=b"x", headers={"x-ms-blob-type": "BlockBlob"}, timeout=30).status_code == 201
    tampered = upload_url.replace("sp=cw", "sp=rcw")
    assert blob.put(tampered, data=b"y", headers={"x-ms-blob-type": "BlockBlob"}, timeout=30).status_code == 403
    again = session.post(f"{history}/batch/metadata", json={"paths": [{"path": "a.txt"}]}, timeout=30).json()
    assert "Resource Conflict" in again["errors"]["a.txt"]["error"]["message"]
    anonymous = requests.get(
        base + "/runs/get", params={"run_id": run_id}, verify=str(aml_server.ca_bundle), timeout=30
    )
    assert anonymous.status_code == 401 and anonymous.json() == AML_401_BODY


def test_a_search_tracks_its_candidates_as_child_runs_through_the_plugin(run_cli, aml_env, aml_server, offline):
    """Child runs are found by a tag filter AML serves (tags.mlflow.parentRunId = ..., unquoted; no OR, no
    !=) and each candidate's params and metrics go in batches within AML's limits."""
    experiment, model = unique("search"), unique("m")
    search = (
        "--run-key", "sweep-aml", "--set", "model.search.params={regParam: [0.0, 0.5]}",
        "--set", "model.search.validation=train_validation_split",
    )  # fmt: skip
    result = train(run_cli, aml_server, experiment, model, *search)
    assert result.exit_code == 0, result.stderr
    store = upstream(aml_server)
    parent_id = result.summary["run_id"]
    kids = store.search_runs([store.get_run(parent_id).info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(k.data.params["estimator.regParam"] for k in kids) == ["0.0", "0.5"]
    assert {k.info.status for k in kids} == {"FINISHED"}
    assert store.get_model_version(model, result.summary["model_version"]).run_id == parent_id
    # The same run key again: the finished search is reported, nothing is fitted or logged again.
    again = train(run_cli, aml_server, experiment, model, *search)
    assert again.exit_code == 0 and again.summary["status"] == "reused"


def test_an_interrupted_search_resumes_by_run_key_through_the_plugin(
    run_cli, aml_env, aml_server, offline, monkeypatch
):
    """The run-key lookup and the parent's child-run lookup, in the filter form AML documents
    (tags.smt.run_key, tags.mlflow.parentRunId unquoted): the resumed search reuses its finished
    candidate and fits only the one that failed."""
    experiment, model = unique("search-resume"), unique("m")
    search = (
        "--run-key", "sweep-resume", "--set", "model.search.params={regParam: [0.0, 0.5]}",
        "--set", "model.search.validation=train_validation_split",
    )  # fmt: skip
    real = search_module.validation_metrics
    fitted: list[int] = []

    def failing_at_the_second(pipeline, estimator, candidate, splits, evaluate):
        if candidate.index == 1:
            raise RuntimeError("executor lost (injected)")
        return real(pipeline, estimator, candidate, splits, evaluate)

    monkeypatch.setattr(search_module, "validation_metrics", failing_at_the_second)
    failed = train(run_cli, aml_server, experiment, model, *search)
    assert failed.exit_code == 1 and "executor lost (injected)" in failed.error_line
    monkeypatch.setattr(search_module, "validation_metrics", lambda *args: fitted.append(args[2].index) or real(*args))
    resumed = train(run_cli, aml_server, experiment, model, *search)
    assert resumed.exit_code == 0, resumed.stderr
    assert fitted == [1]  # the finished candidate was not fitted again
    store = upstream(aml_server)
    parent = store.get_run(resumed.summary["run_id"])
    assert parent.data.tags["smt.run_key"] == "sweep-resume" and parent.info.status == "FINISHED"
    kids = store.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert sorted(k.info.status for k in kids) == ["FAILED", "FINISHED", "FINISHED"]
    searched = [
        json.loads(r.body).get("filter", "") for r in aml_server.recorded("aml") if r.path.endswith("/runs/search")
    ]
    assert "tags.smt.run_key = 'sweep-resume' AND tags.smt.job = 'train'" in searched
    assert f"tags.mlflow.parentRunId = '{parent.info.run_id}'" in searched
    assert offline == []
