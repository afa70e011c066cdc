"""A Spark standalone cluster on this machine: one master and N workers, each its own JVM, started
with the installed pyspark's own `bin/spark-class` (no download, no SPARK_HOME to set up).

Every port is chosen by the process that binds it (`--port 0`, `--webui-port 0`) and read back from
its log, so no other process can take a port between its choice and its bind. Readiness is the
master's JSON endpoint listing every worker ALIVE. `stop()` ends each process group it started
(the worker's executors and their Python workers belong to the worker's group).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyspark
import requests

from support import CliResult

SPARK_HOME = Path(pyspark.__file__).resolve().parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"
SPARK_SUBMIT = SPARK_HOME / "bin" / "spark-submit"
HOST = "127.0.0.1"
# JVM start-up on a loaded 2-core machine: seconds, sometimes much more.
START_TIMEOUT = 180.0
_MASTER_URL = re.compile(r"Starting Spark master at (spark://\S+)")
_MASTER_UI_PORT = re.compile(r"Successfully started service 'MasterUI' on port (\d+)")


def spark_env(conf_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a cluster process or spark-submit: this SPARK_HOME, an empty conf dir
    (no spark-defaults.conf or spark-env.sh from the machine), everything on 127.0.0.1."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    # Nothing from the caller's Spark, Python path or MLflow settings: a job's settings come from its flags.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_", "MLFLOW_"))}
    env.pop("PYTHONPATH", None)
    env.update(SPARK_HOME=str(SPARK_HOME), SPARK_CONF_DIR=str(conf_dir), SPARK_LOCAL_IP=HOST, SPARK_LOCAL_HOSTNAME=HOST)
    # The tests' JVM options (tests/conftest.py) for the master and workers, and for the driver.
    env.update(SPARK_DAEMON_JAVA_OPTS=jvm_options_of_the_tests(), SPARK_SUBMIT_OPTS=jvm_options_of_the_tests())
    env.update(extra)
    return env


def jvm_options_of_the_tests() -> str:
    """What tests/conftest.py gives every JVM the tests start (SPARK_SUBMIT_OPTS)."""
    return os.environ.get("SPARK_SUBMIT_OPTS", "")


@dataclass
class ClusterProcess:
    name: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, chars: int = 3000) -> str:
        return f"--- {self.name} ({self.log_path}), last {chars} characters:\n{self.log()[-chars:]}"


@dataclass
class SparkCluster:
    root: Path
    master_url: str = ""
    web_url: str = ""
    processes: list[ClusterProcess] = field(default_factory=list)

    def state(self) -> dict:
        """The master's JSON view: workers, active and completed applications."""
        return requests.get(f"{self.web_url}/json/", timeout=10).json()

    def worker_state(self, worker: dict) -> dict:
        """A worker's own JSON view (its executors, running and finished), from its web UI."""
        return requests.get(f"{worker['webuiaddress']}/json/", timeout=10).json()

    def tails(self) -> str:
        return "\n".join(p.tail() for p in self.processes)

    def submit(
        self, script: Path, *args: str, directory: Path, conf: dict[str, str], py_files: list[Path],
        env: dict[str, str], timeout: float = 600.0,
    ) -> CliResult:  # fmt: skip
        """`spark-submit --master <this cluster>` in client mode (the driver runs here, in
        `directory`); its output goes to files there. A submit past the timeout is killed with its driver."""
        directory.mkdir(parents=True, exist_ok=True)
        command = [str(SPARK_SUBMIT), "--master", self.master_url, "--py-files", ",".join(map(str, py_files))]
        for key, value in {"spark.executor.extraJavaOptions": jvm_options_of_the_tests(), **conf}.items():
            command += ["--conf", f"{key}={value}"]
        command += [str(script), *args]
        stdout, stderr = directory / "stdout.txt", directory / "stderr.txt"
        with open(stdout, "w") as out, open(stderr, "w") as err:
            process = subprocess.Popen(
                command, stdout=out, stderr=err, stdin=subprocess.DEVNULL, cwd=directory,
                env=spark_env(self.root / "conf", **env), start_new_session=True,
            )  # fmt: skip
            try:
                code = process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(timeout=15)
                raise AssertionError(
                    f"spark-submit {script.name} did not finish within {timeout:.0f} s:\n"
                    f"{stderr.read_text()[-3000:]}\n{self.tails()}"
                ) from None
        return CliResult(code, stdout.read_text(), stderr.read_text())

    def completed_app(self, app_id: str, timeout: float = 60.0) -> dict:
        """The master's record of a finished application. The driver's goodbye is asynchronous, so
        the master may list it a moment after spark-submit has returned."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.state()
            for app in state["completedapps"]:
                if app["id"] == app_id:
                    return app
            if time.monotonic() > deadline:
                known = [app["id"] for app in state["completedapps"] + state["activeapps"]]
                raise AssertionError(f"the master lists no completed application {app_id} (it knows {known})")
            time.sleep(0.3)

    def executors_by_worker(self, app_id: str) -> dict[str, list[dict]]:
        """The executors each worker ran for an application, running or finished, by worker id."""
        found = {}
        for worker in self.state()["workers"]:
            own = self.worker_state(worker)
            executors = own.get("executors", []) + own.get("finishedexecutors", [])
            found[worker["id"]] = [e for e in executors if e.get("appid") == app_id]
        return found

    def executor_logs(self, app_id: str) -> str:
        """What the executors of an application logged (stderr in their work dirs, INFO and up)."""
        logs = sorted(self.root.glob(f"worker-*/work/{app_id}/*/stderr"))
        return "\n".join(path.read_text(errors="replace") for path in logs)

    def stop(self) -> None:
        """End every process group started here: master, workers and the workers' executors."""
        for proc in reversed(self.processes):
            _signal_group(proc.process, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for proc in reversed(self.processes):
            try:
                proc.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            # Executors outlive a worker that is killed rather than stopped: end the whole group.
            _signal_group(proc.process, signal.SIGKILL)
            if proc.process.poll() is None:
                proc.process.wait(timeout=15)


def read_event_log(directory: Path, app_id: str) -> list[dict]:
    """The Spark events of a finished application (spark.eventLog.enabled, uncompressed)."""
    with open(directory / app_id) as log:
        return [json.loads(line) for line in log if line.strip()]


def _signal_group(process: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(process.pid, sig)  # its own session (start_new_session): the group id is its pid
    except ProcessLookupError:
        pass


def start_spark_cluster(
    root: Path, *, workers: int = 2, cores: int = 1, memory: str = "1g", timeout: float = START_TIMEOUT
) -> SparkCluster:
    """A master and `workers` workers on 127.0.0.1, each with its own work dir under `root`; returns
    once the master lists them all ALIVE. On failure everything started is stopped and the error
    shows the log tails."""
    root.mkdir(parents=True, exist_ok=True)
    cluster = SparkCluster(root)
    deadline = time.monotonic() + timeout
    try:
        master = _launch(cluster, "master", ["org.apache.spark.deploy.master.Master"], root / "master")
        cluster.master_url = _wait_for_log(cluster, master, _MASTER_URL, deadline)
        cluster.web_url = f"http://{HOST}:{_wait_for_log(cluster, master, _MASTER_UI_PORT, deadline)}"
        for index in range(1, workers + 1):
            work_dir = root / f"worker-{index}"
            worker = ["org.apache.spark.deploy.worker.Worker", "--cores", str(cores), "--memory", memory]
            worker += ["--work-dir", str(work_dir / "work"), cluster.master_url]
            # SPARK_LOCAL_DIRS: the executors' scratch space (block manager, shuffle files).
            _launch(cluster, f"worker-{index}", worker, work_dir, SPARK_LOCAL_DIRS=str(work_dir / "local"))
        _wait_for_workers(cluster, workers, deadline)
        return cluster
    except BaseException:
        cluster.stop()
        raise


def _launch(cluster: SparkCluster, name: str, args: list[str], directory: Path, **env: str) -> ClusterProcess:
    directory.mkdir(parents=True, exist_ok=True)
    command = [str(SPARK_CLASS), *args[:1], "--host", HOST, "--port", "0", "--webui-port", "0", *args[1:]]
    log_path = directory / f"{name}.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=directory,
            env=spark_env(cluster.root / "conf", **env),
            start_new_session=True,
        )
    proc = ClusterProcess(name, process, log_path)
    cluster.processes.append(proc)
    return proc


def _wait_for_log(cluster: SparkCluster, proc: ClusterProcess, pattern: re.Pattern, deadline: float) -> str:
    while time.monotonic() < deadline:
        found = pattern.search(proc.log())
        if found:
            return found.group(1)
        if proc.process.poll() is not None:
            raise ClusterError(f"{proc.name} exited with code {proc.process.returncode}", cluster)
        time.sleep(0.2)
    raise ClusterError(f"{proc.name} did not log /{pattern.pattern}/ in time", cluster)


def _wait_for_workers(cluster: SparkCluster, count: int, deadline: float) -> None:
    alive: list = []
    while time.monotonic() < deadline:
        for proc in cluster.processes:
            if proc.process.poll() is not None:
                raise ClusterError(f"{proc.name} exited with code {proc.process.returncode}", cluster)
        try:
            alive = [w for w in cluster.state().get("workers", []) if w.get("state") == "ALIVE"]
        except (requests.RequestException, ValueError):
            alive = []
        if len(alive) >= count:
            return
        time.sleep(0.3)
    raise ClusterError(f"the master lists {len(alive)} of {count} workers ALIVE after the start timeout", cluster)


class ClusterError(RuntimeError):
    def __init__(self, message: str, cluster: SparkCluster):
        super().__init__(f"Spark standalone cluster: {message}\n{cluster.tails()}")
