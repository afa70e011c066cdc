"""A service principal's secret and its tokens never leave the credential.

The training job runs against the AML-shaped server of tests/aml_server.py (real azureml-mlflow
plugin, real ClientSecretCredential against its fake Azure AD) with a recognisable fake
AZURE_CLIENT_SECRET, at DEBUG log level so every library logs as much as it can. Then the secret
and every access token the fake Azure AD issued are searched for in the run's params and tags, the
files of its artifacts on disk and the job's local results, the tracking database, the job's
stdout and stderr, the bodies of every request and response the server saw (except the token
POST to the fake Azure AD, which carries the secret by design, and its answer, which carries the
token), the mlflow server's log and the Spark configuration.

Artifacts travel as on Azure, through AML's run-history service and SAS-signed blob URLs of the
double; the blobs it stored are searched too.
"""

from __future__ import annotations

from pathlib import Path

from mlflow.tracking import MlflowClient


def files_under(*roots: Path) -> list[Path]:
    return [path for root in roots if root.exists() for path in sorted(root.rglob("*")) if path.is_file()]


def test_secret_and_tokens_appear_nowhere(run_cli, aml_env, aml_server, offline, spark, tmp_path):
    result = run_cli(
        "train",
        "--tracking-uri",
        aml_server.tracking_uri,
        "--experiment-name",
        "aml-secrets",
        "--registered-model-name",
        "penguins-secrets",
        "--log-level",
        "DEBUG",
    )
    assert result.exit_code == 0, result.stderr[-3000:]
    assert " DEBUG " in result.stderr  # the libraries did log at DEBUG
    secret = aml_env.secret
    tokens = list(aml_server.tokens)
    assert tokens and all(len(t) > 40 for t in tokens)
    needles = {"the client secret": secret.encode(), **{f"access token {t[:12]}…": t.encode() for t in tokens}}

    def leaks(data: bytes | str) -> list[str]:
        blob = data.encode() if isinstance(data, str) else data
        return [name for name, needle in needles.items() if needle in blob]

    run_id = result.summary["run_id"]
    run = MlflowClient(aml_server.upstream.uri).get_run(run_id)
    places: dict[str, bytes | str] = {
        "params": repr(run.data.params),
        "tags": repr(run.data.tags),
        "stdout": result.stdout,
        "stderr": result.stderr,
        "spark conf": repr(spark.sparkContext.getConf().getAll()),
    }
    artifact_dir = aml_server.artifacts.root  # the double's blob storage: every run's uploaded artifacts
    files = files_under(artifact_dir, Path(result.summary["local_result_dir"]), tmp_path / "mlruns")
    files += [aml_server.upstream.store_path, Path(aml_server.upstream.log_path)]
    assert any(path.name == "MLmodel" for path in files)
    for path in files:
        places[f"file {path}"] = path.read_bytes()
    for number, request in enumerate(aml_server.recorded()):
        label = f"request {number} {request.method} {request.path}"
        if request.kind != "token":
            places[f"{label} (body)"] = request.body
            places[f"{label} (response)"] = request.response_body
    # The job did talk to the workspace with those tokens (the test is not vacuous).
    assert len(aml_server.recorded("aml")) > 10
    assert aml_server.recorded("token")[0].body.count(b"client_secret=") == 1

    found = {place: names for place, data in places.items() if (names := leaks(data))}
    assert found == {}, f"secrets leaked: {found}"
    assert offline == []
