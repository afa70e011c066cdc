"""Benchmark: `synapse-ml-track score` appending to a Delta table against a plain script's Delta append.

    make bench-score-delta                  # 1,000,000 rows, 3 repetitions of each case
    make bench-score-delta ARGS="--quick"   # one repetition
    make bench-score-delta ARGS="--help"    # --reps, --rows

bench/score.py's set-up (its generated Parquet input, registered model, whole-process timing, event-log
counts and alternating repetitions after a warm-up), with Delta Lake on in both processes: the pinned
jars from `make delta-jars`, its extension and catalog, given as the same spark-submit settings.
  plain  bench/plain_score.py ... delta append: read, load, transform, df.write.format("delta").mode("append")
  score  synapse-ml-track score --output-format delta --mode append --run-key <a new key each run>
         --unscorable drop: the run-key look-up in the table's history, txnAppId/txnVersion, counts, tracking run
Each case appends to a table of its own, which its warm-up creates, so each measured run appends to a table
with the other case's history. `--unscorable drop` keeps the rows the plain script keeps (it drops null model
inputs); nothing is reported unless both tables end with the same number of rows. Delta's own work (history
reads, snapshot state, the commit) is read from each process's event log. Writes the Delta scoring section of
bench/results.md (its analysis block is hand-written and kept) and bench/work/score/delta/results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH)]

from synapse_ml_track.spark import delta  # noqa: E402

from eventlog import SNAPSHOT_DESCRIPTION, delta_costs  # noqa: E402
from score import (  # noqa: E402
    BIN,
    MODEL_URI,
    SPARK_ARGS,
    delta_submit_args,
    event_counts,
    input_bytes,
    interleaved,
    parquet_input,
    run_case,
    tracking_uri,
    train_model,
)
from score import WORK as SCORE_WORK  # noqa: E402
from search import library_version, run_meta  # noqa: E402
from sections import analysis_lines, write_analysed_section  # noqa: E402

WORK = SCORE_WORK / "delta"
CASES = ("plain", "score")
START, END = "<!-- scoring-delta -->", "<!-- /scoring-delta -->"
ANALYSIS_START, ANALYSIS_END = "<!-- scoring-delta-analysis -->", "<!-- /scoring-delta-analysis -->"


def command(case: str, source: Path, run_key: str, summary: Path) -> list[str]:
    table = WORK / "tables" / case
    if case == "plain":
        return [sys.executable, str(BENCH / "plain_score.py"), MODEL_URI, str(source), str(table), "delta", "append"]
    return [
        str(BIN / "synapse-ml-track"), "score", "--tracking-uri", tracking_uri(), "--experiment-name", "bench-score",
        "--model-uri", MODEL_URI, "--input", str(source), "--output-path", str(table), "--output-format", "delta",
        "--mode", "append", "--run-key", run_key, "--unscorable", "drop", "--log-level", "WARNING",
        "--output", str(summary),
    ]  # fmt: skip


def measure(case: str, source: Path, label: str, run_prefix: str) -> dict:
    summary = WORK / "summaries" / f"{label}.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    run, event_dir = run_case(command(case, source, f"{run_prefix}-{label}", summary), label, delta_submit_args())
    jobs, read, *_ = event_counts(event_dir)
    result = {**run, "jobs": jobs, "input_passes": read / input_bytes(source), **delta_costs(event_dir)}
    if case == "score":
        outcome = json.loads(summary.read_text())
        if (outcome["status"], outcome["output_written"]) != ("scored", True):
            raise SystemExit(f"{label}: the job wrote nothing ({outcome['status']}), so no keyed append was measured")
        result["rows_scored"] = outcome["rows_scored"]
    return result


def table_rows() -> dict[str, int]:
    """Each case's table, counted by Spark with Delta on."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master("local[2]").appName("bench-score-delta-rows")
    settings = {"spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false", **delta.local_session_conf()}
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    try:
        return {case: spark.read.format("delta").load(str(WORK / "tables" / case)).count() for case in CASES}
    finally:
        spark.stop()


def summarise(rows: int, reps: int, runs: dict[str, list[dict]], counted: dict[str, int]) -> dict:
    seconds = {case: [run["seconds"] for run in runs[case]] for case in CASES}
    median = {case: statistics.median(seconds[case]) for case in CASES}
    return {
        "rows": rows,
        "reps": reps,
        "runs": runs,
        "table_rows": counted,
        "appends": reps + 1,
        "min": {case: min(seconds[case]) for case in CASES},
        "median": median,
        "ratio": median["score"] / median["plain"],
        "ratio_of_mins": min(seconds["score"]) / min(seconds["plain"]),
        "paired": [s / p for s, p in zip(seconds["score"], seconds["plain"], strict=True)],
    }


COSTS = (
    ("history_reads", "DESCRIBE HISTORY reads", "{:.0f}"),
    ("history_s", "their s", "{:.2f}"),
    ("snapshot_s", "snapshot state s", "{:.2f}"),
    ("write_s", "write command s", "{:.1f}"),
    ("data_write_s", "of which the data pass s", "{:.1f}"),
    ("after_data_s", "after the data pass (commit) s", "{:.2f}"),
)


def section(result: dict, meta: dict, analysis: str | None) -> str:
    r = result
    scored = sorted({run["rows_scored"] for run in r["runs"]["score"]})
    lines = [
        START,
        "## Scoring into Delta: `score --mode append --run-key` against a plain Delta append",
        "",
        f"Measured {meta['finished']} by `{meta['command']}` (bench/score_delta.py, {meta['minutes']:.1f} min); "
        f"{r['rows']:,} generated rows (Parquet), whole-process wall time, one unmeasured warm-up of each case, "
        f"then {r['reps']} interleaved repetition(s); Spark {' '.join(SPARK_ARGS[:2])} with Delta Lake "
        f"{delta.DELTA_VERSION} (the pinned jars, its extension and catalog) in both processes.",
        "",
        f"- Machine: {meta['machine']}",
        f"- Library: {meta['version']}.",
        f"- Load average (1 min) at start / end: {meta['load_start']:.2f} / {meta['load_end']:.2f}; after each "
        f"measured run: {meta['load_runs']}. 2 shared cores: other helpers' test suites and benchmarks ran at the "
        "same time, so single runs are noisy; read the minimum and the paired ratios beside the median.",
        f"- Tables: after {r['appends']} appends each (the warm-up's created it), plain {r['table_rows']['plain']:,} "
        f"rows, score {r['table_rows']['score']:,} rows (equal: the benchmark refuses to report otherwise); "
        f"each score append: {', '.join(f'{n:,}' for n in scored)} rows (the scorable ones: `--unscorable drop`; "
        "the plain script drops the same rows with `dropna`).",
        "",
        "| rows | reps | plain min / median s | score min / median s | ratio of medians | ratio of minimums "
        "| paired ratios score/plain | jobs plain / score | input passes plain / score |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | --- | :---: | :---: |",
        f"| {r['rows']:,} | {r['reps']} | {r['min']['plain']:.1f} / {r['median']['plain']:.1f} "
        f"| {r['min']['score']:.1f} / {r['median']['score']:.1f} | **{r['ratio']:.2f}×** | {r['ratio_of_mins']:.2f}× "
        f"| {', '.join(f'{p:.2f}' for p in r['paired'])} "
        f"| {'/'.join(str(r['runs'][c][0]['jobs']) for c in CASES)} "
        f"| {' / '.join(format(r['runs'][c][0]['input_passes'], '.2f') for c in CASES)} |",
        "",
        "Delta's own work, median over the measured runs, from each process's event log (SQL executions): "
        "`DESCRIBE HISTORY` reads (the job's run-key look-ups), the snapshot state Delta computes inside the "
        f"write (executions described `Delta: {SNAPSHOT_DESCRIPTION} …`), the write command, the data pass within "
        "it, and what the command spent after that pass (the Delta log commit and its post-commit work).",
        "",
        "| case | " + " | ".join(title for _, title, _ in COSTS) + " |",
        "| --- |" + " ---: |" * len(COSTS),
    ]
    for case in CASES:
        cells = [form.format(statistics.median(run[key] for run in r["runs"][case])) for key, _, form in COSTS]
        lines.append(f"| {case} | " + " | ".join(cells) + " |")
    lines += ["", *analysis_lines(analysis, ANALYSIS_START, ANALYSIS_END), END]
    return "\n".join(lines)


def write_results(result: dict, meta: dict) -> None:
    (WORK / "results.json").write_text(json.dumps({"meta": meta, "result": result}, indent=1))
    markers, analysis_markers = (START, END), (ANALYSIS_START, ANALYSIS_END)
    print(
        write_analysed_section(
            BENCH / "results.md", markers, analysis_markers, lambda analysis: section(result, meta, analysis)
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of each case (default 3)")
    parser.add_argument("--rows", type=int, default=1_000_000, help="generated rows (default 1,000,000)")
    args = parser.parse_args()
    reps = 1 if args.quick else args.reps
    started, load_start, version = time.perf_counter(), os.getloadavg()[0], library_version()
    WORK.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(WORK / "tables", ignore_errors=True)
    train_model()
    source = parquet_input(args.rows)
    run_prefix = f"bench-delta-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
    runs = interleaved(lambda case, label: measure(case, source, label, run_prefix), CASES, reps, f"delta-{args.rows}")
    counted = table_rows()
    if counted["plain"] != counted["score"]:
        raise SystemExit(f"the tables differ: plain {counted['plain']:,} rows, score {counted['score']:,}; no report")
    meta = run_meta("make bench-score-delta", started, load_start, version, [run for c in CASES for run in runs[c]])
    write_results(summarise(args.rows, reps, runs, counted), meta)


if __name__ == "__main__":
    main()
