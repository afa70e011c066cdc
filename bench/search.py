"""Benchmark: a hyperparameter search tracked by the job against the same untracked CrossValidator.fit.

    make bench-search                    # bundled penguins (3 reps) and 1,000,000 generated rows (2 reps)
    make bench-search ARGS="--quick"     # penguins only, one repetition

Both cases run as their own process (whole-process time: JVM start, read, search, refit, test
evaluation), with the same Spark settings, on the same input, over the same 12 candidates
(GRID: 3 x 2 x 2 values of the logistic regression's parameters), 3 folds, 2 candidates at once:
  cv   bench/plain_search.py: the job's read/prepare/split/pipeline, then pyspark.ml.tuning
       CrossValidator(...).fit(train) and the best model's f1 on the test split; no MLflow at all
  job  synapse-ml-track train with model.search.*: one child run per candidate, the best refitted,
       evaluated, logged and registered from the parent, tracked to a real `mlflow server` over
       HTTP through a counting proxy (tests/fault_proxy.py)
Repetitions are interleaved (the order alternates) after one unmeasured warm-up of each case on
penguins (the 1M rows get no warm-up by default: --big-warmup adds one). Spark jobs come from each
process's event log; requests from the proxy, attributed to candidates by their child run ids.
Writes the search section of bench/results.md and bench/work/search/results.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
WORK = BENCH / "work" / "search"
BIN = Path(sys.executable).parent
sys.path[:0] = [str(BENCH), str(REPO / "tests")]

from synapse_ml_track.spark.session import LOCAL_DEFAULTS  # noqa: E402

from datagen import generate  # noqa: E402
from eventlog import events  # noqa: E402
from fault_proxy import FaultProxy  # noqa: E402
from sections import analysis_lines, write_analysed_section  # noqa: E402
from support import start_mlflow_server  # noqa: E402

GRID = {"regParam": [0.0, 0.01, 0.1], "elasticNetParam": [0.0, 0.5], "maxIter": [10, 20]}
CANDIDATES = 12
FOLDS = 3
PARALLELISM = 2
BIG_ROWS = 1_000_000
# The job's own local settings (synapse_ml_track.spark.session.LOCAL_DEFAULTS), given to both cases by the
# launcher, so both get the same session whether or not the library lets the launcher's settings win.
SPARK_ARGS = ["--master", "local[2]", *[a for k, v in LOCAL_DEFAULTS.items() for a in ("--conf", f"{k}={v}")]]
TARGETS = {"1m": 1.05}  # issue 14: whole-process ratio job / cv at 1M rows; none stated for penguins
CASES = ("cv", "job")
START, END = "<!-- search -->", "<!-- /search -->"
# A hand-written block inside the section, kept across runs.
ANALYSIS_START, ANALYSIS_END = "<!-- search-analysis -->", "<!-- /search-analysis -->"


class Bench:
    def __init__(self) -> None:
        shutil.rmtree(WORK / "server", ignore_errors=True)
        self.server = start_mlflow_server(WORK / "server")
        self.proxy = FaultProxy(self.server.uri).start()

    def stop(self) -> None:
        self.proxy.stop()
        self.server.stop()

    def command(self, case: str, dataset: str, source: Path | None, out: Path) -> list[str]:
        data = [str(source)] if source else []
        if case == "cv":
            grid = json.dumps(GRID)
            return [sys.executable, str(BENCH / "plain_search.py"), grid, str(FOLDS), str(PARALLELISM), *data]
        grid = "{" + ", ".join(f"{name}: {values}" for name, values in GRID.items()) + "}"
        name = f"bench-search-{dataset}"
        return [
            str(BIN / "synapse-ml-track"), "train", "--tracking-uri", self.proxy.url,
            "--experiment-name", name, "--registered-model-name", name, "--log-level", "WARNING",
            "--set", f"model.search.params={grid}", "--set", f"model.search.folds={FOLDS}",
            "--set", f"model.search.parallelism={PARALLELISM}",
            "--set", f"tracking.local_dir={WORK / 'mlruns'}", "--set", f"tracking.local_result_dir={WORK / 'results'}",
            "--output", str(out), *(["--input", *data] if data else []),
        ]  # fmt: skip

    def measure(self, case: str, dataset: str, source: Path | None, label: str) -> dict:
        events = WORK / "events" / label
        shutil.rmtree(events, ignore_errors=True)
        out = WORK / "out" / f"{label}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.unlink(missing_ok=True)
        self.proxy.clear()
        started = time.perf_counter()
        done = subprocess.run(
            self.command(case, dataset, source, out), env=spark_env(events), capture_output=True, text=True
        )
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{case} on {dataset} failed ({done.returncode}):\n{done.stderr[-3000:]}")
        exchanges = [e for e in self.proxy.snapshot() if not e.is_artifact]
        result = {"case": case, "dataset": dataset, "seconds": seconds, "load": os.getloadavg()[0]}
        result |= event_counts(events)
        result["requests"] = len(exchanges)
        if case == "cv":
            assert not exchanges, f"the untracked baseline made {len(exchanges)} tracking requests"
            result["outcome"] = json.loads(done.stdout.strip().splitlines()[-1])
            return result
        summary = json.loads(out.read_text())
        children = candidate_runs(Path(summary["local_result_dir"]))
        per_child = Counter()
        for exchange in exchanges:
            child = next((run for run in children if run in exchange.path or run.encode() in exchange.body), None)
            if child is None and exchange.endpoint.endswith("/runs/create") and b"mlflow.parentRunId" in exchange.body:
                child = "created"  # the child's own creation: its id is only in the answer
            if child is not None:
                per_child[exchange.endpoint] += 1
        result["candidate_requests"] = sum(per_child.values())
        result["candidate_endpoints"] = dict(per_child)
        result["endpoints"] = dict(Counter(e.endpoint for e in exchanges))
        result["children"] = len(children)
        result["outcome"] = {
            "status": summary["status"],
            "test_f1": summary["metrics"]["f1"],
            "best": best_candidate(Path(summary["local_result_dir"])),
        }
        return result


def spark_env(event_dir: Path) -> dict[str, str]:
    event_dir.mkdir(parents=True, exist_ok=True)
    args = [*SPARK_ARGS, "--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file://{event_dir}"]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AZURE", "AZUREML_"))}
    return {**environ, "PYSPARK_SUBMIT_ARGS": " ".join([*args, "pyspark-shell"])}


def event_counts(event_dir: Path) -> dict:
    """Spark jobs and tasks, the tasks' CPU seconds, and the master the session got, from the one event
    log in event_dir. CPU time, unlike wall time, hardly grows when other processes share the cores."""
    jobs = tasks = 0
    cpu = 0.0
    master = "?"
    for event in events(event_dir):
        if event["Event"] == "SparkListenerJobStart":
            jobs += 1
        elif event["Event"] == "SparkListenerTaskEnd":
            tasks += 1
            cpu += (event.get("Task Metrics") or {}).get("Executor CPU Time", 0) / 1e9
        elif event["Event"] == "SparkListenerEnvironmentUpdate":
            master = event["Spark Properties"].get("spark.master", "?")
    return {"jobs": jobs, "tasks": tasks, "task_cpu": cpu, "master": master}


def candidate_runs(result_dir: Path) -> set[str]:
    with (result_dir / "evaluation" / "search" / "candidates.csv").open() as handle:
        return {row["run_id"] for row in csv.DictReader(handle) if row["run_id"]}


def best_candidate(result_dir: Path) -> dict:
    with (result_dir / "evaluation" / "search" / "candidates.csv").open() as handle:
        best = next(row for row in csv.DictReader(handle) if row["best"] == "True")
    params = {k.removeprefix("param."): json.loads(v) for k, v in best.items() if k.startswith("param.")}
    return {"index": int(best["candidate"]), "params": params, "validation_f1": float(best["f1"])}


def bench_dataset(bench: Bench, dataset: str, source: Path | None, reps: int, warmup: bool) -> dict:
    if warmup:
        for case in CASES:
            warm = bench.measure(case, dataset, source, f"{dataset}-warmup-{case}")
            print(f"{dataset:>8}  warm-up  {case:<3}  {warm['seconds']:6.1f} s", flush=True)
    runs: dict[str, list[dict]] = {case: [] for case in CASES}
    for rep in range(reps):
        for case in CASES if rep % 2 == 0 else CASES[::-1]:
            run = bench.measure(case, dataset, source, f"{dataset}-{rep}-{case}")
            runs[case].append(run)
            print(
                f"{dataset:>8}  rep {rep + 1}  {case:<3}  {run['seconds']:6.1f} s  jobs {run['jobs']:>5}  "
                f"requests {run['requests']:>3}  load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
            (WORK / f"partial-{dataset}.json").write_text(json.dumps(runs, indent=1))
    median = {case: statistics.median(r["seconds"] for r in runs[case]) for case in CASES}
    return {
        "dataset": dataset,
        "rows": BIG_ROWS if source else 344,
        "reps": reps,
        "warmup": warmup,
        "runs": runs,
        "median": median,
        "ratio": median["job"] / median["cv"],
        "paired": [j["seconds"] / c["seconds"] for j, c in zip(runs["job"], runs["cv"], strict=True)],
        "target": TARGETS.get(dataset),
    }


def library_version() -> str:
    """The commit measured, and any uncommitted change to the library at the start of the run."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "synapse_ml_track"], capture_output=True, text=True, cwd=REPO
    ).stdout.split("\n")
    changed = [line[3:] for line in dirty if line.strip()]
    return f"commit {head.stdout.strip() or '?'}" + (
        f", uncommitted changes in {', '.join(changed)}" if changed else ""
    )


def minmax(values) -> tuple[float, float]:
    values = list(values)
    return min(values), max(values)


def machine_line() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if "model name" in line
        ),
        platform.processor(),
    )
    memory = next(line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()
    return (
        f"{cpu}, {os.cpu_count()} cores, {int(memory) / 1024**2:.1f} GB RAM; Python {platform.python_version()}, "
        f"{java[0] if java else 'java ?'}, pyspark {metadata.version('pyspark')}, mlflow {metadata.version('mlflow')}"
    )


def run_meta(make_target: str, started: float, load_start: float, version: str, runs: list[dict]) -> dict:
    """The facts a benchmark's section opens with: when, by which command, on what, under which load."""
    argv = " ".join(sys.argv[1:])
    return {
        "finished": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": make_target + (f' ARGS="{argv}"' if argv else ""),
        "minutes": (time.perf_counter() - started) / 60,
        "machine": machine_line(),
        "version": version,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "load_runs": "{:.1f}–{:.1f}".format(*minmax(run["load"] for run in runs)),
    }


def section(results: list[dict], meta: dict, analysis: str | None = None) -> str:
    lines = [
        START,
        "## Search: 12 candidates tracked by the job against an untracked CrossValidator.fit",
        "",
        f"Measured {meta['finished']} by `{meta['command']}` (bench/search.py, {meta['minutes']:.1f} min); "
        f"whole-process wall time, median of interleaved repetitions, Spark {' '.join(SPARK_ARGS)} "
        f"(master seen in the event logs: {meta['masters']}). Grid {json.dumps(GRID)}: {CANDIDATES} candidates, "
        f"{FOLDS} folds, parallelism {PARALLELISM}, logistic regression.",
        "",
        f"- Machine: {meta['machine']}",
        f"- Library: {meta['version']}.",
        f"- Load average (1 min) at start / end: {meta['load_start']:.2f} / {meta['load_end']:.2f}; after each "
        f"measured run: {meta['load_runs']} (2 shared cores: other engineers' test suites and benches ran at the "
        "same time).",
        f"- Warm-up: {meta['warmup']}.",
        "",
        "| case | dataset | rows | candidates | folds | reps | median s | spread s | ratio job/cv | paired ratios "
        "| Spark jobs | Spark task CPU s | CPU ratio job/cv | requests total | requests per candidate | target "
        "| verdict |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | --- "
        "| --- |",
    ]
    for r in results:
        for case in CASES:
            runs = r["runs"][case]
            seconds = [run["seconds"] for run in runs]
            spread = f"{min(seconds):.1f}–{max(seconds):.1f}"
            jobs = statistics.median(run["jobs"] for run in runs)
            cpu = {c: statistics.median(run["task_cpu"] for run in r["runs"][c]) for c in CASES}
            if case == "cv":
                ratio = paired = requests = per_candidate = target = verdict = cpu_ratio = "–"
                requests = "0"
            else:
                ratio = f"**{r['ratio']:.2f}×**"
                cpu_ratio = f"{cpu['job'] / cpu['cv']:.2f}×"
                paired = ", ".join(f"{p:.2f}" for p in r["paired"])
                requests = f"{statistics.median(run['requests'] for run in runs):.0f}"
                per = statistics.median(run["candidate_requests"] / run["children"] for run in runs)
                per_candidate = f"{per:.1f}"
                target = f"≤ {r['target']:.2f}×" if r["target"] else "none stated"
                verdict = ("met" if r["ratio"] <= r["target"] else "**NOT met**") if r["target"] else "–"
            lines.append(
                f"| {case} | {r['dataset']} | {r['rows']:,} | {CANDIDATES} | {FOLDS} | {r['reps']} "
                f"| {r['median'][case]:.1f} | {spread} | {ratio} | {paired} | {jobs:.0f} | {cpu[case]:.0f} "
                f"| {cpu_ratio} | {requests} | {per_candidate} | {target} | {verdict} |"
            )
    lines += ["", "Requests of one job run (last repetition) and what each case chose:", ""]
    for r in results:
        job, cv = r["runs"]["job"][-1], r["runs"]["cv"][-1]
        listing = ", ".join(f"{k} ×{v}" for k, v in sorted(job["endpoints"].items()))
        per = ", ".join(f"{k} ×{v / job['children']:.0f}" for k, v in sorted(job["candidate_endpoints"].items()))
        rest = job["requests"] - job["candidate_requests"]
        lines += [
            f"- {r['dataset']}: {job['requests']} requests: {listing}. Per candidate ({job['children']} child runs): "
            f"{per}; the other {rest} are the parent run's (preflight, resume look-up of finished children, "
            "params, metrics, input, registration).",
            f"  Best: job candidate {job['outcome']['best']['index']} {json.dumps(job['outcome']['best']['params'])} "
            f"(validation f1 {job['outcome']['best']['validation_f1']:.4f}, test f1 {job['outcome']['test_f1']:.4f}, "
            f"{job['outcome']['status']}); cv candidate {cv['outcome']['best']} {json.dumps(cv['outcome']['params'])} "
            f"(validation f1 {cv['outcome']['validation_f1']:.4f}, test f1 {cv['outcome']['test_f1']:.4f}).",
        ]
    lines += [
        "",
        *NOTES,
        "",
        *analysis_lines(analysis, ANALYSIS_START, ANALYSIS_END),
        END,
    ]
    return "\n".join(lines)


NOTES = [
    "What differs between the cases, besides tracking (both: same input, preparation, hash train/test split, "
    "label indexer, pipeline, estimator, candidates, folds, parallelism; the best refitted on the whole training "
    "split and scored on the test split):",
    "",
    "- Folds: the job's are a seeded hash of each row (reproducible anywhere); CrossValidator's come from "
    "`rand(seed)`, so the two validate on different folds and may pick different winners.",
    "- Caching: CrossValidator caches each fold's training and validation sets while it fits that fold, and refits "
    "the best on the uncached training split; the job (since commit 4062842) caches the training split with its "
    "fold buckets once for the whole search, filters every fold from it, and refits from it.",
    "- Scheduling: CrossValidator fits a fold's candidates 2 at a time and waits for the fold to end before the "
    "next; the job runs 2 candidates at a time, each through all its folds.",
    "- Evaluation: the job scores every fold from one aggregation over cached predictions (every metric, per "
    "class too); CrossValidator runs MulticlassClassificationEvaluator for f1 alone.",
    "- The job also counts the split's classes and nulls, checks the categorical features, computes every test "
    "metric with plots, writes and logs the model (signature, input example), the evaluation artifacts and the "
    "candidates table and plot, and logs one child run per candidate; the baseline prints one JSON line.",
]


def write_results(results: list[dict], meta: dict) -> None:
    (WORK / "results.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    markers, analysis_markers = (START, END), (ANALYSIS_START, ANALYSIS_END)
    print(
        write_analysed_section(
            BENCH / "results.md", markers, analysis_markers, lambda analysis: section(results, meta, analysis)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="penguins only, one repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions on penguins (default 3)")
    parser.add_argument("--big-reps", type=int, default=2, help="repetitions on 1,000,000 rows (default 2)")
    parser.add_argument("--big-warmup", action="store_true", help="one unmeasured run of each case on 1M rows too")
    parser.add_argument("--datasets", default="penguins,1m", help="comma-separated: penguins, 1m")
    args = parser.parse_args()
    datasets = ["penguins"] if args.quick else [d.strip() for d in args.datasets.split(",") if d.strip()]
    reps = 1 if args.quick else args.reps
    started, load_start, version = time.perf_counter(), os.getloadavg()[0], library_version()
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "results", ignore_errors=True)
    big = generate(WORK / f"rows-{BIG_ROWS}.csv", BIG_ROWS) if "1m" in datasets else None
    bench = Bench()
    results = []
    try:
        for dataset in datasets:
            if dataset == "penguins":
                results.append(bench_dataset(bench, "penguins", None, reps, warmup=True))
            else:
                results.append(bench_dataset(bench, "1m", big, args.big_reps, warmup=args.big_warmup))
    finally:
        bench.stop()
    warmup = "one unmeasured run of each case on penguins" + (
        " and on 1M rows" if args.big_warmup else "; none on 1M rows (each run there takes minutes; --big-warmup)"
    )
    runs = [run for r in results for c in CASES for run in r["runs"][c]]
    meta = {
        **run_meta("make bench-search", started, load_start, version, runs),
        "warmup": warmup,
        "masters": ", ".join(sorted({run["master"] for run in runs})),
    }
    write_results(results, meta)


if __name__ == "__main__":
    main()
