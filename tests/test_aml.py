"""Tracking in an Azure Machine Learning workspace, through the real azureml-mlflow plugin.

The workspace is tests/aml_server.py: an HTTPS server on 127.0.0.1 that serves MLflow only under
AML's REST prefix, demands a bearer token its own fake Azure AD issued, and refuses what AML does
not serve (`/logged-models`, the asynchronous batch endpoints), in front of a real `mlflow server`.
azure-identity's real ClientSecretCredential gets the token from that fake Azure AD.

Not emulated: AML's artifact store. The real service hands out blob-storage SAS URLs; here the
mlflow server has a plain local artifact root, so runs' artifact_uri is a local path and the client
writes artifacts to disk. Azure Resource Manager cannot be reached either: the workspace lookup
runs the real azure-ai-ml MLClient with its HTTP transport replaced by a stub that answers the one
ARM GET it makes (the ARM boundary), so azure-ai-ml's own parsing and plugin hook still run.
"""

from __future__ import annotations

import json
import logging
import os
import time

import mlflow
import pytest
import requests
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import AzureConfig, build_config
from synapse_ml_track.errors import ConfigError, CredentialError
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.spark.sources import bundled_penguins_path
from synapse_ml_track.tracking import aml
from synapse_ml_track.tracking.auth import ARM_SCOPE
from synapse_ml_track.tracking.limits import AML_LIMITS, limits_for
from synapse_ml_track.tracking.runs import RunTracker

from azure_stub import StubSession
from support import EXPECTED_ARTIFACTS, free_port


def test_training_job_tracks_and_registers_in_the_aml_workspace(run_cli, aml_env, aml_server, offline, spark, tmp_path):
    """What a tracked, registered job leaves in the workspace and how it got there; then that model
    loads back through the plugin and, trained again on the same data and seed, is compared with as
    the champion (one model for both, trained once: the training is most of the cost)."""
    staging = tmp_path / "dfs-staging"
    result = run_cli(
        "train",
        "--tracking-uri",
        aml_server.tracking_uri,
        "--experiment-name",
        "aml-e2e",
        "--registered-model-name",
        "penguins-aml",
        "--tag",
        "team=ml",
        "--run-key",
        "aml-pipeline-run-1",
        "--set",
        f"tracking.dfs_tmp={staging}",
    )
    assert result.exit_code == 0, result.stderr
    assert staging.is_dir() and not any(staging.iterdir())  # the Spark model was staged there, then cleaned up
    summary = result.summary
    assert summary["tracking_uri"] == aml_server.tracking_uri

    # What arrived, read back with a plain MlflowClient from the mlflow server behind the proxy (its
    # registry too: the job left the global registry URI on the workspace).
    client = MlflowClient(aml_server.upstream.uri, aml_server.upstream.uri)
    run = client.get_run(summary["run_id"])
    assert run.info.status == "FINISHED"
    assert run.data.params["model.type"] == "logistic_regression"
    assert run.data.params["estimator.maxIter"] == "100"
    assert set(run.data.metrics) >= {"accuracy", "f1", "f1_Adelie", "test_rows", "train_rows"}
    assert run.data.metrics == pytest.approx(summary["metrics"])
    assert run.data.tags["team"] == "ml" and run.data.tags["smt.run_key"] == "aml-pipeline-run-1"
    assert run.data.tags["smt.gate"] == "passed"
    stored = aml_server.artifacts.paths(run.info.run_id)  # in the double's blob storage, not on a local path
    assert {path.split("/", 1)[0] for path in stored} == EXPECTED_ARTIFACTS
    assert {"model/MLmodel", "model/sparkml/metadata/part-00000"} <= stored
    version = client.get_model_version("penguins-aml", summary["model_version"])
    assert version.run_id == run.info.run_id and version.status == "READY"
    assert version.source == f"runs:/{run.info.run_id}/model"
    # AML serves no aliases: the champion is the version carrying the champion tag; the path of its
    # files in the run is a tag too (AML's source is not the runs:/ URI it was registered from).
    standing = f"f1={summary['metrics']['f1']!r}"
    assert version.tags == {"smt.champion": "champion", "smt.artifact_path": "model", "smt.champion_standing": standing}

    # How it arrived: every call under the workspace prefix, with the token issued to our client.
    calls = aml_server.api_calls()
    paths = {path for _, path, _ in calls}
    assert {
        "/api/2.0/mlflow/runs/create",
        "/api/2.0/mlflow/runs/log-batch",
        "/api/2.0/mlflow/registered-models/create",
        "/api/2.0/mlflow/model-versions/create",
        "/api/2.0/mlflow/model-versions/set-tag",
        "/api/2.0/mlflow/runs/update",
    } <= paths
    assert all(r.client_id == aml_env.client_id for r in aml_server.recorded("aml")), "a request without our token"
    assert not [c for c in calls if "/logged-models" in c[1] and c[2] < 300], "AML does not serve /logged-models"
    assert not [c for c in calls if "/preview/" in c[1]], "the async batch endpoint was used"
    expected_refusals = {
        "/api/2.0/mlflow/experiments/get-by-name",  # a new experiment
        "/api/2.0/mlflow/registered-models/get",  # a new model
        "/api/2.0/mlflow/registered-models/alias",  # AML has no aliases: the champion tag is used instead
    }
    failed = [c for c in calls if c[2] >= 400 and c[1] not in expected_refusals]
    assert not failed, f"failed requests: {failed}"
    # One token for the whole job (the credential caches it), asked for the ARM scope by our client.
    token_requests = aml_server.recorded("token")
    assert len(token_requests) == 1 and token_requests[0].status == 200
    assert f"scope={requests.utils.quote(ARM_SCOPE, safe='')}" in token_requests[0].body.decode()
    assert not aml_server.recorded("other")

    # The registered model loads back through the plugin.
    aml_server.clear()
    mlflow.set_tracking_uri(aml_server.tracking_uri)
    mlflow.set_registry_uri(aml_server.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/penguins-aml/{summary['model_version']}")
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
    features = spark.read.csv(bundled_penguins_path(), header=True, inferSchema=True).dropna().drop("species")
    assert set(model.predict(features.toPandas())) == {"Adelie", "Chinstrap", "Gentoo"}
    calls = aml_server.api_calls()
    assert ("GET", "/api/2.0/mlflow/model-versions/get-download-uri", 200) in calls
    # mlflow 3 also asks for logged models while downloading; AML answers 404 and mlflow carries on.
    assert all(status == 404 for _, path, status in calls if "/logged-models" in path)

    # The same data and seed again, compared with the champion (the default): downloaded through the
    # plugin, equal, registered but not promoted.
    second = run_cli(
        "train", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", "aml-e2e",
        "--registered-model-name", "penguins-aml",
    )  # fmt: skip
    assert second.exit_code == 0, second.stderr
    assert (second.summary["status"], second.summary["promoted"]) == ("registered", False)
    assert "does not beat the champion" in second.summary["reason"]
    client = MlflowClient(aml_server.upstream.uri, aml_server.upstream.uri)
    champions = [v.version for v in client.search_model_versions("name='penguins-aml'") if "smt.champion" in v.tags]
    assert champions == [summary["model_version"]]
    assert offline == [], f"tried to reach {offline}"


def test_aml_limits_are_respected_by_chunking_and_warnings(aml_env, aml_server, caplog):
    """AML allows 50 tags and 50 metric names a run, 250 metrics a batch, names of 250 characters."""
    uri, _ = aml.connect(
        aml_server.tracking_uri, AzureConfig(authority_host=aml_server.authority), aml_env.environ, Redactor()
    )
    assert limits_for(uri) == AML_LIMITS
    client = MlflowClient(uri, uri)
    experiment_id = client.create_experiment("aml-limits")
    caplog.set_level(logging.WARNING, logger="synapse_ml_track")
    tags = {f"tag{i:02}": "v" for i in range(60)}
    tracker = RunTracker.start(client, experiment_id, "limits", tags, AML_LIMITS, Redactor())
    tracker.log_params({f"param{i:03}": i for i in range(120)})
    tracker.log_metrics({"m" * 300: 1.0, **{f"metric{i:02}": float(i) for i in range(60)}})
    tracker.finish()

    run = MlflowClient(aml_server.upstream.uri).get_run(tracker.run_id)
    assert len(run.data.tags) <= 50
    assert len(run.data.params) == 120
    assert len(run.data.metrics) == 50 and any(len(k) == 250 and k.startswith("m" * 241) for k in run.data.metrics)
    batches = [json.loads(r.body) for r in aml_server.recorded("aml") if r.path.endswith("/runs/log-batch")]
    assert [len(b.get("params", [])) for b in batches if b.get("params")] == [100, 20]
    assert all(len(b.get("metrics", [])) <= 250 for b in batches)
    warnings = " ".join(r.getMessage() for r in caplog.records)
    assert "allows 50 tags a run" in warnings and "allows 50 metric names a run" in warnings and "shortened" in warnings


def test_offline_uri_from_region_installs_the_credential_for_the_plugin(aml_env, aml_server, offline, monkeypatch):
    def no_arm(*args, **kwargs):
        raise AssertionError("with azure.region set, ARM must not be asked")

    monkeypatch.setattr("azure.ai.ml.MLClient", no_arm)
    azure = AzureConfig(
        subscription_id="sub-1",
        resource_group="rg-1",
        workspace_name="ws-1",
        region="West Europe",
        authority_host=aml_server.authority,
    )
    uri, credential = aml.connect(None, azure, aml_env.environ, Redactor())
    assert uri == (
        "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/sub-1/resourceGroups/rg-1"
        "/providers/Microsoft.MachineLearningServices/workspaces/ws-1"
    )
    # The plugin's own store for that URI uses our credential and builds the host it will call.
    from mlflow.tracking._tracking_service.utils import _get_store

    creds = _get_store(uri).get_host_creds()
    assert creds.host == (
        "https://westeurope.api.azureml.ms/mlflow/v2.0/subscriptions/sub-1/resourceGroups/rg-1"
        "/providers/Microsoft.MachineLearningServices/workspaces/ws-1"
    )
    assert aml_server.tokens[creds.token] == aml_env.client_id
    assert offline == []


def test_the_entry_point_names_the_installed_cloud_for_the_plugin(aml_env, aml_server, offline, monkeypatch):
    """Given no cloud, azureml-mlflow takes its name from AZUREML_CURRENT_CLOUD, or else asks Azure
    Resource Manager for cloud metadata (azureml/mlflow/_common/_cloud/cloud.py, _get_cloud_or_default):
    the entry point names the cloud connect installed, and the library alone writes no environment."""
    from azureml.mlflow._common._cloud.cloud import _get_cloud_or_default

    from synapse_ml_track.entrypoint import set_global_tracking_uri

    monkeypatch.setenv("AZUREML_CURRENT_CLOUD", "unset below")  # recorded, so the test's end removes it again
    monkeypatch.delenv("AZUREML_CURRENT_CLOUD")
    set_global_tracking_uri("http://127.0.0.1:5000")
    assert "AZUREML_CURRENT_CLOUD" not in os.environ  # no workspace, no cloud
    uri, _ = aml.connect(
        aml_server.tracking_uri, AzureConfig(authority_host=aml_server.authority), aml_env.environ, Redactor()
    )
    assert "AZUREML_CURRENT_CLOUD" not in os.environ
    _get_cloud_or_default()
    assert offline != []  # unnamed, the plugin looks the clouds up on the network
    offline.clear()

    set_global_tracking_uri(uri)
    assert os.environ["AZUREML_CURRENT_CLOUD"] == "AzureCloud"
    assert _get_cloud_or_default().name == "AzureCloud" and offline == []


def test_token_scope_follows_the_plugins_cloud(aml_env, aml_server):
    """The preflight token is asked for the ARM scope of the job environment's AZUREML_CURRENT_CLOUD,
    as the plugin will ask (the entry point names that cloud for it: entrypoint.set_global_tracking_uri)."""
    config = AzureConfig(authority_host=aml_server.authority)
    government = {**aml_env.environ, "AZUREML_CURRENT_CLOUD": "AzureUSGovernment"}
    with pytest.raises(CredentialError, match=r"AADSTS70011: .*https://management\.usgovcloudapi\.net/\.default"):
        aml.connect(aml_server.tracking_uri, config, government, Redactor())
    with pytest.raises(
        ConfigError, match="AZUREML_CURRENT_CLOUD is 'AzureMoonCloud'; azureml-mlflow knows AzureChinaCloud"
    ):
        aml.connect(
            aml_server.tracking_uri, config, {**aml_env.environ, "AZUREML_CURRENT_CLOUD": "AzureMoonCloud"}, Redactor()
        )


def test_explicit_uri_wins_over_the_workspace_settings(aml_env, monkeypatch):
    monkeypatch.setattr("azure.ai.ml.MLClient", lambda *a, **k: pytest.fail("no lookup when a URI is given"))
    azure = AzureConfig(subscription_id="s", resource_group="r", workspace_name="w")
    assert aml.connect("http://127.0.0.1:5000", azure, aml_env.environ, Redactor()) == ("http://127.0.0.1:5000", None)
    config = build_config(environ={"MLFLOW_TRACKING_URI": "https://mlflow.example.org", "AZURE_SUBSCRIPTION_ID": "s"})
    assert config.tracking.uri == "https://mlflow.example.org"


def test_check_finds_the_workspace_through_azure_ai_ml(run_cli, aml_env, aml_server, offline, monkeypatch):
    """No URI and no region: the tracking URI comes from MLClient(...).workspaces.get (ARM stubbed)."""
    from azure.ai.ml import MLClient

    scope = aml_server.prefix.split("/mlflow/v2.0", 1)[1]
    workspace = {
        "id": scope,
        "name": aml_server.workspace,
        "type": "Microsoft.MachineLearningServices/workspaces",
        "location": "westeurope",
        "kind": "Default",
        "properties": {
            "friendlyName": aml_server.workspace,
            "workspaceId": "4f2b9d55-1d7a-4c4e-9b52-7a8e0d3c1a10",
            "provisioningState": "Succeeded",
            "discoveryUrl": "https://westeurope.api.azureml.ms/discovery",
            "mlFlowTrackingUri": aml_server.tracking_uri,
        },
    }
    stub = StubSession([("GET", r"management\.azure\.com/subscriptions/.*", lambda sent, match: (200, workspace))])
    constructed = []

    def stubbed_client(*args, **kwargs):
        constructed.append((args, kwargs))
        return MLClient(*args, transport=stub.transport(), **kwargs)

    monkeypatch.setattr("azure.ai.ml.MLClient", stubbed_client)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", aml_server.subscription_id)
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", aml_server.resource_group)
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", aml_server.workspace)

    result = run_cli("check", "--experiment-name", "aml-lookup")
    assert result.exit_code == 0, result.stderr
    # azure-ai-ml hands back the v2.0 form of the URI (and registers a context of its own for it).
    assert f"ok: tracking server azureml://127.0.0.1:{aml_server.port}{aml_server.prefix} answers" in result.stdout
    ((args, kwargs),) = constructed
    assert args[1:] == (aml_server.subscription_id, aml_server.resource_group, aml_server.workspace)
    assert kwargs["retry_total"] <= 1 and kwargs["connection_timeout"] <= 10
    (sent,) = stub.sent
    assert sent.method == "GET" and sent.url.startswith(f"https://management.azure.com{scope}?api-version=")
    assert aml_server.tokens[sent.headers["Authorization"].removeprefix("Bearer ")] == aml_env.client_id
    assert {r.client_id for r in aml_server.recorded("aml")} == {aml_env.client_id}
    assert offline == []


def test_workspace_lookup_failure_is_one_line(run_cli, aml_env, aml_server, monkeypatch):
    class Denied:
        def __init__(self, *args, **kwargs):
            self.workspaces = self

        def get(self, name):
            raise RuntimeError(
                f"(AuthorizationFailed) The client '{aml_env.client_id}' does not have authorization to perform action "
                "'Microsoft.MachineLearningServices/workspaces/read'\nCode: AuthorizationFailed"
            )

    monkeypatch.setattr("azure.ai.ml.MLClient", Denied)
    monkeypatch.setenv("AZURE_SUBSCRIPTION_ID", "sub-x")
    monkeypatch.setenv("AZURE_RESOURCE_GROUP", "rg-x")
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "ws-x")
    result = run_cli("check")
    assert result.exit_code == 3
    assert "cannot read workspace ws-x in resource group rg-x" in result.error_line
    assert "AuthorizationFailed" in result.error_line and "Traceback" not in result.stderr


# ---- preflight: `synapse-ml-track check` -------------------------------------------------------


def test_check_passes_against_a_healthy_workspace(run_cli, aml_env, aml_server, offline):
    result = run_cli("check", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", "aml-check")
    assert result.exit_code == 0, result.stderr
    assert f"ok: tracking server {aml_server.tracking_uri} answers" in result.stdout
    assert "ok: model registry is readable" in result.stdout
    paths = {path for _, path, _ in aml_server.api_calls()}
    assert "/api/2.0/mlflow/experiments/get-by-name" in paths and "/api/2.0/mlflow/registered-models/get" in paths
    assert offline == []


def test_check_fails_fast_when_the_workspace_is_unreachable(run_cli, aml_env, aml_server):
    dead = aml_server.tracking_uri.replace(f":{aml_server.port}/", f":{free_port()}/")
    result = run_cli("check", "--tracking-uri", dead)
    assert result.exit_code == 3
    assert result.error_line.startswith(f"error: cannot reach the MLflow tracking server at {dead}")
    assert "Traceback" not in result.stderr


def test_check_names_the_credentials_when_the_workspace_answers_401(run_cli, aml_env, aml_server):
    """AML answers 401 with a JSON body of its own, which MLflow reports as INTERNAL_ERROR (status lost)."""
    aml_server.revoked = True
    result = run_cli("check", "--tracking-uri", aml_server.tracking_uri)
    assert result.exit_code == 3
    assert "refused the credentials (AuthorizationError" in result.error_line
    assert "check the service principal and its role on the workspace" in result.error_line


def test_check_names_the_role_when_the_workspace_answers_403(run_cli, aml_env, aml_server):
    aml_server.clients[aml_env.client_id].has_role = False
    result = run_cli("check", "--tracking-uri", aml_server.tracking_uri)
    assert result.exit_code == 3
    assert "refused the credentials (HTTP 403)" in result.error_line
    assert "role on the workspace" in result.error_line


def test_check_reports_a_wrong_secret_before_calling_the_workspace(run_cli, aml_env, aml_server, monkeypatch):
    monkeypatch.setenv("AZURE_CLIENT_SECRET", "smt-wrong-secret-0123456789")
    result = run_cli("check", "--tracking-uri", aml_server.tracking_uri)
    assert result.exit_code == 4
    assert "could not get an Azure AD token with the environment (client secret) credential" in result.error_line
    assert "AADSTS7000215" in result.error_line
    assert "smt-wrong-secret-0123456789" not in result.stderr + result.stdout
    assert aml_server.recorded("aml") == []


def test_check_fails_fast_when_azure_ad_is_unreachable(run_cli, aml_env, aml_server, monkeypatch):
    monkeypatch.setenv("AZURE_AUTHORITY_HOST", f"https://127.0.0.1:{free_port()}")
    result = run_cli("check", "--tracking-uri", aml_server.tracking_uri)
    assert result.exit_code == 4
    assert "could not get an Azure AD token" in result.error_line
    assert aml_server.recorded("aml") == []


# ---- throttling: AML answers 429 with Retry-After for a whole workspace (tests/aml_server.py) ---------

THROTTLED_JOB = ("--set", "tracking.max_retries=2", "--set", "tracking.request_timeout=5")


def test_a_job_waits_out_a_throttled_workspace_as_retry_after_asks(run_cli, aml_env, aml_server, offline):
    """A window of 429s longer than the job's own backoff (2 retries: about 3 s): the job waits as
    Retry-After asks, within tracking.max_retry_wait, and finishes. Real time: the waits are what is tested."""
    window = aml_server.throttle_window(seconds=12, retry_after=4, starts_at=r"/runs/log-batch$")
    result = run_cli(
        "train", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", "aml-throttled",
        "--registered-model-name", "penguins-aml-throttled", *THROTTLED_JOB, "--set", "tracking.max_retry_wait=30",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert window.ends is not None, "the window never opened"
    workspace = [r for r in aml_server.recorded() if r.kind in ("aml", "artifacts")]
    throttled = [i for i, r in enumerate(workspace) if r.status == 429]
    assert len(throttled) >= 3  # 12 s of 4 s waits
    gaps = [workspace[i + 1].at - workspace[i].at for i in throttled]
    assert min(gaps) >= 4 - 0.05, f"sent again before Retry-After had passed: {gaps}"
    assert workspace[throttled[-1] + 1].at >= window.ends  # the request after the window got through
    run = MlflowClient(aml_server.upstream.uri).get_run(result.summary["run_id"])
    assert run.info.status == "FINISHED" and result.summary["model_version"]
    assert offline == []


def test_a_model_download_outlasts_a_throttled_artifact_service(run_cli, aml_env, aml_server, offline, tmp_path):
    """The plugin's artifact client retries a 429 three times (azure-core's retry_status) and gives up
    inside a window of 429s longer than that: the job asks again as its retry policy allows and scores.
    The job failed here (exit 3, "artifact download failed: ... throttled") before downloads were retried."""
    tracking = ("--tracking-uri", aml_server.tracking_uri, "--experiment-name", "aml-throttled-download")
    trained = run_cli("train", *tracking, "--registered-model-name", "penguins-aml-download", *THROTTLED_JOB)
    assert trained.exit_code == 0, trained.stderr
    aml_server.reset()
    window = aml_server.throttle_window(seconds=8, retry_after=1, starts_at=r"/artifacts/contentinfo$")
    scored = run_cli(
        "score", *tracking, "--model-uri", "models:/penguins-aml-download/1", "--output-path", str(tmp_path / "scores"),
        *THROTTLED_JOB, "--set", "tracking.max_retry_wait=60",
    )  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    assert window.ends is not None, "the window never opened"
    downloads = [r for r in aml_server.recorded() if r.path.endswith("/artifacts/contentinfo")]
    assert sum(r.status == 429 for r in downloads) > 4  # more than one request's own four attempts
    assert "the artifact download is tried again" in scored.stderr
    assert scored.summary["rows_scored"] == 333 and offline == []


def test_a_model_upload_outlasts_a_throttled_artifact_service(run_cli, aml_env, aml_server, offline):
    """A window of 429s from the first artifact upload on, longer than the plugin's own three retries:
    the job asks again for the files the run does not hold yet, and finishes with every file stored.
    The job failed here (exit 3, "artifact upload failed: HTTP 429") before uploads were retried."""
    window = aml_server.throttle_window(seconds=8, retry_after=1, starts_at=r"/artifacts/batch/metadata$")
    result = run_cli(
        "train", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", "aml-throttled-upload",
        "--registered-model-name", "penguins-aml-upload", *THROTTLED_JOB, "--set", "tracking.max_retry_wait=60",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert window.ends is not None, "the window never opened"
    creates = [r for r in aml_server.recorded() if r.path.endswith("/artifacts/batch/metadata")]
    assert [r.status for r in creates[:4]] == [429] * 4  # the plugin's own four attempts, then it gave up
    assert "the artifact upload is tried again" in result.stderr
    assert creates[-1].status == 200 and creates[-1].at >= window.ends
    stored = aml_server.artifacts.paths(result.summary["run_id"])
    assert {path.split("/", 1)[0] for path in stored} == EXPECTED_ARTIFACTS
    assert {"model/MLmodel", "model/training_profile.json", "model/sparkml/metadata/part-00000"} <= stored
    assert offline == []


def test_a_retry_after_beyond_the_bound_fails_at_once_with_one_line(run_cli, aml_env, aml_server):
    aml_server.throttle_window(seconds=600, retry_after=3600, starts_at=r"/runs/create$")
    started = time.monotonic()
    result = run_cli(
        "train", "--tracking-uri", aml_server.tracking_uri, "--experiment-name", "aml-throttled-long",
        "--registered-model-name", "penguins-aml-throttled", *THROTTLED_JOB, "--set", "tracking.max_retry_wait=20",
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    assert result.error_line == (
        f"error: the MLflow tracking server at {aml_server.tracking_uri} asked to wait 3600 s before the next "
        "request (HTTP 429, Retry-After), more than tracking.max_retry_wait (20 s); try again later or raise "
        "tracking.max_retry_wait"
    )
    assert time.monotonic() - started < 20, "it waited instead of failing"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("through", ["azureml", "https"])
def test_a_certificate_the_job_cannot_verify_is_named_with_the_setting_that_fixes_it(
    run_cli, aml_env, aml_server, monkeypatch, through
):
    """A workspace behind a TLS-inspecting proxy, or a private endpoint with a private CA: the job does
    not trust the certificate, of Azure AD (an azureml:// URI asks for a token first) or of the
    tracking server (an https:// one). That is neither a server that is down nor a wrong URI."""
    import certifi

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certifi.where())  # the public CAs: not the double's own
    uri = aml_server.tracking_uri if through == "azureml" else f"https://127.0.0.1:{aml_server.port}"
    result = run_cli("check", "--tracking-uri", uri, "--experiment-name", "aml-tls")
    assert result.exit_code == (4 if through == "azureml" else 3), result.stderr
    assert "certificate" in result.error_line and "is not trusted (self-signed certificate)" in result.error_line
    assert "point REQUESTS_CA_BUNDLE at a bundle" in result.error_line, result.error_line
