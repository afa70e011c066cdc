"""The command line is a thin layer: it starts without Spark or MLflow, and the library never imports it.
Deploy's plan runs without the Azure SDKs: only its Synapse target (synapse_target) imports them."""

import atexit
import shutil
import tempfile
from pathlib import Path

import pytest
from forked import FreshRuns

from support import REPO, imported_names

HEAVY = ("pyspark", "mlflow", "pandas", "matplotlib", "azure")
# Each case in a fresh interpreter of its own (a forked child of one probe process, tests/forked.py,
# whose parent imports nothing but json, os and sys).
CLI_CASE = """
args = case["args"]
try:
    from synapse_ml_track.cli import main
    code = main(args) if args else 0
except SystemExit as exit:
    code = exit.code
outcome = {"code": code, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(case["watched"]))}
"""
CLI_ARGS = [[], ["--help"], ["train", "--help"], ["score", "--help"], ["deploy", "--help"]]


def dry_run_args(config: Path) -> list[str]:
    return ["deploy", "--workspace", "w", "--storage-account", "acct", "--config", str(config), "--dry-run"]


_started: list[FreshRuns] = []


def start_probes() -> FreshRuns:
    """Every case of this file from one probe process, started once (tests/conftest.py starts it as
    soon as this file's tests are collected): the CLI_ARGS, then the dry run, then the plan."""
    if not _started:
        config = Path(tempfile.mkdtemp(prefix="cli-layers-")) / "job.yaml"
        atexit.register(shutil.rmtree, config.parent, ignore_errors=True)
        config.write_text("tracking:\n  experiment_name: e\n")
        cases = [{"kind": "cli", "args": args, "watched": HEAVY} for args in [*CLI_ARGS, dry_run_args(config)]]
        cases.append({"kind": "plan", "config": str(config), "watched": HEAVY})
        code = f"if case['kind'] == 'cli':\n{_indented(CLI_CASE)}\nelse:\n{_indented(PLAN_CASE)}\n"
        _started.append(FreshRuns("import sys", code, cases, cwd=REPO, timeout=120))
    return _started[0]


@pytest.fixture(scope="module")
def probes() -> dict:
    outcomes = start_probes().outcomes()
    return {"cli": outcomes[: len(CLI_ARGS)], "dry_run": outcomes[len(CLI_ARGS)], "plan": outcomes[-1]}


def _indented(code: str) -> str:
    return "\n".join("    " + line if line else line for line in code.strip().splitlines())


@pytest.mark.parametrize("index", range(len(CLI_ARGS)), ids=[" ".join(args) or "no-args" for args in CLI_ARGS])
def test_the_cli_starts_without_spark_or_mlflow(index, probes):
    outcome = probes["cli"][index]
    assert outcome["heavy"] == [] and outcome["code"] in (0, None)


def test_deploy_dry_run_imports_neither_spark_nor_mlflow(probes):
    assert probes["dry_run"] == {"code": 0, "heavy": []}


# The plan's every kind of step but the wheel's build (and the wheel's upload), against a target in
# memory that translates no errors: Azure's own are synapse_target's to translate.
PLAN_CASE = """
import contextlib
from pathlib import Path
from synapse_ml_track.deploy import plan

class InMemory:
    def __init__(self):
        self.calls = []
    def deploy_errors(self, doing, access, names):
        return contextlib.nullcontext()
    def pool_shape(self, pool):
        return plan.PoolShape("Small", 4, "memory")
    def publish_access(self):
        return plan.PublishAccess("dev@example.com", denied=())
    def upload(self, path, data):
        self.calls.append("upload")
    def put_job_definition(self, document):
        self.calls.append("job definition")
    def put_pipeline(self, document):
        self.calls.append("pipeline")
    def trigger_state(self, name):
        return None
    def put_trigger(self, document):
        self.calls.append("trigger")
    def start_trigger(self, name):
        self.calls.append("start trigger")
    def stop_trigger(self, name):
        self.calls.append("stop trigger")

request = plan.DeployRequest(workspace="w", storage_account="acct", config=Path(case["config"]))
target, deploy_plan = InMemory(), plan.make_plan(request)
assert isinstance(deploy_plan.steps[0], plan.BuildWheel) and deploy_plan.steps[1].path.endswith(".whl")
plan.preflight(target, request)
remote_steps = plan.Plan(deploy_plan.workspace, deploy_plan.base_uri, deploy_plan.steps[2:])
plan.execute(remote_steps, target, progress=lambda line: None)
outcome = {"calls": target.calls, "heavy": sorted({m.split(".")[0] for m in sys.modules} & set(case["watched"]))}
"""


def test_the_deploy_plan_runs_without_importing_azure(probes):
    assert probes["plan"] == {
        "calls": ["upload"] * 4 + ["job definition"] * 2 + ["pipeline"] * 3 + ["trigger"],
        "heavy": [],
    }


def test_library_modules_never_import_the_cli():
    for module in sorted((REPO / "synapse_ml_track").glob("*.py")):
        imported = imported_names(module)
        assert not any(name.startswith("synapse_ml_track.cli") for name in imported), f"{module.name} imports the cli"


def test_every_subcommand_has_its_own_module():
    from synapse_ml_track import cli

    modules = {Path(subcommand.__file__).stem for subcommand in cli.SUBCOMMANDS}
    assert modules == {"train", "check", "score", "report", "deploy"}
    assert all(hasattr(s, "add_parser") and hasattr(s, "run") for s in cli.SUBCOMMANDS)
