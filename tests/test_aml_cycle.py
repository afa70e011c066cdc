"""The whole job cycle against an Azure ML workspace: check, train, gate against the champion, resume
after a failure, score, report. The tracking URI comes from a config file only (no
MLFLOW_TRACKING_URI), as a Synapse job gets it.

Two workspaces run the same test:
* `double`: the strict AML double of tests/aml_server.py, through the real azureml-mlflow plugin;
* `live`: a real workspace, marked `live_aml` and run only on request (`make test-aml-live`) when the
  environment names one: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, and either
  MLFLOW_TRACKING_URI (azureml://...) or AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP,
  AZUREML_WORKSPACE_NAME and AZUREML_REGION. It leaves an experiment and a registered model named
  smt-live-<id> behind: AML cannot delete a registered model container.

Plus `make aml-double` run as users run it: its first stdout line is all a client needs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import yaml
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from synapse_ml_track.config import build_config
from synapse_ml_track.redaction import Redactor
from synapse_ml_track.tracking import aml, registry
from synapse_ml_track.vocabulary import is_aml_uri

from support import REPO

LIVE_VARIABLES = ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET")
WORKSPACE_VARIABLES = ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME", "AZUREML_REGION")


@dataclass
class Workspace:
    tracking_uri: str
    environ: dict[str, str]


def live_workspace() -> Workspace | None:
    environ = dict(os.environ)
    if os.environ.get("CI") or not all(environ.get(v) for v in LIVE_VARIABLES):
        return None
    uri = environ.get("MLFLOW_TRACKING_URI", "")
    if not is_aml_uri(uri):
        if not all(environ.get(v) for v in WORKSPACE_VARIABLES):
            return None
        uri = aml.offline_tracking_uri(
            build_config(environ={k: environ[k] for k in WORKSPACE_VARIABLES}).azure, environ
        )
    return Workspace(uri, {k: environ[k] for k in (*LIVE_VARIABLES, *WORKSPACE_VARIABLES) if environ.get(k)})


@pytest.fixture(params=["double", pytest.param("live", marks=pytest.mark.live_aml)])
def workspace(request) -> Workspace:
    if request.param == "live":
        found = live_workspace()
        if found is None:
            pytest.skip("no Azure ML workspace in the environment (see this module's docstring)")
        return found
    env = request.getfixturevalue("aml_env")
    return Workspace(request.getfixturevalue("aml_server").tracking_uri, env.environ)


def test_the_job_cycle_in_a_workspace(workspace, run_cli, monkeypatch, tmp_path):
    for name, value in workspace.environ.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    suffix = uuid.uuid4().hex[:8]
    experiment, model = f"smt-live-{suffix}", f"smt-live-{suffix}"
    config = tmp_path / "job.yaml"
    config.write_text(yaml.safe_dump({
        "tracking": {"uri": workspace.tracking_uri, "experiment_name": experiment, "registered_model_name": model},
    }))  # fmt: skip

    def cli(*args: str):
        return run_cli(*args[:1], "--config", str(config), *args[1:])

    checked = cli("check")
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.count("ok: ") == 3

    first = cli("train")
    assert first.exit_code == 0, first.stderr
    assert first.summary["status"] == "registered" and first.summary["model_version"] == "1"

    # The same data and seed again, compared with the champion by default: equal, so registered but not promoted.
    equal = cli("train")
    assert equal.exit_code == 0, equal.stderr
    assert (equal.summary["model_version"], equal.summary["promoted"]) == ("2", False)
    assert "does not beat the champion" in equal.summary["reason"]

    # A pipeline activity fails at registration, then is retried with the same run key.
    real_register = registry.register

    def unavailable(*args, **kwargs):
        raise MlflowException("registry briefly unavailable")

    monkeypatch.setattr(registry, "register", unavailable)
    forest = ("--run-key", f"pipeline-{suffix}", "--model-type", "random_forest", "--param", "numTrees=5")
    interrupted = cli("train", *forest, "--no-compare-to-champion")
    assert interrupted.exit_code == 3 and "the trained model and metrics are saved at" in interrupted.error_line
    monkeypatch.setattr(registry, "register", real_register)
    resumed = cli("train", *forest, "--no-compare-to-champion")
    assert resumed.exit_code == 0, resumed.stderr
    assert (resumed.summary["model_version"], resumed.summary["promoted"]) == ("3", True)
    again = cli("train", *forest, "--no-compare-to-champion")  # the same activity once more
    assert again.summary["status"] == "reused" and again.summary["run_id"] == resumed.summary["run_id"]

    # What the workspace holds, read back through the plugin.
    uri, _ = aml.connect(workspace.tracking_uri, build_config().azure, os.environ, Redactor())
    client = MlflowClient(uri, uri)
    experiment_id = resumed.summary["experiment_id"]
    keyed = client.search_runs([experiment_id], f"tags.smt.run_key = 'pipeline-{suffix}'")
    assert [(r.info.run_id, r.info.status) for r in keyed] == [(resumed.summary["run_id"], "FINISHED")]
    assert registry.champion_version(client, model, "champion") == "3"
    versions = {v.version: v.run_id for v in registry.all_versions(client, model)}
    assert versions == {"1": first.summary["run_id"], "2": equal.summary["run_id"], "3": resumed.summary["run_id"]}

    scores = tmp_path / "scores"
    scored = cli("score", "--output-path", str(scores), "--output-format", "parquet")
    assert scored.exit_code == 0, scored.stderr
    assert scored.summary["model_version"] == "3" and scored.summary["rows_scored"] > 300
    output = pd.read_parquet(scores)
    assert set(output["model_version"]) == {"3"}
    scorable = output["unscorable_reason"].isna()
    assert set(output.loc[scorable, "prediction"]) <= {"Adelie", "Chinstrap", "Gentoo"}
    assert output.loc[~scorable, "prediction"].isna().all()

    reported = cli(
        "report", "--experiment", experiment, "--model-name", model, "--output-dir", str(tmp_path / "report")
    )
    assert reported.exit_code == 0, reported.stderr
    table = pd.read_csv(tmp_path / "report" / "runs.csv", dtype=str)
    assert len(table) == 3  # three training runs: the resumed one counts once
    assert set(table["model_version"].fillna("")) == {"1", "2", "3"}
    assert dict(zip(table["model_version"], table["aliases"].fillna(""), strict=True))["3"] == "champion"


def test_the_standalone_double_serves_a_job_from_its_first_line(run_cli, monkeypatch, tmp_path):
    """`make aml-double`: the JSON line it prints first is everything a client needs."""
    process = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "aml_server.py"), "--state-dir", str(tmp_path / "double")],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        first_line = json.loads(process.stdout.readline())
        for name, value in first_line["env"].items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
        common = ("--tracking-uri", first_line["tracking_uri"], "--experiment-name", "standalone")
        checked = run_cli("check", *common)
        assert checked.exit_code == 0, checked.stderr
        trained = run_cli("train", *common, "--run-key", "nightly")
        assert trained.exit_code == 0, trained.stderr
        again = run_cli("train", *common, "--run-key", "nightly")
        assert again.exit_code == 0 and again.summary["status"] == "reused"
        scored = run_cli("score", *common, "--output-path", str(tmp_path / "scores"), "--output-format", "parquet")
        assert scored.exit_code == 0, scored.stderr
        reported = run_cli("report", *common, "--output-dir", str(tmp_path / "report"))
        assert reported.exit_code == 0, reported.stderr
        assert Path(tmp_path / "report" / "runs.csv").is_file()
    finally:
        process.terminate()
        process.wait(timeout=30)
