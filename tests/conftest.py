"""Shared fixtures: one fast local SparkSession, a real MLflow server, the AML double, and a way to run the CLI."""

from __future__ import annotations

import io
import os
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
from pyspark.sql import SparkSession

from synapse_ml_track.cli import main
from synapse_ml_track.spark import delta
from synapse_ml_track.spark import session as spark_session

from aml_server import AmlServer
from jvm_archive import jvm_options
from support import CliResult, MlflowServer, build_wheel, memory_dir, start_mlflow_server

# Every JVM the tests start (the session below, each job process's, spark-submit's) runs with the
# options of tests/jvm_archive.py: C1 only, the serial collector, and the class archive `make test`
# writes. A value set by the caller is kept (" " gives the JVM's defaults).
os.environ.setdefault("SPARK_SUBMIT_OPTS", jvm_options())


def pytest_collection_modifyitems(items) -> None:
    """The files marked `minutes(n)` first, longest first (each file's own order kept): make test hands
    out whole files to two workers in this order (-n 2 --dist loadfile --no-loadscope-reorder), and a
    long file handed out last would run alone at the end."""

    def minutes(item) -> float:
        marker = item.get_closest_marker("minutes")
        return marker.args[0] if marker else 0

    items.sort(key=lambda item: -minutes(item))


def pytest_collection_finish(session) -> None:
    """Start the probe processes of the collected test files that have one (a `start_probes()`, e.g.
    tests/unit/test_tracking_layer.py) now: they run on the other core while the tests before theirs do.
    Not in a pytest-xdist worker, which collects every file but runs only those it is given."""
    if session.config.option.collectonly or os.environ.get("PYTEST_XDIST_WORKER"):
        return
    modules = {item.module for item in session.items if getattr(item, "module", None) is not None}
    for module in sorted(modules, key=lambda module: module.__name__):
        if callable(getattr(module, "start_probes", None)):
            module.start_probes()


@pytest.fixture(scope="session")
def spark(tmp_path_factory) -> SparkSession:
    """With Delta Lake on when `make delta-jars` has fetched the jars (tests/test_delta.py insists on them),
    and catalog tables under a temporary warehouse."""
    builder = (
        SparkSession.builder.master("local[1]")
        .appName("synapse-ml-track-tests")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("warehouse")))
    )
    for key, value in delta.local_session_conf().items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(autouse=True)
def isolated_mlflow_uris(monkeypatch):
    """Each test starts and ends with MLflow's global URIs unset.

    mlflow.set_registry_uri also exports MLFLOW_REGISTRY_URI and set_registry_uri(None) does not
    remove it, so one test's registry would otherwise leak into every later MlflowClient.
    """
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(variable, raising=False)
    yield
    reset_global_mlflow_uris()


GLOBAL_URI_VARIABLES = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
AML_CLOUD_VARIABLE = "AZUREML_CURRENT_CLOUD"  # named for azureml-mlflow by entrypoint.set_global_tracking_uri


def reset_global_mlflow_uris() -> None:
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for variable in GLOBAL_URI_VARIABLES:
        os.environ.pop(variable, None)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> MlflowServer:
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"), store_dir=memory_dir("mlflow-server-"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def default_mlflow_server(tmp_path_factory) -> MlflowServer:
    """A plain `mlflow server` in its default configuration, as a user starts one: artifacts proxied
    through the server (`mlflow-artifacts:` locations), not written by the client to a shared path."""
    server = start_mlflow_server(
        tmp_path_factory.mktemp("default-mlflow-server"), proxy_artifacts=True, store_dir=memory_dir("default-server-")
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def package_wheel(tmp_path_factory) -> Path:
    """The package's wheel, built once a session from a copy of the source tree (support.build_wheel)."""
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.fixture
def run_cli(request, monkeypatch, tmp_path):
    """Run `synapse-ml-track ...` in this process, from tmp_path, with the test SparkSession (the
    `spark` fixture) started only when the job asks for a session: a job that fails before it needs
    Spark (a bad config, no tracking server) starts none. `run_cli.spark_requests` counts the asks.

    The job's own start (spark_starting, begun beside the tracking set-up) is what the fixture's
    session stands in for; tests/test_faults.py runs the real one in a job process."""
    requests: list[str] = []

    def test_session(app_name: str = "") -> SparkSession:
        requests.append(app_name)
        return request.getfixturevalue("spark")

    @contextmanager
    def started_when_asked(app_name: str) -> Iterator[Callable[[], SparkSession]]:
        yield lambda: test_session(app_name)

    monkeypatch.setattr(spark_session, "spark_starting", started_when_asked)
    monkeypatch.setattr(spark_session, "get_or_create_spark", test_session)
    monkeypatch.chdir(tmp_path)
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(variable, raising=False)

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        before = {variable: os.environ.get(variable) for variable in (*GLOBAL_URI_VARIABLES, AML_CLOUD_VARIABLE)}
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = main(list(args))
        finally:
            # The job sets MLflow's global URIs and the plugin's cloud once at its entry point
            # (synapse_ml_track.entrypoint), for the rest of its process; here the process goes on,
            # and the test's own clients must not inherit the job's server.
            reset_global_mlflow_uris()
            if before[AML_CLOUD_VARIABLE] is None:
                os.environ.pop(AML_CLOUD_VARIABLE, None)
            os.environ.update({variable: value for variable, value in before.items() if value is not None})
        return CliResult(code, out.getvalue(), err.getvalue())

    run.spark_requests = requests
    return run


# ---- the AML workspace double (tests/aml_server.py) ---------------------------------------------

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# MLflow's own usage telemetry (config.mlflow-telemetry.io): blocked too, but it is not Azure's doing.
NOT_AZURE = (".mlflow-telemetry.io",)


@pytest.fixture(scope="session")
def aml_server(tmp_path_factory) -> AmlServer:
    """One AML double (and the real mlflow server behind it, `aml_server.upstream`) for the session."""
    upstream = start_mlflow_server(tmp_path_factory.mktemp("aml-upstream"), store_dir=memory_dir("aml-upstream-"))
    server = AmlServer(upstream.uri, tmp_path_factory.mktemp("aml-double")).start()
    server.upstream = upstream  # type: ignore[attr-defined]
    yield server
    server.stop()
    upstream.stop()


@dataclass
class ServicePrincipalEnv:
    tenant_id: str
    client_id: str
    secret: str
    environ: dict[str, str]


@pytest.fixture
def aml_env(aml_server, monkeypatch, request) -> ServicePrincipalEnv:
    """A fresh service principal known to the fake Azure AD, in the environment as a job would have it.

    Trusts the server's certificate (REQUESTS_CA_BUNDLE) and points azure-identity at the fake
    authority (AZURE_AUTHORITY_HOST). Clears the workspace variables so each test sets its own, and
    puts the double back to a well-behaved workspace.
    """
    if "run_cli" in request.fixturenames:
        request.getfixturevalue("run_cli")  # it clears AZURE_CLIENT_SECRET: set ours after it
    aml_server.reset()
    environ = aml_server.client_environment()
    client_id, secret = environ["AZURE_CLIENT_ID"], environ["AZURE_CLIENT_SECRET"]
    for name in (
        "AZURE_SUBSCRIPTION_ID", "AZURE_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME", "AZUREML_REGION",
        "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD", "MLFLOW_TRACKING_URI", "CURL_CA_BUNDLE",
        "MLFLOW_ENABLE_ASYNC_LOGGING",
    ):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    yield ServicePrincipalEnv(aml_server.tenant_id, client_id, secret, environ)
    aml_server.reset()


@pytest.fixture
def offline(monkeypatch) -> list[str]:
    """Only 127.0.0.1 resolves: any attempt to reach Azure (instance discovery, cloud metadata, ARM,
    IMDS) fails at once and is listed here for the test to assert on."""
    attempted: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if str(host) not in LOCAL_HOSTS:
            if not str(host).endswith(NOT_AZURE):
                attempted.append(str(host))
            raise socket.gaierror(socket.EAI_NONAME, f"offline test: {host} is not reachable")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)
    return attempted


# ---- infra/: its Bicep files parsed once per session (tests/bicep_support.py) -------------------


@pytest.fixture(scope="session")
def parsed() -> dict[str, dict]:
    """infra/'s Bicep files by path under infra/: {"tree": pycep-parser's tree} or {"error": why not}."""
    from bicep_support import BICEP_FILES, INFRA, parse_bicep

    return parse_bicep(BICEP_FILES, INFRA)


@pytest.fixture(scope="session")
def trees(parsed) -> dict[str, dict]:
    """infra/'s parse trees by path under infra/; fails the tests using it when a file does not parse."""
    from bicep_support import trees_of

    return trees_of(parsed)
