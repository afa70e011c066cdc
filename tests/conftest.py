"""Shared fixtures: one fast local SparkSession, a real MLflow server, and a way to run the CLI."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import time
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import requests
from pyspark.sql import SparkSession

from synapse_ml_track.cli import main

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def spark() -> SparkSession:
    session = (
        SparkSession.builder.master("local[1]")
        .appName("synapse-ml-track-tests")
        .config("spark.sql.shuffle.partitions", "1")
        .config("spark.default.parallelism", "1")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
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
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        os.environ.pop(variable, None)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = 60.0, process: subprocess.Popen | None = None, **kwargs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=2, **kwargs).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"no answer from {url} within {timeout} s")


@dataclass
class MlflowServer:
    uri: str
    port: int
    process: subprocess.Popen
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()


def start_mlflow_server(root: Path, port: int | None = None, extra_env: dict | None = None) -> MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with an sqlite store and a local artifact root."""
    root.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = root / "server.log"
    command = [
        str(VENV_BIN / "mlflow"), "server",
        "--host", "127.0.0.1", "--port", str(port),
        "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
        # A plain path: the client writes artifacts straight to it, as it would to AML's store.
        "--default-artifact-root", str(root / "artifacts"),
        "--workers", "1",
    ]
    env = {**os.environ, **(extra_env or {})}
    process = subprocess.Popen(command, stdout=open(log_path, "w"), stderr=subprocess.STDOUT, env=env)
    server = MlflowServer(f"http://127.0.0.1:{port}", port, process, log_path)
    try:
        wait_for_http(f"{server.uri}/health", process=process)
    except RuntimeError:
        server.stop()
        raise RuntimeError(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}")
    return server


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> MlflowServer:
    server = start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    yield server
    server.stop()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        return json.loads(self.stdout.strip().splitlines()[-1])

    @property
    def error_line(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("error: ")]
        assert lines, f"no error line in stderr:\n{self.stderr}"
        return lines[-1]


@pytest.fixture
def run_cli(spark, monkeypatch, tmp_path):
    """Run `synapse-ml-track ...` in this process (sharing the test SparkSession), from tmp_path."""
    monkeypatch.chdir(tmp_path)
    for variable in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(variable, raising=False)

    def run(*args: str) -> CliResult:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(args))
        return CliResult(code, out.getvalue(), err.getvalue())

    return run
