"""`synapse-ml-track deploy`: the dry run prints a complete, ordered plan without touching Azure or
building anything; a real run executes the same steps in the same order."""

from __future__ import annotations

import base64
import contextlib
import copy
import functools
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from synapse_ml_track.cli import build_parser, main
from synapse_ml_track.cli.deploy import request_of
from synapse_ml_track.deploy import plan
from synapse_ml_track.deploy import synapse as synapse_target

from azure_stub import StubSession

REPO = Path(__file__).resolve().parents[1]
BASE_URI = "abfss://synapse@stdlmltrackdevabc123.dfs.core.windows.net/synapse-ml-track"
WHEEL = plan.wheel_name(REPO)
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
    ("Spark job definition 'synapse-ml-track-score'", "--model-uri models:/penguins-classifier@champion"),
    ("pipeline 'synapse-ml-track-train-pipeline'", "--run-key @pipeline().RunId"),
    ("pipeline 'synapse-ml-track-score-pipeline'", "--replace-where @concat(pipeline().parameters.partitionColumn"),
    ("pipeline 'synapse-ml-track-incremental-score-pipeline'", "--incremental --merge-key"),
    ("ScheduleTrigger 'synapse-ml-track-score-nightly' (every 1 Day at 23:00 UTC)", "created stopped"),
]
STARTED_TRIGGER_STEP = ("start trigger 'synapse-ml-track-score-nightly'", "every 1 Day at 23:00 UTC")


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

    monkeypatch.setattr(plan, "subprocess", SimpleNamespace(run=refuse))


@pytest.fixture
def source_copy(tmp_path) -> Path:
    """A minimal source checkout with stand-in job scripts; a fake build writes here, not into the repository."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(REPO / "setup.cfg", source)
    shutil.copytree(REPO / plan.TEMPLATE_DIR, source / plan.TEMPLATE_DIR)
    for script in plan.JOB_SCRIPTS:
        (source / script).write_text(f"# stand-in for {script}\n", encoding="utf-8")
    (source / plan.SAMPLE_DATA).parent.mkdir(parents=True)
    shutil.copy(REPO / plan.SAMPLE_DATA, source / plan.SAMPLE_DATA)
    return source


def deploy_args(config_file: Path, *extra: str) -> list[str]:
    return ["deploy", "--workspace", "syn-mltrack-dev-abc123", "--storage-account", "stdlmltrackdevabc123",
            "--config", str(config_file), *extra]  # fmt: skip


def run_deploy(arguments: list[str]) -> int:
    """The deploy subcommand through the CLI's one entry point (and its one error path)."""
    return main(arguments)


def request(arguments: list[str]) -> plan.DeployRequest:
    return request_of(build_parser().parse_args(arguments))


def plan_lines(output: str) -> list[str]:
    return [line.split(". ", 1)[1] for line in output.splitlines() if line.strip()[:1].isdigit()]


def test_cli_routes_deploy_flags(config_file):
    args = build_parser().parse_args(
        ["deploy", "--workspace", "w", "--storage-account", "acct", "--config", str(config_file), "--dry-run"]
    )
    assert (args.workspace, args.storage_account, args.dry_run) == ("w", "acct", True)


def test_dry_run_of_the_repository_prints_the_complete_ordered_plan(config_file, no_azure_no_build, capsys):
    assert run_deploy(deploy_args(config_file, "--dry-run")) == 0
    output = capsys.readouterr().out
    assert "Dry run" in output
    lines = plan_lines(output)
    assert len(lines) == len(EXPECTED_STEPS), output
    for line, (action, detail) in zip(lines, EXPECTED_STEPS, strict=True):
        assert action in line and detail in line, f"expected {action!r} with {detail!r}, got {line!r}"


def test_dry_run_with_start_triggers_adds_the_start_as_the_last_step(config_file, no_azure_no_build, capsys):
    assert run_deploy(deploy_args(config_file, "--dry-run", "--start-triggers")) == 0
    lines = plan_lines(capsys.readouterr().out)
    assert len(lines) == len(EXPECTED_STEPS) + 1
    action, detail = STARTED_TRIGGER_STEP
    assert action in lines[-1] and detail in lines[-1], lines[-1]


def test_dry_run_applies_executor_sizing(config_file, source_copy, tmp_path, no_azure_no_build, capsys):
    medium_pool = tmp_path / "medium.json"
    medium_pool.write_text(
        json.dumps({"parameters": {"sparkNodeSize": {"value": "Medium"}, "sparkMaxNodes": {"value": 4}}})
    )
    sized = deploy_args(
        config_file, "--dry-run", "--source", str(source_copy), "--executor-size", "Medium", "--num-executors", "3",
        "--pool-parameters", str(medium_pool),
    )  # fmt: skip
    assert run_deploy(sized) == 0
    job_lines = [line for line in plan_lines(capsys.readouterr().out) if "Spark job definition" in line]
    assert len(job_lines) == 2 and all("3 x 8 cores/56g executors" in line for line in job_lines)


def test_invalid_config_stops_before_any_step(tmp_path, no_azure_no_build, capsys):
    config = tmp_path / "bad.yaml"
    config.write_text("tracking:\n  experiment_nam: typo\n", encoding="utf-8")
    assert run_deploy(deploy_args(config, "--dry-run")) != 0
    captured = capsys.readouterr()
    assert "experiment_nam" in captured.err
    assert not plan_lines(captured.out)


def test_real_deploy_without_the_sdks_names_them_and_builds_nothing(
    config_file, source_copy, no_azure_no_build, capsys
):
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) != 0
    error = capsys.readouterr().err
    assert "azure-synapse-artifacts" in error and "azure-storage-file-datalake" in error


class RecordingTarget:
    """Stands in for SynapseTarget: records what a real deploy would send to Azure."""

    instances: list[RecordingTarget] = []
    # The workspace's triggers before the deploy, name -> runtimeState.
    initial_trigger_states: dict[str, str] = {}

    def __init__(self, workspace: str, storage_account: str, filesystem: str) -> None:
        self.location = (workspace, storage_account, filesystem)
        self.calls: list[tuple[str, Any]] = []
        # Triggers as Synapse keeps them: by name, their runtimeState; a started one cannot be updated.
        self.trigger_states = dict(RecordingTarget.initial_trigger_states)
        RecordingTarget.instances.append(self)

    def deploy_errors(self, doing: str, access: str, names: str) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()  # it raises nothing of its own to translate

    def pool_shape(self, pool: str) -> plan.PoolShape:
        return plan.PoolShape("Small", 4, "the pool")

    def publish_access(self) -> plan.PublishAccess:
        return plan.PublishAccess("dev@example.com", denied=())

    def upload(self, path: str, data: bytes) -> None:
        self.calls.append(("upload", (path, data)))

    def put_job_definition(self, document: dict[str, Any]) -> None:
        self.calls.append(("job definition", document))

    def put_pipeline(self, document: dict[str, Any]) -> None:
        self.calls.append(("pipeline", document))

    def trigger_state(self, name: str) -> str | None:
        self.calls.append(("trigger state", name))
        return self.trigger_states.get(name)

    def put_trigger(self, document: dict[str, Any]) -> None:
        assert self.trigger_states.get(document["name"]) != "Started", "Synapse refuses to update a started trigger"
        self.trigger_states.setdefault(document["name"], "Stopped")
        self.calls.append(("trigger", document))

    def start_trigger(self, name: str) -> None:
        self.trigger_states[name] = "Started"
        self.calls.append(("start trigger", name))

    def stop_trigger(self, name: str) -> None:
        self.trigger_states[name] = "Stopped"
        self.calls.append(("stop trigger", name))


def recorded_deploy(monkeypatch, arguments: list[str], trigger_states: dict[str, str] | None = None, code: int = 0):
    """Run deploy against a RecordingTarget (the wheel build faked) with the workspace's triggers in
    `trigger_states`; check its exit code and return the target."""

    def fake_build(command, **kwargs):
        wheel_dir = Path(command[command.index("--wheel-dir") + 1])
        wheel_dir.mkdir(parents=True, exist_ok=True)
        (wheel_dir / WHEEL).write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(plan, "subprocess", SimpleNamespace(run=fake_build))
    monkeypatch.setattr(synapse_target, "SynapseTarget", RecordingTarget)
    monkeypatch.setattr(RecordingTarget, "initial_trigger_states", dict(trigger_states or {}))
    RecordingTarget.instances.clear()
    assert run_deploy(arguments) == code
    (target,) = RecordingTarget.instances
    return target


def trigger_calls(target) -> list[tuple[str, str]]:
    return [
        (kind, payload["name"] if isinstance(payload, dict) else payload)
        for kind, payload in target.calls
        if "trigger" in kind
    ]


NIGHTLY = "synapse-ml-track-score-nightly"


@pytest.mark.parametrize(
    ("flags", "before", "calls", "after"),
    [
        ((), {}, [("trigger state", NIGHTLY), ("trigger", NIGHTLY)], "Stopped"),
        (("--start-triggers",), {},
         [("trigger state", NIGHTLY), ("trigger", NIGHTLY), ("trigger state", NIGHTLY), ("start trigger", NIGHTLY)],
         "Started"),
        ((), {NIGHTLY: "Started"},
         [("trigger state", NIGHTLY), ("stop trigger", NIGHTLY), ("trigger", NIGHTLY), ("start trigger", NIGHTLY)],
         "Started"),
        (("--start-triggers",), {NIGHTLY: "Started"},
         [("trigger state", NIGHTLY), ("stop trigger", NIGHTLY), ("trigger", NIGHTLY), ("start trigger", NIGHTLY),
          ("trigger state", NIGHTLY)],
         "Started"),
        ((), {NIGHTLY: "Stopped"}, [("trigger state", NIGHTLY), ("trigger", NIGHTLY)], "Stopped"),
    ],
    ids=["new-stays-stopped", "new-started-on-request", "started-is-updated-and-kept-running",
         "started-and-flag-starts-once", "stopped-stays-stopped"],
)  # fmt: skip
def test_a_trigger_is_started_only_on_request_and_a_running_one_keeps_running(
    config_file, source_copy, monkeypatch, flags, before, calls, after
):
    target = recorded_deploy(monkeypatch, deploy_args(config_file, "--source", str(source_copy), *flags), before)
    assert trigger_calls(target) == calls
    assert target.trigger_states == {NIGHTLY: after}


def test_real_deploy_executes_the_plan_in_order(config_file, source_copy, monkeypatch, capsys):
    built = []

    def fake_build(command, **kwargs):
        wheel_dir = Path(command[command.index("--wheel-dir") + 1])
        wheel_dir.mkdir(parents=True, exist_ok=True)
        (wheel_dir / WHEEL).write_bytes(b"wheel")
        built.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(plan, "subprocess", SimpleNamespace(run=fake_build))
    monkeypatch.setattr(synapse_target, "SynapseTarget", RecordingTarget)
    RecordingTarget.instances.clear()
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 0

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
    artifacts = [(kind, payload["name"]) for kind, payload in target.calls if isinstance(payload, dict)]
    assert artifacts == [
        ("job definition", "synapse-ml-track-train"),
        ("job definition", "synapse-ml-track-score"),
        ("pipeline", "synapse-ml-track-train-pipeline"),
        ("pipeline", "synapse-ml-track-score-pipeline"),
        ("pipeline", "synapse-ml-track-incremental-score-pipeline"),
        ("trigger", "synapse-ml-track-score-nightly"),
    ]
    assert [kind for kind, _ in target.calls] == ["upload"] * 5 + ["job definition"] * 2 + ["pipeline"] * 3 + [
        "trigger state", "trigger"]  # fmt: skip
    out = capsys.readouterr().out
    assert "[12/12]" in out
    wheel_uri = f"abfss://synapse@stdlmltrackdevabc123.dfs.core.windows.net/synapse-ml-track/dist/{WHEEL}"
    assert f"For notebooks: the wheel is {wheel_uri}; add it to the pool as a workspace package" in out
    mount = 'mssparkutils.fs.mount("abfss://synapse@stdlmltrackdevabc123.dfs.core.windows.net", "/smt"'
    assert f"\n  {mount}, " in out
    assert f"\n  %pip install /synfs/<job id>/smt/synapse-ml-track/dist/{WHEEL}\n" in out


# ---- the pool's size and the right to publish: refused before any step ---------------------------


def test_dry_run_refuses_an_executor_larger_than_the_pools_nodes(config_file, no_azure_no_build, capsys):
    """The dev pool has Small nodes (4 vCores): a Large (16-core) executor can never be scheduled."""
    assert run_deploy(deploy_args(config_file, "--dry-run", "--executor-size", "Large")) == 2
    captured = capsys.readouterr()
    (line,) = captured.err.splitlines()
    assert line.startswith("error: --executor-size Large needs 16 cores but pool mltrack has Small nodes (4 vCores")
    assert not plan_lines(captured.out)


def test_dry_run_refuses_more_executors_than_worker_nodes(config_file, no_azure_no_build, capsys):
    """The dev pool has at most 4 nodes, one of them the driver's."""
    assert run_deploy(deploy_args(config_file, "--dry-run", "--num-executors", "4")) == 2
    assert "--num-executors 4 does not fit pool mltrack: at most 4 nodes" in capsys.readouterr().err


def test_dry_run_reads_the_pool_from_the_given_parameters(config_file, tmp_path, no_azure_no_build, capsys):
    parameters = tmp_path / "prod.json"
    parameters.write_text(
        json.dumps({"parameters": {"sparkNodeSize": {"value": "Large"}, "sparkMaxNodes": {"value": 10}}})
    )
    sized = deploy_args(
        config_file,
        "--dry-run",
        "--executor-size",
        "Large",
        "--num-executors",
        "9",
        "--pool-parameters",
        str(parameters),
    )
    assert run_deploy(sized) == 0, capsys.readouterr().err


def unsigned_token(claims: dict) -> str:
    encode = lambda part: base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()  # noqa: E731
    return f"{encode({'alg': 'none'})}.{encode({'exp': 4_102_444_800, **claims})}."


DEPLOYER = "0b6e6a4c-deployer"
WORKSPACE = "syn-mltrack-dev-abc123"


class SignedIn:
    """A deployer's credential: what DefaultAzureCredential hands the SDKs after `az login`."""

    def __init__(self, **claims) -> None:
        self.token = unsigned_token({"oid": DEPLOYER, "upn": "dev@example.com", **claims})

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(self.token, 4_102_444_800)


def synapse(
    pool_node_size: str = "Small",
    pool_max_nodes: int = 4,
    pool_scale: dict[str, Any] | None = None,
    roles: dict[str, tuple[str, ...]] | None = None,
    members: dict[str, list[str]] | None = None,
    lake_writers: frozenset[str] = frozenset({DEPLOYER}),
    lake_failure: tuple[int, str, str] | None = None,
    triggers: dict[str, str] | None = None,
):
    """The workspace's dev endpoint and data lake as azure-core sees them (Azure is not reachable):
    the pool, Synapse RBAC's access check, job definitions, pipelines and ADLS Gen2 uploads.

    Synapse RBAC as the service applies it: `roles` maps a principal's or a group's object id to the
    actions it allows (default: the deployer may publish); `members` is the directory, object id ->
    groups. A call is judged for its token's `oid` and that identity's groups in the directory,
    whatever the token lists; the access check judges the subject it is sent, object id and `groupIds`
    as given (azure-synapse-accesscontrol's SubjectInfo: "List of group Ids that the principalId is
    part of"). The pool autoscales up to `pool_max_nodes` unless `pool_scale` gives its scale
    properties instead (a fixed-size pool: autoScale disabled and a nodeCount). The data lake lets
    `lake_writers` write (Storage Blob Data Contributor), or answers every write with `lake_failure`
    (status, error code, message). `triggers` maps the workspace's triggers to their runtimeState: a
    started trigger refuses an update, as Synapse does."""
    roles = {DEPLOYER: synapse_target.PUBLISH_ACTIONS} if roles is None else roles
    members = members or {}
    workspace = rf"{WORKSPACE}\.dev\.azuresynapse\.net"
    lake = r"stdlmltrackdevabc123\.dfs\.core\.windows\.net"
    files: dict[str, bytes] = {}
    triggers = {} if triggers is None else triggers
    trigger_documents: dict[str, dict[str, Any]] = {}

    def caller(sent) -> str:
        return synapse_target.token_claims(sent.headers["Authorization"].split()[1])["oid"]

    def allowed(principal: str, groups: list[str], action: str) -> bool:
        return any(action in roles.get(subject, ()) for subject in (principal, *groups))

    def refused(principal: str, action: str):
        # Synapse's 403, as the dev endpoint words it (Azure/azure-sdk-for-net#24423).
        return 403, {"error": {"code": "Unauthorized", "message": (
            f"The principal '{principal}' does not have the required Synapse RBAC permission to perform this action. "
            f"Required permission: Action: {action}, Scope: workspaces/{WORKSPACE}/*."
        )}}  # fmt: skip

    def pool(sent, match):
        principal = caller(sent)
        # Any Synapse RBAC role at any scope gives Synapse User at workspace scope, which reads pools
        # (Microsoft's synapse-workspace-synapse-rbac-roles.md); no role at all is refused.
        if not any(subject in roles for subject in (principal, *members.get(principal, []))):
            return refused(principal, "Microsoft.Synapse/workspaces/read")
        scale = pool_scale if pool_scale is not None else {
            "autoScale": {"enabled": True, "minNodeCount": 3, "maxNodeCount": pool_max_nodes}}  # fmt: skip
        return 200, {
            "name": match.group(1), "location": "westeurope", "type": "Microsoft.Synapse/workspaces/bigDataPools",
            "properties": {"nodeSize": pool_node_size, "nodeSizeFamily": "MemoryOptimized", "sparkVersion": "3.5",
                           **scale},
        }  # fmt: skip

    def access(sent, match):
        subject = sent.json()["subject"]
        decisions = [
            {"actionId": a["id"], "accessDecision": "Allowed" if allowed(
                subject["principalId"], subject.get("groupIds") or [], a["id"]) else "NotAllowed"}
            for a in sent.json()["actions"]
        ]  # fmt: skip
        return 200, {"accessDecisions": decisions}

    def artifact(sent, match):
        principal, action = caller(sent), f"Microsoft.Synapse/workspaces/{match.group(1)}/write"
        if not allowed(principal, members.get(principal, []), action):
            return refused(principal, action)
        return 200, {"id": f"/{match.group(1)}/{match.group(2)}", "name": match.group(2), "etag": "1", **sent.json()}

    def trigger(sent, match):
        name, principal = match.group(1), caller(sent)
        if sent.method == "GET":
            if name not in triggers:
                return 404, {"error": {"code": "NotFound", "message": f"Trigger {name} not found"}}
            return 200, {
                "id": f"/triggers/{name}",
                "name": name,
                "etag": "1",
                "properties": {
                    **trigger_documents.get(name, {"type": "ScheduleTrigger"}),
                    "runtimeState": triggers[name],
                },
            }
        action = "Microsoft.Synapse/workspaces/triggers/write"
        if not allowed(principal, members.get(principal, []), action):
            return refused(principal, action)
        if triggers.get(name) == "Started":
            # Synapse's answer to an update of a started trigger (Azure/Synapse-workspace-deployment#46);
            # the status code is not documented there: 400 stands in for it.
            return 400, {
                "error": {
                    "code": "TriggerEnabledCannotUpdate",
                    "message": "Cannot update enabled Trigger; the trigger needs to be disabled first. ",
                }
            }
        triggers.setdefault(name, "Stopped")
        trigger_documents[name] = sent.json()["properties"]
        return 200, {
            "id": f"/triggers/{name}",
            "name": name,
            "etag": "1",
            "properties": {**sent.json()["properties"], "runtimeState": triggers[name]},
        }

    def trigger_switch(sent, match):
        name, principal, action = match.group(1), caller(sent), "Microsoft.Synapse/workspaces/triggers/write"
        if not allowed(principal, members.get(principal, []), action):
            return refused(principal, action)
        if name not in triggers:
            return 404, {"error": {"code": "NotFound", "message": f"Trigger {name} not found"}}
        triggers[name] = "Started" if match.group(2) == "start" else "Stopped"
        return 200, None

    def lake_write(sent, match):
        # ADLS Gen2's error answers: JSON body and x-ms-error-code (Microsoft's "Azure Storage common
        # error codes": AuthorizationPermissionMismatch 403, FilesystemNotFound 404, ServerBusy 503).
        failure = lake_failure or (
            None if caller(sent) in lake_writers else (403, "AuthorizationPermissionMismatch",
                "This request is not authorized to perform this operation using this permission.")
        )  # fmt: skip
        if failure:
            status, code, message = failure
            return status, {"error": {"code": code, "message": f"{message}\nRequestId:1\nTime:2026-11-25"}}, {
                "x-ms-error-code": code}  # fmt: skip
        path = match.group(1)
        if sent.method == "PUT":
            files[path] = b""
            return 201, None, {"ETag": '"1"', "Last-Modified": "Wed, 25 Nov 2026 00:00:00 GMT"}
        if sent.query.get("action") == "append":
            files[path] += sent.body
        return 200 if sent.query.get("action") == "flush" else 202, None, {
            "ETag": '"2"', "Last-Modified": "Wed, 25 Nov 2026 00:00:00 GMT", "x-ms-request-server-encrypted": "true",
        }  # fmt: skip

    stub = StubSession([
        ("GET", rf"{workspace}/bigDataPools/([^/]+)", pool),
        ("POST", rf"{workspace}/checkAccessSynapseRbac", access),
        ("PUT", rf"{workspace}/(sparkJobDefinitions|pipelines)/([^/]+)", artifact),
        ("GET", rf"{workspace}/triggers/([^/]+)", trigger),
        ("PUT", rf"{workspace}/triggers/([^/]+)", trigger),
        ("POST", rf"{workspace}/triggers/([^/]+)/(start|stop)", trigger_switch),
        ("PUT", rf"{lake}/(.+)", lake_write),
        ("PATCH", rf"{lake}/(.+)", lake_write),
    ])  # fmt: skip
    stub.files = files
    stub.triggers = triggers
    return stub


def real_deploy(monkeypatch, stub, credential=None, **client_options):
    def built(command, **kwargs):
        wheel_dir = Path(command[command.index("--wheel-dir") + 1])
        wheel_dir.mkdir(parents=True, exist_ok=True)
        (wheel_dir / WHEEL).write_bytes(b"wheel")
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(plan, "subprocess", SimpleNamespace(run=built))
    target = functools.partial(
        synapse_target.SynapseTarget, credential=credential or SignedIn(), transport=stub.transport(), **client_options
    )
    monkeypatch.setattr(synapse_target, "SynapseTarget", target)


def test_real_deploy_sends_exactly_the_rendered_documents(config_file, source_copy, monkeypatch, capsys):
    """Contract test: the real SDK clients carry the job definitions, the pipelines and the trigger
    through their models unchanged, and no template key falls outside the models (additional_properties)."""
    from azure.synapse.artifacts.models import PipelineResource, SparkJobDefinition, Trigger

    stub = synapse()
    real_deploy(monkeypatch, stub)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 0, capsys.readouterr().err
    deploy_plan = plan.make_plan(request(deploy_args(config_file, "--source", str(source_copy))))
    expected = {step.document["name"]: step for step in deploy_plan.steps if hasattr(step, "document")}
    sent = {s.path.rsplit("/", 1)[-1]: s.json() for s in stub.sent if s.method == "PUT" and "azuresynapse" in s.url}
    assert set(sent) == set(expected)
    models = {
        plan.PutJobDefinition: lambda document: SparkJobDefinition.deserialize(document["properties"]),
        plan.PutPipeline: PipelineResource.deserialize,
        plan.PutTrigger: lambda document: Trigger.deserialize(document["properties"]),
    }
    for name, step in expected.items():
        document = step.document
        assert sent[name]["properties"] == document["properties"], f"{name} changed on its way through the SDK"
        # The SDK's SparkJobProperties lacks pyFiles, which Synapse job definitions do have (Microsoft's
        # SynapseSparkJobDefinitionActivity.pythonCodeReference "overrides the 'pyFiles' of the spark
        # job definition"): it travels as an additional property, unchanged, as asserted above.
        # (deserialize pops the polymorphic "type" keys from what it reads: it reads a copy.)
        parsed = models[type(step)](copy.deepcopy(document))
        unknown = [key for key in unknown_keys(parsed) if key != "job_properties.pyFiles"]
        assert not unknown, f"{name}: keys the SDK models do not know: {unknown}"
    assert type(Trigger.deserialize(copy.deepcopy(expected[NIGHTLY].document["properties"]))).__name__ == (
        "ScheduleTrigger"
    )
    assert stub.files["synapse/synapse-ml-track/config/synapse.yaml"] == CONFIG_TEXT.encode()
    first_change = next(i for i, s in enumerate(stub.sent) if s.method in ("PUT", "PATCH"))
    assert [s.path for s in stub.sent[:first_change]] == ["/bigDataPools/mltrack", "/checkAccessSynapseRbac"]
    assert stub.triggers == {NIGHTLY: "Stopped"}, "a new trigger is created stopped"


def test_a_started_trigger_whose_update_fails_is_started_again(config_file, source_copy, monkeypatch, capsys):
    def refuse(self, document):
        raise OSError("the update was refused")

    monkeypatch.setattr(RecordingTarget, "put_trigger", refuse)
    arguments = deploy_args(config_file, "--source", str(source_copy))
    target = recorded_deploy(monkeypatch, arguments, {NIGHTLY: "Started"}, code=2)
    assert "step 12 failed: OSError: the update was refused" in capsys.readouterr().err
    assert trigger_calls(target)[-2:] == [("stop trigger", NIGHTLY), ("start trigger", NIGHTLY)]
    assert target.trigger_states == {NIGHTLY: "Started"}


@pytest.mark.parametrize(
    ("flags", "before", "requests", "after"),
    [
        ((), {}, ["GET", "PUT"], "Stopped"),
        (("--start-triggers",), {}, ["GET", "PUT", "GET", "POST start"], "Started"),
        ((), {NIGHTLY: "Started"}, ["GET", "POST stop", "PUT", "POST start"], "Started"),
    ],
    ids=["new", "new-started-on-request", "started-kept-running"],
)
def test_real_deploy_drives_the_trigger_through_the_sdk(
    config_file, source_copy, monkeypatch, capsys, flags, before, requests, after
):
    """The SDK's trigger operations (get, create or update, start, stop and their pollers) against a
    workspace that, like Synapse, refuses to update a started trigger."""
    stub = synapse(triggers=dict(before))
    real_deploy(monkeypatch, stub)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy), *flags)) == 0, capsys.readouterr().err
    sent = [s for s in stub.sent if "/triggers/" in s.path]
    assert [f"{s.method} {s.path.rsplit('/', 1)[-1]}" if s.method == "POST" else s.method for s in sent] == requests
    assert stub.triggers == {NIGHTLY: after}


@pytest.mark.parametrize("name", ["train.pipeline.json", "score.pipeline.json", "score.trigger.json"])
def test_publishing_leaves_the_plans_documents_whole(name):
    """The SDK models' deserialize pops the polymorphic "type" keys (an activity's, a trigger's) from
    the dict it reads: the target hands it a copy, so a step's document is what the plan printed."""
    stub = synapse()
    target = synapse_target.SynapseTarget(WORKSPACE, "stdlmltrackdevabc123", "synapse", SignedIn(),
                                          transport=stub.transport())  # fmt: skip
    document = json.loads((REPO / plan.TEMPLATE_DIR / name).read_text(encoding="utf-8"))
    before = copy.deepcopy(document)
    (target.put_trigger if "trigger" in name else target.put_pipeline)(document)
    assert document == before
    (sent,) = [s for s in stub.sent if s.method == "PUT"]
    assert sent.json()["properties"] == before["properties"]


def test_updating_a_started_trigger_without_stopping_it_is_refused(monkeypatch):
    """The stub's refusal is real to the SDK: the step that stops the trigger first is needed."""
    from azure.core.exceptions import HttpResponseError

    stub = synapse(triggers={NIGHTLY: "Started"})
    target = synapse_target.SynapseTarget(WORKSPACE, "stdlmltrackdevabc123", "synapse", SignedIn(),
                                          transport=stub.transport())  # fmt: skip
    document = json.loads((REPO / plan.TEMPLATE_DIR / "score.trigger.json").read_text(encoding="utf-8"))
    with pytest.raises(HttpResponseError, match="TriggerEnabledCannotUpdate"):
        target.put_trigger(document)
    assert target.trigger_state(NIGHTLY) == "Started"
    assert target.trigger_state("no-such-trigger") is None


def unknown_keys(model, path: str = "") -> list[str]:
    """Keys an msrest model kept as additional_properties: names its REST model does not have."""
    found = [f"{path}{key}" for key in (getattr(model, "additional_properties", None) or {})]
    for name in getattr(model, "_attribute_map", {}):
        value = getattr(model, name, None)
        for item in value if isinstance(value, list) else [value]:
            if hasattr(item, "_attribute_map"):
                found += unknown_keys(item, f"{path}{name}.")
    return found


def changes(stub) -> list:
    return [s for s in stub.sent if s.method in ("PUT", "PATCH")]


def test_real_deploy_without_publish_rights_stops_before_any_step(config_file, source_copy, monkeypatch, capsys):
    """The token lists the deployer's groups, so the check knows: no role of its own nor through a group."""
    stub = synapse(
        roles={DEPLOYER: ("Microsoft.Synapse/workspaces/sparkJobDefinitions/write",)},
        members={DEPLOYER: ["7c1e-data-team"]},
    )
    real_deploy(monkeypatch, stub, SignedIn(groups=["7c1e-data-team"]))
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: dev@example.com (object id 0b6e6a4c-deployer) may not publish to Synapse workspace")
    assert "Synapse Artifact Publisher" in line and "(pipelines, triggers write not allowed)" in line
    assert not changes(stub), "nothing uploaded or published"
    checked = next(s for s in stub.sent if s.path == "/checkAccessSynapseRbac").json()
    assert checked["subject"] == {"principalId": DEPLOYER, "groupIds": ["7c1e-data-team"]}
    assert checked["scope"] == f"workspaces/{WORKSPACE}"


def test_real_deploy_reads_the_live_pool_for_its_sizing(config_file, source_copy, monkeypatch, capsys):
    """The pool as deployed wins over the parameters file: a Medium pool takes Medium executors."""
    stub = synapse(pool_node_size="Medium", pool_max_nodes=6)
    real_deploy(monkeypatch, stub)
    medium = deploy_args(config_file, "--source", str(source_copy), "--executor-size", "Medium", "--num-executors", "5")
    assert run_deploy(medium) == 0, capsys.readouterr().err
    too_many = deploy_args(config_file, "--source", str(source_copy), "--num-executors", "6")
    assert run_deploy(too_many) == 2
    assert "per the pool" in capsys.readouterr().err


def test_real_deploy_sizes_a_fixed_size_pool_by_its_node_count(config_file, source_copy, monkeypatch, capsys):
    stub = synapse(pool_scale={"autoScale": {"enabled": False}, "nodeCount": 3})
    real_deploy(monkeypatch, stub)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy), "--num-executors", "2")) == 0
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy), "--num-executors", "3")) == 2
    assert "per the pool" in capsys.readouterr().err


def test_a_pool_answering_no_node_count_is_one_line(config_file, source_copy, monkeypatch, capsys):
    stub = synapse(pool_scale={})
    real_deploy(monkeypatch, stub)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line == "error: Spark pool mltrack reports no node count; check the pool in Synapse Studio"
    assert not [s for s in stub.sent if s.method in ("PUT", "PATCH")]


# ---- Azure's refusals: one line each, with the exit code of their kind (docs/errors.md) ---------


def test_deploy_takes_the_logging_flags_every_subcommand_takes(config_file):
    args = build_parser().parse_args(deploy_args(config_file, "--dry-run", "--debug", "--log-level", "DEBUG"))
    assert (args.debug, args.log_level) == (True, "DEBUG")


@pytest.fixture
def not_logged_in(tmp_path, monkeypatch):
    """DefaultAzureCredential as a deployer who never ran `az login` has it. Azure AD and the CLI's
    token cache cannot be reached here: the `az` on PATH answers as the real one does when nobody is
    logged in, and azure-identity's own AzureCliCredential reads that answer; the credentials that
    would probe the network (managed identity) or other tools are left out."""
    from azure.identity import DefaultAzureCredential

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "az").write_text("#!/bin/sh\necho \"ERROR: Please run 'az login' to setup account.\" >&2\nexit 1\n")
    (bin_dir / "az").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    for name in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PATH"):
        monkeypatch.delenv(name, raising=False)
    return DefaultAzureCredential(
        exclude_managed_identity_credential=True, exclude_workload_identity_credential=True,
        exclude_shared_token_cache_credential=True, exclude_visual_studio_code_credential=True,
        exclude_azure_powershell_credential=True, exclude_developer_cli_credential=True,
    )  # fmt: skip


def test_not_logged_in_is_one_line_and_exit_4(config_file, source_copy, monkeypatch, capsys, not_logged_in):
    stub = synapse()
    real_deploy(monkeypatch, stub, not_logged_in)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: cannot read pool mltrack of Synapse workspace {WORKSPACE}: ")
    assert "Azure did not sign you in" in line
    assert "DefaultAzureCredential failed to retrieve a token" in line and "az login" in line
    assert stub.sent == [] and not changes(stub)


def test_debug_adds_the_azure_error_whole(config_file, source_copy, monkeypatch, capsys, not_logged_in):
    real_deploy(monkeypatch, synapse(), not_logged_in)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy), "--debug")) == 4
    error = capsys.readouterr().err
    assert "AzureCliCredential: Please run 'az login' to set up an account" in error
    assert error.splitlines()[-1].startswith("error: cannot read pool mltrack")


def test_no_access_to_the_workspace_is_one_line_and_exit_4(config_file, source_copy, monkeypatch, capsys):
    """A deployer with no Synapse RBAC role: the dev endpoint answers 403 to the first call."""
    stub = synapse(roles={})
    real_deploy(monkeypatch, stub)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 4
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"error: cannot read pool mltrack of Synapse workspace {WORKSPACE}: Azure refused access")
    assert f"HTTP 403: (Unauthorized) The principal '{DEPLOYER}' does not have the required Synapse RBAC" in line
    assert "a Synapse RBAC role on the workspace" in line
    assert not changes(stub)


@pytest.mark.parametrize(
    ("lake", "code", "expected"),
    [
        ({"lake_writers": frozenset()}, 4,
         "Azure refused access (HTTP 403: (AuthorizationPermissionMismatch) This request is not authorized"),
        ({"lake_failure": (404, "FilesystemNotFound", "The specified filesystem does not exist.")}, 2,
         "not found (HTTP 404: The specified filesystem does not exist.); check --storage-account and --filesystem"),
        ({"lake_failure": (503, "ServerBusy", "The server is currently unable to receive requests.")}, 3,
         "HTTP 503: (ServerBusy) The server is currently unable to receive requests."),
    ],
    ids=["refused", "not-found", "service-failed"],
)  # fmt: skip
def test_a_failed_step_exits_with_the_code_of_its_kind(
    config_file, source_copy, monkeypatch, capsys, lake, code, expected
):
    """The first upload (step 2) meets the data lake's answer; retries are off so a 503 fails at once."""
    stub = synapse(**lake)
    real_deploy(monkeypatch, stub, retry_total=0)
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == code
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("error: step 2 failed: ") and expected in line, line
    assert not [s for s in stub.sent if "azuresynapse" in s.url and s.method == "PUT"], "nothing published"


PUBLISHERS = "5d1f-synapse-publishers"
# Microsoft Entra ID's groups overage claim, past 200 groups: no `groups`, a pointer to Microsoft Graph
# instead (Microsoft identity platform, access token claims reference, "groups overage claim").
OVERAGE = {
    "_claim_names": {"groups": "src1"},
    "_claim_sources": {"src1": {"endpoint": f"https://graph.microsoft.com/v1.0/users/{DEPLOYER}/getMemberObjects"}},
}


@pytest.mark.parametrize(
    ("claims", "warned"),
    [({"groups": [PUBLISHERS]}, False), (OVERAGE, True), ({}, True)],
    ids=["groups-listed", "groups-overage", "no-groups-claim"],
)
def test_a_role_held_through_a_group_publishes(config_file, source_copy, monkeypatch, capsys, claims, warned):
    """The deployer publishes through a group's role. When the token does not list the groups the check
    cannot know: it warns and goes ahead instead of refusing, and Synapse itself lets the publishing through."""
    stub = synapse(roles={PUBLISHERS: synapse_target.PUBLISH_ACTIONS}, members={DEPLOYER: [PUBLISHERS]})
    real_deploy(monkeypatch, stub, SignedIn(**claims))
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 0, capsys.readouterr().err
    error = capsys.readouterr().err
    assert ("cannot tell whether dev@example.com (object id 0b6e6a4c-deployer) may publish" in error) == warned
    assert [s.path.rsplit("/", 1)[-1] for s in changes(stub) if "azuresynapse" in s.url] == [
        "synapse-ml-track-train", "synapse-ml-track-score", "synapse-ml-track-train-pipeline",
        "synapse-ml-track-score-pipeline", "synapse-ml-track-incremental-score-pipeline",
        "synapse-ml-track-score-nightly",
    ]  # fmt: skip


def test_without_a_role_and_without_groups_in_the_token_publishing_stops_at_its_step(
    config_file, source_copy, monkeypatch, capsys
):
    """The warning's other side: no group gives the role, so Synapse refuses the first job definition."""
    stub = synapse(roles={DEPLOYER: ("Microsoft.Synapse/workspaces/read",)})
    real_deploy(monkeypatch, stub, SignedIn(**OVERAGE))
    assert run_deploy(deploy_args(config_file, "--source", str(source_copy))) == 4
    error = capsys.readouterr().err.splitlines()
    assert "groups overage claim" in error[0]
    assert error[-1].startswith("error: step 7 failed: Azure refused access (HTTP 403: (Unauthorized) The principal")
    assert "Synapse Artifact Publisher" in error[-1]


def test_a_wheel_that_does_not_build_says_why_in_one_line(tmp_path):
    source = tmp_path / "source"
    (source / "synapse_ml_track").mkdir(parents=True)
    (source / "synapse_ml_track" / "__init__.py").touch()
    (source / "pyproject.toml").write_text('[build-system]\nrequires = []\nbuild-backend = "no_such_backend"\n')
    with pytest.raises(plan.DeployError) as failed:
        plan.build_wheel(source, tmp_path / "wheels")
    assert str(failed.value) == "building the wheel failed: ModuleNotFoundError: No module named 'no_such_backend'"
