"""`synapse-ml-track deploy`: the dry run prints a complete, ordered plan without touching Azure or
building anything; a real run executes the same steps in the same order."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from synapse_ml_track import deploy

REPO = Path(__file__).resolve().parents[1]
BASE_URI = "abfss://synapse@stdlmltrackdevabc123.dfs.core.windows.net/synapse-ml-track"
WHEEL = deploy.wheel_name(REPO)
CONFIG_TEXT = """\
tracking:
  experiment_name: penguins
  registered_model_name: penguins-classifier
azure:
  auth: keyvault
  key_vault_name: kvjbmltrackdevabc123
  key_vault_linked_service: JobKeyVault
"""
# Each step of the plan, in order: what its line must contain.
EXPECTED_STEPS = [
    ("build wheel", WHEEL),
    ("upload", f"{BASE_URI}/dist/{WHEEL}"),
    ("upload", f"{BASE_URI}/jobs/train.py"),
    ("upload", f"{BASE_URI}/jobs/score.py"),
    ("upload", f"{BASE_URI}/config/synapse.yaml"),
    ("upload", f"{BASE_URI}/data/penguins.csv"),
    ("Spark job definition 'synapse-ml-track-train'", "--config"),
    ("Spark job definition 'synapse-ml-track-score'", "--model-uri models:/penguins-classifier/latest"),
    ("pipeline 'synapse-ml-track-train-pipeline'", "--run-key @pipeline().RunId"),
]


@pytest.fixture
def config_file(tmp_path) -> Path:
    path = tmp_path / "synapse.yaml"
    path.write_text(CONFIG_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def no_azure_no_build(monkeypatch):
    """Make the Azure SDKs unimportable and a subprocess from deploy (the wheel build) an error."""
    for module in ("azure.synapse", "azure.synapse.artifacts", "azure.storage.filedatalake"):
        monkeypatch.setitem(sys.modules, module, None)

    def refuse(*args, **kwargs):
        raise AssertionError(f"deploy started a subprocess: {args}")

    monkeypatch.setattr(deploy, "subprocess", SimpleNamespace(run=refuse))


@pytest.fixture
def source_copy(tmp_path) -> Path:
    """A minimal source checkout with stand-in job scripts; a fake build writes here, not into the repository."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "setup.cfg", source)
    shutil.copytree(REPO / deploy.TEMPLATE_DIR, source / deploy.TEMPLATE_DIR)
    for script in deploy.JOB_SCRIPTS:
        (source / script).write_text(f"# stand-in for {script}\n", encoding="utf-8")
    (source / deploy.SAMPLE_DATA).parent.mkdir(parents=True)
    shutil.copy(REPO / deploy.SAMPLE_DATA, source / deploy.SAMPLE_DATA)
    return source


def deploy_args(config_file: Path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    deploy.add_arguments(parser)
    base = [
        "--workspace",
        "syn-mltrack-dev-abc123",
        "--storage-account",
        "stdlmltrackdevabc123",
        "--config",
        str(config_file),
    ]
    return parser.parse_args([*base, *extra])


def plan_lines(output: str) -> list[str]:
    return [line.split(". ", 1)[1] for line in output.splitlines() if line.strip()[:1].isdigit()]


def test_cli_routes_deploy_flags(config_file):
    from synapse_ml_track.cli import build_parser

    args = build_parser().parse_args(
        ["deploy", "--workspace", "w", "--storage-account", "acct", "--config", str(config_file), "--dry-run"]
    )
    assert (args.workspace, args.storage_account, args.dry_run) == ("w", "acct", True)


def test_dry_run_of_the_repository_prints_the_complete_ordered_plan(config_file, no_azure_no_build, capsys):
    assert deploy.run(deploy_args(config_file, "--dry-run")) == 0
    output = capsys.readouterr().out
    assert "Dry run" in output
    lines = plan_lines(output)
    assert len(lines) == len(EXPECTED_STEPS), output
    for line, (action, detail) in zip(lines, EXPECTED_STEPS):
        assert action in line and detail in line, f"expected {action!r} with {detail!r}, got {line!r}"


def test_dry_run_applies_executor_sizing(config_file, source_copy, no_azure_no_build, capsys):
    sized = deploy_args(
        config_file, "--dry-run", "--source", str(source_copy), "--executor-size", "Medium", "--num-executors", "3"
    )
    assert deploy.run(sized) == 0
    job_lines = [line for line in plan_lines(capsys.readouterr().out) if "Spark job definition" in line]
    assert len(job_lines) == 2 and all("3 x 8 cores/56g executors" in line for line in job_lines)


def test_invalid_config_stops_before_any_step(tmp_path, no_azure_no_build, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("tracking:\n  experiment_nam: typo\n", encoding="utf-8")
    assert deploy.run(deploy_args(config, "--dry-run")) != 0
    captured = capsys.readouterr()
    assert "experiment_nam" in captured.err
    assert not plan_lines(captured.out)


def test_real_deploy_without_the_sdks_names_them_and_builds_nothing(
    config_file, source_copy, no_azure_no_build, capsys
):
    assert deploy.run(deploy_args(config_file, "--source", str(source_copy))) != 0
    error = capsys.readouterr().err
    assert "azure-synapse-artifacts" in error and "azure-storage-file-datalake" in error


class RecordingTarget:
    """Stands in for SynapseTarget: records what a real deploy would send to Azure."""

    instances: list[RecordingTarget] = []

    def __init__(self, workspace: str, storage_account: str, filesystem: str) -> None:
        self.location = (workspace, storage_account, filesystem)
        self.calls: list[tuple[str, Any]] = []
        RecordingTarget.instances.append(self)

    def upload(self, path: str, data: bytes) -> None:
        self.calls.append(("upload", (path, data)))

    def put_job_definition(self, document: dict[str, Any]) -> None:
        self.calls.append(("job definition", document))

    def put_pipeline(self, document: dict[str, Any]) -> None:
        self.calls.append(("pipeline", document))


def test_real_deploy_executes_the_plan_in_order(config_file, source_copy, monkeypatch, capsys):
    built = []

    def fake_build(command, check):
        wheel_dir = Path(command[command.index("--wheel-dir") + 1])
        wheel_dir.mkdir(parents=True, exist_ok=True)
        (wheel_dir / WHEEL).write_bytes(b"wheel")
        built.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(deploy, "subprocess", SimpleNamespace(run=fake_build))
    monkeypatch.setattr(deploy, "SynapseTarget", RecordingTarget)
    RecordingTarget.instances.clear()
    assert deploy.run(deploy_args(config_file, "--source", str(source_copy))) == 0

    assert len(built) == 1 and "--no-deps" in built[0]
    (target,) = RecordingTarget.instances
    assert target.location == ("syn-mltrack-dev-abc123", "stdlmltrackdevabc123", "synapse")
    uploads = [payload[0] for kind, payload in target.calls if kind == "upload"]
    assert uploads == [
        f"synapse-ml-track/dist/{WHEEL}",
        "synapse-ml-track/jobs/train.py",
        "synapse-ml-track/jobs/score.py",
        "synapse-ml-track/config/synapse.yaml",
        "synapse-ml-track/data/penguins.csv",
    ]
    assert dict(payload for kind, payload in target.calls if kind == "upload")[
        "synapse-ml-track/config/synapse.yaml"
    ] == (CONFIG_TEXT.encode())
    artifacts = [(kind, payload["name"]) for kind, payload in target.calls if kind != "upload"]
    assert artifacts == [
        ("job definition", "synapse-ml-track-train"),
        ("job definition", "synapse-ml-track-score"),
        ("pipeline", "synapse-ml-track-train-pipeline"),
    ]
    assert [kind for kind, _ in target.calls] == ["upload"] * 5 + ["job definition", "job definition", "pipeline"]
    assert "[9/9]" in capsys.readouterr().out
