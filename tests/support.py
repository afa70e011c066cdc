"""Helpers the tests, the AML double and the benchmark share: free ports and a real `mlflow server`."""

from __future__ import annotations

import ast
import atexit
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
# The `mlflow` command that serves the tests' tracking servers. The runtime environment (Synapse's
# mlflow-skinny, which has no server) borrows the main environment's: the REST API is the same.
MLFLOW_SERVER = Path(os.environ.get("SMT_MLFLOW_SERVER", VENV_BIN / "mlflow"))
# How long a server may take to answer its first request. A cold mlflow server imports for
# 5-10 s; on a loaded 2-core machine that has been seen to take over a minute.
START_TIMEOUT = 180.0
# What a training run logs at the top of its artifacts, wherever it is tracked.
EXPECTED_ARTIFACTS = {
    "classification_report.json",
    "classification_report.txt",
    "confusion_matrix.png",
    "coefficients.json",
    "model",
}
# What a server prints when another process took its port between our choosing it and its bind.
_PORT_TAKEN = ("address already in use", "errno 98", "eaddrinuse")
# MLflow 3's job runner (mlflow/server/__init__.py: seven huey consumers beside the web worker, about
# 15 CPU seconds a server) serves `mlflow.server.jobs`, which nothing here uses. Off, a server is two
# processes. mlflow-skinny 2.18 (the runtime tests' client) never reads it: its servers are
# SMT_MLFLOW_SERVER, the main environment's mlflow 3.
SERVER_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
# A migrated, empty sqlite store (`mlflow db upgrade`, made once and copied): each new store would
# otherwise run MLflow's whole Alembic history, seconds of CPU and hundreds of fsyncs. Children (the
# AML double, soak's jobs) find it in the environment and copy the same one.
TEMPLATE_VARIABLE = "SMT_MLFLOW_STORE_TEMPLATE"


def free_port() -> int:
    """A port nothing listens on right now. Another process may take it before the caller binds it:
    servers started here detect that and choose again (see start_mlflow_server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, timeout: float = START_TIMEOUT, process: subprocess.Popen | None = None, **kwargs) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerExited(f"server exited with code {process.returncode} before answering {url}")
        try:
            if requests.get(url, timeout=5, **kwargs).status_code < 500:
                if process is None or process.poll() is None:
                    return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"no answer from {url} within {timeout:.0f} s")


class ServerExited(RuntimeError):
    pass


def package_module_files() -> dict[str, Path]:
    """Every module of the package, its CLI's too, by dotted name (a package by its own name)."""
    files = {}
    for path in sorted((REPO / "synapse_ml_track").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def imported_names(path: Path) -> set[str]:
    """What the file imports, wherever the import statement is (in a function, under TYPE_CHECKING):
    each module, and each `from` import's module.name (`from pkg import mod` names pkg.mod)."""
    imported = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return imported


def memory_dir(prefix: str) -> Path:
    """A fresh directory in memory (/dev/shm) when the machine has one, else under the temporary
    directory; removed when this process exits. For sqlite stores: each commit's fsync on a shared
    disk is what makes a store slow, and nothing here tests durability."""
    shm = Path("/dev/shm")
    base = shm if shm.is_dir() and os.access(shm, os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def migrated_store_template() -> Path:
    """An empty sqlite store at MLflow's latest schema, as the server's mlflow makes it: its own
    `mlflow db upgrade` (what a server does to a new store), in this process when that is the
    server's mlflow, else in the server's environment (the runtime's mlflow-skinny has no Alembic).
    Made once per release of the server's mlflow and kept in its environment, beside it: every test
    process after the first copies it (the migration alone is seconds of CPU)."""
    known = os.environ.get(TEMPLATE_VARIABLE)
    if known and Path(known).is_file():
        return Path(known)
    template = MLFLOW_SERVER.parent.parent / f".smt-store-template-mlflow-{_server_mlflow_release()}.db"
    if not template.is_file():
        scratch = memory_dir("smt-store-template-") / "mlflow.db"
        uri = f"sqlite:///{scratch}"
        if MLFLOW_SERVER == VENV_BIN / "mlflow":
            from mlflow.db import upgrade

            upgrade.main([uri], standalone_mode=False)
        else:
            subprocess.run([str(MLFLOW_SERVER), "db", "upgrade", uri], check=True, capture_output=True, timeout=300)
        partial = template.with_name(f"{template.name}.{os.getpid()}")
        shutil.copyfile(scratch, partial)
        os.replace(partial, template)  # whole or absent: pytest-xdist workers may make it at once
    os.environ[TEMPLATE_VARIABLE] = str(template)
    return template


def _server_mlflow_release() -> str:
    if MLFLOW_SERVER == VENV_BIN / "mlflow":
        return importlib.metadata.version("mlflow")
    (dist,) = MLFLOW_SERVER.parent.parent.glob("lib/python*/site-packages/mlflow-*.dist-info")
    return dist.name.removeprefix("mlflow-").removesuffix(".dist-info")


def new_sqlite_store(directory: Path) -> str:
    """The URI of a new, empty, migrated sqlite store in `directory` (a copy of the template)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "mlflow.db"
    shutil.copyfile(migrated_store_template(), path)
    return f"sqlite:///{path}"


@dataclass
class MlflowServer:
    uri: str
    port: int
    process: subprocess.Popen
    log_path: Path
    store_path: Path  # the sqlite file of its backend store

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def start_mlflow_server(
    root: Path,
    *,
    artifact_root: str | None = None,
    proxy_artifacts: bool = False,
    extra_env: dict | None = None,
    attempts: int = 3,
    store_dir: Path | None = None,
) -> MlflowServer:
    """A real `mlflow server` on 127.0.0.1 with an sqlite store, on a free port.

    By default clients write artifacts straight to `artifact_root` (--default-artifact-root), as
    the AML double's upstream and the cluster tests need. With proxy_artifacts the server runs in
    MLflow's default configuration instead, as a user starts it: artifacts go through the server
    (--serve-artifacts is the default since MLflow 2.0), stored under --artifacts-destination, and
    experiments get `mlflow-artifacts:/...` artifact locations.

    The port is chosen before the server binds it, so another process can take it in between;
    then the server exits saying so and another port is chosen.

    The store starts as a copy of a migrated one (migrated_store_template), in `store_dir` when
    given (the tests give memory_dir's), else in `root`.
    """
    root.mkdir(parents=True, exist_ok=True)
    log_path = root / "server.log"
    env = {**os.environ, **SERVER_ENV, **(extra_env or {})}
    store = new_sqlite_store(store_dir or root)
    if proxy_artifacts:
        artifact_flags = ["--artifacts-destination", str(root / "artifacts")]
    else:
        artifact_flags = ["--default-artifact-root", artifact_root or str(root / "artifacts")]
    for _ in range(attempts):
        port = free_port()
        command = [
            str(MLFLOW_SERVER), "server",
            "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", store,
            *artifact_flags,
            "--workers", "1",
        ]  # fmt: skip
        with open(log_path, "w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        server = MlflowServer(
            f"http://127.0.0.1:{port}", port, process, log_path, Path(store.removeprefix("sqlite:///"))
        )
        try:
            wait_for_http(f"{server.uri}/health", process=process)
            return server
        except ServerExited:
            server.stop()
            if not any(marker in log_path.read_text().lower() for marker in _PORT_TAKEN):
                raise RuntimeError(f"mlflow server did not start:\n{log_path.read_text()[-3000:]}") from None
        except RuntimeError:
            server.stop()
            raise RuntimeError(f"mlflow server did not answer:\n{log_path.read_text()[-3000:]}") from None
    raise RuntimeError(f"mlflow server found no free port in {attempts} attempts")


def unique(prefix: str, separator: str = "-") -> str:
    """A name no other test takes (experiment, model, table) on a server shared by the session."""
    return f"{prefix}{separator}{uuid.uuid4().hex[:8]}"


def train(run_cli, server, experiment: str, model: str, *extra: str) -> CliResult:
    """`synapse-ml-track train` tracked on `server` (an mlflow server, the AML double or a URI)."""
    uri = getattr(server, "tracking_uri", None) or getattr(server, "uri", server)
    return run_cli(
        "train", "--tracking-uri", uri, "--experiment-name", experiment, "--registered-model-name", model, *extra
    )


def build_wheel(dest: Path) -> Path:
    """The package's wheel, built as deploy builds the one it ships to Synapse (synapse_ml_track.deploy.plan)."""
    from synapse_ml_track.deploy.plan import build_wheel as build

    (dest / "dist").mkdir(parents=True, exist_ok=True)
    return build(REPO, dest / "dist")


@dataclass
class CliResult:
    """What a job run printed and returned: the CLI in this process, or spark-submit."""

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
