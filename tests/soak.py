"""The soak: many jobs against the strict AML double through the fault proxy, then the double's state checked.

`make soak` runs a bounded, seeded mix (trains, searches with parallelism, scores, reruns by run key,
jobs killed mid-run and rerun with their key) as real processes, through the real azureml-mlflow
plugin, to the AML double (tests/aml_server.py). Between the double and the real `mlflow server`
behind it sits the fault proxy (tests/fault_proxy.py); a chaos thread keeps adding faults while jobs
run: 429 windows with Retry-After (at the double, as AML throttles a workspace), 503s, dropped
connections, lost responses (applied, then the connection dropped) and slow responses. Everything is
on loopback and bounded in jobs, faults and time; it stops by itself.

Afterwards the real server's state is read directly (no proxy) and every job is classed:
- finished: exit 0, its run FINISHED, registered exactly once when it said so;
- failed clean: non-zero exit, its run FAILED (or never created), no version registered from it;
- lost: anything else (a run FINISHED that the job reported failed, a version missing...);
- duplicated: two runs for one run key, two versions for one run, a metric logged twice, a search
  candidate fitted twice.
No run may be left RUNNING. Last line:
`soak: N jobs (K run keys), F finished, X failed clean, L lost, D duplicated, R left running`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.entities import ViewType
from mlflow.tracking import MlflowClient

from synapse_ml_track.vocabulary import CANDIDATE_TAG, CHAMPION_TAG, JOB_TAG, RUN_KEY_TAG, SEARCH_CANDIDATE_JOB

from aml_server import AmlServer
from fault_proxy import FaultProxy, Rule
from jvm_archive import jvm_options
from support import MlflowServer, start_mlflow_server

PARENT_TAG = "mlflow.parentRunId"
EXPERIMENT = "smt-soak"
MODEL = "smt-soak-model"
RACE_MODEL = "smt-soak-race"
FAULT_LIFETIME = 20.0  # seconds an injected proxy fault waits for a request to meet
# Seconds between injected faults, on average. Every 4 s kept several faults waiting at all times, so
# nearly every request of a job met one and a single tag took minutes of honoured retries: a 50-job
# soak ran for hours and measured the retry budget, not whether anything is lost.
MEAN_FAULT_GAP = 8.0
JOB_TIMEOUT = 900.0  # seconds one job process may take before the soak kills it and counts it lost
MLFLOW_API = r"/api/2\.0/mlflow/"
ENTRY = "import sys; from synapse_ml_track.cli import run; run(sys.argv[1:])"


@dataclass
class Workspace:
    upstream: MlflowServer
    proxy: FaultProxy
    aml: AmlServer
    environ: dict[str, str]

    @property
    def tracking_uri(self) -> str:
        return self.aml.tracking_uri


@contextmanager
def workspace(root: Path) -> Iterator[Workspace]:
    """A real mlflow server, the fault proxy in front of it, and the AML double in front of that."""
    upstream = start_mlflow_server(root / "mlflow")
    proxy = FaultProxy(upstream.uri).start()
    aml = AmlServer(proxy.url, root / "aml").start()
    environ = aml.client_environment()
    try:
        yield Workspace(upstream, proxy, aml, environ)
    finally:
        aml.stop()
        proxy.stop()
        upstream.stop()


@dataclass
class Job:
    """One job process: its CLI arguments, its run key, and, for a killed job, when to kill it."""

    name: str
    kind: str  # train | search | score
    args: list[str]
    run_key: str
    registers: bool = True
    kill_after: float | None = None  # seconds; then the job is killed and rerun with the same run key
    attempts: list[Attempt] = field(default_factory=list)


@dataclass
class Attempt:
    exit_code: int | None  # None: killed
    seconds: float
    summary: dict | None
    error: str


def plan(count: int, seed: int, scratch: Path) -> list[Job]:
    """A seeded mix: mostly trains (some killed mid-run, some rerun by key), searches and scores."""
    rng = random.Random(seed)
    common = [
        "--experiment-name", EXPERIMENT, "--registered-model-name", MODEL, "--set", "gate.min_metrics.f1=0.5",
    ]  # fmt: skip
    jobs: list[Job] = []
    for index in range(count):
        key = f"soak-{seed}-{index}"
        roll = rng.random()
        kill_after = rng.uniform(4.0, 25.0) if rng.random() < 0.2 else None
        if index < 2 or roll < 0.5:
            model = rng.choice(["logistic_regression", "random_forest"])
            jobs.append(
                Job(f"train-{index}", "train", ["train", *common, "--model-type", model], key, True, kill_after)
            )
        elif roll < 0.65:
            grid = json.dumps({"regParam": [0.0, 0.1], "elasticNetParam": [0.0, 0.5]})
            args = ["train", *common, "--set", f"model.search.params={grid}", "--set", "model.search.parallelism=2"]
            args += ["--set", "model.search.folds=2"]
            jobs.append(Job(f"search-{index}", "search", args, key, True, kill_after))
        elif roll < 0.8:
            # A rerun by run key of an earlier job: it must reuse that run, not make another.
            earlier = rng.choice([j for j in jobs if j.kind != "score"])
            jobs.append(Job(f"rerun-{index}-of-{earlier.name}", earlier.kind, earlier.args, earlier.run_key, True))
        else:
            output = scratch / f"scores-{index}"
            args = ["score", *common[:2], "--set", f"tracking.registered_model_name={MODEL}"]
            args += ["--output-path", str(output), "--mode", "overwrite"]
            jobs.append(Job(f"score-{index}", "score", args, key, False, kill_after))
    return jobs


def run_job(job: Job, ws: Workspace, scratch: Path) -> None:
    """Run the job; a job planned to be killed is killed mid-run, then rerun with its run key."""
    directory = scratch / job.name
    directory.mkdir(parents=True, exist_ok=True)
    args = [*job.args, "--tracking-uri", ws.tracking_uri, "--run-key", job.run_key]
    job.attempts.append(_attempt(args, ws, directory, job.kill_after))
    if job.kill_after is not None and job.attempts[-1].exit_code is None:
        job.attempts.append(_attempt(args, ws, directory, None))


def _attempt(args: list[str], ws: Workspace, directory: Path, kill_after: float | None) -> Attempt:
    env = {**os.environ, **ws.environ, "MLFLOW_TRACKING_URI": ""}
    env.pop("MLFLOW_TRACKING_URI")
    started = time.monotonic()
    with open(directory / "stdout", "ab") as out, open(directory / "stderr", "ab") as err:
        process = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *args],
            cwd=directory, env=env, stdout=out, stderr=err, start_new_session=True,
        )  # fmt: skip
        try:
            process.wait(timeout=kill_after if kill_after is not None else JOB_TIMEOUT)
            code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # the job and its Spark JVM, as a lost executor would
            process.wait()
            code = None
    stdout = (directory / "stdout").read_text(errors="replace").strip().splitlines()
    stderr = (directory / "stderr").read_text(errors="replace").splitlines()
    summary = None
    if code == 0 and stdout:
        try:
            summary = json.loads(stdout[-1])
        except json.JSONDecodeError:
            summary = None
    error = next((line for line in reversed(stderr) if line.startswith("error: ")), "")
    return Attempt(code, time.monotonic() - started, summary, error)


class Chaos:
    """Adds a random fault every few seconds until stopped; each fault has a bounded number of uses."""

    def __init__(self, ws: Workspace, seed: int, mean_gap: float = MEAN_FAULT_GAP) -> None:
        self.ws, self.rng, self.mean_gap = ws, random.Random(seed), mean_gap
        self.faults: Counter = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-chaos", daemon=True)

    def __enter__(self) -> Chaos:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.ws.proxy.clear()
        self.ws.aml.reset()

    def _run(self) -> None:
        while not self._stop.wait(self.rng.expovariate(1 / self.mean_gap)):
            self.inject(self.rng.choice(["throttle", "unavailable", "drop", "lost", "slow"]))

    def inject(self, kind: str) -> None:
        """One fault for the next matching request within FAULT_LIFETIME seconds: a fault no request
        meets in time lapses, so faults do not pile up while the jobs are busy in Spark and then
        meet every request of the next job at once (a rate per time, as a real outage has)."""
        rng, proxy = self.rng, self.ws.proxy
        expires_at = time.monotonic() + FAULT_LIFETIME
        if kind == "throttle":  # a window of 429s with Retry-After for the whole workspace
            self.ws.aml.throttle_window(seconds=rng.uniform(5.0, 20.0), retry_after=rng.choice([2, 3, 5]))
        elif kind == "unavailable":
            proxy.add(Rule("respond", path=MLFLOW_API, status=503, times=rng.randint(1, 2), expires_at=expires_at))
        elif kind == "drop":
            proxy.add(Rule("drop", path=MLFLOW_API, times=1, expires_at=expires_at))
        elif kind == "lost":  # applied by the server, then the answer lost
            proxy.add(Rule("drop", path=MLFLOW_API, method="POST", times=1, forward=True, expires_at=expires_at))
        else:
            delay = rng.uniform(1.0, 4.0)
            proxy.add(Rule("delay", path=MLFLOW_API, delay=delay, times=rng.randint(1, 2), expires_at=expires_at))
        self.faults[kind] += 1


@dataclass
class Verdict:
    jobs: int  # job processes run (a killed job's rerun not counted again)
    run_keys: int  # what finished and failed clean count: a rerun by run key joins its key's verdict
    finished: int = 0
    failed_clean: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    left_running: list[str] = field(default_factory=list)
    faults: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        return (
            f"soak: {self.jobs} jobs ({self.run_keys} run keys), {self.finished} finished, "
            f"{self.failed_clean} failed clean, {len(self.lost)} lost, {len(self.duplicated)} duplicated, "
            f"{len(self.left_running)} left running"
        )

    @property
    def clean(self) -> bool:
        return not (self.lost or self.duplicated or self.left_running)


def verify(jobs: list[Job], client: MlflowClient) -> Verdict:
    """Class every job from what the real server holds (read without the proxy or the double)."""
    experiment = client.get_experiment_by_name(EXPERIMENT)
    runs = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL) if experiment else []
    versions = [v for name in (MODEL, RACE_MODEL) for v in _versions(client, name)]
    verdict = Verdict(jobs=len(jobs), run_keys=len({job.run_key for job in jobs}))
    verdict.left_running = [
        f"run {r.info.run_id} ({r.data.tags.get(JOB_TAG)})" for r in runs if r.info.status == "RUNNING"
    ]
    verdict.duplicated += _duplicates(runs, versions, client)
    by_key: dict[str, list] = {}
    for run in runs:
        if run.data.tags.get(JOB_TAG) != SEARCH_CANDIDATE_JOB and RUN_KEY_TAG in run.data.tags:
            by_key.setdefault(run.data.tags[RUN_KEY_TAG], []).append(run)
    versions_by_run = Counter(v.run_id for v in versions)
    last_attempt: dict[str, Attempt] = {}
    for job in jobs:
        last_attempt[job.run_key] = job.attempts[-1]  # a rerun by key decides the key's outcome
    for key, attempt in last_attempt.items():
        keyed = by_key.get(key, [])
        kind = next(job.kind for job in jobs if job.run_key == key)
        if kind != "score" and len(keyed) > 1:
            verdict.duplicated.append(f"run key {key}: {len(keyed)} runs")
        statuses = {run.info.status for run in keyed}
        registered = sum(versions_by_run[run.info.run_id] for run in keyed)
        if attempt.exit_code == 0:
            summary = attempt.summary or {}
            says_registered = bool(summary.get("model_version"))
            if attempt.summary is None:  # the line a pipeline chains on: a job without it did not finish
                verdict.lost.append(f"{key}: exit 0 but no JSON summary as its last line of output")
            elif kind != "score" and statuses != {"FINISHED"}:
                verdict.lost.append(f"{key}: exit 0 but its runs are {sorted(statuses)}")
            elif kind == "score" and "FINISHED" not in statuses:
                verdict.lost.append(f"{key}: scored but no FINISHED run")
            elif kind != "score" and says_registered and registered != 1:
                verdict.lost.append(f"{key}: reported version {summary.get('model_version')}, {registered} found")
            else:
                verdict.finished += 1
        elif attempt.exit_code is None:
            verdict.lost.append(f"{key}: still running after {JOB_TIMEOUT:.0f} s")
        else:
            unfinished = statuses - {"FAILED"}
            if kind == "score":
                unfinished = {s for s in statuses if s == "RUNNING"}
            if unfinished or registered:
                verdict.lost.append(
                    f"{key}: exit {attempt.exit_code} ({attempt.error}) "
                    f"but runs {sorted(statuses)}, {registered} versions"
                )
            else:
                verdict.failed_clean += 1
    return verdict


def _versions(client: MlflowClient, name: str) -> list:
    return list(client.search_model_versions(f"name = '{name}'", max_results=1000))


def _duplicates(runs: list, versions: list, client: MlflowClient) -> list[str]:
    found = []
    for run_id, count in Counter(v.run_id for v in versions).items():
        if count > 1:
            found.append(f"run {run_id}: {count} model versions")
    candidates = Counter(
        (r.data.tags.get(PARENT_TAG), r.data.tags.get(CANDIDATE_TAG))
        for r in runs
        if r.data.tags.get(JOB_TAG) == SEARCH_CANDIDATE_JOB and r.info.status == "FINISHED"
    )
    found += [
        f"search {parent}: candidate {digest} finished {n} times" for (parent, digest), n in candidates.items() if n > 1
    ]
    # A metric logged twice with one value at one step, whatever the timestamps: a resend keeps the
    # timestamp of the first send, so comparing timestamps could not see a duplicate.
    for run in runs:
        for name in run.data.metrics:
            logged = Counter((m.step, m.value) for m in client.get_metric_history(run.info.run_id, name))
            found += [
                f"run {run.info.run_id}: metric {name} = {value} logged {n} times at step {step}"
                for (step, value), n in logged.items()
                if n > 1
            ]
    return found


def race(ws: Workspace, scratch: Path) -> list[str]:
    """Two jobs registering the same model name at the same moment: distinct versions, and the
    champion ends on the better one. Returns what did not hold."""
    common = [
        "train", "--experiment-name", EXPERIMENT, "--registered-model-name", RACE_MODEL,
        "--set", "gate.min_metrics.f1=0.1", "--tracking-uri", ws.tracking_uri,
    ]  # fmt: skip
    better = Job("race-better", "train", [*common, "--param", "regParam=0.0"], f"race-{uuid.uuid4().hex[:8]}")
    worse = Job("race-worse", "train", [*common, "--param", "regParam=3.0"], f"race-{uuid.uuid4().hex[:8]}")
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda job: run_job(job, ws, scratch), (better, worse)))
    problems = [
        f"{job.name}: exit {job.attempts[-1].exit_code} {job.attempts[-1].error}"
        for job in (better, worse)
        if job.attempts[-1].exit_code != 0
    ]
    if problems:
        return problems
    client = MlflowClient(ws.upstream.uri)
    summaries = {job.name: job.attempts[-1].summary for job in (better, worse)}
    f1 = {name: summary["metrics"]["f1"] for name, summary in summaries.items()}
    if not f1["race-better"] > f1["race-worse"]:
        return [f"the regularised model was not worse: f1 {f1}"]
    numbers = [summary.get("model_version") for summary in summaries.values()]
    if None in numbers or len(set(numbers)) != 2:
        return [f"versions not distinct: {numbers}"]
    champions = [v for v in _versions(client, RACE_MODEL) if v.tags.get(CHAMPION_TAG) == "champion"]
    best = summaries["race-better"]["model_version"]
    if [str(v.version) for v in champions] != [str(best)]:
        return [f"champion on {[v.version for v in champions]}, the better model is version {best}"]
    return []


def soak(
    count: int, seed: int, root: Path, parallel: int = 2, mean_fault_gap: float = MEAN_FAULT_GAP
) -> tuple[Verdict, list[str]]:
    scratch = root / "jobs"
    jobs = plan(count, seed, scratch)
    with workspace(root) as ws:
        with Chaos(ws, seed, mean_fault_gap) as chaos:
            with ThreadPoolExecutor(parallel) as pool:
                # Scores need a champion: the first two trains run before anything else.
                list(pool.map(lambda job: run_job(job, ws, scratch), jobs[:2]))
                list(pool.map(lambda job: run_job(job, ws, scratch), jobs[2:]))
            met = faults_met(ws)  # before the race, which runs without faults
            write_exchanges(ws, root / "exchanges.tsv")
        race_problems = race(ws, scratch)
        ws.proxy.wait_idle()
        verdict = verify(jobs, MlflowClient(ws.upstream.uri))
        verdict.faults = met
        print(f"faults injected: {dict(chaos.faults)}; met by a request: {met}", flush=True)
        write_attempts(jobs, root / "jobs.tsv")
    return verdict, race_problems


def faults_met(ws: Workspace) -> dict[str, int]:
    """Faults a request actually met: the proxy's by outcome, the double's 429s as throttled."""
    met = Counter(_fault_kind(exchange.outcome) for exchange in ws.proxy.faults())
    met["throttled"] = sum(1 for request in ws.aml.recorded() if request.status == 429)
    return dict(met)


def _fault_kind(outcome: str) -> str:
    """The chaos kind of a proxy outcome: fault:503, fault:drop, fault:drop+forwarded, fault:delay2.5s+forwarded."""
    fault = outcome.removeprefix("fault:")
    if fault.startswith("delay"):
        return "slow"
    if fault == "drop+forwarded":
        return "lost"
    return "unavailable" if fault.isdigit() else fault


def write_attempts(jobs: list[Job], path: Path) -> None:
    """Every job process: how long it ran, how it ended. Prints the longest, against JOB_TIMEOUT."""
    rows = [(job.name, n, a.exit_code, a.seconds, a.error) for job in jobs for n, a in enumerate(job.attempts, 1)]
    lines = ["job\tattempt\texit\tseconds\terror"]
    lines += [
        f"{name}\t{n}\t{'killed' if code is None else code}\t{seconds:.1f}\t{error}"
        for name, n, code, seconds, error in rows
    ]
    path.write_text("\n".join(lines) + "\n")
    longest = max(rows, key=lambda row: row[3], default=None)
    if longest is not None:
        print(f"longest job process: {longest[0]} ({longest[3]:.0f} s of {JOB_TIMEOUT:.0f} s allowed)", flush=True)


def write_exchanges(ws: Workspace, path: Path) -> None:
    """Every request through the proxy (when, how long, what happened), for reading a failed soak."""
    lines = ["started_s\tseconds\tmethod\tpath\toutcome"]
    exchanges = ws.proxy.snapshot()
    first = min((e.started for e in exchanges), default=0.0)
    lines += [
        f"{e.started - first:.2f}\t{e.seconds:.2f}\t{e.method}\t{e.path.split('?', 1)[0]}\t{e.outcome}"
        for e in exchanges
    ]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    parser.add_argument("--parallel", type=int, default=2)
    parser.add_argument("--mean-fault-gap", type=float, default=MEAN_FAULT_GAP, help="seconds between faults")
    parser.add_argument("--dir", help="where the servers and jobs keep their files (default: a temp dir)")
    args = parser.parse_args(argv)
    import tempfile

    # The job processes' JVMs as the suite starts them (tests/conftest.py): what the soak measures is
    # the tracking under faults, and a default JVM burns three times the CPU of one that maps the archive.
    os.environ.setdefault("SPARK_SUBMIT_OPTS", jvm_options())

    root = Path(args.dir or tempfile.mkdtemp(prefix="smt-soak-")).resolve()
    print(f"soak: seed {args.seed}, {args.jobs} jobs, files in {root}", flush=True)
    verdict, race_problems = soak(args.jobs, args.seed, root, args.parallel, args.mean_fault_gap)
    for problem in verdict.lost + verdict.duplicated + verdict.left_running + race_problems:
        print(f"  {problem}")
    print(verdict.line())
    return 0 if verdict.clean and not race_problems else 1


if __name__ == "__main__":
    sys.exit(main())
