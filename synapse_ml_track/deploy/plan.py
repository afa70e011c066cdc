"""`synapse-ml-track deploy`: the plan that ships the jobs to an Azure Synapse workspace, and its run.

The plan, in order: build the package wheel; upload the wheel, the job scripts, the job
configuration and the bundled sample data to the workspace's ADLS Gen2 filesystem; create or
update the Spark job definitions (train, score), the training and the nightly scoring pipelines and the
scoring pipeline's schedule trigger from the templates in jobs/synapse/; with `--start-triggers`,
start the trigger. `--dry-run` prints the same plan and calls nothing.

A trigger is created stopped: a started trigger runs real jobs on its schedule. Synapse refuses to
update a started trigger ("TriggerEnabledCannotUpdate", Azure/Synapse-workspace-deployment#46), so a
trigger that runs already is stopped for the update and started again: a redeploy keeps it running.

This module is the pure part: it checks the inputs and the pool's sizing, lays out the steps and
runs them against a `Target`, and imports no Azure package. The Target that reaches Azure, and
turns Azure's errors into this module's DeployError kinds, is synapse_ml_track.deploy.synapse.
"""

from __future__ import annotations

import configparser
import json
import logging
import re
import shutil
import string
import subprocess
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from synapse_ml_track.config import build_config
from synapse_ml_track.errors import CredentialError, JobError, TrackingError, first_line

log = logging.getLogger(__name__)

# Synapse memory-optimized sizes: (cores, memory) of one executor or the driver (the executor sizes
# Microsoft's "Apache Spark pool configurations" page recommends for each node size).
EXECUTOR_SIZES = {"Small": (4, "28g"), "Medium": (8, "56g"), "Large": (16, "112g")}
# vCores of one node of each memory-optimized node size (same page): an executor must fit a node.
NODE_CORES = {"Small": 4, "Medium": 8, "Large": 16, "XLarge": 32, "XXLarge": 64, "XXXLarge": 80}
POOL_PARAMETERS = Path("infra", "main.parameters.dev.json")
TEMPLATE_DIR = Path("jobs", "synapse")
JOB_DEFINITION_TEMPLATES = ("train.sjd.json", "score.sjd.json")
PIPELINE_TEMPLATES = ("train.pipeline.json", "score.pipeline.json", "incremental-score.pipeline.json")
TRIGGER_TEMPLATES = ("score.trigger.json",)
TRIGGER_STARTED = "Started"  # a trigger's runtimeState while it runs pipelines on its schedule
JOB_SCRIPTS = ("jobs/train.py", "jobs/score.py")
SAMPLE_DATA = "synapse_ml_track/data/penguins.csv"
STORAGE_ACCOUNT_PATTERN = re.compile(r"^[a-z0-9]{3,24}$")


class DeployError(JobError):
    """The deployment cannot go ahead: an input, the configuration or the pool does not fit (exit 2)."""


class DeployAccessError(DeployError):
    """Azure does not sign the deployer in, or refuses it access: exit 4, the credentials code."""

    exit_code = CredentialError.exit_code


class DeployServiceError(DeployError):
    """An Azure service cannot be reached or fails: exit 3, the code of a service that cannot be used."""

    exit_code = TrackingError.exit_code


@dataclass(frozen=True)
class DeployRequest:
    """Where and what to deploy; see the deploy subcommand's flags for each field."""

    workspace: str
    storage_account: str
    config: Path
    filesystem: str = "synapse"
    prefix: str = "synapse-ml-track"
    spark_pool: str = "mltrack"
    model_uri: str | None = None
    executor_size: str = "Small"
    num_executors: int = 2
    pool_parameters: Path | None = None
    source: Path | None = None
    start_triggers: bool = False


@dataclass(frozen=True)
class PoolShape:
    node_size: str
    max_nodes: int
    source: str  # where the shape was read: "the pool" or a parameters file


def check_sizing(pool: PoolShape, request: DeployRequest) -> None:
    """Refuse a job the pool cannot run: an executor larger than a node, or more executors than
    worker nodes (one node runs the driver: Synapse takes 1..maxNodeCount-1 executors)."""
    pool_name, executor_size, executors = request.spark_pool, request.executor_size, request.num_executors
    cores = EXECUTOR_SIZES[executor_size][0]
    node_cores = NODE_CORES.get(pool.node_size)
    if node_cores is None:
        raise DeployError(f"pool {pool_name} has node size {pool.node_size!r}, not one of {', '.join(NODE_CORES)}")
    if cores > node_cores:
        raise DeployError(
            f"--executor-size {executor_size} needs {cores} cores but pool {pool_name} has {pool.node_size} nodes "
            f"({node_cores} vCores, per {pool.source}); choose a size of at most {node_cores} cores"
        )
    if executors > pool.max_nodes - 1:
        raise DeployError(
            f"--num-executors {executors} does not fit pool {pool_name}: at most {pool.max_nodes} nodes "
            f"(per {pool.source}), one of which runs the driver; use at most {pool.max_nodes - 1}"
        )


def pool_shape_from_parameters(request: DeployRequest) -> PoolShape:
    """The pool as the Bicep parameters file describes it (main.bicep's defaults where it is silent)."""
    path = request.pool_parameters or find_source(request.source) / POOL_PARAMETERS
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))["parameters"]
    except (OSError, ValueError, KeyError) as exc:
        raise DeployError(f"cannot read the pool's parameters from {path}: {exc}; pass --pool-parameters") from None
    node_size = values.get("sparkNodeSize", {}).get("value", "Small")
    max_nodes = int(values.get("sparkMaxNodes", {}).get("value", 6))
    return PoolShape(node_size, max_nodes, str(path))


SYNAPSE_READ = "a Synapse RBAC role on the workspace (any role reads it; Synapse Artifact Publisher publishes)"


@dataclass(frozen=True)
class PublishAccess:
    """Synapse RBAC's answer for the signed-in identity. `groups_unknown` says why the identity's groups
    were not part of the question (None when its token listed them)."""

    who: str
    denied: tuple[str, ...]
    groups_unknown: str | None = None


def preflight(target: Target, request: DeployRequest) -> None:
    """What can stop a deploy halfway is checked before its first step: the pool's size and the right
    to publish artifacts."""
    doing = f"cannot read pool {request.spark_pool} of Synapse workspace {request.workspace}"
    with target.deploy_errors(doing, SYNAPSE_READ, "--workspace and --spark-pool"):
        shape = target.pool_shape(request.spark_pool)
    check_sizing(shape, request)
    doing = f"cannot check your Synapse RBAC role on workspace {request.workspace}"
    with target.deploy_errors(doing, SYNAPSE_READ, "--workspace"):
        access = target.publish_access()
    if not access.denied:
        return
    denied = ", ".join(action.rsplit("/", 2)[-2] for action in access.denied)
    if access.groups_unknown is None:
        raise DeployAccessError(
            f"{access.who} may not publish to Synapse workspace {request.workspace} ({denied} write not allowed): it "
            f"needs the Synapse Artifact Publisher role, e.g. az synapse role assignment create --workspace-name "
            f'{request.workspace} --role "Synapse Artifact Publisher" --assignee-object-id <object id>'
        )
    # Synapse judges the subject it is asked about: a role held through a group the token does not
    # list is invisible to this check, though not to the publishing calls themselves.
    log.warning(
        "cannot tell whether %s may publish to Synapse workspace %s: it holds no Synapse Artifact Publisher role "
        "of its own (%s write not allowed) and %s, so a role held through a group is not visible; going ahead "
        "(publishing stops at its step if no group gives the role)",
        access.who,
        request.workspace,
        denied,
        access.groups_unknown,
    )


class Target(Protocol):
    """Where a plan lands: the workspace's filesystem and its artifacts API."""

    def deploy_errors(self, doing: str, access: str, names: str) -> AbstractContextManager[None]:
        """Turn what the target raises while `doing` into a DeployError of its kind: `access` names what
        the deployer needs there (when refused), `names` the flags to check (when not found)."""
        ...

    def pool_shape(self, pool: str) -> PoolShape: ...

    def publish_access(self) -> PublishAccess: ...

    def upload(self, path: str, data: bytes) -> None: ...

    def put_job_definition(self, document: dict[str, Any]) -> None: ...

    def put_pipeline(self, document: dict[str, Any]) -> None: ...

    def trigger_state(self, name: str) -> str | None:
        """The trigger's runtimeState ("Started", "Stopped", "Disabled"), None when it does not exist."""
        ...

    def put_trigger(self, document: dict[str, Any]) -> None: ...

    def start_trigger(self, name: str) -> None: ...

    def stop_trigger(self, name: str) -> None: ...


@dataclass(frozen=True)
class BuildWheel:
    source: Path
    wheel: Path
    access = names = "nothing from Azure"

    def describe(self) -> str:
        return f"build wheel {self.wheel.name} from {self.source} (pip wheel --no-deps)"

    def apply(self, target: Target) -> None:
        built = build_wheel(self.source, self.wheel.parent)
        if built != self.wheel:
            raise DeployError(f"pip built {built.name}, not {self.wheel.name}; check the version in setup.cfg")


# What setuptools builds the wheel from; the rest of a checkout stays out of the build.
WHEEL_SOURCES = ("synapse_ml_track", "setup.cfg", "setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE")


def build_wheel(source: Path, wheel_dir: Path) -> Path:
    """The package's wheel (`pip wheel --no-deps`), built from a copy of its sources in a scratch directory.

    An in-tree build reuses the checkout's build/lib, where setuptools never deletes a module removed
    from the source, so the wheel would carry it (a checkout's build/lib was found to hold a stale
    synapse_ml_track/cli.py beside the cli/ package, and the wheel shipped both); a copy also leaves
    the checkout untouched.
    """
    with tempfile.TemporaryDirectory(prefix="smt-wheel-") as scratch:
        copy = Path(scratch) / "source"
        copy.mkdir()
        for name in WHEEL_SOURCES:
            path = source / name
            if path.is_dir():
                shutil.copytree(path, copy / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif path.exists():
                shutil.copy2(path, copy / name)
        # An absolute path: pip reads a bare name as a package to fetch from the index.
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        command += ["--wheel-dir", str(wheel_dir.resolve()), str(copy.resolve())]
        completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=600)
        if completed.returncode != 0:
            raise DeployError(f"building the wheel failed: {pip_error_line(completed.stderr) or ' '.join(command)}")
    built = sorted(wheel_dir.glob("synapse_ml_track-*.whl"), key=lambda path: path.stat().st_mtime)
    if not built:
        raise DeployError(f"pip built no wheel in {wheel_dir}")
    return built[-1]


def pip_error_line(stderr: str) -> str:
    """Why pip failed, in one line: the cause it points at ("╰─> ..."), else its last ERROR line, else
    its first line; pip's own first line names only the kind of error ("error: backend-unavailable")."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    cause = next((line.removeprefix("╰─>").strip() for line in lines if line.startswith("╰─>")), "")
    last_error = next((line for line in reversed(lines) if line.startswith("ERROR:")), "")
    return cause or last_error or (lines[0] if lines else "")


@dataclass(frozen=True)
class Upload:
    local: Path
    path: str
    uri: str
    access = "the Storage Blob Data Contributor role on the storage account"
    names = "--storage-account and --filesystem"

    def describe(self) -> str:
        return f"upload {self.local} -> {self.uri}"

    def apply(self, target: Target) -> None:
        target.upload(self.path, self.local.read_bytes())


PUBLISHER = "the Synapse Artifact Publisher role on the workspace"


@dataclass(frozen=True)
class PutJobDefinition:
    document: dict[str, Any]
    access, names = PUBLISHER, "--workspace and --spark-pool"

    def describe(self) -> str:
        properties = self.document["properties"]
        job = properties["jobProperties"]
        return (
            f"create or update Spark job definition '{self.document['name']}' on pool "
            f"{properties['targetBigDataPool']['referenceName']} (Spark {properties['requiredSparkVersion']}, "
            f"{job['numExecutors']} x {job['executorCores']} cores/{job['executorMemory']} executors): "
            f"{' '.join([job['file'], *job['args']])}"
        )

    def apply(self, target: Target) -> None:
        target.put_job_definition(self.document)


@dataclass(frozen=True)
class PutPipeline:
    document: dict[str, Any]
    access, names = PUBLISHER, "--workspace and --spark-pool"

    def describe(self) -> str:
        runs = "; ".join(
            f"activity '{activity['name']}' runs '{activity['typeProperties']['sparkJob']['referenceName']}' "
            f"with {' '.join(activity['typeProperties']['args'])}"
            for activity in self.document["properties"]["activities"]
        )
        return f"create or update pipeline '{self.document['name']}': {runs}"

    def apply(self, target: Target) -> None:
        target.put_pipeline(self.document)


def describe_schedule(document: dict[str, Any]) -> str:
    """A schedule trigger's recurrence in words, e.g. "every 1 Day at 23:00 UTC"."""
    recurrence = document["properties"]["typeProperties"]["recurrence"]
    schedule = recurrence.get("schedule") or {}
    times = [f"{hour:02}:{minute:02}" for hour in schedule.get("hours", []) for minute in schedule.get("minutes", [0])]
    at = f" at {', '.join(times)}" if times else ""
    return f"every {recurrence['interval']} {recurrence['frequency']}{at} {recurrence.get('timeZone', 'UTC')}"


@dataclass(frozen=True)
class PutTrigger:
    document: dict[str, Any]
    access, names = PUBLISHER, "--workspace"

    def describe(self) -> str:
        properties = self.document["properties"]
        runs = "; ".join(
            f"pipeline '{reference['pipelineReference']['referenceName']}'"
            + "".join(f" {name}={value}" for name, value in (reference.get("parameters") or {}).items())
            for reference in properties["pipelines"]
        )
        return (
            f"create or update {properties['type']} '{self.document['name']}' ({describe_schedule(self.document)}): "
            f"runs {runs}; a new trigger is created stopped, one already started is stopped for the update "
            "and started again"
        )

    def apply(self, target: Target) -> None:
        name = self.document["name"]
        started = target.trigger_state(name) == TRIGGER_STARTED
        if started:
            target.stop_trigger(name)
        try:
            target.put_trigger(self.document)
        finally:
            if started:  # also when the update failed: the schedule that ran keeps running
                target.start_trigger(name)


@dataclass(frozen=True)
class StartTrigger:
    name: str
    schedule: str
    access, names = PUBLISHER, "--workspace"

    def describe(self) -> str:
        return f"start trigger '{self.name}' (--start-triggers): from now on it runs its pipeline {self.schedule}"

    def apply(self, target: Target) -> None:
        if target.trigger_state(self.name) != TRIGGER_STARTED:
            target.start_trigger(self.name)


Step = BuildWheel | Upload | PutJobDefinition | PutPipeline | PutTrigger | StartTrigger


@dataclass(frozen=True)
class Plan:
    workspace: str
    base_uri: str
    steps: tuple[Step, ...]


def make_plan(request: DeployRequest) -> Plan:
    """Check the inputs and lay out every step; touches neither Azure nor the build."""
    if not STORAGE_ACCOUNT_PATTERN.match(request.storage_account):
        raise DeployError(
            f"--storage-account {request.storage_account!r} is not a storage account name "
            "(3-24 lowercase letters, digits)"
        )
    source = find_source(request.source)
    config_file = Path(request.config)
    config = build_config(config_path=str(config_file), environ={})
    prefix = request.prefix.strip("/")
    base_uri = f"abfss://{request.filesystem}@{request.storage_account}.dfs.core.windows.net/{prefix}"
    wheel = source / "dist" / wheel_name(source)
    values = {
        "base_uri": base_uri,
        "spark_pool": request.spark_pool,
        "wheel": wheel.name,
        "config": config_file.name,
        "model_uri": request.model_uri
        or f"models:/{config.tracking.registered_model_name}@{config.gate.champion_alias}",
    }
    shipped = [(source / script, script) for script in JOB_SCRIPTS]
    shipped += [(config_file, f"config/{config_file.name}"), (source / SAMPLE_DATA, "data/penguins.csv")]
    missing = [str(local) for local, _ in shipped if not local.is_file()]
    if missing:
        raise DeployError(f"files to upload are missing: {', '.join(missing)}")
    steps: list[Step] = [BuildWheel(source, wheel)]
    uploads = [(wheel, f"dist/{wheel.name}"), *shipped]
    steps += [Upload(local, f"{prefix}/{name}", f"{base_uri}/{name}") for local, name in uploads]
    for template in JOB_DEFINITION_TEMPLATES:
        document = render(load_template(source, template), values)
        steps.append(PutJobDefinition(size_job(document, request.executor_size, request.num_executors)))
    steps += [PutPipeline(render(load_template(source, template), values)) for template in PIPELINE_TEMPLATES]
    triggers = [render(load_template(source, template), values) for template in TRIGGER_TEMPLATES]
    steps += [PutTrigger(trigger) for trigger in triggers]
    if request.start_triggers:
        steps += [StartTrigger(trigger["name"], describe_schedule(trigger)) for trigger in triggers]
    return Plan(request.workspace, base_uri, tuple(steps))


def describe_plan(plan: Plan) -> list[str]:
    """The dry run's lines: every step, numbered, in order."""
    lines = [
        f"Deploy plan for Synapse workspace {plan.workspace}, files under {plan.base_uri}",
        "Dry run: nothing is built, uploaded or changed.",
    ]
    return lines + [f"{number:3}. {step.describe()}" for number, step in enumerate(plan.steps, start=1)]


def execute(plan: Plan, target: Target, progress: Callable[[str], None]) -> None:
    total = len(plan.steps)
    for number, step in enumerate(plan.steps, start=1):
        progress(f"[{number}/{total}] {step.describe()}")
        with target.deploy_errors(f"step {number} failed", step.access, step.names):
            try:
                step.apply(target)
            except OSError as exc:
                raise DeployError(f"step {number} failed: {type(exc).__name__}: {first_line(exc)}") from exc
    progress(f"Deployed: {total} steps done.")


def notebook_install_line(plan: Plan) -> str:
    """Where the uploaded wheel is, and how a notebook gets it: a pool's workspace package, or `%pip`
    for one session from the container mounted as docs/run-on-synapse.md shows (mssparkutils.fs.mount,
    whose local path is /synfs/<job id>/<mount point>)."""
    wheel = next(step.uri for step in plan.steps if isinstance(step, Upload) and step.uri.endswith(".whl"))
    parsed = urlparse(wheel)
    container = f"{parsed.scheme}://{parsed.netloc}"
    return (
        f"For notebooks: the wheel is {wheel}; add it to the pool as a workspace package, or install it "
        "for one session (docs/run-on-synapse.md, From a notebook):\n"
        f'  mssparkutils.fs.mount("{container}", "/smt", {{"linkedService": "<linked service>"}})\n'
        f"  %pip install /synfs/<job id>/smt{parsed.path}"
    )


def find_source(explicit: Path | None) -> Path:
    candidates = [explicit] if explicit else [Path(__file__).resolve().parents[2], Path.cwd()]
    for candidate in candidates:
        if (candidate / "setup.cfg").is_file() and (candidate / TEMPLATE_DIR).is_dir():
            return candidate.resolve()
    raise DeployError(
        "deploy needs the source checkout (setup.cfg and jobs/synapse/): run it from the repository or pass --source"
    )


def wheel_name(source: Path) -> str:
    setup = configparser.ConfigParser()
    setup.read(source / "setup.cfg", encoding="utf-8")
    name = re.sub(r"[-_.]+", "_", setup["metadata"]["name"])
    return f"{name}-{setup['metadata']['version']}-py3-none-any.whl"


def load_template(source: Path, name: str) -> dict[str, Any]:
    path = source / TEMPLATE_DIR / name
    try:
        template: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        return template
    except (OSError, json.JSONDecodeError) as exc:
        raise DeployError(f"cannot read template {path}: {exc}") from None


def render(template: Any, values: dict[str, str]) -> Any:
    """Fill ${name} placeholders in every string of a JSON document."""
    if isinstance(template, str):
        try:
            return string.Template(template).substitute(values)
        except (KeyError, ValueError) as exc:
            raise DeployError(f"template string {template!r} has an unknown placeholder: {exc}") from None
    if isinstance(template, list):
        return [render(item, values) for item in template]
    if isinstance(template, dict):
        return {key: render(value, values) for key, value in template.items()}
    return template


def size_job(document: dict[str, Any], size: str, executors: int) -> dict[str, Any]:
    """Set driver and executor sizing; dynamic allocation is pinned to the executor count."""
    cores, memory = EXECUTOR_SIZES[size]
    job = document["properties"]["jobProperties"]
    job.update(
        driverCores=cores, driverMemory=memory, executorCores=cores, executorMemory=memory, numExecutors=executors
    )
    job["conf"].update(
        {"spark.dynamicAllocation.minExecutors": str(executors), "spark.dynamicAllocation.maxExecutors": str(executors)}
    )
    return document
