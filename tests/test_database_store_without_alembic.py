"""On the Synapse runtime's packages no database store opens (issue 21, defect 14).

The runtime ships mlflow-skinny and SQLAlchemy but no Alembic, which MLflow's database stores import
(mlflow/store/db/utils.py). With no tracking configured, or a database URI (sqlite, postgresql...)
given, every subcommand that opens tracking says in one line how to configure tracking (exit 2),
and creates nothing. Alembic is absent for real in the runtime environment (RUNTIME_TESTS in the
Makefile); the main environment has it, so the fixture below makes importing it fail there too.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest

SUBCOMMANDS = {
    "check": ("check",),
    "train": ("train",),
    "score": ("score", "--output-path", "scores"),
    "report": ("report",),
}
WAYS_TO_CONFIGURE = (
    "tracking.uri", "--tracking-uri", "MLFLOW_TRACKING_URI",
    "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME",
)  # fmt: skip


@pytest.fixture
def without_alembic(monkeypatch):
    """Importing alembic fails, as on a Synapse pool; no AML workspace in the environment."""
    if importlib.util.find_spec("alembic") is not None:  # the main environment: hide it
        monkeypatch.setitem(sys.modules, "alembic", None)
    for name in ("AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME", "AZUREML_REGION"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("command", SUBCOMMANDS.values(), ids=SUBCOMMANDS.keys())
def test_no_tracking_configured_names_the_ways_to_configure_it(command, run_cli, without_alembic, tmp_path):
    result = run_cli(*command)
    assert result.exit_code == 2, result.stderr
    assert "no tracking URI is configured" in result.error_line and "lost with the cluster" in result.error_line
    assert all(way in result.error_line for way in WAYS_TO_CONFIGURE), result.error_line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", SUBCOMMANDS.values(), ids=SUBCOMMANDS.keys())
@pytest.mark.parametrize("given_by", ["flag", "environment"])
def test_a_database_tracking_uri_is_refused_in_one_line(
    command, given_by, run_cli, without_alembic, monkeypatch, tmp_path
):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    if given_by == "flag":
        result = run_cli(*command, "--tracking-uri", uri)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
        result = run_cli(*command)
    assert result.exit_code == 2, result.stderr
    assert result.error_line.startswith("error: tracking URI scheme 'sqlite' is a database store, which needs alembic")
    assert all(way in result.error_line for way in WAYS_TO_CONFIGURE), result.error_line
    assert list(tmp_path.iterdir()) == []
