"""Benchmark: what `synapse-ml-track score` costs over a plain read-load-transform-write script.

    make bench-score                    # 1,000,000 and 10,000,000 generated rows
    make bench-score ARGS="--quick"     # 1,000,000 rows, one repetition

Each case runs as its own process (whole-process time: JVM start, model load, scoring, write),
with the same Spark settings (Delta Lake on in every one: the pinned jars, its extension and
catalog, as a Synapse pool has them and as `score` starts a local session when the jars are there),
on the same Parquet input, scoring the same registered model:
  plain        bench/plain_score.py: spark.read.parquet, mlflow.spark.load_model, transform, write the
               input's columns and the prediction as Parquet (the minimal script)
  careful      the same plus one probability column per class (vector_to_array), as score writes
  score        synapse-ml-track score --output-format parquet: signature check, unscorable reasons,
               lineage, counts, tracking run
  lineage-delta  bench/plain_score.py --lineage ... delta overwrite: score's columns (the careful
               script's plus unscorable_reason and the four lineage columns, as literals) to Delta
  score-delta  synapse-ml-track score --output-format delta --mode overwrite (no run key)
Each Delta case overwrites its own table (removed at the start of each size, created by the warm-up).
Repetitions are interleaved (the order alternates) after one unmeasured warm-up of each case
(--no-warmup skips it, --warmup-cases limits it to some cases). Each process runs under
bench/timed_score.py, whose Python timers give the seconds per item (imports, Spark start, MLflow
calls, model download and load, signature check, plan, write, ...); each Spark job of the event log
is attributed to the item it was submitted in. Passes over the input are read from each process's
Spark event log: the jobs it ran, and the bytes its tasks read divided by the input's size. Writes
the scoring section of bench/results.md and bench/work/score/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
WORK = BENCH / "work" / "score"
BIN = Path(sys.executable).parent
sys.path[:0] = [str(BENCH)]

from datagen import generate  # noqa: E402
from eventlog import delta_costs, events  # noqa: E402
from sections import analysis_lines, marked, write_section  # noqa: E402

MODEL = "bench-score"
MODEL_URI = f"models:/{MODEL}/latest"
SPARK_ARGS = ["--master", "local[2]", "--driver-memory", "4g", "--conf", "spark.ui.enabled=false"]
TARGETS = {1_000_000: 1.10, 10_000_000: 1.05}  # issues 13, 19: whole-process ratio score / minimal script
DELTA_TARGET = 1.10  # score into Delta against the same score into Parquet, and against lineage-delta
START, END = "<!-- scoring -->", "<!-- /scoring -->"
ANALYSIS_START, ANALYSIS_END = "<!-- scoring-analysis -->", "<!-- /scoring-analysis -->"  # hand-written, kept


def tracking_uri() -> str:
    return f"sqlite:///{WORK / 'mlflow.db'}"


def train_model() -> None:
    """Register one model on the bundled penguins (once per store): the generated rows share its columns."""
    if (WORK / "mlflow.db").exists():
        return
    command = [
        str(BIN / "synapse-ml-track"), "train", "--tracking-uri", tracking_uri(),
        "--experiment-name", "bench-score", "--registered-model-name", MODEL, "--log-level", "WARNING",
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=spark_env(None))


def parquet_input(rows: int) -> Path:
    """The generated CSV, once written as Parquet (the format a scoring input usually has)."""
    csv = generate(WORK / f"rows-{rows}.csv", rows)
    target = WORK / f"rows-{rows}.parquet"
    stamp = target / "_SOURCE"
    if stamp.exists() and stamp.read_text() == csv.with_suffix(".csv.meta.json").read_text():
        return target
    script = (
        "import sys; from pyspark.sql import SparkSession; "
        "s = SparkSession.builder.getOrCreate(); "
        "s.read.csv(sys.argv[1], header=True, inferSchema=True).write.mode('overwrite').parquet(sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", script, str(csv), str(target)], check=True, env=spark_env(None))
    stamp.write_text(csv.with_suffix(".csv.meta.json").read_text())
    return target


def delta_submit_args() -> list[str]:
    """The pinned jars and the Delta settings of a local session (delta.local_session_conf), as spark-submit
    arguments."""
    from synapse_ml_track.spark import delta

    conf = delta.local_session_conf()
    if not conf:
        raise SystemExit(delta.MISSING)
    jars = conf.pop("spark.jars")
    return ["--jars", jars, *(arg for key, value in conf.items() for arg in ("--conf", f"{key}={value}"))]


def spark_env(event_dir: Path | None, extra_args: Sequence[str] = ()) -> dict[str, str]:
    args = [*SPARK_ARGS, *extra_args]
    if event_dir is not None:
        event_dir.mkdir(parents=True, exist_ok=True)
        args += ["--conf", "spark.eventLog.enabled=true", "--conf", f"spark.eventLog.dir=file://{event_dir}"]
    return {
        **os.environ,
        "PYSPARK_SUBMIT_ARGS": " ".join([*args, "pyspark-shell"]),
        "MLFLOW_TRACKING_URI": tracking_uri(),
    }


CASES = ("plain", "careful", "score", "lineage-delta", "score-delta")
DELTA_CASES = ("lineage-delta", "score-delta")
LABELS = {
    "plain": "minimal script",
    "careful": "careful script",
    "score": "score (Parquet)",
    "lineage-delta": "same-columns script (Delta)",
    "score-delta": "score (Delta)",
}
SHORT = {
    "plain": "minimal",
    "careful": "careful",
    "score": "score",
    "lineage-delta": "script Δ",
    "score-delta": "score Δ",
}


def command(case: str, source: Path, output: Path, timings: Path) -> list[str]:
    if case in ("plain", "careful", "lineage-delta"):
        script = "lineage" if case == "lineage-delta" else case
        fmt = ["delta", "overwrite"] if case in DELTA_CASES else []
        timed = [sys.executable, str(BENCH / "timed_score.py"), str(timings), script]
        return [*timed, MODEL_URI, str(source), str(output), *fmt]
    return [
        sys.executable, str(BENCH / "timed_score.py"), str(timings), "score",
        "--tracking-uri", tracking_uri(), "--experiment-name", "bench-score",
        "--model-uri", MODEL_URI, "--input", str(source), "--output-path", str(output),
        "--output-format", "delta" if case == "score-delta" else "parquet", "--mode", "overwrite",
        "--log-level", "WARNING",
    ]  # fmt: skip


def input_bytes(source: Path) -> int:
    return sum(p.stat().st_size for p in source.glob("*.parquet"))


def event_counts(event_dir: Path, intervals: Sequence[Sequence] = ()) -> tuple[int, int, float, dict[str, int]]:
    """(Spark jobs, bytes read by tasks, the tasks' CPU seconds, jobs per timed item) from the one event
    log in event_dir; a job belongs to the innermost timed call it was submitted in. CPU time, unlike
    wall time, hardly grows when other processes share the cores."""
    jobs = read = 0
    cpu = 0.0
    per_item: dict[str, int] = {}
    for event in events(event_dir):
        if event["Event"] == "SparkListenerJobStart":
            jobs += 1
            submitted = event["Submission Time"] / 1000
            around = [(end - start, item) for item, start, end in intervals if start <= submitted <= end]
            item = min(around)[1] if around else "unattributed"
            per_item[item] = per_item.get(item, 0) + 1
        elif event["Event"] == "SparkListenerTaskEnd":
            metrics = event.get("Task Metrics") or {}
            read += metrics.get("Input Metrics", {}).get("Bytes Read", 0)
            cpu += metrics.get("Executor CPU Time", 0) / 1e9
    return jobs, read, cpu, per_item


def run_case(argv: list[str], label: str, extra_args: Sequence[str] = ()) -> tuple[dict, Path]:
    """Run one case's process with its own event log: its wall time and the load after it, and the log's directory."""
    event_dir = WORK / "events" / label
    shutil.rmtree(event_dir, ignore_errors=True)
    started = time.perf_counter()
    done = subprocess.run(argv, env=spark_env(event_dir, extra_args), capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{label} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return {"seconds": seconds, "load": os.getloadavg()[0]}, event_dir


def run_score_job(argv: Callable[[Path], list[str]], label: str, work: Path) -> tuple[dict, Path, dict]:
    """One `score` process with Delta on, given its JSON summary's path: its run, event log and summary,
    once it scored."""
    summary = work / "summaries" / f"{label}.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    run, event_dir = run_case(argv(summary), label, delta_submit_args())
    outcome = json.loads(summary.read_text())
    if outcome["status"] != "scored":
        raise SystemExit(f"{label}: the job did not score ({outcome['status']})")
    return run, event_dir, outcome


def interleaved(
    measure_case: Callable[[str, str], dict], cases: tuple[str, str], reps: int, name: str
) -> dict[str, list[dict]]:
    """One unmeasured warm-up of each case, then `reps` repetitions of both, in an order that alternates."""
    for case in cases:
        measure_case(case, f"{name}-warmup-{case}")
    runs: dict[str, list[dict]] = {case: [] for case in cases}
    for rep in range(reps):
        for case in cases if rep % 2 == 0 else cases[::-1]:
            runs[case].append(measure_case(case, f"{name}-{rep}-{case}"))
            run = runs[case][-1]
            print(f"{name:>17}  rep {rep + 1}  {case:<5}  {run['seconds']:6.1f} s  load {run['load']:.1f}", flush=True)
    return runs


def measure(case: str, source: Path, label: str) -> dict:
    events = WORK / "events" / label
    shutil.rmtree(events, ignore_errors=True)
    output = WORK / "out" / case
    timings = WORK / "timings" / f"{label}.json"
    timings.parent.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    env = spark_env(events, delta_submit_args())
    done = subprocess.run(command(case, source, output, timings), env=env, capture_output=True, text=True)
    seconds, ended = time.perf_counter() - started, time.time()
    if done.returncode != 0:
        raise SystemExit(f"{case} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    timed = json.loads(timings.read_text())
    jobs, read, cpu, per_item = event_counts(events, timed["intervals"])
    items = timed["items"]
    items["unattributed (CLI, config, summary, rest)"] = timed["main"] - sum(
        v for k, v in items.items() if k not in ("interpreter start", "imports")
    )
    items["exit (JVM shutdown)"] = ended - timed["ended"]
    return {
        "seconds": seconds, "jobs": jobs, "input_passes": read / input_bytes(source), "task_cpu": cpu, "items": items,
        "jobs_per_item": per_item, "load": load, "delta": delta_costs(events) if case in DELTA_CASES else None,
    }  # fmt: skip


def bench_size(rows: int, reps: int, warmup: Sequence[str], cases: Sequence[str] = CASES) -> dict:
    source = parquet_input(rows)
    for case in DELTA_CASES:  # each Delta table starts without history; the warm-up (or first run) creates it
        shutil.rmtree(WORK / "out" / case, ignore_errors=True)
    load_start = os.getloadavg()[0]
    for case in (c for c in cases if c in warmup):
        measure(case, source, f"{rows}-warmup-{case}")
    cases = tuple(cases)
    runs: dict[str, list[dict]] = {case: [] for case in cases}
    for rep in range(reps):
        order = cases if rep % 2 == 0 else tuple(reversed(cases))
        for case in order:
            runs[case].append(measure(case, source, f"{rows}-{rep}-{case}"))
            run = runs[case][-1]
            print(
                f"{rows:>11,} rows  rep {rep + 1}  {case:<13}  {run['seconds']:6.1f} s  load {run['load']:.1f}",
                flush=True,
            )
    seconds = {case: statistics.median(r["seconds"] for r in runs[case]) for case in cases}
    task_cpu = {case: statistics.median(r["task_cpu"] for r in runs[case]) for case in cases}
    bases = [base for base in ("plain", "careful") if base in cases and "score" in cases]

    def paired(case: str, base: str) -> list[float]:
        return [s["seconds"] / b["seconds"] for s, b in zip(runs[case], runs[base], strict=True)]

    delta_bases = {"parquet": "score", "script": "lineage-delta"}
    if not all(c in cases for c in ("score-delta", *delta_bases.values())):
        delta_bases = {}
    return {
        "rows": rows,
        "reps": reps,
        "warmup": list(warmup),
        "runs": runs,
        "seconds": seconds,
        "task_cpu": task_cpu,
        "cases": list(cases),
        "ratio": {base: seconds["score"] / seconds[base] for base in bases},
        "paired": {base: paired("score", base) for base in bases},
        "delta_ratio": {name: seconds["score-delta"] / seconds[base] for name, base in delta_bases.items()},
        "delta_paired": {name: paired("score-delta", base) for name, base in delta_bases.items()},
        "target": TARGETS.get(rows),
        "delta_target": DELTA_TARGET,
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "load": [r["load"] for case in cases for r in runs[case]],
    }


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f}× ({min(values):.2f}–{max(values):.2f})"


DIFFERENCES = (("score", "plain"), ("score-delta", "score"), ("score-delta", "lineage-delta"))


def breakdown(result: dict) -> list[str]:
    """Median seconds per item and case, and the differences the targets compare."""
    runs = result["runs"]
    cases = [c for c in CASES if c in runs]
    differences = [(a, b) for a, b in DIFFERENCES if a in runs and b in runs]
    names = list(dict.fromkeys(k for case in cases for r in runs[case] for k in r["items"]))
    lines = [
        "",
        f"Per item at {result['rows']:,} rows, median seconds (Python timers: an item's own time, without the "
        "items called inside it; jobs per item from the event log of the first measured run, a job counted in "
        "the innermost item it was submitted in). Δ: into Delta. `score` starts Spark in a thread while it opens "
        "its MLflow client (synapse_ml_track/spark/session.py), so its items overlap and can add up to more than "
        "its wall time: its *unattributed* row is then negative.",
        "",
        "| item | "
        + " | ".join(f"{SHORT[c]} s" for c in cases)
        + " | "
        + " | ".join(f"{SHORT[a]} − {SHORT[b]} s" for a, b in differences)
        + " | jobs "
        + " / ".join(SHORT[c] for c in cases)
        + " |",
        "| --- |" + " ---: |" * (len(cases) + len(differences)) + " :---: |",
    ]
    for name in names:
        median = {c: statistics.median(r["items"].get(name, 0.0) for r in runs[c]) for c in cases}
        jobs = " / ".join(str(runs[c][0]["jobs_per_item"].get(name, 0)) for c in cases)
        lines.append(
            f"| {name} | "
            + " | ".join(f"{median[c]:.2f}" for c in cases)
            + " | "
            + " | ".join(f"{median[a] - median[b]:+.2f}" for a, b in differences)
            + f" | {jobs} |"
        )
    return lines


DELTA_COSTS = (
    ("history_reads", "DESCRIBE HISTORY reads", "{:.0f}"),
    ("history_s", "their s", "{:.2f}"),
    ("snapshot_s", "snapshot state s", "{:.2f}"),
    ("write_s", "write command s", "{:.2f}"),
    ("data_write_s", "of which the data pass s", "{:.2f}"),
    ("after_data_s", "after the data pass (commit) s", "{:.2f}"),
)


def delta_table(results: list[dict]) -> list[str]:
    """score into Delta against score into Parquet and against the script writing the same columns to Delta."""
    lines = [
        "",
        "Into Delta (`--output-format delta --mode overwrite`, no run key), against the same `score` into Parquet "
        "and against the *same-columns script* (bench/plain_score.py --lineage: the careful script's columns plus "
        '`unscorable_reason` and the four lineage columns as literals, `df.write.format("delta").mode'
        '("overwrite")`; like the other scripts it drops the rows with a null model input, which `score` '
        "keeps and writes with their reason):",
        "",
        "| rows | reps | score Parquet s | score Delta s | script Delta s | Delta / Parquet | paired "
        "| Delta / script | paired | target | met | jobs score Parquet / Delta / script |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: | :---: | ---: | :---: | :---: |",
    ]
    for r in (r for r in results if r["delta_ratio"]):
        s, ratio, target = r["seconds"], r["delta_ratio"], r["delta_target"]
        met = "yes" if max(ratio.values()) <= target else "no"
        jobs = "/".join(str(r["runs"][c][0]["jobs"]) for c in ("score", "score-delta", "lineage-delta"))
        lines.append(
            f"| {r['rows']:,} | {r['reps']} | {s['score']:.1f} | {s['score-delta']:.1f} | {s['lineage-delta']:.1f} "
            f"| {ratio['parquet']:.2f}× | {spread(r['delta_paired']['parquet'])} | {ratio['script']:.2f}× "
            f"| {spread(r['delta_paired']['script'])} | ≤ {target:.2f}× both | {met} | {jobs} |"
        )
    lines += [
        "",
        "Delta's own work, median over the measured runs, from each process's event log (SQL executions): "
        "`DESCRIBE HISTORY` reads, the snapshot state Delta computes (executions described "
        "`Delta: Compute snapshot …`), the write command, the data pass within it, and what the command "
        "spent after that pass (the Delta log commit and its post-commit work):",
        "",
        "| rows | case | " + " | ".join(title for _, title, _ in DELTA_COSTS) + " |",
        "| ---: | --- |" + " ---: |" * len(DELTA_COSTS),
    ]
    for r in results:
        for case in (c for c in DELTA_CASES if c in r["runs"]):
            cells = [
                form.format(statistics.median(run["delta"][key] for run in r["runs"][case]))
                for key, _, form in DELTA_COSTS
            ]
            lines.append(f"| {r['rows']:,} | {LABELS[case]} | " + " | ".join(cells) + " |")
    return lines


def table(results: list[dict], analysis: str | None) -> str:
    loads = [load for r in results for load in r["load"]]
    lines = [
        START,
        "## Scoring: `synapse-ml-track score` against plain scripts",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench-score` "
        f"(bench/score.py); whole-process wall time, median of repetitions interleaved in one run after an "
        f"unmeasured warm-up of {', '.join(', '.join(r['warmup']) or 'no case' for r in results)} "
        f"(the order alternates), Spark {' '.join(SPARK_ARGS[:2])} with Delta Lake on in every process (the "
        "pinned jars, its extension and catalog, as a Synapse pool has them). Baselines "
        "(bench/plain_score.py): "
        "*minimal* writes the input's columns and the prediction; *careful* also one probability column "
        "per class (`vector_to_array`), as `score` does. *paired* is the median (min–max) of each "
        "repetition's score time over the baseline's time in the same repetition. Load average (1 min) "
        f"before each process: {min(loads):.1f}–{max(loads):.1f} (at the start / end of each size: "
        + ", ".join(f"{r['load_start']:.1f} / {r['load_end']:.1f}" for r in results)
        + "). Jobs and input passes come from each process's Spark event log.",
        "",
        "| rows | reps | minimal s | careful s | score s | score / minimal | paired | score / careful | paired "
        "| target (vs minimal) | met | jobs minimal / careful / score | input passes |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | :---: | ---: | :---: | ---: | :---: | :---: | :---: |",
    ]
    for r in (r for r in results if len(r["ratio"]) == 2):
        s = r["seconds"]
        jobs = "/".join(str(r["runs"][c][0]["jobs"]) for c in CASES[:3])
        passes = " / ".join(f"{r['runs'][c][0]['input_passes']:.2f}" for c in CASES[:3])
        target = f"≤ {r['target']:.2f}×" if r["target"] else "–"
        met = ("yes" if r["ratio"]["plain"] <= r["target"] else "no") if r["target"] else "–"
        lines.append(
            f"| {r['rows']:,} | {r['reps']} | {s['plain']:.1f} | {s['careful']:.1f} | {s['score']:.1f} "
            f"| {r['ratio']['plain']:.2f}× | {spread(r['paired']['plain'])} | {r['ratio']['careful']:.2f}× "
            f"| {spread(r['paired']['careful'])} | {target} | {met} | {jobs} | {passes} |"
        )
    lines += delta_table(results)
    lines += [
        "",
        "Throughput (median whole-process time) and the Spark tasks' CPU time (median, from the event log):",
        "",
        "| rows | case | s | rows/s | task CPU s |",
        "| ---: | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        for case in (c for c in CASES if c in r["runs"]):
            lines.append(
                f"| {r['rows']:,} | {LABELS[case]} | {r['seconds'][case]:.1f} | {r['rows'] / r['seconds'][case]:,.0f} "
                f"| {r['task_cpu'][case]:.1f} |"
            )
    for r in results:
        lines += breakdown(r)
    lines += ["", *analysis_lines(analysis, ANALYSIS_START, ANALYSIS_END), END]
    return "\n".join(lines)


def write_results(results: list[dict]) -> None:
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    path = BENCH / "results.md"
    analysis = marked(path.read_text(encoding="utf-8") if path.exists() else "", ANALYSIS_START, ANALYSIS_END)
    section = table(results, analysis.strip() if analysis is not None else None)
    write_section(path, START, END, section)
    print(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, one repetition")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000], help="input sizes")
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES, help="the cases run (default: all)")
    parser.add_argument("--no-warmup", action="store_true", help="skip the unmeasured first run of each case")
    parser.add_argument(
        "--warmup-cases", nargs="+", choices=CASES, default=CASES,
        help="the cases with an unmeasured first run (e.g. only the Delta ones, so each measured Delta run overwrites)",
    )  # fmt: skip
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    train_model()
    sizes = (
        [(1_000_000, 1)]
        if args.quick
        else [(rows, args.reps if rows <= 1_000_000 else max(1, args.reps - 1)) for rows in args.rows]
    )
    warmup = () if args.no_warmup else tuple(args.warmup_cases)
    cases = tuple(c for c in CASES if c in args.cases)
    write_results([bench_size(rows, reps, warmup, cases) for rows, reps in sizes])


if __name__ == "__main__":
    main()
