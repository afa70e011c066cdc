"""The command line is a thin layer: it starts without Spark or MLflow, and the library never imports it.
Deploy's plan runs without the Azure SDKs: only its Synapse target (synapse_target) imports them."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from support import REPO

HEAVY = ("pyspark", "mlflow", "pandas", "matplotlib", "azure")
PROBE = """
import json, sys
args, watched = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
try:
    from synapse_ml_track.cli import main
    code = main(args) if args else 0
except SystemExit as exit:
    code = exit.code
print(json.dumps({"code": code, "heavy": sorted({m.split(".")[0] for m in sys.modules} & watched)}))
"""


def imported_by(*args: str) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(list(args)), json.dumps(HEAVY)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [[], ["--help"], ["train", "--help"], ["score", "--help"], ["deploy", "--help"]])
def test_the_cli_starts_without_spark_or_mlflow(args):
    outcome = imported_by(*args)
    assert outcome["heavy"] == [] and outcome["code"] in (0, None)


def test_deploy_dry_run_imports_neither_spark_nor_mlflow(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("tracking:\n  experiment_name: e\n")
    outcome = imported_by(
        "deploy", "--workspace", "w", "--storage-account", "acct", "--config", str(config), "--dry-run"
    )
    assert outcome == {"code": 0, "heavy": []}


# The plan's every kind of step but the wheel's build (and the wheel's upload), against a target in
# memory that translates no errors: Azure's own are synapse_target's to translate.
PLAN_PROBE = """
import contextlib, json, sys
from pathlib import Path
from synapse_ml_track.deploy import plan as deploy

class InMemory:
    def __init__(self):
        self.calls = []
    def deploy_errors(self, doing, access, names):
        return contextlib.nullcontext()
    def pool_shape(self, pool):
        return deploy.PoolShape("Small", 4, "memory")
    def publish_access(self):
        return deploy.PublishAccess("dev@example.com", denied=())
    def upload(self, path, data):
        self.calls.append("upload")
    def put_job_definition(self, document):
        self.calls.append("job definition")
    def put_pipeline(self, document):
        self.calls.append("pipeline")

request = deploy.DeployRequest(workspace="w", storage_account="acct", config=Path(sys.argv[1]))
target, plan = InMemory(), deploy.make_plan(request)
assert isinstance(plan.steps[0], deploy.BuildWheel) and plan.steps[1].path.endswith(".whl")
deploy.preflight(target, request)
deploy.execute(deploy.Plan(plan.workspace, plan.base_uri, plan.steps[2:]), target, progress=lambda line: None)
watched = set(json.loads(sys.argv[2]))
print(json.dumps({"calls": target.calls, "heavy": sorted({m.split(".")[0] for m in sys.modules} & watched)}))
"""


def test_the_deploy_plan_runs_without_importing_azure(tmp_path):
    config = tmp_path / "job.yaml"
    config.write_text("tracking:\n  experiment_name: e\n")
    result = subprocess.run(
        [sys.executable, "-c", PLAN_PROBE, str(config), json.dumps(HEAVY)],
        capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"calls": ["upload"] * 4 + ["job definition"] * 2 + ["pipeline"], "heavy": []}


def test_library_modules_never_import_the_cli():
    for module in sorted((REPO / "synapse_ml_track").glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        assert not any(name.startswith("synapse_ml_track.cli") for name in imported), f"{module.name} imports the cli"


def test_every_subcommand_has_its_own_module():
    from synapse_ml_track import cli

    modules = {Path(subcommand.__file__).stem for subcommand in cli.SUBCOMMANDS}
    assert modules == {"train", "check", "score", "report", "deploy"}
    assert all(hasattr(s, "add_parser") and hasattr(s, "run") for s in cli.SUBCOMMANDS)
