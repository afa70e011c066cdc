"""Benchmark: what `synapse-ml-track score` costs over a plain read-load-transform-write script.

    make bench-score                    # 1,000,000 and 10,000,000 generated rows
    make bench-score ARGS="--quick"     # 1,000,000 rows, one repetition

Both cases run as their own process (whole-process time: JVM start, model load, scoring, write),
with the same Spark settings, on the same Parquet input, scoring the same registered model:
  plain  bench/plain_score.py: spark.read.parquet, mlflow.spark.load_model, transform, write
  score  synapse-ml-track score: signature check, unscorable reasons, counts, tracking run
Repetitions are interleaved (the order alternates) after one unmeasured warm-up of each case.
Passes over the input are read from each process's Spark event log: the jobs it ran, and the
bytes its tasks read divided by the input's size. Writes the scoring section of bench/results.md
and bench/work/score/results.json.
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
from eventlog import events  # noqa: E402
from sections import write_section  # noqa: E402

MODEL = "bench-score"
MODEL_URI = f"models:/{MODEL}/latest"
SPARK_ARGS = ["--master", "local[2]", "--driver-memory", "4g", "--conf", "spark.ui.enabled=false"]
TARGETS = {1_000_000: 1.10, 10_000_000: 1.05}  # issue 13: whole-process ratio score / plain
START, END = "<!-- scoring -->", "<!-- /scoring -->"


def tracking_uri() -> str:
    return f"sqlite:///{WORK / 'mlflow.db'}"


def train_model() -> None:
    """Register one model on the bundled penguins: the generated rows share its columns."""
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


def command(case: str, source: Path, output: Path) -> list[str]:
    if case == "plain":
        return [sys.executable, str(BENCH / "plain_score.py"), MODEL_URI, str(source), str(output)]
    return [
        str(BIN / "synapse-ml-track"), "score", "--tracking-uri", tracking_uri(), "--experiment-name", "bench-score",
        "--model-uri", MODEL_URI, "--input", str(source), "--output-path", str(output),
        "--output-format", "parquet", "--mode", "overwrite", "--log-level", "WARNING",
    ]  # fmt: skip


def input_bytes(source: Path) -> int:
    return sum(p.stat().st_size for p in source.glob("*.parquet"))


def event_counts(event_dir: Path) -> tuple[int, int]:
    """(Spark jobs, bytes read by tasks) from the one event log in event_dir."""
    jobs = read = 0
    for event in events(event_dir):
        if event["Event"] == "SparkListenerJobStart":
            jobs += 1
        elif event["Event"] == "SparkListenerTaskEnd":
            read += event.get("Task Metrics", {}).get("Input Metrics", {}).get("Bytes Read", 0)
    return jobs, read


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


def measure(case: str, source: Path, label: str) -> dict:
    run, event_dir = run_case(command(case, source, WORK / "out" / case), label)
    jobs, read = event_counts(event_dir)
    return {**run, "jobs": jobs, "input_passes": read / input_bytes(source)}


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


def bench_size(rows: int, reps: int) -> dict:
    source = parquet_input(rows)
    runs = interleaved(lambda case, label: measure(case, source, label), ("plain", "score"), reps, str(rows))
    plain = statistics.median(r["seconds"] for r in runs["plain"])
    score = statistics.median(r["seconds"] for r in runs["score"])
    return {
        "rows": rows,
        "reps": reps,
        "runs": runs,
        "plain_s": plain,
        "score_s": score,
        "ratio": score / plain,
        "target": TARGETS.get(rows),
    }


def table(results: list[dict]) -> str:
    lines = [
        START,
        "## Scoring: `synapse-ml-track score` against a plain script",
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `make bench-score` "
        f"(bench/score.py); whole-process wall time, median of interleaved repetitions, Spark "
        f"{' '.join(SPARK_ARGS[:2])}. Jobs and input passes come from each process's Spark event log.",
        "",
        "| rows | reps | plain s | score s | ratio | target | met | jobs plain / score | input passes plain / score |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | :---: | :---: | :---: |",
    ]
    for r in results:
        jobs = "/".join(str(r["runs"][c][0]["jobs"]) for c in ("plain", "score"))
        passes = " / ".join(f"{r['runs'][c][0]['input_passes']:.2f}" for c in ("plain", "score"))
        target = f"≤ {r['target']:.2f}×" if r["target"] else "–"
        met = ("yes" if r["ratio"] <= r["target"] else "no") if r["target"] else "–"
        lines.append(
            f"| {r['rows']:,} | {r['reps']} | {r['plain_s']:.1f} | {r['score_s']:.1f} | {r['ratio']:.2f}× "
            f"| {target} | {met} | {jobs} | {passes} |"
        )
    lines.append(END)
    return "\n".join(lines)


def write_results(results: list[dict]) -> None:
    (WORK / "results.json").write_text(json.dumps(results, indent=2))
    section = table(results)
    write_section(BENCH / "results.md", START, END, section)
    print(section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000,000 rows, one repetition")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    train_model()
    sizes = [(1_000_000, 1)] if args.quick else [(1_000_000, args.reps), (10_000_000, max(1, args.reps - 1))]
    write_results([bench_size(rows, reps) for rows, reps in sizes])


if __name__ == "__main__":
    main()
